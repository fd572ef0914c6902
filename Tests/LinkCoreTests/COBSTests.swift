@testable import LinkCore
import Testing

/// Kinds of payload that stress different COBS paths.
enum PayloadKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case random, allZeros, manyZeros, noZeros, allFF

    var testDescription: String { rawValue }

    func make(_ count: Int, using rng: inout SplitMix64) -> [UInt8] {
        switch self {
        case .random:
            return randomBytes(count, using: &rng)
        case .allZeros:
            return [UInt8](repeating: 0, count: count)
        case .manyZeros:
            // About half the bytes are zero, in runs and singly.
            return randomBytes(count, using: &rng).map { $0 < 0x80 ? 0 : $0 }
        case .noZeros:
            return randomBytes(count, using: &rng).map { $0 == 0 ? 1 : $0 }
        case .allFF:
            return [UInt8](repeating: 0xFF, count: count)
        }
    }
}

@Suite("COBS")
struct COBSTests {
    static let maxFrameBody = LinkConfiguration(usesOddStreamIDs: true, seed: 1).maxFrameBody

    /// Every length 0...600, the block boundaries, and random lengths up to maxFrameBody.
    static func lengths(seed: UInt64) -> [Int] {
        var rng = SplitMix64(seed: seed)
        var out = Array(0...600)
        out += [253, 254, 255, 256, 507, 508, 509, 510, 761, 762, 1016, 4096, maxFrameBody - 1, maxFrameBody]
        for _ in 0..<120 { out.append(Int(rng.next() % UInt64(maxFrameBody + 1))) }
        return out
    }

    static func checkEncoding(_ payload: [UInt8], _ encoded: [UInt8]) {
        #expect(encoded.last == 0)
        #expect(!encoded.dropLast().contains(0), "0x00 inside an encoded frame of \(payload.count) bytes")
        // One code byte per 254 data bytes at most, plus the first code byte and the delimiter.
        #expect(encoded.count <= payload.count + payload.count / 254 + 2)
        #expect(encoded.count >= payload.count + 2)
    }

    @Test("round-trips every length class", arguments: PayloadKind.allCases)
    func roundTrip(kind: PayloadKind) {
        var rng = SplitMix64(seed: 0x0C0B5)
        for length in COBSTests.lengths(seed: 9) {
            let payload = kind.make(length, using: &rng)
            let encoded = COBSEncoder.encode(payload)
            COBSTests.checkEncoding(payload, encoded)
            let decoded = COBSDecoder.decode(encoded)
            #expect(decoded == payload, "length \(length)")
            // Without the trailing delimiter too.
            #expect(COBSDecoder.decode(Array(encoded.dropLast())) == payload)
        }
    }

    @Test("the incremental encoder, fed in random pieces, produces the one-shot encoding", arguments: PayloadKind.allCases)
    func incrementalEncoder(kind: PayloadKind) {
        var rng = SplitMix64(seed: 0x1AC)
        for length in COBSTests.lengths(seed: 10) where length % 3 == 0 || length > 600 {
            let payload = kind.make(length, using: &rng)
            var out: [UInt8] = [0xAA, 0xBB]  // the encoder appends after whatever is there
            var e = COBSEncoder()
            e.begin(into: &out)
            #expect(e.isInFrame)
            var i = 0
            while i < payload.count {
                if rng.next() % 3 == 0 {
                    e.append(payload[i], into: &out)
                    i += 1
                } else {
                    let n = min(payload.count - i, Int(rng.next() % 600))
                    e.append(contentsOf: payload[i..<(i + n)], into: &out)
                    i += n
                }
                // Bytes before the open block's code byte are final.
                #expect(e.codeIndex! < out.count)
                #expect(e.blockLength <= 254)
            }
            e.finish(into: &out)
            #expect(!e.isInFrame)
            #expect(Array(out.dropFirst(2)) == COBSEncoder.encode(payload), "length \(length)")
        }
    }

