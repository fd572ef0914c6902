@testable import LinkCore
import Testing

/// The events on `side` that concern stream `id`, with received bytes collapsed into one marker.
func streamEvents(_ pair: Pair, _ side: Side, _ id: StreamID) -> [String] {
    var out: [String] = []
    for e in pair.events(side) {
        switch e {
        case .streamOpened(id, let target): out.append("opened(\(target))")
        case .openAccepted(id): out.append("accepted")
        case .openRefused(id, let r): out.append("refused(\(r))")
        case .received(id, _): if out.last != "data" { out.append("data") }
        case .remoteFinished(id): out.append("remoteFinished")
        case .streamReset(id, let r): out.append("reset(\(r))")
        case .streamClosed(id): out.append("closed")
        default: break
        }
    }
    return out
}

@Suite("Stream lifecycle")
struct StreamLifecycleTests {
    @Test("open, accept, data both ways, finish both: closed on both ends")
    func fullLifecycle() throws {
        let pair = Pair(seed: 31)
        #expect(pair.establish())
        let id = try pair.open(.a, target: "svc:80")
        let up = pattern(100_000, seed: 1)
        let down = pattern(80_000, seed: 2)
        pair.write(.a, id, up, finish: true)
        #expect(pair.run { $0.has(.b, .streamOpened(id, target: "svc:80")) })
        pair.write(.b, id, down, finish: true)
        #expect(pair.run { $0.has(.a, .streamClosed(id)) && $0.has(.b, .streamClosed(id)) })
        #expect(pair.receivedBytes(.b, id) == up)
        #expect(pair.receivedBytes(.a, id) == down)
        #expect(streamEvents(pair, .a, id) == ["accepted", "data", "remoteFinished", "closed"])
        #expect(streamEvents(pair, .b, id) == ["opened(svc:80)", "data", "remoteFinished", "closed"])
        #expect(pair.a.inspection.streamIDs.isEmpty && pair.b.inspection.streamIDs.isEmpty)
        #expect(pair.quiesce())
        #expect(pair.a.bufferedSendBytes == 0 && pair.b.bufferedReceiveBytes == 0)
        #expect(pair.a.statistics.streamsOpened == 1 && pair.b.statistics.streamsAccepted == 1)
        #expect(pair.b.statistics.payloadBytesReceived == up.count)
    }

    @Test("half-close: A finishes first and still receives everything B sends afterwards")
    func halfClose() throws {
        let pair = Pair(seed: 32)
        #expect(pair.establish())
        let id = try pair.open(.a)
        let request = Array("GET / HTTP/1.0\r\n\r\n".utf8)
        pair.write(.a, id, request, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == request)
        // A's FIN is out; its own direction is closed but the stream lives on.
        #expect(pair.a.inspection.stream(id)?.finSent == true)
        #expect(pair.b.inspection.stream(id)?.finReceived == true)
        #expect(throws: LinkError.invalidState(id, "send after finish")) { try pair.a.send([1], on: id) }

        let response = pattern(300_000, seed: 3)  // several windows' worth: credit keeps flowing
        pair.write(.b, id, response, finish: true)
        #expect(pair.run { $0.has(.a, .streamClosed(id)) && $0.has(.b, .streamClosed(id)) })
        #expect(pair.receivedBytes(.a, id) == response)
        #expect(streamEvents(pair, .a, id) == ["accepted", "data", "remoteFinished", "closed"])
    }

