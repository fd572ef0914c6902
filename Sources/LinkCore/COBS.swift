import CLinkAccel

/// Consistent Overhead Byte Stuffing (docs/protocol.md §1).
///
/// A frame's bytes are stuffed so that 0x00 never appears inside, and 0x00 marks the end of a
/// frame. After any damage the receiver resynchronises at the next 0x00. The overhead is one
/// byte per 254 bytes at most.
///
/// The encoder is incremental: bytes are appended as a frame is being built, and every completed
/// block (254 non-zero bytes, or a run ended by a zero) becomes final at once. Only the block in
/// progress is held back, because its code byte is not known yet. That is what lets a long frame
/// be streamed to the line and closed early when something more urgent arrives.
public struct COBSEncoder: Sendable {
    /// Index in the output of the current block's code byte, or nil between frames.
    public private(set) var codeIndex: Int?
    /// Data bytes in the current block (0...254).
    public private(set) var blockLength = 0

    public init() {}

    public var isInFrame: Bool { codeIndex != nil }

    /// Starts a frame: reserves the first code byte.
    public mutating func begin(into out: inout [UInt8]) {
        precondition(codeIndex == nil, "COBS frame already open")
        out.append(0)
        codeIndex = out.count - 1
        blockLength = 0
    }

    public mutating func append(_ byte: UInt8, into out: inout [UInt8]) {
        guard let ci = codeIndex else { preconditionFailure("COBS append outside a frame") }
        if byte == 0 {
            out[ci] = UInt8(blockLength + 1)
            out.append(0)
            codeIndex = out.count - 1
            blockLength = 0
        } else {
            out.append(byte)
            blockLength += 1
            if blockLength == 254 {
                out[ci] = 0xFF
                out.append(0)
                codeIndex = out.count - 1
                blockLength = 0
            }
        }
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer, into out: inout [UInt8]) {
        guard codeIndex != nil else { preconditionFailure("COBS append outside a frame") }
        var i = 0
        let n = bytes.count
        out.reserveCapacity(out.count + n + n / 254 + 2)
        while i < n {
            // Copy the longest run of non-zero bytes that fits in the current block.
            let room = 254 - blockLength
            let limit = min(n, i + room)
            let j = i + lk_find_zero(bytes.baseAddress! + i, limit - i)
            if j > i {
                out.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[i..<j]))
                blockLength += j - i
                if blockLength == 254 {
                    out[codeIndex!] = 0xFF
                    out.append(0)
                    codeIndex = out.count - 1
                    blockLength = 0
                }
                i = j
            }
            if i < n && bytes[i] == 0 {
                append(0, into: &out)
                i += 1
            }
        }
    }

    public mutating func append<C: Collection>(contentsOf bytes: C, into out: inout [UInt8]) where C.Element == UInt8 {
        if let _: Void = bytes.withContiguousStorageIfAvailable({ append(UnsafeRawBufferPointer($0), into: &out) }) {
            return
        }
        for b in bytes { append(b, into: &out) }
    }

    /// Ends the frame: fixes the last code byte and writes the 0x00 delimiter.
    public mutating func finish(into out: inout [UInt8]) {
        guard let ci = codeIndex else { preconditionFailure("COBS finish outside a frame") }
        out[ci] = UInt8(blockLength + 1)
        out.append(0)
        codeIndex = nil
        blockLength = 0
    }

    /// Adjusts the pending code index after the output buffer dropped `n` bytes from its front.
    public mutating func rebase(by n: Int) {
        if let ci = codeIndex { codeIndex = ci - n }
    }

    /// Encodes one whole frame (convenience for tests and tools).
    public static func encode<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        var out: [UInt8] = []
        var e = COBSEncoder()
        e.begin(into: &out)
        e.append(contentsOf: bytes, into: &out)
        e.finish(into: &out)
        return out
    }
}

/// Decodes COBS from a byte stream, one 0x00-delimited frame at a time, in bounded memory.
///
/// Never traps and never grows beyond `maxFrameLength` decoded bytes: a frame that would exceed
/// it is dropped and counted, and the decoder skips to the next delimiter.
public struct COBSDecoder: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// A complete frame is in `frame`.
        case frame
        /// A delimiter ended a frame whose COBS structure was broken (a block cut short).
        case malformed
        /// A frame longer than the limit was skipped.
        case oversize
    }

    public let maxFrameLength: Int
    public private(set) var frame: [UInt8] = []
    /// Bytes left in the current block; 0 means the next byte is a code byte.
    var remaining = 0
    /// Whether the current block's code was 0xFF (no implied zero after it).
    var lastCodeWasFull = true
    var started = false
    var discarding = false

    public init(maxFrameLength: Int) {
        self.maxFrameLength = maxFrameLength
        frame.reserveCapacity(maxFrameLength)
    }

    /// Feeds bytes from `input` starting at `index`, stopping after the first frame boundary.
    /// Returns the outcome at that boundary and advances `index` past it, or nil when the input
    /// ran out first.
    public mutating func decode(_ input: UnsafeRawBufferPointer, index: inout Int) -> Outcome? {
        let n = input.count
        var i = index
        defer { index = i }
        while i < n {
            let b = input[i]
            if b == 0 {
                i += 1
                let outcome: Outcome
                if discarding {
                    outcome = .oversize
                } else if !started {
                    // Back-to-back delimiters: an empty frame, treated as idle fill.
                    resetFrame()
                    continue
                } else if remaining != 0 {
                    outcome = .malformed
                } else {
                    outcome = .frame
                }
                if outcome != .frame { frame.removeAll(keepingCapacity: true) }
                remaining = 0
                lastCodeWasFull = true
                started = false
                discarding = false
                return outcome
            }
            if discarding { i += 1; continue }
            if !started {
                frame.removeAll(keepingCapacity: true)
                started = true
            }
            if remaining == 0 {
                // A code byte: the previous block (if any, and if not full) implied a zero.
                if !lastCodeWasFull {
                    if frame.count >= maxFrameLength { startDiscarding(); i += 1; continue }
                    frame.append(0)
                }
                remaining = Int(b) - 1
                lastCodeWasFull = b == 0xFF
                i += 1
                continue
            }
            // Copy as many literal bytes of this block as are here and non-zero.
            let take = min(remaining, n - i)
            let j = i + lk_find_zero(input.baseAddress! + i, take)
            let count = j - i
            if frame.count + count > maxFrameLength { startDiscarding(); i = j; continue }
            frame.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[i..<j]))
            remaining -= count
            i = j
        }
        return nil
    }

    /// Empties the frame buffer after the caller has used a `.frame` outcome.
    public mutating func resetFrame() {
        frame.removeAll(keepingCapacity: true)
    }

    mutating func startDiscarding() {
        discarding = true
        frame.removeAll(keepingCapacity: true)
        remaining = 0
    }

    /// Decodes one whole encoded frame (with or without its trailing delimiter); nil if invalid.
    public static func decode(_ encoded: [UInt8], maxFrameLength: Int = 1 << 20) -> [UInt8]? {
        var d = COBSDecoder(maxFrameLength: maxFrameLength)
        var bytes = encoded
        if bytes.last != 0 { bytes.append(0) }
        return bytes.withUnsafeBytes { raw -> [UInt8]? in
            var idx = 0
            guard d.decode(raw, index: &idx) == .frame, idx == raw.count else { return nil }
            return d.frame
        }
    }
}
