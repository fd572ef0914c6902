@testable import LinkCore
import Testing

@Suite("Credit")
struct CreditTests {
    /// B's reader for s1 stalls; s2 on the same link must still complete, s1 must stop after
    /// exactly one window, and nothing beyond that window may pile up in B.
    @Test("a stalled reader stops only its own stream after initialWindow bytes; consumed resumes it")
    func stalledReaderIsolation() throws {
        let pair = Pair(seed: 51)
        #expect(pair.establish())
        let window = pair.b.configuration.initialWindow
        let s1 = try pair.openAccepted(from: .a, target: "stalled")
        let s2 = try pair.openAccepted(from: .a, target: "flowing")
        pair.stalled[Side.b.rawValue].insert(s1)
        let d1 = pattern(300_000, seed: 1)
        let d2 = pattern(300_000, seed: 2)
        pair.write(.a, s1, d1, finish: true)
        pair.write(.a, s2, d2, finish: true)
        var maxBuffered = 0
        var maxUnconsumed = 0
        pair.invariant = { p in
            maxBuffered = max(maxBuffered, p.b.bufferedReceiveBytes)
            maxUnconsumed = max(maxUnconsumed, p.b.inspection.stream(s1)?.unconsumed ?? 0)
        }
        #expect(pair.run { $0.has(.b, .remoteFinished(s2)) })
        #expect(pair.receivedBytes(.b, s2) == d2)
        pair.run(for: .seconds(10))  // plenty of time: s1 stays stopped
        #expect(pair.receivedCount(.b, s1) == window)
        #expect(pair.receivedBytes(.b, s1) == Array(d1.prefix(window)))
        #expect(pair.a.inspection.stream(s1)?.sendCredit == 0)
        #expect(pair.b.inspection.stream(s1)?.receiveRemaining == 0)
        #expect(maxUnconsumed <= window)
        #expect(maxBuffered <= window)
        #expect(pair.b.bufferedReceiveBytes == window)
        #expect(!pair.has(.b, .remoteFinished(s1)))
        #expect(pair.b.statistics.creditViolations == 0)

        pair.resume(.b, s1)
        #expect(pair.run { $0.has(.b, .remoteFinished(s1)) })
        #expect(pair.receivedBytes(.b, s1) == d1)
        #expect(maxBuffered <= window)
        #expect(pair.b.bufferedReceiveBytes == 0)
    }

    @Test("credit is granted as bytes are consumed, not as they arrive")
    func creditFollowsConsumption() throws {
        let pair = Pair(seed: 52)
        #expect(pair.establish())
        let window = pair.b.configuration.initialWindow
        let id = try pair.openAccepted(from: .a)
        pair.stalled[Side.b.rawValue].insert(id)
        pair.write(.a, id, pattern(4 * window, seed: 3), finish: true)
        #expect(pair.run { $0.receivedCount(.b, id) == window && $0.a.inspection.outstandingFrames.isEmpty })
        pair.run(for: .seconds(3))
        #expect(pair.receivedCount(.b, id) == window)
        // Consuming less than a quarter window grants nothing yet...
        pair.b.consumed(window / 4 - 1, on: id)
        pair.run(for: .seconds(3))
        #expect(pair.receivedCount(.b, id) == window)
        // ...one more byte makes a quarter, and exactly that much more arrives.
        pair.b.consumed(1, on: id)
        #expect(pair.run(timeLimit: .seconds(10)) { $0.receivedCount(.b, id) == window + window / 4 })
        pair.run(for: .seconds(3))
        #expect(pair.receivedCount(.b, id) == window + window / 4)
    }