    @Test("refuse: the opener gets .openRefused and data sent before OPEN-OK is discarded")
    func refuse() throws {
        let pair = Pair(seed: 33)
        pair.autoAccept = false
        pair.pollLimit = 512
        #expect(pair.establish())
        let id = try pair.open(.a, target: "nowhere:1")
        let data = pattern(60_000, seed: 4)
        pair.write(.a, id, data, finish: true)
        #expect(pair.run { $0.has(.b, .streamOpened(id, target: "nowhere:1")) })
        try pair.refuse(.b, id, .connectionRefused)
        #expect(pair.b.inspection.stream(id) == nil)
        #expect(pair.run { $0.has(.a, .openRefused(id, .connectionRefused)) })
        #expect(pair.quiesce())
        #expect(pair.a.inspection.stream(id) == nil && pair.b.inspection.streamIDs.isEmpty)
        #expect(streamEvents(pair, .a, id) == ["refused(connection refused)"])
        #expect(throws: LinkError.unknownStream(id)) { try pair.a.send([1], on: id) }
        #expect(pair.a.bufferedSendBytes == 0)
        let b = pair.b.statistics
        #expect(b.discardedBytes > 0)
        // Every byte that reached B was either already in an event when it refused, or discarded.
        let deliveredBeforeRefusal = pair.events(.b).reduce(0) { n, e in
            if case .received(id, let bytes) = e { return n + bytes.count } else { return n }
        }
        #expect(b.payloadBytesReceived == deliveredBeforeRefusal + b.discardedBytes)
        #expect(b.payloadBytesReceived == pair.a.statistics.payloadBytesSent)
        #expect(b.payloadBytesReceived < data.count)
        #expect(pair.b.bufferedReceiveBytes == 0)
    }

    @Test("reset: the peer gets .streamReset with the reason", arguments: [ResetReason.aborted, .shutdown, .protocolViolation])
    func reset(reason: ResetReason) throws {
        let pair = Pair(seed: 34)
        #expect(pair.establish())
        let fromA = try pair.openAccepted(from: .a)
        let fromB = try pair.openAccepted(from: .b)
        pair.write(.a, fromA, pattern(200_000, seed: 5))
        pair.write(.b, fromB, pattern(200_000, seed: 6))
        #expect(pair.run { $0.receivedCount(.b, fromA) > 10_000 && $0.receivedCount(.a, fromB) > 10_000 })
        try pair.a.reset(fromA, reason: reason)
        try pair.a.reset(fromB, reason: reason)  // either end may reset either stream
        #expect(pair.a.inspection.streamIDs.isEmpty)
        #expect(pair.run { $0.b.inspection.streamIDs.isEmpty })
        #expect(pair.has(.b, .streamReset(fromA, reason)))
        #expect(pair.has(.b, .streamReset(fromB, reason)))
        #expect(pair.quiesce())
        // No reset for a stream it reset itself, and nothing left over.
        #expect(!pair.events(.a).contains { if case .streamReset = $0 { return true } else { return false } })
        #expect(pair.a.bufferedSendBytes == 0 && pair.b.bufferedSendBytes == 0)
        #expect(pair.a.bufferedReceiveBytes == 0 && pair.b.bufferedReceiveBytes == 0)
        #expect(throws: LinkError.unknownStream(fromA)) { try pair.a.reset(fromA) }
    }

