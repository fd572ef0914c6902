@testable import LinkCore
import LinkSimulation
import Testing

/// Compressed stream data (docs/protocol.md §5.7): negotiation, round trips, turning itself off
/// for data that does not shrink, bombs, and its interplay with ARQ.
@Suite("Compression")
struct CompressionTests {
    static func compressing(_ mode: CompressionMode = .always, seed: UInt64 = 1,
                            _ more: @escaping (Side, inout LinkConfiguration) -> Void = { _, _ in }) -> Pair {
        Pair(seed: seed) { side, c in
            c.compression = mode
            more(side, &c)
        }
    }

    /// Message types of the DATA and DATA-COMPRESSED messages `side` sends, collected through the filter.
    static func recordTypes(_ pair: Pair, from side: Side) -> () -> [UInt8] {
        var types: [UInt8] = []
        pair.filter = { s, frame, _ in
            if s == side, let f = InspectedFrame(encoded: frame), f.isSequenced {
                for (_, m) in f.messages {
                    switch m {
                    case .data: types.append(Wire.MessageType.data.rawValue)
                    case .compressedData: types.append(Wire.MessageType.dataCompressed.rawValue)
                    default: break
                    }
                }
            }
            return .deliver
        }
        return { types }
    }

    @Test("text goes through compressed and arrives intact, in both directions, in a fraction of the line bytes")
    func textRoundTrip() throws {
        let pair = Self.compressing()
        #expect(pair.establish())
        let up = TextCorpus.generate(count: 400_000, seed: 1)
        let down = TextCorpus.generate(count: 300_000, seed: 2)
        let id = try pair.openAccepted(from: .a)
        pair.write(.a, id, up, finish: true)
        pair.write(.b, id, down, finish: true)
        #expect(pair.run { $0.has(.a, .streamClosed(id)) && $0.has(.b, .streamClosed(id)) })
        #expect(pair.receivedBytes(.b, id) == up)
        #expect(pair.receivedBytes(.a, id) == down)
        let a = pair.a.statistics, b = pair.b.statistics
        #expect(a.compressedPayloadBytesSent == up.count)
        #expect(b.compressedPayloadBytesReceived == up.count)
        #expect(a.compressedBytesSent == b.compressedBytesReceived)
        #expect(a.compressedBytesSent * 3 < up.count, "text shrinks at least 3x: \(a.compressedBytesSent)")
        #expect(a.lineBytesSent * 3 < up.count)
        #expect(pair.b.statistics.compressedBytesSent * 3 < down.count)
        #expect(pair.a.inspection.compressorsInUse == 0 && pair.b.inspection.decompressorsInUse == 0)
        #expect(pair.a.inspection.decompressorsInUse == 0 && pair.b.inspection.compressorsInUse == 0)
    }

