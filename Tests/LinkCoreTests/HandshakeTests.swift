@testable import LinkCore
import Testing

func isHello(_ frame: [UInt8]) -> Bool { InspectedFrame(encoded: frame)?.isHello == true }

@Suite("Handshake")
struct HandshakeTests {
    @Test("both ends reach .established and learn each other's session")
    func bothEstablish() {
        let pair = Pair(seed: 1)
        #expect(!pair.a.isEstablished && !pair.b.isEstablished)
        #expect(pair.a.session != pair.b.session)
        #expect(pair.establish())
        #expect(pair.has(.a, .established(peerSession: pair.b.session, peerRestarted: false)))
        #expect(pair.has(.b, .established(peerSession: pair.a.session, peerRestarted: false)))
        #expect(pair.events(.a).count == 1 && pair.events(.b).count == 1)
        #expect(pair.a.peerMaxStreams == pair.b.configuration.maxStreams)
        // No retries were needed on a clean line.
        #expect(pair.now == .zero)
        // An established, idle link asks only for its keepalive timer...
        #expect(pair.a.nextDeadline == pair.now + pair.a.configuration.keepaliveInterval)
        // ...and sends no more HELLOs.
        var hellos = 0
        pair.filter = { _, frame, _ in
            if isHello(frame) { hellos += 1 }
            return .deliver
        }
        pair.run(for: .seconds(10))
        #expect(hellos == 0)
        #expect(pair.a.isEstablished && pair.b.isEstablished)
    }

    /// Drops the k-th HELLO in one direction (or both); the handshake completes by retry.
    @Test("a lost HELLO is recovered by retry", arguments: [Side.a, Side.b], 0..<4)
    func helloLoss(side: Side, k: Int) {
        let pair = Pair(seed: UInt64(10 + k))
        var seen = 0
        pair.filter = { from, frame, _ in
            guard from == side, isHello(frame) else { return .deliver }
            defer { seen += 1 }
            return seen == k ? .drop : .deliver
        }
        #expect(pair.establish())
        #expect(pair.has(.a, .established(peerSession: pair.b.session, peerRestarted: false)))
        #expect(pair.has(.b, .established(peerSession: pair.a.session, peerRestarted: false)))
        // The retry waits for the hello interval, no longer.
        #expect(pair.now <= LinkTime.zero + pair.a.configuration.helloInterval)
        // The link then works.
        let id = try? pair.openAccepted(from: .b)
        #expect(id != nil)
    }

    @Test("every HELLO lost for several seconds: established soon after the line heals")
    func longHelloLoss() {
        let pair = Pair(seed: 3)
        let healsAt = LinkTime.zero + .seconds(4.2)
        pair.filter = { _, frame, now in now < healsAt && isHello(frame) ? .drop : .deliver }
        #expect(pair.establish())
        #expect(pair.now >= healsAt)
        #expect(pair.now <= healsAt + pair.a.configuration.helloInterval)
        // While nothing was heard, each end resent HELLO every helloInterval, and nothing else.
        #expect(pair.dropped[0] >= 8 && pair.dropped[1] >= 8)
        #expect(pair.dropped[0] <= 10 && pair.dropped[1] <= 10)
    }

    @Test("both ends odd: .roleConflict, never established")
    func roleConflict() {
        let pair = Pair(seed: 5) { _, c in c.usesOddStreamIDs = true }
        let done = pair.run(timeLimit: .seconds(5)) { $0.has(.a, .roleConflict) && $0.has(.b, .roleConflict) }
        #expect(done)
        pair.run(for: .seconds(3))
        #expect(!pair.a.isEstablished && !pair.b.isEstablished)
        // Reported once, not for every HELLO.
        #expect(pair.events(.a) == [.roleConflict])
        #expect(pair.events(.b) == [.roleConflict])
    }