    @Test("resetAll resets every stream on the peer with .shutdown")
    func resetAll() throws {
        let pair = Pair(seed: 35)
        #expect(pair.establish())
        var ids: [StreamID] = []
        for _ in 0..<3 { ids.append(try pair.openAccepted(from: .a)) }
        for _ in 0..<3 { ids.append(try pair.openAccepted(from: .b)) }
        pair.b.resetAll()
        #expect(pair.b.inspection.streamIDs.isEmpty)
        #expect(pair.run { $0.a.inspection.streamIDs.isEmpty })
        for id in ids { #expect(pair.has(.a, .streamReset(id, .shutdown))) }
    }

    @Test("DATA sent before OPEN-OK reaches the acceptor intact; it accepts later and answers")
    func earlyData() throws {
        let pair = Pair(seed: 36)
        pair.autoAccept = false
        #expect(pair.establish())
        let id = try pair.open(.a, target: "web:80")
        let request = pattern(5_000, seed: 7) + Array("\r\n\r\n".utf8)
        pair.write(.a, id, request, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        // The opener sent everything without waiting for OPEN-OK.
        #expect(pair.a.inspection.stream(id)?.finSent == true)
        #expect(!pair.has(.a, .openAccepted(id)))
        #expect(pair.b.inspection.stream(id)?.phase == .awaitingAccept)
        pair.run(for: .seconds(2))  // the acceptor takes its time (connecting, say)
        #expect(pair.b.inspection.stream(id)?.phase == .awaitingAccept)

        try pair.b.accept(id)
        #expect(throws: LinkError.invalidState(id, "not awaiting accept")) { try pair.b.accept(id) }
        let response = pattern(70_000, seed: 8)
        pair.write(.b, id, response, finish: true)
        #expect(pair.run { $0.has(.a, .streamClosed(id)) && $0.has(.b, .streamClosed(id)) })
        #expect(pair.receivedBytes(.b, id) == request)
        #expect(pair.receivedBytes(.a, id) == response)
        #expect(streamEvents(pair, .b, id) == ["opened(web:80)", "data", "remoteFinished", "closed"])
        #expect(streamEvents(pair, .a, id) == ["accepted", "data", "remoteFinished", "closed"])
    }

    @Test("openStream throws .tooManyStreams at maxStreams, and again allows after a close")
    func localStreamLimit() throws {
        let pair = Pair(seed: 37) { side, c in if side == .a { c.maxStreams = 3 } }
        #expect(pair.establish())
        let ids = try (0..<3).map { _ in try pair.open(.a) }
        #expect(throws: LinkError.tooManyStreams) { try pair.a.openStream() }
        #expect(pair.run { p in ids.allSatisfy { p.has(.a, .openAccepted($0)) } })
        try pair.a.reset(ids[0])
        #expect(try pair.a.openStream() != ids[0])
        #expect(throws: LinkError.tooManyStreams) { try pair.a.openStream() }
    }

    @Test("openStream respects the peer's maxStreams from its HELLO")
    func peerStreamLimit() throws {
        let pair = Pair(seed: 38) { side, c in if side == .b { c.maxStreams = 2 } }
        #expect(pair.establish())
        #expect(pair.a.peerMaxStreams == 2)
        _ = try pair.open(.a)
        _ = try pair.open(.a)
        #expect(throws: LinkError.tooManyStreams) { try pair.a.openStream() }
    }

    /// The refusal of OPENs beyond the limit is in HostilePeerTests (a correct peer never sends one).
    @Test("maxStreams counts the streams the peer opens: an end holding all of them still opens its own")
    func limitsCountedApart() throws {
        let pair = Pair(seed: 39) { side, c in if side == .b { c.maxStreams = 2 } }
        #expect(pair.establish())
        let a1 = try pair.open(.a)
        let a2 = try pair.open(.a)
        #expect(throws: LinkError.tooManyStreams) { try pair.a.openStream() }
        let b1 = try pair.open(.b)
        let b2 = try pair.open(.b)
        #expect(pair.run { run in [a1, a2].allSatisfy { run.has(.a, .openAccepted($0)) }
            && [b1, b2].allSatisfy { run.has(.b, .openAccepted($0)) } })
        #expect(pair.b.statistics.refusedTooMany == 0)
        #expect(pair.b.inspection.streamIDs.count == 4)
    }