    @Test("a stream of frames decodes the same in random-size chunks", arguments: [1, 2, 3] as [UInt64])
    func chunkedStream(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var payloads: [[UInt8]] = []
        var stream: [UInt8] = []
        for i in 0..<400 {
            let kind = PayloadKind.allCases[i % PayloadKind.allCases.count]
            let length = i % 50 == 0 ? Int(rng.next() % 8193) : Int(rng.next() % 700)
            let p = kind.make(length, using: &rng)
            payloads.append(p)
            stream += COBSEncoder.encode(p)
            // Idle fill between frames is ignored.
            if i % 7 == 0 { stream += [0, 0] }
        }
        var decoder = COBSDecoder(maxFrameLength: 8192 + 64)
        var frames: [[UInt8]] = []
        var offset = 0
        while offset < stream.count {
            let n = min(stream.count - offset, 1 + Int(rng.next() % (rng.next() % 2 == 0 ? 7 : 3000)))
            stream[offset..<(offset + n)].withUnsafeBytes { raw in
                var index = 0
                while let outcome = decoder.decode(raw, index: &index) {
                    #expect(outcome == .frame)
                    frames.append(decoder.frame)
                    decoder.resetFrame()
                }
                #expect(index == raw.count)
            }
            offset += n
        }
        #expect(frames.count == payloads.count)
        #expect(frames == payloads)
    }

    @Test("frames up to maxFrameLength are kept, longer ones are skipped and counted", arguments: PayloadKind.allCases)
    func lengthLimit(kind: PayloadKind) {
        var rng = SplitMix64(seed: 5)
        let limit = 1000
        for length in [limit - 1, limit, limit + 1, limit + 254, 3 * limit] {
            let payload = kind.make(length, using: &rng)
            let next = kind.make(10, using: &rng)
            let stream = COBSEncoder.encode(payload) + COBSEncoder.encode(next)
            var d = COBSDecoder(maxFrameLength: limit)
            var outcomes: [COBSDecoder.Outcome] = []
            var frames: [[UInt8]] = []
            stream.withUnsafeBytes { raw in
                var index = 0
                while let o = d.decode(raw, index: &index) {
                    #expect(d.frame.count <= limit)
                    outcomes.append(o)
                    if o == .frame { frames.append(d.frame) }
                }
            }
            if length <= limit {
                #expect(outcomes == [.frame, .frame])
                #expect(frames == [payload, next])
            } else {
                #expect(outcomes == [.oversize, .frame])
                #expect(frames == [next])
            }
        }
    }

    @Test("a block cut short by a delimiter is malformed, and the next frame decodes")
    func malformedThenResync() {
        // Code byte 0x0A promises 9 data bytes; only 3 arrive before the delimiter.
        let stream: [UInt8] = [0x0A, 1, 2, 3, 0] + COBSEncoder.encode([7, 0, 8])
        var d = COBSDecoder(maxFrameLength: 100)
        var outcomes: [COBSDecoder.Outcome] = []
        var frames: [[UInt8]] = []
        stream.withUnsafeBytes { raw in
            var index = 0
            while let o = d.decode(raw, index: &index) {
                outcomes.append(o)
                if o == .frame { frames.append(d.frame) }
            }
        }
        #expect(outcomes == [.malformed, .frame])
        #expect(frames == [[7, 0, 8]])
        #expect(COBSDecoder.decode([0x0A, 1, 2, 3]) == nil)
    }

    @Test("known encodings")
    func knownVectors() {
        #expect(COBSEncoder.encode([]) == [0x01, 0x00])
        #expect(COBSEncoder.encode([0x00]) == [0x01, 0x01, 0x00])
        #expect(COBSEncoder.encode([0x00, 0x00]) == [0x01, 0x01, 0x01, 0x00])
        #expect(COBSEncoder.encode([0x11, 0x22, 0x00, 0x33]) == [0x03, 0x11, 0x22, 0x02, 0x33, 0x00])
        let run254 = [UInt8](repeating: 0x01, count: 254)
        #expect(COBSEncoder.encode(run254) == [0xFF] + run254 + [0x01, 0x00])
        let run255 = [UInt8](repeating: 0x01, count: 255)
        #expect(COBSEncoder.encode(run255) == [0xFF] + run254 + [0x02, 0x01, 0x00])
    }
}
