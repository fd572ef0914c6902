/// Byte layouts of frames and messages. docs/protocol.md is the normative description; this file
/// follows it section by section. All multi-byte integers are big-endian.
public enum Wire {
    /// Protocol version carried in HELLO (docs/protocol.md §3).
    public static let version: UInt8 = 1
    /// "SFSL": lets a receiver tell a HELLO of another protocol or version from line noise.
    public static let helloMagic: [UInt8] = [0x53, 0x46, 0x53, 0x4C]

    /// First byte of every frame (§2).
    public enum FrameType: UInt8, Sendable {
        case hello = 0x01
        /// Sequenced: carries reliable messages; acknowledged and retransmitted.
        case sequenced = 0x02
        /// Unsequenced control: acknowledgements, PING, PONG. Never retransmitted.
        case control = 0x03
        /// One piece of a sequenced frame that is being resent in pieces on a noisy line.
        case fragment = 0x04
    }

    /// Message types inside frames (§5).
    public enum MessageType: UInt8, Sendable {
        case open = 0x10
        case openOK = 0x11
        case openRefused = 0x12
        case data = 0x13
        /// DATA whose bytes run to the end of the frame body: lets a frame be closed at any moment.
        case dataTail = 0x14
        case fin = 0x15
        case reset = 0x16
        case credit = 0x17
        /// Ask the peer to listen on a TCP port for this end (§5.6).
        case listen = 0x18
        case listenOK = 0x19
        case listenRefused = 0x1A
        /// The requester no longer wants the listener.
        case unlisten = 0x1B
        /// OPEN whose target is an IPv4 address and port in binary (`CompactTarget`, §5.2).
        case openIPv4 = 0x1C
        /// OPEN whose target is an IPv6 address and port in binary.
        case openIPv6 = 0x1D
        /// DATA whose bytes are the next piece of the stream's deflate stream (§5.7).
        case dataCompressed = 0x1E
        /// DATA-COMPRESSED whose bytes run to the end of the frame body, as DATA-TAIL.
        case dataCompressedTail = 0x1F
        case ping = 0x20
        case pong = 0x21
        /// DATA-TAIL whose bytes have a 0x00 marker after every run of `Wire.stuffingRun`
        /// non-zero bytes, so its COBS blocks are short, and which may be followed by a suffix of
        /// urgent messages: an urgent message waits behind less of it, and rides in the same
        /// frame (§5.2, §8.3).
        case dataTailStuffed = 0x22
        /// DATA-COMPRESSED-TAIL, stuffed the same way and with a suffix.
        case dataCompressedTailStuffed = 0x23
    }

    /// Bit 7 of the type byte of a SEQUENCED, CONTROL or FRAGMENT frame: the trailer is `ack`
    /// alone, its SACK bitmap is empty (§2). Sent only to a peer whose HELLO offers
    /// `Capability.compactAcknowledgement`.
    public static let compactTrailerFlag: UInt8 = 0x80

    /// HELLO capability bits (§3).
    public enum Capability {
        /// The sender accepts frames with `compactTrailerFlag`.
        public static let compactAcknowledgement: UInt32 = 1
        /// The sender's odd flag is a preference: when both ends have the same, the handshake
        /// gives the halves out by session ID (§3.4).
        public static let negotiatedHalves: UInt32 = 2
        /// The sender understands LISTEN, LISTEN-OK, LISTEN-REFUSED and UNLISTEN (§5.6).
        public static let remoteListen: UInt32 = 4
        /// The sender understands OPEN-IPV4 and OPEN-IPV6 (§5.2).
        public static let compactTargets: UInt32 = 8
        /// The sender understands DATA-TAIL-STUFFED and DATA-COMPRESSED-TAIL-STUFFED (§5.2).
        public static let stuffedTails: UInt32 = 16
    }

    /// type(1) + seq(2)
    public static let sequencedHeaderLength = 3
    /// type(1) + seq(2) + index(1) + count(1)
    public static let fragmentHeaderLength = 5
    /// ack(2) + sack(4)
    public static let ackTrailerLength = 6
    /// ack(2), when the type byte has `compactTrailerFlag`
    public static let compactAckTrailerLength = 2
    public static let crcLength = 4
    /// How many frames after the cumulative ack the SACK bitmap covers; also the send window cap.
    public static let sackBits = 32
    public static let maxTargetLength = 255
    /// Largest body a DATA message can carry (16-bit length).
    public static let maxDataMessage = 65535
    /// In a stuffed tail, after this many non-zero bytes in a row comes a 0x00 that is not
    /// stream data: it ends a COBS block, so no block of the tail is longer than 128 bytes (§5.2).
    public static let stuffingRun = 127