    @Test("stream IDs are odd on A, even on B, unique, and agreed by both ends")
    func streamIDParity() throws {
        let pair = Pair(seed: 40)
        #expect(pair.establish())
        var fromA: [StreamID] = []
        var fromB: [StreamID] = []
        for _ in 0..<6 {
            fromA.append(try pair.open(.a))
            fromB.append(try pair.open(.b))
        }
        #expect(fromA.allSatisfy { $0.isOdd })
        #expect(fromB.allSatisfy { !$0.isOdd })
        #expect(fromA.map(\.rawValue) == [1, 3, 5, 7, 9, 11])
        #expect(fromB.map(\.rawValue) == [2, 4, 6, 8, 10, 12])
        #expect(pair.run { p in fromA.allSatisfy { p.has(.a, .openAccepted($0)) } && fromB.allSatisfy { p.has(.b, .openAccepted($0)) } })
        for id in fromA { #expect(pair.has(.b, .streamOpened(id, target: ""))) }
        for id in fromB { #expect(pair.has(.a, .streamOpened(id, target: ""))) }
        #expect(!pair.log.contains { if case .protocolViolation = $0.event { return true } else { return false } })
    }

    @Test("stream IDs wrap around within each half and skip IDs still in use")
    func streamIDWrap() throws {
        var a = Link(configuration: LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: 0, seed: 1))
        let first = try a.openStream()
        #expect(first == StreamID(1))
        a.nextLocalStreamID = 65533
        #expect(try a.openStream() == StreamID(65533))
        #expect(try a.openStream() == StreamID(65535))
        #expect(try a.openStream() == StreamID(3))  // 1 is still open

        var b = Link(configuration: LinkConfiguration(usesOddStreamIDs: false, lineBytesPerSecond: 0, seed: 2))
        b.nextLocalStreamID = 65534
        #expect(try b.openStream() == StreamID(65534))
        #expect(try b.openStream() == StreamID(2))
    }

    @Test("send takes what fits, then .writable when the buffer has drained")
    func sendBackpressure() throws {
        let pair = Pair(seed: 41)
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        let limit = pair.a.configuration.sendBufferLimit
        let big = pattern(limit + 10_000, seed: 10)
        #expect(try pair.a.send(big, on: id) == limit)
        #expect(pair.a.sendSpace(on: id) == 0)
        #expect(try pair.a.send([1, 2, 3], on: id) == 0)
        #expect(pair.run { $0.has(.a, .writable(id)) })
        #expect(pair.a.sendSpace(on: id) >= limit / 2)
        #expect(pair.run { $0.receivedCount(.b, id) == limit })
        #expect(pair.receivedBytes(.b, id) == Array(big.prefix(limit)))
    }

    @Test("command errors")
    func commandErrors() throws {
        let pair = Pair(seed: 42)
        pair.autoAccept = false
        #expect(pair.establish())
        let unknown = StreamID(99)
        #expect(throws: LinkError.unknownStream(unknown)) { try pair.a.accept(unknown) }
        #expect(throws: LinkError.unknownStream(unknown)) { try pair.a.refuse(unknown, reason: .other) }
        #expect(throws: LinkError.unknownStream(unknown)) { try pair.a.finish(unknown) }
        #expect(throws: LinkError.unknownStream(unknown)) { try pair.a.send([1], on: unknown) }
        #expect(throws: LinkError.targetTooLong) { try pair.a.openStream(target: String(repeating: "x", count: 256)) }
        let id = try pair.a.openStream(target: String(repeating: "y", count: 255))
        // The opener cannot accept its own stream.
        #expect(throws: LinkError.invalidState(id, "not awaiting accept")) { try pair.a.accept(id) }
        #expect(pair.run { $0.has(.b, .streamOpened(id, target: String(repeating: "y", count: 255))) })
        try pair.b.accept(id)
        #expect(throws: LinkError.invalidState(id, "not awaiting accept")) { try pair.b.refuse(id, reason: .other) }
        pair.b.consumed(1000, on: id)  // more than received: ignored
        #expect(pair.b.bufferedReceiveBytes == 0)
    }

    @Test("a stream reset before its OPEN left is never seen by the peer")
    func resetBeforeOpenLeaves() throws {
        let pair = Pair(seed: 43)
        #expect(pair.establish())
        let id = try pair.a.openStream(target: "gone")
        try pair.a.send([1, 2, 3], on: id)
        try pair.a.reset(id)
        let keep = try pair.openAccepted(from: .a)
        #expect(pair.quiesce())
        #expect(!pair.log.contains { $0.side == .b && $0.event == .streamOpened(id, target: "gone") })
        #expect(pair.b.inspection.streamIDs == [keep])
        #expect(pair.b.statistics.discardedBytes == 0)
    }

    @Test("hundreds of streams in both directions at once all complete")
    func manyStreams() throws {
        let pair = Pair(seed: 44)
        #expect(pair.establish())
        var ids: [(Side, StreamID, UInt64)] = []
        for k in 0..<300 {
            for side in Side.allCases {
                let id = try pair.open(side, target: "m\(k)")
                let seed = UInt64(k * 2 + side.rawValue)
                ids.append((side, id, seed))
                pair.write(side, id, pattern(1 + k * 7, seed: seed), finish: true)
            }
        }
        #expect(pair.run { p in ids.allSatisfy { p.has($0.0.other, .remoteFinished($0.1)) } })
        for (side, id, seed) in ids {
            #expect(pair.receivedBytes(side.other, id) == pattern(Int(seed / 2) * 7 + 1, seed: seed))
            #expect(pair.has(side.other, .streamOpened(id, target: "m\(seed / 2)")))
        }
        // Nobody finished the other direction, so all streams are still open, half-closed.
        #expect(pair.a.streamCount == 600 && pair.b.streamCount == 600)
    }
}
