import LegacyWire
import Testing

/// The original socket2ser.py's frames (docs/legacy-protocol.md): the vectors worked out from its
/// source, round trips in pieces of any size, lengths the original can read, and line noise.
@Suite("Legacy wire frames")
struct LegacyWireTests {
    static let vectors: [(LegacyFrame, [UInt8])] = [
        (.open(0), [0xFF, 0xFE, 0x00, 0x00]),
        (.data(0, Array("hello".utf8)), [0xFF, 0x00, 0x00, 0x05, 0x68, 0x65, 0x6C, 0x6C, 0x6F, 0xFF, 0x00, 0x00, 0x00]),
        (.data(3, [0x41, 0xFF, 0x42]), [0xFF, 0x03, 0x00, 0x04, 0x41, 0xFF, 0xFF, 0x42, 0xFF, 0x03, 0x00, 0x00]),
        (.connectFailed(3), [0xFF, 0xFE, 0x03, 0x01]),
        (.closed(3), [0xFF, 0xFE, 0x03, 0x02]),
    ]

    @Test("the vectors of docs/legacy-protocol.md, both ways")
    func vectors() throws {
        for (frame, bytes) in Self.vectors {
            #expect(try LegacyEncoder.encode(frame) == bytes, "\(frame)")
            var decoder = LegacyDecoder()
            #expect(decoder.feed(bytes) == [frame])
            #expect(decoder.skippedBytes == 0 && decoder.malformedFrames == 0)
        }
    }

    /// A deterministic generator, so a failure replays.
    struct Bytes {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        /// Bytes with many FFs, as binary payloads have.
        mutating func payload(_ count: Int) -> [UInt8] {
            (0..<count).map { _ in next() % 4 == 0 ? 0xFF : UInt8(truncatingIfNeeded: next()) }
        }
    }

    @Test("random frames round-trip when fed in pieces of any size", arguments: [1, 2, 3] as [UInt64])
    func roundTrip(seed: UInt64) throws {
        var random = Bytes(state: seed)
        var frames: [LegacyFrame] = []
        var line: [UInt8] = []
        for _ in 0..<300 {
            let id = UInt8(random.next() % 254)
            let frame: LegacyFrame = switch random.next() % 5 {
            case 0: .open(id)
            case 1: .connectFailed(id)
            case 2: .closed(id)
            default: .data(id, random.payload(1 + Int(random.next() % 3000)))
            }
            frames.append(frame)
            try LegacyEncoder.encode(frame, into: &line)
        }
        var decoder = LegacyDecoder()
        var decoded: [LegacyFrame] = []
        var offset = 0
        while offset < line.count {
            let n = 1 + Int(random.next() % 700)
            decoded += decoder.feed(line[offset..<min(line.count, offset + n)])
            offset += n
        }
        // Data whose escaped length would have an FF byte comes in two frames: compare with
        // consecutive data of one stream joined.
        let (got, sent) = (Self.joined(decoded), Self.joined(frames))
        #expect(got.count == sent.count && got == sent, "\(got.count) frames decoded, \(sent.count) sent")
        #expect(decoder.skippedBytes == 0 && decoder.malformedFrames == 0)
    }

    /// The frames with consecutive data frames of one stream joined into one.
    static func joined(_ frames: [LegacyFrame]) -> [LegacyFrame] {
        var out: [LegacyFrame] = []
        for frame in frames {
            if case .data(let id, let more) = frame, case .data(id, let bytes)? = out.last {
                out[out.count - 1] = .data(id, bytes + more)
            } else {
                out.append(frame)
            }
        }
        return out
    }

    @Test("no frame header says a length with an FF byte, which the original would misread; long data is split, and joins up again")
    func safeLengths() throws {
        var random = Bytes(state: 9)
        for size in [254, 255, 256, 510, 511, 512, 16_383, 16_384, 16_385, 40_000] {
            for kind in 0..<3 {
                let data: [UInt8] = switch kind {
                case 0: [UInt8](repeating: 0x41, count: size)
                case 1: [UInt8](repeating: 0xFF, count: size)
                default: random.payload(size)
                }
                let line = try LegacyEncoder.encode(.data(7, data))
                var decoder = LegacyDecoder()
                var joined: [UInt8] = []
                for frame in decoder.feed(line) {
                    guard case .data(7, let piece) = frame else { Issue.record("unexpected \(frame)"); continue }
                    joined += piece
                }
                #expect(joined == data, "size \(size), kind \(kind)")
                // Walk the headers: FF id len_hi len_lo, payload, FF id 00 00.
                var i = 0
                while i < line.count {
                    let length = Int(line[i + 2]) << 8 | Int(line[i + 3])
                    #expect(LegacyWire.isSafeLength(length), "size \(size), kind \(kind): length \(length)")
                    i += 4 + length + 4
                }
            }
        }
        #expect(try LegacyEncoder.encode(.data(1, [])).isEmpty)
        #expect(throws: LegacyEncoder.EncodeError.streamIDOutOfRange(0xFE)) { try LegacyEncoder.encode(.open(0xFE)) }
    }

    @Test("line noise, a frame cut short and an unknown operation are skipped and counted; the frames after them still arrive")
    func noise() {
        var decoder = LegacyDecoder()
        var line: [UInt8] = [0x00, 0x13, 0x37]                            // noise
        line += [0xFF, 0x05, 0x00, 0x10, 0x61, 0x62]                      // a data frame cut short…
        line += [0xFF, 0xFE, 0x05, 0x02]                                   // …by a close
        line += [0xFF, 0xFE, 0x05, 0x09]                                   // an unknown operation
        line += [0xFF, 0x05, 0x00, 0x02, 0x6F, 0x6B, 0xFF, 0x05, 0x00, 0x00]  // "ok"
        #expect(decoder.feed(line) == [.closed(5), .data(5, Array("ok".utf8))])
        #expect(decoder.malformedFrames == 2)
        #expect(decoder.skippedBytes == 3 + 2 + 4)
    }
}
