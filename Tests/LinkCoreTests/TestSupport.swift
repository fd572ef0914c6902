@testable import LinkCore

// Small helpers shared by the LinkCore tests: seeded random bytes, a bitwise reference CRC,
// hand-built frames and a decoder that takes a frame apart for inspection.

/// `count` pseudo-random bytes from `rng` (8 bytes per draw: debug builds are slow per byte).
func randomBytes(_ count: Int, using rng: inout SplitMix64) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { raw in
        var i = 0
        while i < count {
            var word = rng.next()
            let n = min(8, count - i)
            withUnsafeBytes(of: &word) { w in
                raw.baseAddress!.advanced(by: i).copyMemory(from: w.baseAddress!, byteCount: n)
            }
            i += n
        }
    }
    return out
}

/// Deterministic content for stream payloads, so a receiver can check every byte.
func pattern(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed)
    return randomBytes(count, using: &rng)
}

/// Bit-at-a-time CRC-32C, independent of the table-driven implementation under test.
func referenceCRC32C(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
    }
    return c ^ 0xFFFF_FFFF
}

// The byte order of the CRC field on the wire (docs/protocol.md §2: big-endian, like every
// other integer). Every test that builds or checks a frame goes through these two functions.

/// The 4 bytes of the CRC field for checksum `v`.
func crcField(_ v: UInt32) -> [UInt8] {
    [UInt8(v & 0xFF), UInt8((v >> 8) & 0xFF), UInt8((v >> 16) & 0xFF), UInt8(v >> 24)]
}

/// The checksum stored in the last 4 bytes of a decoded frame.
func storedCRC(_ frame: [UInt8]) -> UInt32 {
    let n = frame.count
    return UInt32(frame[n - 1]) << 24 | UInt32(frame[n - 2]) << 16 | UInt32(frame[n - 3]) << 8 | UInt32(frame[n - 4])
}

/// Whether a decoded frame (type ... CRC) carries a valid CRC-32C, checked the way the receiver does.
func crcVerifies(_ frame: [UInt8]) -> Bool {
    guard frame.count >= 5 else { return false }
    return CRC32C.checksum(frame[0..<(frame.count - 4)]) == storedCRC(frame)
}

/// Builds a frame the way the wire format describes it: content + CRC-32C, COBS, delimiter.
/// `content` starts with the frame type byte.
func encodeFrame(_ content: [UInt8]) -> [UInt8] {
    COBSEncoder.encode(content + crcField(CRC32C.checksum(content)))
}

/// A HELLO frame, as a peer would send it.
func helloFrame(_ hello: Hello) -> [UInt8] {
    var content: [UInt8] = [Wire.FrameType.hello.rawValue]
    hello.encode(into: &content)
    return encodeFrame(content)
}

/// A sequenced frame carrying `messages`, with the given acknowledgement trailer.
func sequencedFrame(seq: SequenceNumber, messages: [Message], ack: SequenceNumber, sack: UInt32 = 0) -> [UInt8] {
    var content: [UInt8] = [Wire.FrameType.sequenced.rawValue, UInt8(seq.rawValue >> 8), UInt8(seq.rawValue & 0xFF)]
    for m in messages { m.encode(into: &content) }
    content.appendBE(ack.rawValue)
    content.appendBE(sack)
    return encodeFrame(content)
}

/// A frame taken apart: its type, sequence number and messages, from the decoded content.
struct InspectedFrame {
    /// Decoded content: type byte ... CRC.
    var content: [UInt8]
    /// The frame type, without the compact-trailer flag.
    var type: UInt8 { (content.first ?? 0) & ~Wire.compactTrailerFlag }
    /// The trailer is `ack` alone (§2).
    var hasCompactTrailer: Bool { (content.first ?? 0) & Wire.compactTrailerFlag != 0 }
    var trailerLength: Int { hasCompactTrailer ? Wire.compactAckTrailerLength : Wire.ackTrailerLength }
    var isSequenced: Bool { type == Wire.FrameType.sequenced.rawValue }
    var isFragment: Bool { type == Wire.FrameType.fragment.rawValue }
    var isHello: Bool { type == Wire.FrameType.hello.rawValue }
    var isControl: Bool { type == Wire.FrameType.control.rawValue }
    var crcOK: Bool { crcVerifies(content) }

    var sequence: UInt16? {
        guard (isSequenced || isFragment), content.count >= 3 else { return nil }
        return UInt16(content[1]) << 8 | UInt16(content[2])
    }

    /// Offset of the body in `content`, for frames with messages.
    var bodyStart: Int? {
        switch type {
        case Wire.FrameType.sequenced.rawValue: return Wire.sequencedHeaderLength
        case Wire.FrameType.control.rawValue: return 1
        default: return nil
        }
    }

    var body: ArraySlice<UInt8>? {
        guard let start = bodyStart, content.count >= start + trailerLength + Wire.crcLength else { return nil }
        return content[start..<(content.count - trailerLength - Wire.crcLength)]
    }

    /// Messages of a sequenced or control frame, with the offset in `content` where each starts.
    var messages: [(offset: Int, message: Message)] {
        guard let body else { return [] }
        var parser = MessageParser(body)
        var out: [(Int, Message)] = []
        while true {
            let offset = parser.reader.index
            guard let m = try? parser.next() else { break }
            out.append((offset, m))
        }
        return out
    }

    var carriesData: Bool {
        messages.contains { if case .data = $0.message { return true } else { return false } }
    }

    var hasPing: Bool {
        messages.contains { if case .ping = $0.message { return true } else { return false } }
    }

    init?(encoded: [UInt8]) {
        guard let c = COBSDecoder.decode(encoded) else { return nil }
        content = c
    }

    init(content: [UInt8]) { self.content = content }
}

/// Splits an encoded byte stream into frames (each with its 0x00), with their start offsets.
func splitFrames(_ stream: [UInt8]) -> [(start: Int, bytes: [UInt8])] {
    var out: [(Int, [UInt8])] = []
    var start = 0
    var i = 0
    while i < stream.count {
        if stream[i] == 0 {
            out.append((start, Array(stream[start...i])))
            start = i + 1
        }
        i += 1
    }
    return out
}

/// Jain's fairness index: 1 when all shares are equal, 1/n when one takes everything.
func jainIndex(_ xs: [Double]) -> Double {
    let sum = xs.reduce(0, +)
    let squares = xs.reduce(0) { $0 + $1 * $1 }
    guard squares > 0 else { return 1 }
    return sum * sum / (Double(xs.count) * squares)
}

/// An event, with received bytes shown as a count (for readable failure messages).
func summary(_ e: LinkEvent) -> String {
    if case .received(let id, let bytes) = e { return "received(\(id), \(bytes.count) bytes)" }
    return "\(e)"
}

func summary(_ events: [LinkEvent]) -> String {
    var out: [String] = []
    var lastReceived: (StreamID, Int)?
    for e in events {
        if case .received(let id, let bytes) = e {
            if let (lid, n) = lastReceived, lid == id { lastReceived = (id, n + bytes.count); continue }
            if let (lid, n) = lastReceived { out.append("received(\(lid), \(n) bytes)") }
            lastReceived = (id, bytes.count)
            continue
        }
        if let (lid, n) = lastReceived { out.append("received(\(lid), \(n) bytes)"); lastReceived = nil }
        out.append("\(e)")
    }
    if let (lid, n) = lastReceived { out.append("received(\(lid), \(n) bytes)") }
    return out.joined(separator: ", ")
}