    @Test("both ends even: .roleConflict too")
    func roleConflictEven() {
        let pair = Pair(seed: 6) { _, c in c.usesOddStreamIDs = false }
        #expect(pair.run(timeLimit: .seconds(5)) { $0.has(.a, .roleConflict) && $0.has(.b, .roleConflict) })
        #expect(!pair.a.isEstablished)
    }

    @Test("a HELLO of protocol version 2 gives .versionMismatch(peerVersion: 2)")
    func versionMismatch() {
        var link = Link(configuration: LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: 0, seed: 9))
        let hello = Hello(version: 2, usesOddStreamIDs: false, needsReply: true, session: 0xFEED, echo: 0,
                          maxFrame: 8192, maxStreams: 16, initialWindow: 65536)
        // By hand: type 0x01, the HELLO body, CRC-32C, COBS.
        var content: [UInt8] = [0x01] + Wire.helloMagic + [2]
        content += [2]  // flags: needsReply
        content += [0, 0, 0, 0, 0, 0, 0xFE, 0xED] + [UInt8](repeating: 0, count: 8)
        content += [0, 0, 0x20, 0x00] + [0, 16] + [0, 1, 0, 0] + [0, 0, 0, 0]
        let frame = encodeFrame(content)
        #expect(frame == helloFrame(hello))

        let out = link.pollTransmit(maxBytes: 1000, now: .zero)
        #expect(splitFrames(out).count == 1)
        link.receive(frame, now: .zero)
        link.receive(frame, now: LinkTime(nanoseconds: 1_000_000))
        var events: [LinkEvent] = []
        while let e = link.pollEvent() { events.append(e) }
        #expect(events == [.versionMismatch(peerVersion: 2)])
        #expect(!link.isEstablished)
        #expect(link.inspection.peerHello == nil)
        // It does not answer the foreign HELLO straight away; only its own retry timer runs.
        #expect(link.pollTransmit(maxBytes: 1000, now: LinkTime(nanoseconds: 2_000_000)).isEmpty)

