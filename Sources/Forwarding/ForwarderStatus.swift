import LinkCore

/// A snapshot of one forwarder end, for dashboards, demos and tests. Taken on the event loop,
/// so all fields belong to the same instant.
public struct ForwarderStatus: Sendable, Equatable {
    /// Where the link stands.
    public enum LinkState: Sendable, Equatable, CustomStringConvertible {
        /// `run()` has not started yet (or has not opened the device yet).
        case starting
        /// Waiting for the peer's HELLO (first contact, or after the link was lost).
        case handshaking
        /// Established and hearing from the peer.
        case up
        /// Established, but the peer has been silent past the silence timeout; streams are held.
        case down
        /// `run()` returned.
        case stopped

        public var description: String {
            switch self {
            case .starting: return "starting"
            case .handshaking: return "handshaking"
            case .up: return "up"
            case .down: return "down"
            case .stopped: return "stopped"
            }
        }
    }

    public var linkState: LinkState = .starting
    /// Whether the serial device is open right now (false while waiting for it to come back).
    public var deviceOpen = false
    /// Streams the core holds, in both directions.
    public var streamsOpen = 0
    /// TCP connections this end holds (including ones still flushing after their stream ended).
    public var connectionsOpen = 0
    /// Connections accepted (C) or made to the target (S) since start.
    public var connectionsTotal = 0
    /// The port the C end listens on, once bound (useful when port 0 was asked for).
    public var listeningPort: Int?
    /// Payload bytes this end sent over the link, and received from it.
    public var payloadBytesSent = 0
    public var payloadBytesReceived = 0
    /// Bytes written to and read from the serial line, framing included.
    public var lineBytesSent = 0
    public var lineBytesReceived = 0
    public var retransmissions = 0
    public var crcErrors = 0
    /// Bytes received from the peer and not yet delivered to their sockets, across all streams.
    /// Bounded by the streams' windows: a stalled reader holds at most its own window.
    public var bufferedReceiveBytes = 0
    /// Bytes the core holds for sending: stream buffers plus unacknowledged frames.
    public var bufferedSendBytes = 0
    /// Smoothed round-trip time over the line (0 before the first sample).
    public var rttMilliseconds = 0.0
    /// Every counter the core keeps.
    public var statistics = LinkStatistics()

    public init() {}

    /// Shorthand for `linkState == .up`.
    public var linkUp: Bool { linkState == .up }
}

/// One stream and its TCP connection, for the dashboard.
public struct StreamStatus: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Waiting for the link, for the far end's connect, or (S) for its own connect.
        case opening
        case open
        /// One direction has finished (TCP half-close).
        case halfClosed = "half-closed"
        /// The stream has ended; the socket still flushes or closes.
        case closing
    }

    public var id: UInt16
    /// The forward that accepted it ("-L 127.0.0.1:5000"), or nil: the peer opened it.
    public var forward: String?
    /// The TCP peer on this end: the client, or (where the peer opened it) the target.
    public var client: String
    /// What its OPEN names; empty for the far end's default target.
    public var target: String
    /// Read from the socket (towards the line), and written to it.
    public var bytesFromSocket: Int
    public var bytesToSocket: Int
    public var ageSeconds: Double
    public var state: State

    public init(id: UInt16, forward: String?, client: String, target: String, bytesFromSocket: Int, bytesToSocket: Int,
                ageSeconds: Double, state: State) {
        self.id = id
        self.forward = forward
        self.client = client
        self.target = target
        self.bytesFromSocket = bytesFromSocket
        self.bytesToSocket = bytesToSocket
        self.ageSeconds = ageSeconds
        self.state = state
    }
}
