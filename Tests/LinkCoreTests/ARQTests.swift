@testable import LinkCore
import Testing

/// Counts transmissions per sequence number as frames go by: a sequenced frame is one
/// transmission, a set of fragments (starting at index 0) is one too.
final class TransmissionCounter {
    var counts: [UInt16: Int] = [:]

    /// The frame's sequence number and which transmission of it this is (1 = first), if sequenced.
    func note(_ encoded: [UInt8]) -> (seq: UInt16, transmission: Int)? {
        guard let f = InspectedFrame(encoded: encoded), let seq = f.sequence else { return nil }
        if f.isSequenced || (f.isFragment && f.content[3] == 0) { counts[seq, default: 0] += 1 }
        return (seq, counts[seq, default: 1])
    }
}

@Suite("ARQ")
struct ARQTests {
    @Test("a dropped sequenced frame is retransmitted; data arrives intact and in order", arguments: [0, 1, 3, 12] as [UInt16])
    func dropOne(seq: UInt16) throws {
        let pair = Pair(seed: 61)
        #expect(pair.establish())
        let counter = TransmissionCounter()
        pair.filter = { side, frame, _ in
            guard side == .a, let t = counter.note(frame) else { return .deliver }
            return t.seq == seq && t.transmission == 1 ? .drop : .deliver
        }
        let id = try pair.open(.a)
        let data = pattern(400_000, seed: 1)
        pair.write(.a, id, data, finish: true)
        var outOfOrderSeen = 0
        pair.invariant = { p in outOfOrderSeen = max(outOfOrderSeen, p.b.inspection.heldOutOfOrder) }
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == data)
        #expect(pair.dropped[0] == 1)
        #expect(pair.a.statistics.retransmissions >= 1)
        #expect(counter.counts[seq] == 2)
        if seq > 0 { #expect(outOfOrderSeen > 0) }
        #expect(pair.quiesce())
        #expect(pair.b.inspection.heldOutOfOrder == 0 && pair.b.inspection.fragmentAssemblies == 0)
    }

    @Test("a frame whose retransmission is lost too still gets through", arguments: [2, 3])
    func dropRetransmissionToo(times: Int) throws {
        let pair = Pair(seed: 62)
        #expect(pair.establish())
        let counter = TransmissionCounter()
        pair.filter = { side, frame, _ in
            guard side == .a, let t = counter.note(frame) else { return .deliver }
            return t.seq == 4 && t.transmission <= times ? .drop : .deliver
        }
        let id = try pair.open(.a)
        let data = pattern(400_000, seed: 2)
        pair.write(.a, id, data, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == data)
        #expect(counter.counts[4] == times + 1)
        #expect(pair.a.statistics.retransmissions >= times)
    }

    /// The only frame in flight: nothing later can reveal its loss, so only the timer can.
    @Test("a lone frame lost twice is recovered by the retransmission timer")
    func timeoutRecovery() throws {
        let pair = Pair(seed: 63)
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        #expect(pair.quiesce())
        let counter = TransmissionCounter()
        var dropTimes: [LinkTime] = []
        pair.filter = { side, frame, now in
            guard side == .a, let t = counter.note(frame) else { return .deliver }
            if t.transmission <= 2 {
                dropTimes.append(now)
                return .drop
            }
            return .deliver
        }
        let sentAt = pair.now
        pair.write(.a, id, Array("ping?".utf8))
        #expect(pair.run(timeLimit: .seconds(20)) { $0.receivedCount(.b, id) == 5 })
        #expect(pair.receivedBytes(.b, id) == Array("ping?".utf8))
        // Each retry waited for a timer (the tail probe's or the retransmission timer's), or
        // for the PONG of the PING that a timer's guess sends to prove the loss (§4.3). No
        // later frame could reveal it.
        let s = pair.a.statistics
        #expect(s.timeoutRetransmissions + s.tailProbes + s.probeRepairs >= 2, "\(s)")
        #expect(s.retransmissions == 2)
        #expect(dropTimes.count == 2)
        #expect(dropTimes[1] > dropTimes[0])
        #expect(pair.now > sentAt)
        #expect(pair.now - sentAt <= .seconds(5))
    }