    /// Per-frame line overhead of a sequenced frame, excluding COBS: header, trailer, CRC, delimiter.
    public static let sequencedFrameOverhead = sequencedHeaderLength + ackTrailerLength + crcLength + 1
}

/// A message decoded from a frame body.
public enum Message: Equatable, Sendable {
    case open(StreamID, target: String)
    case openOK(StreamID)
    case openRefused(StreamID, OpenRefusal)
    case data(StreamID, ArraySlice<UInt8>)
    /// The next piece of the stream's compressed data (§5.7): not stream bytes until inflated.
    case compressedData(StreamID, ArraySlice<UInt8>)
    case fin(StreamID)
    case reset(StreamID, ResetReason)
    case credit(StreamID, UInt32)
    case ping(UInt32)
    case pong(UInt32)
    /// Listen on `bind:port` for the sender; streams opened for it ask for `target`.
    case listen(ListenID, bind: String, port: UInt16, target: String)
    case listenOK(ListenID, port: UInt16)
    case listenRefused(ListenID, ListenRefusal)
    case unlisten(ListenID)
}

/// Contents of a HELLO frame (docs/protocol.md §3).
public struct Hello: Equatable, Sendable {
    public var version: UInt8
    /// The sender allocates odd stream IDs.
    public var usesOddStreamIDs: Bool
    /// The sender is not established yet and wants a HELLO back.
    public var needsReply: Bool
    public var session: UInt64
    /// The receiver's session as the sender last saw it, 0 if none.
    public var echo: UInt64
    public var maxFrame: UInt32
    public var maxStreams: UInt16
    public var initialWindow: UInt32
    public var capabilities: UInt32
    /// The extension area after the fixed fields (docs/protocol.md §3.5), in the order sent.
    /// Types this end does not know are kept here and otherwise ignored.
    public var extensions: [HelloExtension]

    public init(version: UInt8 = Wire.version, usesOddStreamIDs: Bool, needsReply: Bool, session: UInt64, echo: UInt64,
                maxFrame: UInt32, maxStreams: UInt16, initialWindow: UInt32, capabilities: UInt32 = 0,
                extensions: [HelloExtension] = []) {
        self.extensions = extensions
        self.version = version
        self.usesOddStreamIDs = usesOddStreamIDs
        self.needsReply = needsReply
        self.session = session
        self.echo = echo
        self.maxFrame = maxFrame
        self.maxStreams = maxStreams
        self.initialWindow = initialWindow
        self.capabilities = capabilities
    }

    /// magic(4) version(1) flags(1) session(8) echo(8) maxFrame(4) maxStreams(2) initialWindow(4) capabilities(4),
    /// without extensions.
    public static let encodedLength = 36

    /// The first extension of `type`, if the sender gave one.
    public func extensionValue(_ type: UInt16) -> [UInt8]? { extensions.first { $0.type == type }?.value }

    public func encode(into out: inout [UInt8]) {
        out.append(contentsOf: Wire.helloMagic)
        out.append(version)
        out.append((usesOddStreamIDs ? 1 : 0) | (needsReply ? 2 : 0))
        out.appendBE(session)
        out.appendBE(echo)
        out.appendBE(maxFrame)
        out.appendBE(maxStreams)
        out.appendBE(initialWindow)
        out.appendBE(capabilities)
        for item in extensions {
            out.appendBE(item.type)
            out.appendBE(UInt16(item.value.count))
            out.append(contentsOf: item.value)
        }
    }

    public enum DecodeError: Error, Equatable { case notHello, versionMismatch(UInt8) }

    /// Decodes a HELLO body. A different version is reported before the rest is parsed, so a
    /// future version may lay out the remainder differently.
    public static func decode(_ body: ArraySlice<UInt8>) -> Result<Hello, DecodeError> {
        var r = ByteReader(body)
        guard let magic = r.bytes(4), magic.elementsEqual(Wire.helloMagic), let version = r.u8() else {
            return .failure(.notHello)
        }
        guard version == Wire.version else { return .failure(.versionMismatch(version)) }
        guard let flags = r.u8(), let session = r.u64(), let echo = r.u64(), let maxFrame = r.u32(),
              let maxStreams = r.u16(), let window = r.u32(), let caps = r.u32() else {
            return .failure(.notHello)
        }
        // The extension area: type(2) length(2) value, to the end of the body. One that runs past
        // the end makes the HELLO malformed, as a truncated fixed part does.
        var extensions: [HelloExtension] = []
        while r.remaining > 0 {
            guard let type = r.u16(), let length = r.u16(), let value = r.bytes(Int(length)) else {
                return .failure(.notHello)
            }
            extensions.append(HelloExtension(type: type, value: Array(value)))
        }
        return .success(Hello(version: version, usesOddStreamIDs: flags & 1 != 0, needsReply: flags & 2 != 0,
                              session: session, echo: echo, maxFrame: maxFrame, maxStreams: maxStreams,
                              initialWindow: window, capabilities: caps, extensions: extensions))
    }
}