        // The same HELLO with version 1 is accepted.
        var v1 = hello
        v1.version = Wire.version
        link.receive(helloFrame(v1), now: .zero)
        #expect(link.inspection.peerHello?.session == 0xFEED)
    }

    @Test("a HELLO with the wrong magic is counted as malformed and ignored")
    func badMagic() {
        var link = Link(configuration: LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: 0, seed: 9))
        var content: [UInt8] = [0x01]
        Hello(usesOddStreamIDs: false, needsReply: true, session: 5, echo: 0, maxFrame: 8192, maxStreams: 4,
              initialWindow: 1000).encode(into: &content)
        content[1] = 0x54  // "TFSL"
        link.receive(encodeFrame(content), now: .zero)
        #expect(link.statistics.malformedFrames == 1)
        #expect(link.inspection.peerHello == nil)
        #expect(link.pollEvent() == nil)
    }

    /// B restarts (a new Link with another seed) while A has open streams and data in flight.
    @Test("peer restart: open streams reset with .peerRestarted, then established again")
    func peerRestart() throws {
        let pair = Pair(seed: 21)
        #expect(pair.establish())
        let oldSession = pair.b.session
        let s1 = try pair.openAccepted(from: .a, target: "one")
        let s2 = try pair.openAccepted(from: .b, target: "two")
        pair.write(.a, s1, pattern(500_000, seed: 1))
        pair.write(.b, s2, pattern(500_000, seed: 2))
        #expect(pair.run { $0.receivedCount(.b, s1) > 100_000 && $0.receivedCount(.a, s2) > 100_000 })
        #expect(!pair.a.inspection.outstandingFrames.isEmpty || !pair.a.isQuiescent)

        var config = pair.b.configuration
        config.seed &+= 0x1234_5678
        let restarted = Link(configuration: config)
        let newSession = restarted.session
        #expect(newSession != oldSession)
        pair.replace(.b, with: restarted)

        let replacedAt = pair.log.count
        func establishedWithNewPeer(_ e: LinkEvent) -> Bool {
            if case .established(newSession, _) = e { return true } else { return false }
        }
        #expect(pair.run(timeLimit: .seconds(10)) { p in p.events(.a).contains(where: establishedWithNewPeer) },
                "A after the restart: \(summary(pair.log[replacedAt...].filter { $0.side == .a }.map(\.event)))")
        let events = pair.events(.a)
        let resets = events.compactMap { e -> StreamID? in
            if case .streamReset(let id, .peerRestarted) = e { return id } else { return nil }
        }
        #expect(Set(resets) == [s1, s2])
        let resetIndex = try #require(events.lastIndex { if case .streamReset = $0 { return true } else { return false } })
        let establishedIndex = try #require(events.firstIndex(where: establishedWithNewPeer))
        #expect(resetIndex < establishedIndex)
        // The restart is detected on the new peer's first HELLO (echo 0) and the handshake
        // completes on its second; the .established event must still report the restart.
        #expect(events[establishedIndex] == .established(peerSession: newSession, peerRestarted: true))
        #expect(pair.a.inspection.streamIDs.isEmpty)
        #expect(pair.a.statistics.peerRestarts == 1)
        #expect(pair.run(timeLimit: .seconds(10)) { $0.b.isEstablished })
        #expect(pair.has(.b, .established(peerSession: pair.a.session, peerRestarted: false)))

        // Sending on a stream of the old session is an error; new streams work.
        #expect(throws: LinkError.unknownStream(s1)) { try pair.a.send([1], on: s1) }
        let s3 = try pair.openAccepted(from: .a, target: "three")
        let data = pattern(200_000, seed: 3)
        pair.write(.a, s3, data, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(s3)) })
        #expect(pair.receivedBytes(.b, s3) == data)
        #expect(!pair.log.contains { if case .protocolViolation = $0.event { return true } else { return false } })
    }

    @Test("streams opened before the handshake get the peer's credit and work")
    func openBeforeHandshake() throws {
        let pair = Pair(seed: 23)
        let id = try pair.a.openStream(target: "early")
        #expect(pair.a.inspection.stream(id)?.sendCredit == 0)
        let data = pattern(150_000, seed: 4)
        pair.write(.a, id, data, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.has(.b, .streamOpened(id, target: "early")))
        #expect(pair.receivedBytes(.b, id) == data)
    }

    @Test("a stream reset before the handshake never reaches the line: no OPEN, no RESET")
    func resetBeforeHandshakeCostsNothing() throws {
        let pair = Pair(seed: 24)
        // The peer is not there yet: everything A sends is lost, as on a cable with no far end.
        pair.cut(for: .seconds(2))
        let id = try pair.a.openStream(target: "early")
        pair.write(.a, id, pattern(1_000, seed: 5))
        pair.run(for: .milliseconds(500))
        try pair.a.reset(id, reason: .aborted)
        #expect(pair.a.inspection.streamIDs.isEmpty)
        #expect(pair.establish())
        #expect(pair.quiesce())
        // Nothing about the stream reached B: no event, and no protocol violation either.
        #expect(streamEvents(pair, .b, id).isEmpty)
        #expect(pair.b.statistics.protocolViolations == 0)
        #expect(pair.b.statistics.payloadBytesReceived == 0)
        #expect(pair.a.statistics.payloadBytesSent == 0)
        // No sequenced frame at all left A: neither an OPEN nor a RESET for it.
        #expect(pair.a.inspection.nextSequence == SequenceNumber(0))
    }

    @Test("a stream whose OPEN went out is still reset on the wire")
    func resetAfterOpenIsSent() throws {
        let pair = Pair(seed: 25)
        #expect(pair.establish())
        let id = try pair.a.openStream(target: "svc")
        #expect(pair.run { $0.has(.b, .streamOpened(id, target: "svc")) })
        try pair.a.reset(id, reason: .aborted)
        #expect(pair.run { $0.has(.b, .streamReset(id, .aborted)) })
    }
}