    @Test("credit counts uncompressed bytes: a stalled reader gets exactly one window, however well it compresses")
    func creditInUncompressedBytes() throws {
        let pair = Self.compressing()
        #expect(pair.establish())
        let window = pair.b.configuration.initialWindow
        let id = try pair.openAccepted(from: .a)
        pair.stalled[Side.b.rawValue].insert(id)
        let data = TextCorpus.generate(count: 5 * window, seed: 3)
        pair.write(.a, id, data, finish: true)
        pair.run(for: .seconds(10))
        #expect(pair.receivedCount(.b, id) == window)
        #expect(pair.receivedBytes(.b, id) == Array(data.prefix(window)))
        #expect(pair.b.bufferedReceiveBytes == window)
        #expect(pair.b.statistics.creditViolations == 0)
        pair.resume(.b, id)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == data)
    }

    @Test("random data turns compression off by itself and costs at most 0.5 % more line bytes")
    func incompressibleTurnsOff() throws {
        func lineBytes(_ mode: CompressionMode) throws -> (Int, Pair) {
            let pair = Self.compressing(mode, seed: 7)
            #expect(pair.establish())
            let id = try pair.openAccepted(from: .a)
            let data = pattern(600_000, seed: 9)
            pair.write(.a, id, data, finish: true)
            #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
            #expect(pair.receivedBytes(.b, id) == data)
            return (pair.a.statistics.lineBytesSent, pair)
        }
        let (plain, _) = try lineBytes(.off)
        let (auto, pair) = try lineBytes(.always)
        #expect(pair.a.statistics.compressedPayloadBytesSent > 0, "it tried")
        // One chunk per probe, a probe after every rest.
        #expect(pair.a.statistics.compressedPayloadBytesSent <= (600_000 / Compression.restBytes + 1) * Compression.maximumChunk,
                "and stopped")
        #expect(Double(auto) <= Double(plain) * 1.005, "line bytes \(auto) vs \(plain) plain")
    }

    @Test("a stream probes again after its rest and compresses text that follows random data")
    func probesAgain() throws {
        let pair = Self.compressing()
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        // The first probe (one chunk) finds random data; the rest covers the rest of it and the
        // start of the text; the next probe finds text and compression stays on.
        let text = 600_000
        let data = pattern(20_000, seed: 4) + TextCorpus.generate(count: text, seed: 5)
        pair.write(.a, id, data, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == data)
        #expect(pair.a.statistics.compressedPayloadBytesSent > text - Compression.restBytes - 20_000)
    }

    @Test("keystrokes go plain: a byte costs a byte, not a deflate block")
    func keystrokesPlain() throws {
        let pair = Self.compressing()
        let types = Self.recordTypes(pair, from: .a)
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        for k in 0..<20 {
            pair.write(.a, id, [UInt8(65 + k)])
            #expect(pair.run { $0.receivedCount(.b, id) == k + 1 })
        }
        #expect(types().allSatisfy { $0 == Wire.MessageType.data.rawValue } && types().count == 20)
        #expect(pair.a.inspection.compressorsInUse == 0)
    }

    @Test("an end with compression off is offered nothing and sent nothing compressed")
    func negotiation() throws {
        for (aMode, bMode) in [(CompressionMode.always, CompressionMode.off), (.off, .always), (.auto, .auto)] {
            let pair = Pair(seed: 3) { side, c in c.compression = side == .a ? aMode : bMode }
            let types = Self.recordTypes(pair, from: .a)
            #expect(pair.establish())
            let id = try pair.openAccepted(from: .a)
            let data = TextCorpus.generate(count: 50_000, seed: 6)
            pair.write(.a, id, data, finish: true)
            #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
            #expect(pair.receivedBytes(.b, id) == data)
            // .auto on an unpaced line does not compress either: the line is not the bottleneck.
            #expect(!types().contains(Wire.MessageType.dataCompressed.rawValue), "\(aMode) to \(bMode)")
            #expect(pair.b.inspection.peerCompression == (aMode == .off ? nil : Compression.Offer(maxStreams: 16)))
        }
    }

    @Test("auto compresses on a paced line of up to 4 Mbit/s and not above")
    func autoFollowsTheLine() {
        for (rate, expected) in [(11_520, true), (Compression.autoLineRateLimit, true), (1_000_000, false), (0, false)] {
            var link = Link(configuration: LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: rate, seed: 1))
            link.peerCompression = Compression.Offer(maxStreams: 16)
            #expect(link.compressesToPeer == expected, "\(rate) B/s")
        }
    }

    @Test("no more streams compress at once than both ends allow; the others go plain and all arrive")
    func compressorCap() throws {
        let pair = Self.compressing { side, c in if side == .b { c.maxCompressedStreams = 3 } }
        // A line of finite speed, polled a little at a time, so that steps see streams mid-way.
        pair.clockBytesPerSecond = 11_520
        pair.pollLimit = 256
        #expect(pair.establish())
        var most = 0
        pair.invariant = { p in most = max(most, p.b.inspection.decompressorsInUse, p.a.inspection.compressorsInUse) }
        var ids: [StreamID] = []
        var sent: [StreamID: [UInt8]] = [:]
        for k in 0..<8 {
            let id = try pair.openAccepted(from: .a)
            ids.append(id)
            sent[id] = TextCorpus.generate(count: 60_000, seed: UInt64(10 + k))
            pair.write(.a, id, sent[id]!, finish: true)
        }
        #expect(pair.run { p in ids.allSatisfy { p.has(.b, .remoteFinished($0)) } })
        for id in ids { #expect(pair.receivedBytes(.b, id) == sent[id]!) }
        #expect(most == 3)
        #expect(pair.b.statistics.protocolViolations == 0)
        #expect(pair.a.statistics.compressedPayloadBytesSent >= 3 * 60_000)
    }

    @Test("text survives a lossy line: ARQ resends compressed frames and the history holds")
    func lossyLine() throws {
        let pair = Self.compressing(seed: 21)
        var rng = SplitMix64(seed: 99)
        pair.filter = { _, frame, _ in
            guard frame.count > 20 else { return .deliver }
            switch rng.next() % 10 {
            case 0: return .drop
            case 1:
                var bad = frame
                bad[Int(rng.next() % UInt64(frame.count - 1))] ^= 0x10
                return .replace(bad)
            default: return .deliver
            }
        }
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        let up = TextCorpus.generate(count: 250_000, seed: 22)
        let down = TextCorpus.generate(count: 250_000, seed: 23)
        pair.write(.a, id, up, finish: true)
        pair.write(.b, id, down, finish: true)
        #expect(pair.run { $0.has(.a, .streamClosed(id)) && $0.has(.b, .streamClosed(id)) })
        #expect(pair.receivedBytes(.b, id) == up)
        #expect(pair.receivedBytes(.a, id) == down)
        #expect(pair.a.statistics.retransmissions > 0)
        #expect(pair.a.statistics.compressedBytesSent * 3 < up.count)
    }
}

