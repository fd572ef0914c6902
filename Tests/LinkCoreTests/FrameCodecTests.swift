@testable import LinkCore
import Testing

@Suite("Frame codec")
struct FrameCodecTests {
    /// Every frame a Link puts on the line, including DATA-TAIL frames streamed block by block
    /// and retransmitted fragments, decodes, verifies, and is the canonical COBS encoding of its
    /// content.
    @Test("frames emitted by Link are valid, CRC-protected, canonical COBS")
    func emittedFramesAreCanonical() throws {
        let pair = Pair(seed: 11) { _, c in c.maxFrameBody = 4096 }
        var wire: [[UInt8]] = [[], []]
        pair.tap = { side, bytes, _ in wire[side.rawValue] += bytes }
        pair.pollLimit = 300  // frames leave in pieces
        var rng = SplitMix64(seed: 3)
        pair.filter = { side, frame, _ in
            // Lose some sequenced frames so that retransmissions and fragments appear too.
            guard side == .a, let f = InspectedFrame(encoded: frame), f.isSequenced else { return .deliver }
            return rng.next() % 8 == 0 ? .drop : .deliver
        }
        #expect(pair.establish())
        let s1 = try pair.open(.a, target: "host:1")
        let s2 = try pair.open(.b, target: "host:2")
        let up = pattern(300_000, seed: 1)
        let zeros = [UInt8](repeating: 0, count: 20_000)
        pair.write(.a, s1, up + zeros, finish: true)
        pair.write(.b, s2, zeros + up, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(s1)) && $0.has(.a, .remoteFinished(s2)) })
        #expect(pair.receivedBytes(.b, s1) == up + zeros)
        #expect(pair.receivedBytes(.a, s2) == zeros + up)

        var types: Set<UInt8> = []
        for side in Side.allCases {
            let frames = splitFrames(wire[side.rawValue])
            #expect(frames.count > 50)
            for (_, encoded) in frames {
                let f = try #require(InspectedFrame(encoded: encoded))
                #expect(f.crcOK)
                #expect(encodeFrame(Array(f.content.dropLast(4))) == encoded)
                #expect(f.content.count <= 4096 + 64)
                types.insert(f.type)
            }
        }
        #expect(types.isSuperset(of: [Wire.FrameType.hello.rawValue, Wire.FrameType.sequenced.rawValue,
                                      Wire.FrameType.control.rawValue]))
        #expect(pair.a.statistics.retransmissions > 0)
    }

    /// Hand-built sequenced frames whose bodies cover every length class up to maxFrameBody
    /// reach the application intact, with the encoded stream arriving in random-size chunks.
    @Test("hand-built frames of every body length, delivered in random chunks", arguments: [21, 22] as [UInt64])
    func everyBodyLength(seed: UInt64) throws {
        let pair = Pair(seed: seed) { side, c in
            if side == .b { c.initialWindow = 8 << 20 }
        }
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a, target: "x")
        #expect(pair.quiesce())
        let maxBody = pair.b.configuration.maxFrameBody

        var rng = SplitMix64(seed: seed)
        var lengths = Array(1...600)
        lengths += [maxBody - 3, maxBody - 4, 4096, 254, 255, 508]
        for _ in 0..<80 { lengths.append(1 + Int(rng.next() % UInt64(maxBody - 3))) }

        var stream: [UInt8] = []
        var expected: [[UInt8]] = []
        var seq = pair.b.inspection.expectedSequence
        let ack = pair.a.inspection.expectedSequence
        for (k, length) in lengths.enumerated() {
            let kind = PayloadKind.allCases[k % PayloadKind.allCases.count]
            let payload = kind.make(length, using: &rng)
            var content: [UInt8] = [Wire.FrameType.sequenced.rawValue, UInt8(seq.rawValue >> 8), UInt8(seq.rawValue & 0xFF)]
            if k % 2 == 0 {
                // DATA-TAIL: the body runs to the trailer.
                content += [Wire.MessageType.dataTail.rawValue, UInt8(id.rawValue >> 8), UInt8(id.rawValue & 0xFF)]
                content += payload
            } else {
                Message.data(id, payload[...]).encode(into: &content)
            }
            content.appendBE(ack.rawValue)
            content.appendBE(UInt32(0))
            #expect(content.count - 13 <= maxBody)
            stream += encodeFrame(content)
            expected.append(payload)
            seq = seq + 1
        }
        // An oversize frame in the middle is skipped and counted without disturbing the rest.
        let oversize = COBSEncoder.encode([UInt8](repeating: 0x55, count: maxBody + 100))

        var link = pair.b
        let before = link.statistics
        var chunks = 0
        var index = 0
        let mid = try #require(stream[..<(stream.count / 2)].lastIndex(of: 0)) + 1
        let all = Array(stream[..<mid]) + oversize + Array(stream[mid...])
        var delivered: [[UInt8]] = []
        while index < all.count {
            let n = min(all.count - index, 1 + Int(rng.next() % 2000))
            link.receive(all[index..<(index + n)], now: pair.now)
            #expect(link.inspection.partialFrameLength <= link.inspection.maxFrameLength)
            while let e = link.pollEvent() {
                if case .received(let sid, let bytes) = e {
                    #expect(sid == id)
                    delivered.append(bytes)
                    link.consumed(bytes.count, on: sid)
                } else {
                    Issue.record("unexpected event \(e)")
                }
            }
            index += n
            chunks += 1
        }
        #expect(chunks > 100)
        #expect(delivered.count == expected.count)
        #expect(delivered == expected)
        #expect(link.statistics.framesReceived - before.framesReceived == lengths.count)
        #expect(link.statistics.oversizeFrames - before.oversizeFrames == 1)
        #expect(link.statistics.crcErrors == before.crcErrors)
        #expect(link.statistics.malformedFrames == before.malformedFrames)
        #expect(link.inspection.expectedSequence == seq)
    }

    /// Each end announces its largest frame body in HELLO (maxFrame). A sender with a larger
    /// maxFrameBody must not send the peer frames it cannot take.
    @Test("frames respect the peer's advertised maxFrame")
    func peerMaxFrame() throws {
        let pair = Pair(seed: 13) { side, c in c.maxFrameBody = side == .a ? 8192 : 1024 }
        #expect(pair.establish())
        #expect(pair.a.inspection.peerHello?.maxFrame == 1024)
        var largest = 0
        pair.filter = { side, frame, _ in
            if side == .a, let f = InspectedFrame(encoded: frame) { largest = max(largest, f.content.count) }
            return .deliver
        }
        let id = try pair.open(.a)
        let data = pattern(300_000, seed: 14)
        pair.write(.a, id, data, finish: true)
        let completed = pair.run(timeLimit: .seconds(20)) { $0.has(.b, .remoteFinished(id)) }
        // A must size frames by B's HELLO maxFrame as well as its own limit; otherwise B drops
        // them as oversize and the transfer never completes (a regression test).
        #expect(completed, "B got \(pair.receivedCount(.b, id)) of \(data.count) bytes; \(pair.b.statistics.oversizeFrames) oversize frames, \(pair.b.statistics.protocolViolations) protocol violations")
        #expect(largest <= 1024 + 64, "A sent a frame of \(largest) bytes")
        #expect(pair.b.statistics.oversizeFrames == 0)
    }
}