    /// A hand-built DATA frame larger than the credit B granted.
    @Test("DATA beyond the granted credit resets the stream with .creditExceeded", arguments: [0, 1, 500])
    func handCraftedCreditViolation(excess: Int) throws {
        let window = 1000
        let pair = Pair(seed: 53) { side, c in if side == .b { c.initialWindow = window } }
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        #expect(pair.quiesce())
        #expect(pair.a.inspection.stream(id)?.sendCredit == window)
        // Inject the frame as A's next sequenced frame, and keep A's numbering in step.
        let seq = pair.a.inspection.nextSequence
        #expect(pair.b.inspection.expectedSequence == seq)
        let payload = pattern(window + excess, seed: 4)
        let ack = pair.a.inspection.expectedSequence
        pair.b.receive(sequencedFrame(seq: seq, messages: [.data(id, payload[...])], ack: ack), now: pair.now)
        pair.a.nextSequence = seq + 1

        if excess == 0 {
            #expect(pair.run(timeLimit: .seconds(5)) { $0.receivedCount(.b, id) == window })
            #expect(pair.b.statistics.creditViolations == 0)
            #expect(pair.b.inspection.stream(id) != nil)
            return
        }
        #expect(pair.run(timeLimit: .seconds(5)) { $0.has(.a, .streamReset(id, .creditExceeded)) })
        #expect(pair.has(.b, .streamReset(id, .creditExceeded)))
        #expect(pair.b.statistics.creditViolations == 1)
        #expect(pair.receivedCount(.b, id) == 0)
        #expect(pair.a.inspection.stream(id) == nil && pair.b.inspection.stream(id) == nil)
        #expect(pair.b.bufferedReceiveBytes == 0)
        // The link itself is fine: the next stream works.
        let next = try pair.openAccepted(from: .a)
        pair.write(.a, next, pattern(5000, seed: 5), finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(next)) })
        #expect(pair.receivedBytes(.b, next) == pattern(5000, seed: 5))
    }

    /// A sender that believes it has more credit than it was given (as a buggy or hostile peer would).
    @Test("a sender overrunning its credit is stopped by the receiver")
    func senderOverrunsCredit() throws {
        let pair = Pair(seed: 54)
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        let other = try pair.openAccepted(from: .a)
        pair.stalled[Side.b.rawValue].insert(id)
        #expect(pair.a.streams[id]!.peerGranted(5000) == .applied)  // a grant the peer never sent
        pair.write(.a, id, pattern(200_000, seed: 6))
        pair.write(.a, other, pattern(100_000, seed: 7), finish: true)
        #expect(pair.run { $0.has(.b, .streamReset(id, .creditExceeded)) && $0.has(.a, .streamReset(id, .creditExceeded)) })
        #expect(pair.b.statistics.creditViolations == 1)
        #expect(pair.receivedCount(.b, id) <= pair.b.configuration.initialWindow)
        #expect(pair.b.bufferedReceiveBytes <= pair.b.configuration.initialWindow)
        // The other stream is unaffected.
        #expect(pair.run { $0.has(.b, .remoteFinished(other)) })
        #expect(pair.receivedBytes(.b, other) == pattern(100_000, seed: 7))
        #expect(pair.b.statistics.creditViolations == 1)
    }

    /// A queued CREDIT can find nothing left to grant when it is its turn (a shrinking window took
    /// back what was pending, §6.1). Dropping it must leave the stream free to queue the next
    /// one, or it would never be granted credit again and stop once the peer's credit ran out.
    @Test("a CREDIT dropped because nothing is left to grant does not block the stream's later grants")
    func staleCreditDoesNotBlockGrants() throws {
        let pair = Pair(seed: 57)
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        #expect(pair.quiesce())
        // As a shrink leaves it: a CREDIT queued, and nothing pending any more.
        pair.b.streams[id]!.creditQueued = true
        pair.b.control.append(.credit(id))
        #expect(pair.quiesce())
        #expect(pair.b.inspection.stream(id)?.grantQueued == false)
        // The stream still flows past many windows: its grants keep coming.
        let data = pattern(5 * pair.b.configuration.initialWindow, seed: 3)
        pair.write(.a, id, data, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == data)
    }

    @Test("a CREDIT that overflows the window resets the stream as a protocol violation")
    func creditOverflow() throws {
        let pair = Pair(seed: 55)
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        #expect(pair.quiesce())
        let seq = pair.b.inspection.nextSequence
        let ack = pair.b.inspection.expectedSequence
        pair.a.receive(sequencedFrame(seq: seq, messages: [.credit(id, UInt32.max)], ack: ack), now: pair.now)
        pair.b.nextSequence = seq + 1
        #expect(pair.run(timeLimit: .seconds(5)) { $0.has(.b, .streamReset(id, .protocolViolation)) })
        #expect(pair.has(.a, .streamReset(id, .protocolViolation)))
        #expect(pair.a.statistics.protocolViolations == 1)
    }

    /// With a link-wide receive budget smaller than two windows, grants are withheld while the
    /// application holds too much, and released once it consumes.
    @Test("the receive budget withholds credit while too much is unconsumed")
    func receiveBudget() throws {
        let pair = Pair(seed: 56) { side, c in
            if side == .b { c.initialWindow = 40_000; c.receiveBudget = 50_000 }
        }
        #expect(pair.establish())
        let s1 = try pair.openAccepted(from: .a)
        let s2 = try pair.openAccepted(from: .a)
        pair.stalled[Side.b.rawValue] = [s1, s2]
        let d2 = pattern(200_000, seed: 9)
        pair.write(.a, s1, pattern(200_000, seed: 8), finish: true)
        pair.write(.a, s2, d2, finish: true)
        #expect(pair.run { $0.receivedCount(.b, s1) == 40_000 && $0.receivedCount(.b, s2) == 40_000 })
        #expect(pair.b.bufferedReceiveBytes == 80_000)
        // A quarter window consumed on s2 would earn a grant, but 70 000 bytes are still held.
        pair.b.consumed(10_000, on: s2)
        pair.run(for: .seconds(5))
        #expect(pair.receivedCount(.b, s2) == 40_000)
        #expect(pair.b.inspection.withheldGrants == [s2])
        // Once s1's reader catches up, the withheld grant goes out.
        pair.resume(.b, s1)
        #expect(pair.run(timeLimit: .seconds(5)) { $0.receivedCount(.b, s2) == 50_000 })
        pair.resume(.b, s2)
        #expect(pair.run { $0.has(.b, .remoteFinished(s1)) && $0.has(.b, .remoteFinished(s2)) })
        #expect(pair.receivedBytes(.b, s2) == d2)
        #expect(pair.b.bufferedReceiveBytes == 0)
    }

    /// Stalled streams that exhaust the receive budget must not starve a stream whose reader
    /// keeps up: grants are withheld only from streams that hold unconsumed bytes.
    @Test("streams that stall and exhaust the receive budget do not starve one whose reader keeps up")
    func budgetDoesNotStarveHealthyStreams() throws {
        let pair = Pair(seed: 57) { side, c in
            if side == .b { c.initialWindow = 40_000; c.receiveBudget = 50_000 }
        }
        #expect(pair.establish())
        let stuck = [try pair.openAccepted(from: .a), try pair.openAccepted(from: .a)]
        pair.stalled[Side.b.rawValue] = Set(stuck)
        for (k, id) in stuck.enumerated() { pair.write(.a, id, pattern(200_000, seed: UInt64(20 + k)), finish: true) }
        #expect(pair.run { p in stuck.allSatisfy { p.receivedCount(.b, $0) == 40_000 } })
        #expect(pair.b.bufferedReceiveBytes == 80_000)
        let healthy = try pair.openAccepted(from: .a)
        let data = pattern(500_000, seed: 30)
        pair.write(.a, healthy, data, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(healthy)) })
        #expect(pair.receivedBytes(.b, healthy) == data)
        // The stuck ones got nothing more, and what is held stayed within budget plus a window.
        #expect(stuck.allSatisfy { pair.receivedCount(.b, $0) == 40_000 })
        #expect(pair.b.bufferedReceiveBytes == 80_000)
    }
}