    /// The RTO allows for one of the peer's largest frames (0.7 s at 115 200 baud), since an
    /// acknowledgement may wait behind it. A PING after one RTO without that allowance asks:
    /// the PONG's acknowledgement is written after every earlier frame reached the peer, so it
    /// tells the loss exactly, and the frame is resent without waiting for the timer.
    @Test("a lost tail frame is found by a PING's PONG, well before the retransmission timer")
    func tailProbe() throws {
        let pair = Pair(seed: 66) { _, c in c.lineBytesPerSecond = 11_520 }
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        #expect(pair.quiesce())
        let counter = TransmissionCounter()
        var dropped = 0
        pair.filter = { side, frame, _ in
            guard side == .a, let t = counter.note(frame), t.transmission == 1, dropped == 0 else { return .deliver }
            dropped += 1
            return .drop
        }
        // B sent a sequenced frame (its OPEN-OK) just now, so the RTO counts a whole peer frame.
        try pair.b.send([1], on: id)
        #expect(pair.run { $0.receivedCount(.a, id) == 1 })
        let sentAt = pair.now
        pair.write(.a, id, Array("tail".utf8))
        pair.step()
        let frame = try #require(pair.a.inspection.outstandingFrames.first)
        let rtoWaits = frame.retransmissionDeadline - sentAt
        #expect(rtoWaits > .milliseconds(700))
        #expect(pair.run(timeLimit: .seconds(5)) { $0.receivedCount(.b, id) == 4 })
        #expect(dropped == 1)
        #expect(pair.a.statistics.timeoutRetransmissions == 0)
        #expect(pair.a.statistics.tailProbes == 1)
        #expect(pair.a.statistics.probeRepairs == 1)
        #expect(pair.now - sentAt + .milliseconds(500) < rtoWaits)
        // An answered probe for a frame that was only slow costs nothing more.
        #expect(pair.quiesce())
        #expect(pair.a.statistics.retransmissions == 1)
    }