/// One entry of HELLO's extension area: a type and up to 65,535 bytes of value. The types are
/// listed in docs/protocol.md §3.5; a receiver skips the ones it does not know.
public struct HelloExtension: Equatable, Sendable {
    public var type: UInt16
    public var value: [UInt8]

    public init(type: UInt16, value: [UInt8]) {
        precondition(value.count <= Int(UInt16.max), "a HELLO extension holds at most 65535 bytes")
        self.type = type
        self.value = value
    }

    /// Type numbers; none is sent yet. 0x0000–0x7FFF are for this protocol's later features,
    /// 0x8000–0xFFFF for experiments that a released end never relies on.
    public enum Types {
        public static let experimentalBase: UInt16 = 0x8000
    }
}

// MARK: - Message encoding

extension Message {
    /// Encoded length in bytes, with every target as text.
    public var encodedLength: Int { encodedLength(compactTargets: false) }

    /// Encoded length in bytes; `compactTargets`: an address target goes as OPEN-IPV4/IPV6.
    public func encodedLength(compactTargets: Bool) -> Int {
        switch self {
        case .open(_, let target):
            if compactTargets, let compact = CompactTarget.shorter(than: target) { return 5 + compact.encodedAddressLength }
            return 4 + min(target.utf8.count, Wire.maxTargetLength)
        case .openOK, .fin: return 3
        case .openRefused, .reset: return 4
        case .data(_, let bytes), .compressedData(_, let bytes): return 5 + bytes.count
        case .credit: return 7
        case .ping, .pong: return 5
        case .listen(_, let bind, _, let target):
            return 7 + min(bind.utf8.count, Wire.maxTargetLength) + min(target.utf8.count, Wire.maxTargetLength)
        case .listenOK: return 5
        case .listenRefused: return 4
        case .unlisten: return 3
        }
    }

    /// Appends the message; with `compactTargets` (the peer offers the capability) a target that
    /// is a canonical address literal goes in binary when that is shorter (§5.2), anything else as text.
    public func encode(into out: inout [UInt8], compactTargets: Bool = false) {
        switch self {
        case .open(let id, let target):
            if compactTargets, let compact = CompactTarget.shorter(than: target) {
                out.append(compact.messageType.rawValue); out.appendBE(id.rawValue)
                compact.appendAddress(to: &out)
                return
            }
            let utf8 = Array(target.utf8.prefix(Wire.maxTargetLength))
            out.append(Wire.MessageType.open.rawValue); out.appendBE(id.rawValue)
            out.append(UInt8(utf8.count)); out.append(contentsOf: utf8)
        case .openOK(let id):
            out.append(Wire.MessageType.openOK.rawValue); out.appendBE(id.rawValue)
        case .openRefused(let id, let reason):
            out.append(Wire.MessageType.openRefused.rawValue); out.appendBE(id.rawValue); out.append(reason.rawValue)
        case .data(let id, let bytes):
            precondition(bytes.count <= Wire.maxDataMessage && !bytes.isEmpty, "DATA length out of range")
            out.append(Wire.MessageType.data.rawValue); out.appendBE(id.rawValue)
            out.appendBE(UInt16(bytes.count)); out.append(contentsOf: bytes)
        case .compressedData(let id, let bytes):
            precondition(bytes.count <= Wire.maxDataMessage && !bytes.isEmpty, "DATA-COMPRESSED length out of range")
            out.append(Wire.MessageType.dataCompressed.rawValue); out.appendBE(id.rawValue)
            out.appendBE(UInt16(bytes.count)); out.append(contentsOf: bytes)
        case .fin(let id):
            out.append(Wire.MessageType.fin.rawValue); out.appendBE(id.rawValue)
        case .reset(let id, let reason):
            out.append(Wire.MessageType.reset.rawValue); out.appendBE(id.rawValue); out.append(reason.rawValue)
        case .credit(let id, let increment):
            out.append(Wire.MessageType.credit.rawValue); out.appendBE(id.rawValue); out.appendBE(increment)
        case .ping(let token):
            out.append(Wire.MessageType.ping.rawValue); out.appendBE(token)
        case .pong(let token):
            out.append(Wire.MessageType.pong.rawValue); out.appendBE(token)
        case .listen(let id, let bind, let port, let target):
            let bindBytes = Array(bind.utf8.prefix(Wire.maxTargetLength))
            let targetBytes = Array(target.utf8.prefix(Wire.maxTargetLength))
            out.append(Wire.MessageType.listen.rawValue); out.appendBE(id.rawValue); out.appendBE(port)
            out.append(UInt8(bindBytes.count)); out.append(contentsOf: bindBytes)
            out.append(UInt8(targetBytes.count)); out.append(contentsOf: targetBytes)
        case .listenOK(let id, let port):
            out.append(Wire.MessageType.listenOK.rawValue); out.appendBE(id.rawValue); out.appendBE(port)
        case .listenRefused(let id, let reason):
            out.append(Wire.MessageType.listenRefused.rawValue); out.appendBE(id.rawValue); out.append(reason.rawValue)
        case .unlisten(let id):
            out.append(Wire.MessageType.unlisten.rawValue); out.appendBE(id.rawValue)
        }
    }
}

