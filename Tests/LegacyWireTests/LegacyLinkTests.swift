import LegacyWire
import LinkCore
import Testing

/// `LegacyLink`, sans-IO: two ends (C opens, S accepts) joined in memory, bytes moved by hand in
/// budgets of any size, and the events each end gives the forwarder.
@Suite("Legacy wire endpoint")
struct LegacyLinkTests {
    struct Pair {
        var c = LegacyLink(configuration: LegacyConfiguration(opensStreams: true, receiveLimit: 100_000))
        var s = LegacyLink(configuration: LegacyConfiguration(opensStreams: false, receiveLimit: 100_000))
        var now = LinkTime.zero
        var cEvents: [LinkEvent] = []
        var sEvents: [LinkEvent] = []

        /// Moves everything each end has to send, `budget` bytes per poll, until both are quiet.
        mutating func pump(budget: Int = 10_000) {
            var moved = true
            while moved {
                moved = false
                let fromC = drain(&c, budget: budget)
                if !fromC.isEmpty { s.receive(fromC, now: now); moved = true }
                let fromS = drain(&s, budget: budget)
                if !fromS.isEmpty { c.receive(fromS, now: now); moved = true }
                while let event = c.pollEvent() { cEvents.append(event) }
                while let event = s.pollEvent() { sEvents.append(event) }
            }
        }

        private func drain(_ link: inout LegacyLink, budget: Int) -> [UInt8] {
            var out: [UInt8] = []
            while true {
                let chunk = link.pollTransmit(maxBytes: budget, now: now)
                #expect(chunk.count <= budget)
                if chunk.isEmpty { return out }
                out += chunk
            }
        }

        /// A stream C opened and S accepted, with both ends' events pumped.
        mutating func acceptedStream() throws -> StreamID {
            let id = try c.openStream(target: "")
            pump()
            try s.accept(id)
            return id
        }

        /// Everything `events` delivered on `id`.
        static func received(_ events: [LinkEvent], on id: StreamID) -> [UInt8] {
            events.reduce(into: []) { bytes, event in
                if case .received(id, let data) = event { bytes += data }
            }
        }
    }

