/// The frames of the original socket2ser.py's line protocol (docs/legacy-protocol.md): bytes in,
/// frames out, and frames in, bytes out. No I/O and no clock. Issue 13 builds the legacy wire
/// mode on this.
public enum LegacyFrame: Sendable, Equatable {
    /// `FF FE id 00`: C accepted a connection; S connects it to its target.
    case open(UInt8)
    /// `FF FE id 01`: S could not connect the stream.
    case connectFailed(UInt8)
    /// `FF FE id 02`: the stream's socket read end of file at the sending end.
    case closed(UInt8)
    /// `FF id len` · payload, escaped · `FF id 00 00`.
    case data(UInt8, [UInt8])
}

public enum LegacyWire {
    /// Starts every frame; in payload it is doubled.
    public static let escape: UInt8 = 0xFF
    /// After `escape`: a control frame.
    public static let control: UInt8 = 0xFE
    /// Stream IDs are `0x00`–`0xFD`: the original's pool is `range(0xFE)`.
    public static let maxStreamID: UInt8 = 0xFD
    /// The most payload bytes one data frame of ours carries, before escaping. The original
    /// reads at most 32768 bytes at a time, so it never needs more.
    public static let maxPayload = 16_384

    /// Whether a data frame may say `length` (escaped) in its header. The original does not
    /// escape the length and splits its input on every `FF`, so a length with an `FF` byte
    /// breaks the frame there (docs/legacy-protocol.md, behaviour 2). Length 0 is the trailer.
    public static func isSafeLength(_ length: Int) -> Bool {
        length > 0 && length <= 0xFFFF && length & 0xFF != 0xFF && length >> 8 != 0xFF
    }
}

/// Writes frames as the original expects them.
public enum LegacyEncoder {
    public enum EncodeError: Error, Equatable, CustomStringConvertible {
        case streamIDOutOfRange(UInt8)
        public var description: String {
            switch self {
            case .streamIDOutOfRange(let id):
                "stream id \(id) is outside the legacy protocol's 0-\(LegacyWire.maxStreamID)"
            }
        }
    }

    /// One frame's bytes. Data longer than `LegacyWire.maxPayload`, or whose escaped length
    /// would have an `FF` byte, goes as several data frames, each with a length the original
    /// reads correctly. Empty data writes nothing: the original never sends an empty frame.
    public static func encode(_ frame: LegacyFrame, into out: inout [UInt8]) throws {
        switch frame {
        case .open(let id): try control(id, 0, into: &out)
        case .connectFailed(let id): try control(id, 1, into: &out)
        case .closed(let id): try control(id, 2, into: &out)
        case .data(let id, let bytes):
            guard id <= LegacyWire.maxStreamID else { throw EncodeError.streamIDOutOfRange(id) }
            var start = bytes.startIndex
            while start < bytes.endIndex {
                let end = chunkEnd(bytes, from: start)
                let chunk = bytes[start..<end]
                let length = chunk.count + chunk.reduce(0) { $0 + ($1 == LegacyWire.escape ? 1 : 0) }
                out += [LegacyWire.escape, id, UInt8(length >> 8), UInt8(length & 0xFF)]
                for byte in chunk {
                    out.append(byte)
                    if byte == LegacyWire.escape { out.append(byte) }
                }
                out += [LegacyWire.escape, id, 0, 0]
                start = end
            }
        }
    }

    public static func encode(_ frame: LegacyFrame) throws -> [UInt8] {
        var out: [UInt8] = []
        try encode(frame, into: &out)
        return out
    }

    private static func control(_ id: UInt8, _ op: UInt8, into out: inout [UInt8]) throws {
        guard id <= LegacyWire.maxStreamID else { throw EncodeError.streamIDOutOfRange(id) }
        out += [LegacyWire.escape, LegacyWire.control, id, op]
    }

    /// Where the next data frame from `start` ends: at most `maxPayload` bytes, shortened by a
    /// byte or two until its escaped length is one the original reads correctly.
    private static func chunkEnd(_ bytes: [UInt8], from start: Int) -> Int {
        var end = min(bytes.endIndex, start + LegacyWire.maxPayload)
        var length = end - start + bytes[start..<end].reduce(0) { $0 + ($1 == LegacyWire.escape ? 1 : 0) }
        while !LegacyWire.isSafeLength(length) {
            end -= 1
            length -= bytes[end] == LegacyWire.escape ? 2 : 1
        }
        return end
    }
}

