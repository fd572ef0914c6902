/// A point on the caller's monotonic clock, in nanoseconds. The core never reads a clock: every
/// input carries the time it happened (docs/protocol.md §7).
public struct LinkTime: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static let zero = LinkTime(nanoseconds: 0)

    public static func < (a: LinkTime, b: LinkTime) -> Bool { a.nanoseconds < b.nanoseconds }
    public static func + (a: LinkTime, d: LinkDuration) -> LinkTime { LinkTime(nanoseconds: a.nanoseconds &+ d.nanoseconds) }
    public static func - (a: LinkTime, b: LinkTime) -> LinkDuration { LinkDuration(nanoseconds: a.nanoseconds &- b.nanoseconds) }

    public var seconds: Double { Double(nanoseconds) / 1e9 }
    public var description: String { "\(nanoseconds / 1_000_000)ms" }
}

/// A span of time in nanoseconds.
public struct LinkDuration: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static func seconds(_ s: Double) -> LinkDuration { LinkDuration(nanoseconds: Int64(s * 1e9)) }
    public static func milliseconds(_ ms: Int64) -> LinkDuration { LinkDuration(nanoseconds: ms * 1_000_000) }
    public static let zero = LinkDuration(nanoseconds: 0)

    public var seconds: Double { Double(nanoseconds) / 1e9 }
    public static func < (a: LinkDuration, b: LinkDuration) -> Bool { a.nanoseconds < b.nanoseconds }
    public static func + (a: LinkDuration, b: LinkDuration) -> LinkDuration { LinkDuration(nanoseconds: a.nanoseconds + b.nanoseconds) }
    public static func * (a: LinkDuration, k: Int64) -> LinkDuration { LinkDuration(nanoseconds: a.nanoseconds * k) }
    public var description: String { "\(Double(nanoseconds / 1000) / 1000)ms" }
}

/// A stream's identifier. The end whose HELLO says "odd" allocates odd IDs, the other even ones,
/// so both ends can open streams at once without colliding (docs/protocol.md §5).
public struct StreamID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }
    public static func < (a: StreamID, b: StreamID) -> Bool { a.rawValue < b.rawValue }
    public var isOdd: Bool { rawValue & 1 == 1 }
    public var description: String { "#\(rawValue)" }
}

/// A 16-bit frame sequence number with wrap-around comparison (RFC 1982 serial arithmetic).
public struct SequenceNumber: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }

    public static func + (a: SequenceNumber, n: Int) -> SequenceNumber { SequenceNumber(a.rawValue &+ UInt16(truncatingIfNeeded: n)) }
    /// Signed distance from `b` to `a`, valid while they are less than 2^15 apart.
    public static func - (a: SequenceNumber, b: SequenceNumber) -> Int { Int(Int16(bitPattern: a.rawValue &- b.rawValue)) }
    public var description: String { "\(rawValue)" }
}

/// A request of one end that the other listen on a TCP port for it (docs/protocol.md §5.6). Each
/// end numbers its own requests; the direction of a message tells whose number it is.
public struct ListenID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(_ rawValue: UInt16) { self.rawValue = rawValue }
    public static func < (a: ListenID, b: ListenID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "listen \(rawValue)" }
}

/// Why a LISTEN was refused (docs/protocol.md §5.6). `sessionEnded` is only ever local.
public enum ListenRefusal: UInt8, Sendable, Equatable, CustomStringConvertible {
    /// The far end's policy forbids it, e.g. a non-loopback address without --gateway-ports.
    case notAllowed = 1
    /// The port is taken at the far end.
    case addressInUse = 2
    /// The far end could not listen for another reason (no such address, permission).
    case cannotListen = 3
    /// The far end holds as many listeners for this end as it accepts.
    case tooMany = 4
    /// Local only: the session ended (peer restart, link lost) before or after it was granted.
    case sessionEnded = 5
    case other = 255

    public init(wire: UInt8) { self = ListenRefusal(rawValue: wire) ?? .other }

    public var description: String {
        switch self {
        case .notAllowed: return "not allowed by the far end"
        case .addressInUse: return "address already in use at the far end"
        case .cannotListen: return "the far end cannot listen there"
        case .tooMany: return "too many listeners at the far end"
        case .sessionEnded: return "the session ended"
        case .other: return "refused"
        }
    }
}

/// Why an OPEN was refused (docs/protocol.md §5.2).
public enum OpenRefusal: UInt8, Sendable, Equatable, CustomStringConvertible {
    case connectionRefused = 1
    case unreachable = 2
    case timeout = 3
    case notAllowed = 4
    case tooManyStreams = 5
    case other = 255

    public init(wire: UInt8) { self = OpenRefusal(rawValue: wire) ?? .other }

    public var description: String {
        switch self {
        case .connectionRefused: return "connection refused"
        case .unreachable: return "target unreachable"
        case .timeout: return "connect timed out"
        case .notAllowed: return "target not allowed"
        case .tooManyStreams: return "too many streams"
        case .other: return "refused"
        }
    }
}

/// Why a stream was reset (docs/protocol.md §5.2). Some are only ever local.
public enum ResetReason: UInt8, Sendable, Equatable, CustomStringConvertible {
    /// The application aborted the stream (e.g. a TCP RST or an error on the socket).
    case aborted = 1
    /// The peer broke the protocol on this stream.
    case protocolViolation = 2
    /// The peer sent more than the credit it was given.
    case creditExceeded = 3
    /// Local only: the line stayed down longer than the grace period.
    case linkLost = 4
    /// Local only: the peer restarted (a new session ID), so its side of the stream is gone.
    case peerRestarted = 5
    /// The end is shutting down.
    case shutdown = 6
    case other = 255

    public init(wire: UInt8) { self = ResetReason(rawValue: wire) ?? .other }

    public var description: String {
        switch self {
        case .aborted: return "aborted"
        case .protocolViolation: return "protocol violation"
        case .creditExceeded: return "credit exceeded"
        case .linkLost: return "link lost"
        case .peerRestarted: return "peer restarted"
        case .shutdown: return "shutdown"
        case .other: return "reset"
        }
    }
}