    static func payload(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            // Plenty of FF, which the wire escapes.
            let byte = UInt8(truncatingIfNeeded: state >> 56)
            return byte < 40 ? 0xFF : byte
        }
    }

    @Test("no handshake: both ends are up at once, and say what the wire cannot do")
    func upAtOnce() {
        var pair = Pair()
        pair.pump()
        #expect(pair.cEvents == [.established(peerSession: 0, peerRestarted: false)])
        #expect(pair.sEvents == [.established(peerSession: 0, peerRestarted: false)])
        #expect(!pair.c.wire.provesPeer && pair.c.wire.limits?.contains("no checksum") == true)
    }

    @Test("a stream both ways, in budgets from 1 byte up, every byte intact and in order", arguments: [1, 7, 64, 1500])
    func bothWays(budget: Int) throws {
        var pair = Pair()
        let id = try pair.c.openStream(target: "")
        pair.pump(budget: budget)
        #expect(pair.cEvents.contains(.openAccepted(id)))
        #expect(pair.sEvents.contains(.streamOpened(id, target: "")))
        try pair.s.accept(id)
        let up = Self.payload(50_000, seed: 1)
        let down = Self.payload(30_000, seed: 2)
        var sentUp = 0
        var sentDown = 0
        while sentUp < up.count || sentDown < down.count {
            sentUp += try pair.c.send(up[sentUp...], on: id)
            sentDown += try pair.s.send(down[sentDown...], on: id)
            pair.pump(budget: budget)
            pair.s.consumed(Pair.received(pair.sEvents, on: id).count, on: id)
            pair.c.consumed(Pair.received(pair.cEvents, on: id).count, on: id)
        }
        #expect(Pair.received(pair.sEvents, on: id) == up)
        #expect(Pair.received(pair.cEvents, on: id) == down)
        #expect(pair.c.statistics.malformedFrames == 0 && pair.s.statistics.malformedFrames == 0)
    }

    @Test("C closes: S gets the close, after the data; C's ID goes back to the end of its pool")
    func closeFromC() throws {
        var pair = Pair()
        let id = try pair.acceptedStream()
        _ = try pair.c.send(Array("bye".utf8), on: id)
        try pair.c.finish(id)
        pair.pump()
        let tail = pair.sEvents.suffix(2)
        #expect(Array(tail) == [.received(id, Array("bye".utf8)), .streamClosed(id)])
        #expect(pair.s.streamCount == 0)
        // C waits for S's close; S's socket ends and says so (the original would not).
        #expect(pair.c.streamCount == 1)
        // The next stream takes another ID: the closed one is reused last.
        let next = try pair.c.openStream(target: "")
        #expect(next != id)
    }

    @Test("S closes: C gets the data, then a clean end; with C's bytes unsent it is a reset")
    func closeFromS() throws {
        var pair = Pair()
        let id = try pair.acceptedStream()
        _ = try pair.s.send(Array("reply".utf8), on: id)
        try pair.s.finish(id)
        pair.pump()
        #expect(Array(pair.cEvents.suffix(2)) == [.received(id, Array("reply".utf8)), .streamClosed(id)])

        // A second stream: C queues bytes the close overtakes; they cannot arrive.
        let second = try pair.acceptedStream()
        try pair.s.reset(second, reason: .aborted)
        _ = try pair.c.send([1, 2, 3], on: second)
        let fromS = pair.s.pollTransmit(maxBytes: 100, now: pair.now)
        pair.c.receive(fromS, now: pair.now)
        var events: [LinkEvent] = []
        while let event = pair.c.pollEvent() { events.append(event) }
        #expect(events == [.streamReset(second, .aborted)])
    }

    @Test("a refused connect reaches C as a refusal")
    func refused() throws {
        var pair = Pair()
        let id = try pair.c.openStream(target: "")
        pair.pump()
        try pair.s.refuse(id, reason: .connectionRefused)
        pair.pump()
        #expect(pair.cEvents.last == .openRefused(id, .connectionRefused))
        #expect(pair.c.streamCount == 0 && pair.s.streamCount == 0)
    }

    @Test("254 streams at most; IDs come back first in, first out")
    func idPool() throws {
        var c = LegacyLink(configuration: LegacyConfiguration(opensStreams: true, maxStreams: 1000))
        var ids: [StreamID] = []
        for _ in 0..<254 { ids.append(try c.openStream(target: "")) }
        #expect(Set(ids).count == 254 && ids.allSatisfy { $0.rawValue <= 0xFD })
        #expect(throws: LinkError.tooManyStreams) { _ = try c.openStream(target: "") }
        try c.reset(ids[5], reason: .aborted)
        try c.reset(ids[2], reason: .aborted)
        #expect(try c.openStream(target: "") == ids[5])
        #expect(try c.openStream(target: "") == ids[2])
    }

    @Test("what the wire has not: named targets, S opening, listen requests, a key")
    func lacks() {
        var c = LegacyLink(configuration: LegacyConfiguration(opensStreams: true))
        var s = LegacyLink(configuration: LegacyConfiguration(opensStreams: false))
        #expect(throws: LinkError.self) { _ = try c.openStream(target: "host:22") }
        #expect(throws: LinkError.self) { _ = try s.openStream(target: "") }
        #expect(throws: LinkError.self) { _ = try c.requestListen(bind: "127.0.0.1", port: 80, target: "") }
    }

    @Test("a client that falls behind the receive limit: its stream is reset, memory stays bounded")
    func receiveLimit() throws {
        var pair = Pair()
        let id = try pair.acceptedStream()
        var offered = 0
        for _ in 0..<200 {
            guard pair.s.streamCount > 0 else { break }
            offered += (try? pair.s.send(Self.payload(4096, seed: UInt64(offered)), on: id)) ?? 0
            pair.pump()  // C never consumes
        }
        #expect(pair.cEvents.contains(.streamReset(id, .creditExceeded)))
        #expect(pair.c.bufferedReceiveBytes == 0 && pair.c.streamCount == 0)
        #expect(Pair.received(pair.cEvents, on: id).count <= 100_000)
        // S heard the close C sent.
        #expect(pair.s.streamCount == 0)
    }

    @Test("a close the peer never answers ends after the linger, as a reset")
    func linger() throws {
        var c = LegacyLink(configuration: LegacyConfiguration(opensStreams: true, closeLinger: .seconds(5)))
        let id = try c.openStream(target: "")
        try c.finish(id)
        _ = c.pollTransmit(maxBytes: 100, now: .zero)
        #expect(c.nextDeadline == LinkTime.zero + .seconds(5))
        c.handleTimeout(now: LinkTime.zero + .seconds(4))
        #expect(c.streamCount == 1)
        c.handleTimeout(now: LinkTime.zero + .seconds(5))
        #expect(c.streamCount == 0 && c.nextDeadline == nil)
        var events: [LinkEvent] = []
        while let event = c.pollEvent() { events.append(event) }
        #expect(events.last == .streamReset(id, .aborted))
    }

    @Test("frames against the roles are violations, counted and said, never acted on")
    func violations() throws {
        var c = LegacyLink(configuration: LegacyConfiguration(opensStreams: true))
        c.receive(try LegacyEncoder.encode(.open(7)), now: .zero)
        var s = LegacyLink(configuration: LegacyConfiguration(opensStreams: false))
        s.receive(try LegacyEncoder.encode(.connectFailed(7)), now: .zero)
        s.receive(try LegacyEncoder.encode(.data(9, [1, 2])), now: .zero)  // no such stream
        #expect(c.statistics.protocolViolations == 1 && c.streamCount == 0)
        #expect(s.statistics.protocolViolations == 1 && s.statistics.discardedBytes == 2)
    }

    @Test("every data frame's length is one the original reads (no FF byte in it)")
    func safeLengths() {
        for count in [255, 256, 511, 1024, 65_280 / 2, 16_384] {
            for ffs in [0, 1, 2, 255] {
                let bytes = ArraySlice([UInt8](repeating: 0xFF, count: min(ffs, count)) + [UInt8](repeating: 0x41, count: max(0, count - ffs)))
                let taken = LegacyLink.framePrefix(bytes, limit: 16_384)
                let length = taken + bytes.prefix(taken).filter { $0 == 0xFF }.count
                #expect(taken > 0 && LegacyWire.isSafeLength(length), "\(count) bytes, \(ffs) FF: \(taken) taken, length \(length)")
            }
        }
    }

    @Test("the -d 4 trace names each legacy frame, in pieces, and says so of junk")
    func trace() throws {
        var tracer = LegacyLink(configuration: LegacyConfiguration(opensStreams: true)).makeFrameTracer()
        let bytes = try LegacyEncoder.encode(.open(3)) + LegacyEncoder.encode(.data(3, [1, 0xFF, 2]))
            + LegacyEncoder.encode(.closed(3))
        var lines: [String] = []
        for piece in [bytes[..<5], bytes[5...]] {
            lines += Array(piece).withUnsafeBytes { tracer.describe($0) }
        }
        #expect(lines == ["OPEN 3", "DATA 3 3 B", "CLOSED 3"])
        let junk = [UInt8]([0xFF, 0xFE, 0x03, 0x07])  // an unknown operation
        #expect(junk.withUnsafeBytes { tracer.describe($0) } == ["junk (1 malformed frame(s))"])
    }
}