@Suite("Negotiated ID halves")
struct NegotiatedHalvesTests {
    /// A pair whose ends both prefer `oddA`/`oddB` and offer negotiation as given.
    private func pair(seed: UInt64, oddA: Bool, oddB: Bool, negotiateA: Bool, negotiateB: Bool) -> Pair {
        Pair(seed: seed) { side, configuration in
            configuration.usesOddStreamIDs = side == .a ? oddA : oddB
            configuration.negotiatesStreamIDHalves = side == .a ? negotiateA : negotiateB
        }
    }

    /// Streams both ways, byte for byte.
    private func exchange(_ pair: Pair) throws {
        let up = try pair.open(.a, target: "a-to-b")
        let down = try pair.open(.b, target: "b-to-a")
        #expect(up.isOdd != down.isOdd)
        pair.write(.a, up, pattern(20_000, seed: 1), finish: true)
        pair.write(.b, down, pattern(20_000, seed: 2), finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(up)) && $0.has(.a, .remoteFinished(down)) })
        #expect(pair.receivedBytes(.b, up) == pattern(20_000, seed: 1))
        #expect(pair.receivedBytes(.a, down) == pattern(20_000, seed: 2))
    }

    @Test("both prefer the same half and both negotiate: the larger session takes odd", arguments: [true, false], 0..<4)
    func samePreference(odd: Bool, seed: UInt64) throws {
        let pair = pair(seed: 50 + seed, oddA: odd, oddB: odd, negotiateA: true, negotiateB: true)
        #expect(pair.establish())
        #expect(pair.a.usesOddStreamIDs != pair.b.usesOddStreamIDs)
        #expect(pair.a.usesOddStreamIDs == (pair.a.session > pair.b.session))
        #expect(!pair.has(.a, .roleConflict) && !pair.has(.b, .roleConflict))
        try exchange(pair)
    }

    @Test("different preferences are kept, as between S and C")
    func differentPreferences() throws {
        let pair = pair(seed: 60, oddA: true, oddB: false, negotiateA: true, negotiateB: true)
        #expect(pair.establish())
        #expect(pair.a.usesOddStreamIDs && !pair.b.usesOddStreamIDs)
        try exchange(pair)
    }

    @Test("towards a peer without the capability, the negotiating end moves", arguments: [Side.a, Side.b])
    func olderPeer(negotiating: Side) throws {
        let pair = pair(seed: 61, oddA: true, oddB: true, negotiateA: negotiating == .a, negotiateB: negotiating == .b)
        #expect(pair.establish())
        #expect(pair[negotiating.other].usesOddStreamIDs, "the older end keeps its half")
        #expect(!pair[negotiating].usesOddStreamIDs)
        try exchange(pair)
    }

    @Test("a negotiating end opens streams only once it knows its half")
    func noStreamsBeforeTheHandshake() throws {
        let pair = pair(seed: 62, oddA: true, oddB: true, negotiateA: true, negotiateB: true)
        #expect(throws: LinkError.notEstablished) { try pair.a.openStream(target: "early") }
        #expect(pair.establish())
        #expect(throws: Never.self) { try pair.a.openStream(target: "now") }
    }

    @Test("after a restart the halves are decided again, and streams work")
    func restart() throws {
        let pair = pair(seed: 63, oddA: false, oddB: false, negotiateA: true, negotiateB: true)
        #expect(pair.establish())
        var configuration = pair.b.configuration
        configuration.seed &+= 99
        pair.replace(.b, with: Link(configuration: configuration))
        #expect(pair.run { $0.has(.a, .established(peerSession: $0.b.session, peerRestarted: true)) })
        #expect(pair.establish())
        #expect(pair.a.usesOddStreamIDs != pair.b.usesOddStreamIDs)
        try exchange(pair)
    }
}
