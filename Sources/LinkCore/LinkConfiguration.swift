/// Tunables of one end of the link. Defaults suit a 115200-baud line and CPU-bound ptys alike.
public struct LinkConfiguration: Sendable {
    /// This end allocates odd stream IDs, the other even ones (§5.1). With
    /// `negotiatesStreamIDHalves` this is only a preference, and the handshake decides (§3.4).
    public var usesOddStreamIDs: Bool
    /// Offer HELLO capability NEGOTIATED_HALVES: two ends that prefer the same half still talk,
    /// the handshake gives them different halves. Streams can then be opened only once the link
    /// is established, when this end's half is known (`LinkError.notEstablished` before).
    public var negotiatesStreamIDHalves: Bool
    /// Payload bytes per second the line carries (baud/10 for 8N1); 0 when unknown or unpaced.
    /// Used for frame sizing, retransmission timeouts and the queue the core wants below it.
    public var lineBytesPerSecond: Int
    /// Bytes the I/O layer keeps queued below the core beyond `Link.preferredQueueBelow` (the
    /// forwarder's allowance for a late wake-up). Counted in the retransmission timeout and the
    /// send window, so that the core's timer and the shell agree on the queue (§4.4, §4.5).
    public var queueSlackBelow: Int
    /// Largest frame body this end sends, and the largest it accepts (§2).
    public var maxFrameBody: Int
    /// Smallest body the adaptive frame size goes down to on a noisy line.
    public var minFrameBody: Int
    /// Concurrent streams this end accepts.
    public var maxStreams: Int
    /// Credit each new stream starts with, in each direction (§6).
    public var initialWindow: Int
    /// Total bytes received but not yet consumed across all streams before credit is withheld.
    public var receiveBudget: Int
    /// Listeners the peer may hold at this end at once (§5.6); more are refused.
    public var maxPeerListens: Int = 64
    /// Bytes the application may queue per stream before `send` pushes back.
    public var sendBufferLimit: Int
    /// DRR quantum: bytes a stream may send per round when several compete (§8).
    public var quantum: Int
    /// How long streams survive a silent peer before they are reset (§9).
    public var gracePeriod: LinkDuration
    /// Silence after which a PING is sent.
    public var keepaliveInterval: LinkDuration
    /// Silence after which the link is reported down (streams are held).
    public var silenceTimeout: LinkDuration
    /// Interval between HELLOs while the handshake is incomplete.
    public var helloInterval: LinkDuration
    /// Whether this end compresses what it sends, and accepts compressed data (§5.7).
    public var compression: CompressionMode = .auto
    /// Streams that may send compressed data at once, each way: each holds a compressor of
    /// about 260 KB at the sender and a decompressor of about 40 KB at the receiver.
    public var maxCompressedStreams: Int = 16
    /// A pre-shared key: every frame after the handshake is sealed, and only an end that proves
    /// the same key is talked to (§11). Nil: no protection, and no peer with a key is talked to.
    public var protection: LinkProtection?
    /// Seeds session IDs, so a simulation replays exactly. Real ends pass random bits.
    public var seed: UInt64

    public init(usesOddStreamIDs: Bool, lineBytesPerSecond: Int = 11_520, maxFrameBody: Int = 8192,
                minFrameBody: Int = 96, maxStreams: Int = 4096, initialWindow: Int = 65_536,
                receiveBudget: Int = 32 << 20, sendBufferLimit: Int = 65_536, quantum: Int = 1024,
                gracePeriod: LinkDuration = .seconds(30), keepaliveInterval: LinkDuration = .seconds(1),
                silenceTimeout: LinkDuration = .seconds(3), helloInterval: LinkDuration = .milliseconds(500),
                negotiatesStreamIDHalves: Bool = false, queueSlackBelow: Int = 0, seed: UInt64) {
        self.usesOddStreamIDs = usesOddStreamIDs
        self.negotiatesStreamIDHalves = negotiatesStreamIDHalves
        self.lineBytesPerSecond = lineBytesPerSecond
        self.queueSlackBelow = max(0, queueSlackBelow)
        self.maxFrameBody = maxFrameBody
        self.minFrameBody = minFrameBody
        self.maxStreams = maxStreams
        self.initialWindow = initialWindow
        self.receiveBudget = receiveBudget
        self.sendBufferLimit = sendBufferLimit
        self.quantum = quantum
        self.gracePeriod = gracePeriod
        self.keepaliveInterval = keepaliveInterval
        self.silenceTimeout = silenceTimeout
        self.helloInterval = helloInterval
        self.seed = seed
    }
}