    @Test("no more than 32 frames are ever outstanding, and a silent peer stops new frames at 32")
    func sendWindowCap() throws {
        let pair = Pair(seed: 64) { _, c in c.maxFrameBody = 1024 }
        pair.pollLimit = 1 << 20
        #expect(pair.establish())
        var maxOutstanding = 0
        pair.invariant = { p in
            maxOutstanding = max(maxOutstanding, p.a.inspection.outstandingFrames.count,
                                 p.b.inspection.outstandingFrames.count)
        }
        let id = try pair.open(.a)
        let data = pattern(200_000, seed: 3)
        pair.write(.a, id, data, finish: true)
        // B's acknowledgements are held back for a while.
        pair.filter = { side, _, _ in side == .b ? .hold : .deliver }
        pair.run(for: .seconds(1))
        #expect(pair.a.inspection.outstandingFrames.count == Wire.sackBits)
        #expect(maxOutstanding == Wire.sackBits)
        let sentSoFar = pair.a.statistics.payloadBytesSent
        pair.run(for: .seconds(5))
        #expect(pair.a.statistics.payloadBytesSent == sentSoFar)
        pair.filter = nil
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == data)
        #expect(maxOutstanding <= Wire.sackBits)
    }

    @Test("the slack the I/O layer declares below the core lengthens the retransmission timeout by its line time")
    func queueSlackCountsInTimeout() throws {
        var plain = LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: 11_520, seed: 3)
        var slack = plain
        slack.queueSlackBelow = 138  // 12 ms at 115200 baud
        plain.queueSlackBelow = 0
        let without = Link(configuration: plain).inspection.retransmissionTimeout(forLineBytes: 100)
        let with = Link(configuration: slack).inspection.retransmissionTimeout(forLineBytes: 100)
        #expect(abs(with.nanoseconds - without.nanoseconds - 138 * 1_000_000_000 / 11_520) <= 1)  // integer division
        let slackLink = Link(configuration: slack)
        #expect(slackLink.inspection.queueBelow == slackLink.preferredQueueBelow + 138)
    }

    @Test("nextDeadline: a retransmission time while frames are unacknowledged, the keepalive when idle")
    func deadlines() throws {
        let pair = Pair(seed: 65) { _, c in
            c.keepaliveInterval = .seconds(60)
            c.silenceTimeout = .seconds(120)
            c.gracePeriod = .seconds(600)
        }
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        #expect(pair.quiesce())
        // Idle: only the keepalive timer.
        #expect(pair.a.nextDeadline == pair.a.inspection.lastHeardAt! + .seconds(60))

        pair.filter = { side, _, _ in side == .b ? .drop : .deliver }  // acknowledgements are lost
        try pair.a.send(pattern(1000, seed: 4), on: id)
        let sentAt = pair.now
        pair.step()
        #expect(pair.a.inspection.outstandingFrames.contains { !$0.isAcknowledged })
        let deadline = try #require(pair.a.nextDeadline)
        #expect(deadline > pair.now)
        #expect(deadline <= pair.now + .seconds(2))
        #expect(deadline == pair.a.inspection.outstandingFrames[0].retransmissionDeadline)

        // At the deadline the frame is resent, and a later deadline (backed off) is set.
        pair.now = deadline
        pair.fireTimers()
        #expect(pair.a.statistics.timeoutRetransmissions == 1)
        pair.step()
        #expect(pair.a.statistics.retransmissions == 1)
        let second = try #require(pair.a.nextDeadline)
        #expect(second - deadline >= deadline - sentAt, "the timer backs off")

        pair.filter = nil
        #expect(pair.quiesce())
        #expect(pair.a.inspection.outstandingFrames.isEmpty)
        let idle = try #require(pair.a.nextDeadline)
        let heard = try #require(pair.a.inspection.lastHeardAt)
        #expect(idle == max(heard, pair.a.inspection.lastPingSentAt ?? heard) + .seconds(60))
    }

    @Test("random loss in both directions, acknowledgements included: everything arrives intact", arguments: [1, 2, 3] as [UInt64])
    func randomLoss(seed: UInt64) throws {
        let pair = Pair(seed: 66 + seed)
        var rng = SplitMix64(seed: seed)
        pair.filter = { _, _, _ in rng.next() % 100 < 15 ? .drop : .deliver }
        #expect(pair.establish())
        var maxOutstanding = 0
        pair.invariant = { p in
            maxOutstanding = max(maxOutstanding, p.a.inspection.outstandingFrames.count,
                                 p.b.inspection.outstandingFrames.count)
        }
        let up = try pair.open(.a)
        let down = try pair.open(.b)
        let d1 = pattern(300_000, seed: seed)
        let d2 = pattern(200_000, seed: seed + 100)
        pair.write(.a, up, d1, finish: true)
        pair.write(.b, down, d2, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(up)) && $0.has(.a, .remoteFinished(down)) })
        #expect(pair.receivedBytes(.b, up) == d1)
        #expect(pair.receivedBytes(.a, down) == d2)
        #expect(maxOutstanding <= Wire.sackBits)
        #expect(pair.a.statistics.retransmissions > 0 && pair.b.statistics.retransmissions > 0)
        #expect(!pair.log.contains { if case .streamReset = $0.event { return true } else { return false } })
    }

    @Test("sequence numbers wrap around 65535 without a hitch")
    func sequenceWrap() throws {
        let pair = Pair(seed: 67)
        #expect(pair.establish())
        #expect(pair.quiesce())
        pair.a.nextSequence = SequenceNumber(65_530)
        pair.b.expectedSequence = SequenceNumber(65_530)
        let counter = TransmissionCounter()
        pair.filter = { side, frame, _ in
            guard side == .a, let t = counter.note(frame) else { return .deliver }
            return (t.seq == 65_534 || t.seq == 1) && t.transmission == 1 ? .drop : .deliver
        }
        let id = try pair.open(.a)
        let data = pattern(300_000, seed: 5)
        pair.write(.a, id, data, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == data)
        #expect(pair.a.inspection.nextSequence.rawValue < 1000)
        #expect(counter.counts[65_534] == 2 && counter.counts[1] == 2)
    }

    /// On a line that turned noisy, a long frame is resent in fragments; the receiver keeps the
    /// pieces that arrive and combines pieces of several retransmissions.
    @Test("long frames are resent in fragments and reassembled, even across retransmissions")
    func fragmentedRetransmission() throws {
        let pair = Pair(seed: 68)
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        #expect(pair.quiesce())
        let dataSeq = pair.a.inspection.nextSequence.rawValue
        var rounds: [(count: UInt8, dropped: UInt8)] = []
        pair.filter = { side, frame, _ in
            guard side == .a, let f = InspectedFrame(encoded: frame), f.sequence == dataSeq else { return .deliver }
            if f.isSequenced { return .drop }  // the first transmission, whole
            let (index, count) = (f.content[3], f.content[4])
            if index == 0 { rounds.append((count, UInt8(rounds.count + 1))) }
            // Round 1 loses piece 1, round 2 loses piece 2: only together are they complete.
            return index == rounds.last!.dropped ? .drop : .deliver
        }
        let data = pattern(2100, seed: 6)  // > 2 quanta, so it is streamed as DATA-TAIL frames
        try pair.a.send(data, on: id)
        pair.step()  // the frame leaves (and is lost)
        let inFlight = pair.a.inspection.outstandingFrames
        #expect(inFlight.count >= 1 && inFlight[0].bodyBytes > 1000,
                "\(inFlight.map(\.bodyBytes)) target \(pair.a.inspection.frameTarget)")
        // Meanwhile the line looks noisy: frames must be short now.
        pair.a.errorEstimateLosses = 40
        #expect(pair.a.inspection.frameTarget < 1000)
        #expect(pair.run(timeLimit: .seconds(30)) { $0.receivedCount(.b, id) == data.count })
        #expect(pair.receivedBytes(.b, id) == data)
        #expect(rounds.count == 2)
        #expect(rounds.allSatisfy { $0.count >= 3 && $0.count == rounds[0].count })
        // The last acknowledgement may wait its short delay for a reply to ride on (§4.2).
        #expect(pair.run(timeLimit: .seconds(5)) { $0.a.inspection.outstandingFrames.allSatisfy { $0.isAcknowledged } })
        #expect(pair.b.inspection.fragmentAssemblies == 0)
    }

    /// Two cores paced at `rate` bytes per second, on a clock that runs at the line's speed.
    static func pacedPair(seed: UInt64, rate: Int) -> Pair {
        let pair = Pair(seed: seed) { _, c in c.lineBytesPerSecond = rate }
        pair.clockBytesPerSecond = rate
        pair.pollLimit = pair.a.preferredQueueBelow
        return pair
    }

    /// 115 200 baud, full duplex, no errors, bulk data both ways. Each end's acknowledgements
    /// ride in the trailer of its own long DATA-TAIL frames; a clean line must see no timeouts,
    /// no duplicates and no shrinking of frames.
    @Test("a clean paced line with traffic both ways has no spurious retransmissions")
    func noSpuriousTimeoutsOnPacedLine() throws {
        let rate = 11_520
        let pair = Self.pacedPair(seed: 69, rate: rate)
        #expect(pair.establish())
        let initialTarget = pair.a.inspection.frameTarget
        let up = try pair.open(.a)
        let down = try pair.open(.b)
        let d1 = pattern(5 * rate, seed: 1)
        let d2 = pattern(rate, seed: 2)
        pair.write(.a, up, d1, finish: true)
        pair.write(.b, down, d2, finish: true)
        let start = pair.now
        #expect(pair.run(timeLimit: .seconds(60)) { $0.has(.b, .remoteFinished(up)) && $0.has(.a, .remoteFinished(down)) })
        #expect(pair.receivedBytes(.b, up) == d1 && pair.receivedBytes(.a, down) == d2)
        // The line was busy: ~6 s of payload in each direction's worth of time.
        #expect(pair.now - start < .seconds(7))
        let (a, b) = (pair.a.statistics, pair.b.statistics)
        // An acknowledgement owed by an end that is streaming a long DATA-TAIL frame waits for
        // that frame's trailer (a whole frame time). The RTO must allow for one maximum-size
        // peer frame, or small frames time out needlessly and the frame target shrinks.
        #expect(a.timeoutRetransmissions + b.timeoutRetransmissions == 0)
        #expect(a.duplicateFrames + b.duplicateFrames == 0)
        #expect(pair.a.inspection.frameTarget >= initialTarget && pair.b.inspection.frameTarget >= initialTarget,
                "frame targets \(pair.a.inspection.frameTarget) and \(pair.b.inspection.frameTarget), from \(initialTarget)")
    }

    /// A fast line (unpaced, as a pty or USB CDC-ACM is) whose far end is busy now and then: its
    /// acknowledgements leave in bursts up to 25 ms late, far beyond the RTO of a line with a
    /// sub-millisecond round trip. Frames resent on a guess are cheap here; but a guess is not
    /// evidence of bit errors, and charging it shrank frames to the minimum: a forwarder with
    /// a thousand stalled streams beside one download ran at a twentieth of its speed (§4.3, §8.2).
    @Test("late acknowledgements from a busy peer on a fast line are not taken for bit errors: frames keep their full size")
    func lateAcknowledgementsAreNotBitErrors() throws {
        let pair = Pair(seed: 70)
        pair.clockBytesPerSecond = 20_000_000
        pair.pollLimit = 16_384
        #expect(pair.establish())
        // B is busy for 25 ms of every 60: what it sends meanwhile waits, then leaves at once.
        let period: Int64 = 60_000_000, busy: Int64 = 25_000_000
        func isBusy(_ t: LinkTime) -> Bool { t.nanoseconds % period < busy }
        pair.filter = { side, _, t in side == .b && isBusy(t) ? .hold : .deliver }
        pair.invariant = { p in if !isBusy(p.now) { p.releaseHeld(from: .b) } }
        let id = try pair.open(.a)
        let data = pattern(8_000_000, seed: 70)
        pair.write(.a, id, data, finish: true)
        #expect(pair.run(timeLimit: .seconds(120)) { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == data)
        let a = pair.a.statistics
        #expect(pair.a.inspection.frameTarget == pair.a.configuration.maxFrameBody,
                "frame target \(pair.a.inspection.frameTarget) after \(a.timeoutRetransmissions) timeouts, \(a.retransmissions) resends, \(pair.b.statistics.duplicateFrames) duplicates")
    }

    /// The other side of the rule above: a line that turns so noisy that no long frame gets
    /// through leaves no acknowledgement to prove anything, and the PONG of a probe is the only
    /// proof. Frames must still shrink and the transfer complete.
    @Test("a line that suddenly lets no long frame through: frames shrink and the transfer completes")
    func lineTurnsNoisy() throws {
        let pair = Self.pacedPair(seed: 71, rate: 100_000)
        #expect(pair.establish())
        let id = try pair.open(.a)
        let data = pattern(1_200_000, seed: 71)
        pair.write(.a, id, data, finish: true)
        #expect(pair.run(timeLimit: .seconds(60)) { $0.receivedCount(.b, id) >= 800_000 })
        #expect(pair.a.inspection.frameTarget == pair.a.configuration.maxFrameBody)
        // From now on every frame from A longer than 600 bytes is damaged on the way.
        pair.filter = { side, frame, _ in side == .a && frame.count > 600 ? .drop : .deliver }
        #expect(pair.run(timeLimit: .seconds(120)) { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == data)
        #expect(pair.a.inspection.frameTarget < 600, "frame target \(pair.a.inspection.frameTarget)")
    }
}