/// A peer that breaks the rules of §5.7, spoken frame by frame.
@Suite("Compression: hostile peer")
struct CompressionViolationTests {
    /// An established A (the end under test) and a B whose sequenced frames are replaced by
    /// hand-made ones carrying `body`.
    static func injecting(_ messages: [Message], configureA: (inout LinkConfiguration) -> Void = { _ in }) throws
        -> (Pair, StreamID) {
        let pair = Pair(seed: 5) { side, c in
            c.compression = .always
            if side == .a { configureA(&c) }
        }
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .b)
        #expect(id == StreamID(2), "the messages name B's first stream")
        pair.filter = { side, frame, _ in
            // B's next sequenced frame (the one carrying what the test writes) becomes `messages`.
            guard side == .b, let f = InspectedFrame(encoded: frame), f.isSequenced, let seq = f.sequence else {
                return .deliver
            }
            return .replace(sequencedFrame(seq: SequenceNumber(seq), messages: messages,
                                           ack: pair.b.inspection.expectedSequence))
        }
        return (pair, id)
    }

    static func compressedMessage(_ id: StreamID, _ bytes: [UInt8]) -> [Message] { [.compressedData(id, bytes[...])] }

    /// Raw deflate of `plain`, sync-flushed, as a conforming sender would make it.
    static func deflate(_ plain: [UInt8]) -> [UInt8] {
        let d = StreamDeflater(windowBits: 15)!
        _ = d.compress(plain[...])
        var out: [UInt8] = []
        d.pending.take(d.pending.count, appendingTo: &out)
        return out
    }

    @Test("a compression bomb larger than the window resets the stream and holds no more than the window")
    func bomb() throws {
        // 16 MiB of zeros deflate to about 16 KB; the window is 64 KiB.
        let bomb = Self.deflate([UInt8](repeating: 0, count: 16 << 20))
        #expect(bomb.count < 20_000)
        let pair = Pair(seed: 5) { _, c in c.compression = .always }
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .b)
        #expect(pair.a.inspection.stream(id)?.receiveRemaining == 65_536)
        let plain = pair.a.inflate(id, bomb[...])
        #expect(plain == nil)
        #expect(pair.a.statistics.creditViolations == 1)
        #expect(pair.a.inspection.decompressorsInUse == 0)
    }

    @Test("a bomb sent on the line resets the stream for exceeding its credit; the link goes on")
    func bombOnTheLine() throws {
        let bomb = Self.deflate([UInt8](repeating: 0x41, count: 1 << 20))
        let (pair, id) = try Self.injecting(Self.compressedMessage(StreamID(2), Array(bomb.prefix(60_000))))
        pair.write(.b, id, [1, 2, 3])
        #expect(pair.run { $0.has(.a, .streamReset(id, .creditExceeded)) })
        #expect(pair.a.statistics.creditViolations == 1)
        #expect(pair.a.bufferedReceiveBytes == 0)
        pair.filter = nil
        #expect(pair.run { $0.has(.b, .streamReset(id, .creditExceeded)) })
        let next = try pair.openAccepted(from: .a)
        let data = TextCorpus.generate(count: 20_000, seed: 1)
        pair.write(.a, next, data, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(next)) })
        #expect(pair.receivedBytes(.b, next) == data)
    }

    @Test("bytes that are not deflate reset the stream as a protocol violation")
    func corrupt() throws {
        let (pair, id) = try Self.injecting(Self.compressedMessage(StreamID(2), [0xFF, 0xFF, 0xFF, 0xFF, 0x07]))
        pair.write(.b, id, [1])
        #expect(pair.run { $0.has(.a, .streamReset(id, .protocolViolation)) })
        #expect(pair.a.statistics.protocolViolations == 1)
    }

    @Test("compressed data to an end that offered no compression is a protocol violation")
    func notOffered() throws {
        let (pair, id) = try Self.injecting(Self.compressedMessage(StreamID(2), Self.deflate(Array("hello".utf8)))) {
            $0.compression = .off
        }
        pair.write(.b, id, [1])
        #expect(pair.run { $0.a.statistics.protocolViolations > 0 })
        #expect(pair.receivedCount(.a, id) == 0)
    }

    @Test("a HELLO offer this end cannot use is ignored, not trusted")
    func badOffer() {
        func hello(_ value: [UInt8]) -> Hello {
            Hello(usesOddStreamIDs: true, needsReply: false, session: 1, echo: 0, maxFrame: 1000, maxStreams: 10,
                  initialWindow: 1000, extensions: [HelloExtension(type: Compression.helloExtensionType, value: value)])
        }
        #expect(Compression.Offer(hello([1, 15, 0, 16])) == Compression.Offer(maxStreams: 16))
        #expect(Compression.Offer(hello([1, 12, 0, 4])) == Compression.Offer(windowBits: 12, maxStreams: 4))
        #expect(Compression.Offer(hello([2, 15, 0, 16])) == nil, "another algorithm")
        #expect(Compression.Offer(hello([1, 8, 0, 16])) == nil, "a window zlib cannot compress for")
        #expect(Compression.Offer(hello([1, 15, 0])) == nil, "truncated")
        #expect(Compression.Offer(hello([1, 15, 0, 16, 99])) == Compression.Offer(maxStreams: 16), "longer: later fields ignored")
    }
}