/// What happened, for the application to act on. Polled with `Link.pollEvent()`.
public enum LinkEvent: Equatable, Sendable {
    /// The handshake completed. `peerRestarted` is true when this replaces an earlier peer session.
    case established(peerSession: UInt64, peerRestarted: Bool)
    /// The peer speaks another protocol version; nothing is exchanged.
    case versionMismatch(peerVersion: UInt8)
    /// Both ends were configured to allocate the same stream-ID half (e.g. both are "C").
    case roleConflict
    /// The ends' keys or protection modes differ (§11.1); nothing is exchanged.
    case protectionMismatch(ProtectionMismatch)
    /// Nothing heard for the silence timeout; streams are held for the grace period.
    case linkDown
    /// The peer is heard again within the grace period; in-flight data is being resent.
    case linkRestored
    /// The grace period ran out: every stream was reset and a new handshake begins.
    case linkLost
    /// The peer opened a stream; answer with `accept` or `refuse`.
    case streamOpened(StreamID, target: String)
    /// The peer accepted a stream this end opened.
    case openAccepted(StreamID)
    /// The peer refused a stream this end opened; data sent on it was discarded.
    case openRefused(StreamID, OpenRefusal)
    /// Bytes for the application. Call `consumed(_:on:)` once they are delivered, to grant credit.
    case received(StreamID, [UInt8])
    /// The peer will send no more on this stream (its half-close).
    case remoteFinished(StreamID)
    /// The stream is gone, with the reason; any unsent data is discarded.
    case streamReset(StreamID, ResetReason)
    /// Both directions finished normally; the stream is gone.
    case streamClosed(StreamID)
    /// `send` refused bytes earlier and now has room again.
    case writable(StreamID)
    /// The peer asks this end to listen for it (§5.6): answer with `acceptListen` or
    /// `refuseListen`. Streams for it are opened with `target`.
    case listenRequested(ListenID, bind: String, port: UInt16, target: String)
    /// The peer listens for a request of ours, on `port`.
    case listenAccepted(ListenID, port: UInt16)
    /// The peer will not listen for a request of ours, or no longer does because the session
    /// ended (`.sessionEnded`: request it again once the link is established).
    case listenRefused(ListenID, ListenRefusal)
    /// A listener this end holds for the peer is no longer wanted: the peer cancelled it, or
    /// the session ended. Close it.
    case listenCancelled(ListenID)
    /// The peer broke the protocol outside any one stream (a malformed frame body).
    case protocolViolation(String)
}

/// Errors from application commands.
public enum LinkError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooManyStreams
    case targetTooLong
    /// The ID halves are negotiated and the handshake has not decided them yet (§3.4).
    case notEstablished
    /// The peer's HELLO does not offer what the command needs (an older version).
    case peerLacks(String)
    case unknownListen(ListenID)
    case unknownStream(StreamID)
    case invalidState(StreamID, String)

    public var description: String {
        switch self {
        case .tooManyStreams: return "too many streams"
        case .targetTooLong: return "target longer than 255 bytes"
        case .notEstablished: return "the link is not established yet"
        case .peerLacks(let feature): return "the peer's socket2ser is too old for \(feature)"
        case .unknownListen(let id): return "unknown \(id)"
        case .unknownStream(let id): return "unknown stream \(id)"
        case .invalidState(let id, let why): return "stream \(id): \(why)"
        }
    }
}

/// Counters for logs, dashboards and benchmarks.
public struct LinkStatistics: Sendable, Equatable {
    public var lineBytesSent = 0
    public var lineBytesReceived = 0
    public var framesSent = 0
    public var framesReceived = 0
    public var retransmissions = 0
    public var timeoutRetransmissions = 0
    /// PINGs sent because the newest frame in flight went unacknowledged (§4.3), and frames
    /// their PONGs showed lost.
    public var tailProbes = 0
    public var probeRepairs = 0
    public var crcErrors = 0
    /// Frames that passed the CRC but did not open with the session's key (§11.3): forged,
    /// tampered with, replayed, or from another device. Dropped.
    public var unauthenticatedFrames = 0
    public var malformedFrames = 0
    public var oversizeFrames = 0
    public var duplicateFrames = 0
    public var protocolViolations = 0
    public var creditViolations = 0
    public var payloadBytesSent = 0
    public var payloadBytesReceived = 0
    public var discardedBytes = 0
    public var streamsOpened = 0
    public var streamsAccepted = 0
    public var refusedTooMany = 0
    /// LISTENs refused because the peer already held `maxPeerListens` listeners here (§5.6).
    public var refusedListensTooMany = 0
    public var peerRestarts = 0
    /// Smoothed round-trip time in milliseconds (0 before the first sample).
    public var smoothedRTTMilliseconds = 0.0
    public var currentFrameTarget = 0
    /// Frames whose bulk tail was stuffed because someone was typing, and of those, the ones
    /// that carried urgent messages after the tail (§5.2, §8.3).
    public var stuffedFramesSent = 0
    public var suffixedFramesSent = 0
    /// Times a stream's receive window grew because the peer was held back by it (§6.1).
    public var windowGrowths = 0
    /// Payload bytes sent through the compressor, and the line bytes of DATA-COMPRESSED they became.
    public var compressedPayloadBytesSent = 0
    public var compressedBytesSent = 0
    /// The same for what the peer sent compressed.
    public var compressedPayloadBytesReceived = 0
    public var compressedBytesReceived = 0
    public init() {}
}