/// Reads the line byte by byte, in pieces of any size, and gives whole frames. Bytes that are no
/// frame (line noise, a frame cut short by a new one, an unknown control operation) are skipped
/// and counted: the old protocol has no checksum, so that is all a reader can do. Memory stays
/// bounded by one frame (at most 65535 escaped bytes).
public struct LegacyDecoder: Sendable {
    private enum State: Sendable {
        /// Outside a frame: anything but `FF` is noise.
        case idle
        /// After an `FF` that starts a frame.
        case escaped
        /// `FF FE`, then the ID, then the operation.
        case control(id: UInt8?)
        /// `FF id`, then the two length bytes (not escaped).
        case header(id: UInt8, high: UInt8?)
        /// The payload (in `payload`): `remaining` escaped bytes to come; `pendingEscape` after
        /// an odd `FF`.
        case payload(id: UInt8, remaining: Int, pendingEscape: Bool)
    }

    private var state = State.idle
    /// The payload of the data frame being read (kept outside `state`, so appending does not copy).
    private var payload: [UInt8] = []
    /// Bytes skipped because they were no part of a valid frame.
    public private(set) var skippedBytes = 0
    /// Frames that were cut short or malformed, and control frames with an unknown operation.
    public private(set) var malformedFrames = 0

    public init() {}

    /// Feeds bytes from the line; returns the frames they complete, in order.
    public mutating func feed<S: Sequence>(_ input: S) -> [LegacyFrame] where S.Element == UInt8 {
        var frames: [LegacyFrame] = []
        for byte in input { step(byte, into: &frames) }
        return frames
    }

    private mutating func step(_ byte: UInt8, into frames: inout [LegacyFrame]) {
        switch state {
        case .idle:
            if byte == LegacyWire.escape { state = .escaped } else { skippedBytes += 1 }
        case .escaped:
            switch byte {
            case LegacyWire.control: state = .control(id: nil)
            case LegacyWire.escape:
                // An escaped FF outside a frame: noise. The second FF may start a frame.
                skippedBytes += 1
            default: state = .header(id: byte, high: nil)
            }
        case .control(nil):
            state = .control(id: byte)
        case .control(let id?):
            state = .idle
            switch byte {
            case _ where id > LegacyWire.maxStreamID:
                // No stream has that ID: the original's pool is 00-FD.
                malformedFrames += 1
                skippedBytes += 4
            case 0: frames.append(.open(id))
            case 1: frames.append(.connectFailed(id))
            case 2: frames.append(.closed(id))
            default:
                malformedFrames += 1
                skippedBytes += 4
            }
        case .header(let id, nil):
            state = .header(id: id, high: byte)
        case .header(let id, let high?):
            let length = Int(high) << 8 | Int(byte)
            // Length 0 is a data frame's trailer, `FF id 00 00`: it carries nothing.
            payload.removeAll(keepingCapacity: true)
            state = length == 0 ? .idle : .payload(id: id, remaining: length, pendingEscape: false)
        case .payload(let id, let remaining, let pendingEscape):
            if pendingEscape {
                guard byte == LegacyWire.escape else {
                    // A lone FF: this frame was cut short and a new one starts here.
                    malformedFrames += 1
                    skippedBytes += payload.count
                    state = .escaped
                    step(byte, into: &frames)
                    return
                }
                payload.append(byte)
                finishOrContinue(id: id, remaining: remaining - 1, into: &frames)
            } else if byte == LegacyWire.escape {
                guard remaining >= 2 else {
                    // An FF where one escaped byte is left: the length was wrong, or the frame
                    // was cut short. Either way this FF may start the next frame.
                    malformedFrames += 1
                    skippedBytes += payload.count
                    state = .escaped
                    return
                }
                state = .payload(id: id, remaining: remaining - 1, pendingEscape: true)
            } else {
                payload.append(byte)
                finishOrContinue(id: id, remaining: remaining - 1, into: &frames)
            }
        }
    }

    private mutating func finishOrContinue(id: UInt8, remaining: Int, into frames: inout [LegacyFrame]) {
        if remaining == 0 {
            frames.append(.data(id, payload))
            payload.removeAll(keepingCapacity: true)
            state = .idle
        } else {
            state = .payload(id: id, remaining: remaining, pendingEscape: false)
        }
    }
}