@Suite("Frame description")
struct FrameDescriptionTests {
    @Test("every frame of a short exchange reads as one plain line")
    func exchange() throws {
        let pair = Pair(seed: 41)
        var lines: [String] = []
        var partial: [UInt8] = []
        pair.tap = { side, bytes, _ in
            guard side == .a else { return }
            partial += bytes
            while let end = partial.firstIndex(of: 0) {
                let encoded = Array(partial[...end])
                partial.removeFirst(end + 1)
                if let frame = COBSDecoder.decode(encoded) { lines.append(FrameDescription.describe(frame)) }
            }
        }
        #expect(pair.establish())
        let id = try pair.open(.a, target: "svc:22")
        pair.write(.a, id, pattern(300, seed: 1), finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(lines.contains { $0.hasPrefix("HELLO v1 session ") && $0.contains(" odd") && $0.contains(" window 65536") })
        #expect(lines.contains { $0.hasPrefix("SEQ 0 ack ") && $0.contains("OPEN #1 \"svc:22\"") })
        #expect(lines.contains { $0.contains("DATA #1 300 B") && $0.contains("FIN #1") }, "\(lines)")
        #expect(lines.contains { $0.hasPrefix("CONTROL ack ") && $0.contains("PING 1") }, "\(lines)")
    }

    @Test("damaged, short and unknown frames are described, never trapped on")
    func junk() {
        #expect(FrameDescription.describe([1, 2]) == "runt frame (2 B)")
        #expect(FrameDescription.describe([2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]).hasPrefix("damaged frame (13 B"))
        var unknown: [UInt8] = [0x7E, 1, 2]
        let crc = CRC32C.checksum(unknown)
        unknown += [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)]
        #expect(FrameDescription.describe(unknown) == "unknown frame type 0x7e (7 B)")
        for seed in 0..<2_000 {
            var random = SplitMix64(seed: UInt64(seed))
            let bytes = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            _ = FrameDescription.describe(bytes)
        }
    }
}