/// Why a frame body could not be parsed. The peer sent it with a valid CRC, so this is a protocol
/// violation, not line noise.
public enum MessageParseError: Error, Equatable, Sendable {
    case unknownType(UInt8)
    case truncated
    case emptyData
    case badTarget
    /// A stuffed tail whose marker byte is not 0x00 (a suffix length longer than the body is
    /// `.truncated`).
    case badStuffing
    /// A tail inside a stuffed tail's suffix.
    case tailInSuffix
}

/// Parses the messages of a frame body in order.
public struct MessageParser {
    var reader: ByteReader
    /// Past a stuffed tail: what is left is its suffix, where no tail may come.
    var inSuffix = false

    public init(_ body: ArraySlice<UInt8>) { reader = ByteReader(body) }

    /// The next message, nil at the end of the body.
    public mutating func next() throws(MessageParseError) -> Message? {
        guard let t = reader.u8() else { return nil }
        guard let type = Wire.MessageType(rawValue: t) else { throw .unknownType(t) }
        switch type {
        case .ping, .pong:
            guard let token = reader.u32() else { throw .truncated }
            return type == .ping ? .ping(token) : .pong(token)
        default: break
        }
        guard let raw = reader.u16() else { throw .truncated }
        switch type {
        case .listen:
            guard let port = reader.u16(), let bindLength = reader.u8(), let bind = reader.bytes(Int(bindLength)),
                  let targetLength = reader.u8(), let target = reader.bytes(Int(targetLength)) else { throw .truncated }
            guard let bindText = String(validating: bind, as: UTF8.self),
                  let targetText = String(validating: target, as: UTF8.self) else { throw .badTarget }
            return .listen(ListenID(raw), bind: bindText, port: port, target: targetText)
        case .listenOK:
            guard let port = reader.u16() else { throw .truncated }
            return .listenOK(ListenID(raw), port: port)
        case .listenRefused:
            guard let r = reader.u8() else { throw .truncated }
            return .listenRefused(ListenID(raw), ListenRefusal(wire: r))
        case .unlisten:
            return .unlisten(ListenID(raw))
        default: break
        }
        let id = StreamID(raw)
        switch type {
        case .open:
            guard let len = reader.u8(), let bytes = reader.bytes(Int(len)) else { throw .truncated }
            guard let target = String(validating: bytes, as: UTF8.self) else { throw .badTarget }
            return .open(id, target: target)
        case .openIPv4:
            guard let a = reader.bytes(4), let port = reader.u16() else { throw .truncated }
            let o = Array(a)
            return .open(id, target: CompactTarget.ipv4((o[0], o[1], o[2], o[3]), port: port).description)
        case .openIPv6:
            guard let a = reader.bytes(16), let port = reader.u16() else { throw .truncated }
            let o = Array(a)
            let groups = (0..<8).map { UInt16(o[2 * $0]) << 8 | UInt16(o[2 * $0 + 1]) }
            return .open(id, target: CompactTarget.ipv6(groups, port: port).description)
        case .openOK: return .openOK(id)
        case .openRefused:
            guard let r = reader.u8() else { throw .truncated }
            return .openRefused(id, OpenRefusal(wire: r))
        case .data, .dataCompressed:
            guard let len = reader.u16() else { throw .truncated }
            guard len > 0 else { throw .emptyData }
            guard let bytes = reader.bytes(Int(len)) else { throw .truncated }
            return type == .data ? .data(id, bytes) : .compressedData(id, bytes)
        case .dataTail, .dataCompressedTail:
            guard !inSuffix else { throw .tailInSuffix }
            let bytes = reader.rest()
            guard !bytes.isEmpty else { throw .emptyData }
            return type == .dataTail ? .data(id, bytes) : .compressedData(id, bytes)
        case .dataTailStuffed, .dataCompressedTailStuffed:
            // region · suffix messages · suffix length (1)
            guard !inSuffix else { throw .tailInSuffix }
            let rest = reader.rest()
            guard let last = rest.last, Int(last) < rest.count else { throw .truncated }
            let suffixStart = rest.endIndex - 1 - Int(last)
            let bytes = try Self.unstuff(rest[..<suffixStart])
            guard !bytes.isEmpty else { throw .emptyData }
            reader = ByteReader(rest[suffixStart..<(rest.endIndex - 1)])
            inSuffix = true
            return type == .dataTailStuffed ? .data(id, bytes[...]) : .compressedData(id, bytes[...])
        case .fin: return .fin(id)
        case .reset:
            guard let r = reader.u8() else { throw .truncated }
            return .reset(id, ResetReason(wire: r))
        case .credit:
            guard let inc = reader.u32() else { throw .truncated }
            return .credit(id, inc)
        case .ping, .pong, .listen, .listenOK, .listenRefused, .unlisten:
            preconditionFailure("handled above")
        }
    }
}

extension MessageParser {
    /// A stuffed tail's stream bytes: the 0x00 after each run of `Wire.stuffingRun` non-zero
    /// bytes is a marker, dropped here.
    static func unstuff(_ stuffed: ArraySlice<UInt8>) throws(MessageParseError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(stuffed.count)
        var start = stuffed.startIndex
        while start < stuffed.endIndex {
            // The next run: up to and including a zero, or `stuffingRun` non-zero bytes.
            let limit = min(start + Wire.stuffingRun, stuffed.endIndex)
            if let zero = stuffed[start..<limit].firstIndex(of: 0) {
                out.append(contentsOf: stuffed[start...zero])
                start = zero + 1
                continue
            }
            out.append(contentsOf: stuffed[start..<limit])
            guard limit < stuffed.endIndex else { break }
            guard stuffed[limit] == 0 else { throw .badStuffing }
            start = limit + 1
        }
        return out
    }
}

// MARK: - Byte helpers

struct ByteReader {
    let base: ArraySlice<UInt8>
    var index: Int

    init(_ base: ArraySlice<UInt8>) {
        self.base = base
        index = base.startIndex
    }

    var remaining: Int { base.endIndex - index }

    mutating func u8() -> UInt8? {
        guard index < base.endIndex else { return nil }
        defer { index += 1 }
        return base[index]
    }

    mutating func u16() -> UInt16? {
        guard remaining >= 2 else { return nil }
        defer { index += 2 }
        return UInt16(base[index]) << 8 | UInt16(base[index + 1])
    }

    mutating func u32() -> UInt32? {
        guard remaining >= 4 else { return nil }
        var v: UInt32 = 0
        for k in 0..<4 { v = v << 8 | UInt32(base[index + k]) }
        index += 4
        return v
    }

    mutating func u64() -> UInt64? {
        guard remaining >= 8 else { return nil }
        var v: UInt64 = 0
        for k in 0..<8 { v = v << 8 | UInt64(base[index + k]) }
        index += 8
        return v
    }

    mutating func bytes(_ n: Int) -> ArraySlice<UInt8>? {
        guard n >= 0, remaining >= n else { return nil }
        defer { index += n }
        return base[index..<(index + n)]
    }

    mutating func rest() -> ArraySlice<UInt8> {
        defer { index = base.endIndex }
        return base[index...]
    }
}

extension Array where Element == UInt8 {
    @inline(__always) mutating func appendBE(_ v: UInt16) { append(UInt8(v >> 8)); append(UInt8(v & 0xFF)) }
    @inline(__always) mutating func appendBE(_ v: UInt32) {
        append(UInt8(v >> 24)); append(UInt8((v >> 16) & 0xFF)); append(UInt8((v >> 8) & 0xFF)); append(UInt8(v & 0xFF))
    }
    @inline(__always) mutating func appendLE(_ v: UInt32) {
        append(UInt8(v & 0xFF)); append(UInt8((v >> 8) & 0xFF)); append(UInt8((v >> 16) & 0xFF)); append(UInt8(v >> 24))
    }
    @inline(__always) mutating func appendBE(_ v: UInt64) { appendBE(UInt32(v >> 32)); appendBE(UInt32(v & 0xFFFF_FFFF)) }
}