extension FrameCodecTests {
    /// A stuffed tail's body as a sender makes it: a marker after every run of 127 non-zero
    /// bytes, then `suffix` and its length.
    static func stuffedTail(_ data: [UInt8], suffix: [Message] = [], compressed: Bool = false) -> [UInt8] {
        var body: [UInt8] = [(compressed ? Wire.MessageType.dataCompressedTailStuffed : .dataTailStuffed).rawValue, 0, 7]
        var run = 0
        for b in data {
            body.append(b)
            run = b == 0 ? 0 : run + 1
            if run == Wire.stuffingRun {
                body.append(0)
                run = 0
            }
        }
        var tail: [UInt8] = []
        for m in suffix { m.encode(into: &tail) }
        return body + tail + [UInt8(tail.count)]
    }

    @Test("a stuffed tail drops the 0x00 after every run of 127 non-zero bytes; its suffix is parsed after it",
          arguments: [0, 1, 3])
    func stuffedTail(zeroEvery: Int) throws {
        var data = pattern(700, seed: 5).map { $0 == 0 ? 1 : $0 }
        if zeroEvery > 0 { for i in stride(from: 50, to: data.count, by: 60 * zeroEvery) { data[i] = 0 } }
        let suffix: [Message] = [.credit(StreamID(9), 4096), .data(StreamID(3), [0x41][...])]
        for extra in [[], suffix] {
            let body = Self.stuffedTail(data, suffix: extra)
            var parser = MessageParser(body[...])
            #expect(try parser.next() == .data(StreamID(7), data[...]))
            for m in extra { #expect(try parser.next() == m) }
            #expect(try parser.next() == nil)
        }
        var compressed = MessageParser(Self.stuffedTail(data, compressed: true)[...])
        #expect(try compressed.next() == .compressedData(StreamID(7), data[...]))
    }

    @Test("stuffed tails: a marker that is not 0x00, a suffix longer than the body, a tail in the suffix, no bytes")
    func stuffedTailViolations() throws {
        let data = [UInt8](repeating: 0x55, count: 300)
        var badMarker = Self.stuffedTail(data)
        badMarker[3 + Wire.stuffingRun] = 1
        var parser = MessageParser(badMarker[...])
        #expect(throws: MessageParseError.badStuffing) { try parser.next() }
        var tooLong = Self.stuffedTail(Array(data.prefix(20)))
        tooLong[tooLong.count - 1] = 200
        parser = MessageParser(tooLong[...])
        #expect(throws: MessageParseError.truncated) { try parser.next() }
        var nested = Self.stuffedTail(data)
        nested.removeLast()
        nested += [Wire.MessageType.dataTail.rawValue, 0, 9, 0x42, 4]
        parser = MessageParser(nested[...])
        _ = try parser.next()
        #expect(throws: MessageParseError.tailInSuffix) { try parser.next() }
        parser = MessageParser([Wire.MessageType.dataCompressedTailStuffed.rawValue, 0, 7, 0][...])
        #expect(throws: MessageParseError.emptyData) { try parser.next() }
    }
}
