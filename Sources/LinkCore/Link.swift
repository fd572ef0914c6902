/// One end of a SocketForwardSerial link: a reliable, multiplexed, flow-controlled connection over
/// a lossy byte pipe. Sans-IO: it never touches a device, socket, clock or thread.
///
/// Inputs: `receive(_:now:)` with bytes from the line, `handleTimeout(now:)` when
/// `nextDeadline` passes, and the application commands (`openStream`, `accept`, `send`, ...).
/// Outputs: `pollTransmit(maxBytes:now:)` for bytes to write to the line, `pollEvent()` for
/// events, `nextDeadline` for the timer to arm and `preferredQueueBelow` for how much to keep
/// queued in the kernel. docs/protocol.md is the wire specification this implements.
///
/// A value, but not one to fork: a stream that compresses holds its zlib state by reference
/// (§5.7), so two copies of a link that both go on sending would corrupt each other's deflate
/// streams. Keep one owner, as the forwarder and the simulation do; copies for reading
/// (`inspection`) are fine.
public struct Link: Sendable {
    public let configuration: LinkConfiguration
    public internal(set) var statistics = LinkStatistics()

    var random: SplitMix64
    /// This end's session ID; a new one after a restart or after the grace period ran out.
    public internal(set) var session: UInt64

    // MARK: Handshake (§3)
    /// Handshaking or established, alive or silent, with the peer's last HELLO.
    var state = SessionState.handshaking(peer: nil)
    var helloReplyOwed = true
    var lastHelloSentAt: LinkTime?
    var reportedVersionMismatch: UInt8?
    var reportedRoleConflict = false
    /// The half of the stream-ID space this end allocates from, once a HELLO decided it (§3.4);
    /// nil before. Settled once the link is established; cleared when the session ends.
    var localUsesOddIDs: Bool?

    // MARK: Supervision (§9)
    var lastHeardAt: LinkTime?
    var lastPingSentAt: LinkTime?
    var pingToken: UInt32 = 0
    /// `transmissionCounter` when the last PING went out. Its PONG's acknowledgement was
    /// written after the peer read every frame sent before it, so whatever of those it does
    /// not cover was lost (§4.3).
    var pingTransmission: UInt64 = 0
    var pingDue = false
    /// `transmissionCounter` when the PING now due was asked for.
    var pingDueSince: UInt64?
    /// The last PING sent has not been answered yet.
    var pongAwaited = false
    var pongOwed: UInt32?

    // MARK: Protection (§11)
    /// Nil without a key.
    var protectionState: ProtectionState?
    /// Opens the peer's sealed frames once the keyed session is established.
    var opener: FrameOpener?
    /// An end without a key reports a keyed peer once.
    var reportedUnkeyedMismatch: ProtectionMismatch?
    /// When a HELLO that was held back (§11.1) was last answered.
    var lastHeldReplyAt: LinkTime?

    // MARK: Line I/O
    var decoder: COBSDecoder
    /// Frames on their way to the line, encoded as they are built.
    var writer = FrameWriter()
    var openFrame: OpenFrame?
    /// The body size the last frame aimed at (§8.2): the send window counts four of them.
    /// Kept here, not read back from `statistics`, which is output only.
    var lastFrameTarget: Int

    // MARK: ARQ (§4)
    var nextSequence = SequenceNumber(0)
    /// Sent and not yet cumulatively acknowledged, in sequence order.
    var outstanding: [SentFrame] = []
    var transmissionCounter: UInt64 = 0
    var highestAckedTransmission: UInt64 = 0
    var rtoBackoff = 0
    var rtt = RTTEstimator()
    /// Bits sent in frames whose fate is known, and how many of those frames were lost, both
    /// decaying so the estimate follows a changing line (§8.2).
    var errorEstimateBits = 0.0
    var errorEstimateLosses = 0.0
    /// Next sequence number expected from the peer.
    var expectedSequence = SequenceNumber(0)
    /// Frames received ahead of a gap, by sequence number.
    var outOfOrder: [UInt16: [UInt8]] = [:]
    /// Fragments of retransmitted frames being reassembled, by sequence number (§4.6).
    var fragments: [UInt16: FragmentAssembly] = [:]
    /// When the peer last sent a sequenced frame. While it is sending, our acknowledgements
    /// ride in its frame trailers and may be late by up to one of its frames.
    var lastPeerFrameAt: LinkTime?
    /// A restart was detected and `.established` has not yet reported it.
    var peerRestartUnreported = false
    var ackDebt = AckDebt.none

    // MARK: Streams (§5–8)
    /// The streams and the rounds that schedule them, mutated in place.
    var streams = StreamTable()
    var nextLocalStreamID: UInt16
    var control = FIFO<ControlItem>()
    var withheldGrants: [StreamID] = []

    // MARK: Remote listeners (§5.6)
    /// Our requests, and whether the peer has granted them.
    var ourListens: [ListenID: Bool] = [:]
    var nextListenID: UInt16 = 1
    /// Listeners the peer asked of us and we have not refused or seen cancelled.
    var peerListens: Set<ListenID> = []

    /// Until when a bulk tail is stuffed into short COBS blocks: a few seconds after an
    /// interactive stream (one that was idle) last sent a little (§8.3).
    var interactiveUntil = LinkTime.zero

    // Compression (§5.7)
    /// What the peer's HELLO offers to receive, if anything this end can use.
    var peerCompression: Compression.Offer?

    var events = FIFO<LinkEvent>()

    public init(configuration: LinkConfiguration) {
        precondition(configuration.maxFrameBody >= 64 && configuration.maxFrameBody <= 65_000, "maxFrameBody out of range")
        self.configuration = configuration
        random = SplitMix64(seed: configuration.seed)
        lastFrameTarget = configuration.maxFrameBody
        session = 0
        decoder = COBSDecoder(maxFrameLength: configuration.maxFrameBody + 64)
        nextLocalStreamID = configuration.usesOddStreamIDs ? 1 : 2
        session = newSessionID()
        statistics.currentFrameTarget = lastFrameTarget
        if let protection = configuration.protection {
            protectionState = ProtectionState(ourRandom: Self.freshRandom(protection))
        }
    }
}

/// A sequenced frame being built and streamed to the line.
struct OpenFrame: Sendable {
    var sequence: SequenceNumber
    /// The messages, kept for retransmission.
    var body: [UInt8]
    var target: Int
    /// The stream whose DATA-TAIL runs to the end of this frame, if any.
    var tailStream: StreamID?
    /// Body length when the tail's header was written: a tail carries at least one byte.
    var tailStart = 0
    /// That tail is DATA-COMPRESSED-TAIL: its bytes come from the stream's compressor (§5.7).
    var tailCompressed = false
    /// That tail is stuffed (§5.2): `stuffRun` non-zero bytes since its last 0x00. Its frame
    /// ends with the suffix length, whether a suffix came or not.
    var tailStuffed = false
    var stuffRun = 0
    /// Where the stuffed tail's suffix began, once urgent messages follow the tail.
    var suffixStart: Int?
    /// Carries something latency-sensitive (stream control, or data of a stream that was idle):
    /// bulk data must not follow it in the same frame, or the receiver could act on it only
    /// when the whole long frame has arrived and passed its CRC (§8.3).
    var latencySensitive = false
    /// Started with `Wire.compactTrailerFlag`: the trailer will be `ack` alone (§2).
    var compactTrailer = false
}

/// A sequenced frame on the line, kept until acknowledged (§4).
struct SentFrame: Sendable {
    var sequence: SequenceNumber
    var body: [UInt8]
    var lastSentAt: LinkTime
    var transmission: UInt64
    var transmissions: Int
    /// The oldest of this frame's transmissions that may still reach the peer. An
    /// acknowledgement of the frame may answer any copy from this one on, so only frames sent
    /// before it are known lost when one is missing from that acknowledgement (§4.3).
    var oldestLiveTransmission: UInt64
    var fate = Fate.inFlight
    /// The last loss was shown by the peer's acknowledgements, not guessed from a timer: no copy
    /// sent so far can still arrive.
    var lossProven = false
    var lineBytes: Int
    /// Fragment size used when this frame was first resent in pieces; kept so that the
    /// receiver can combine pieces from several retransmissions.
    var fragmentSize: Int?
}

/// Pieces of one sequenced frame resent as fragments (§4.6).
struct FragmentAssembly: Sendable {
    var count: Int
    var pieces: [Int: [UInt8]] = [:]
}

/// Stream control messages waiting for a frame. They go before data (§8).
enum ControlItem: Sendable {
    case open(StreamID)
    case openOK(StreamID)
    case refuse(StreamID, OpenRefusal)
    case reset(StreamID, ResetReason)
    case credit(StreamID)
    case listen(ListenID, bind: String, port: UInt16, target: String)
    case listenOK(ListenID, port: UInt16)
    case listenRefused(ListenID, ListenRefusal)
    case unlisten(ListenID)
}

// MARK: - Small helpers

extension Link {
    mutating func newSessionID() -> UInt64 {
        var s: UInt64 = 0
        while s == 0 || s == session { s = random.next() }
        return s
    }

    public var isEstablished: Bool { state.isEstablished }

    /// The peer's last HELLO, if any.
    var peerHello: Hello? { state.peer }

    /// The peer's limits, once known.
    public var peerMaxStreams: Int? { peerHello.map { Int($0.maxStreams) } }

    var peerInitialWindow: Int { peerHello.map { Int($0.initialWindow) } ?? 0 }
    /// The peer accepts frames whose trailer leaves out an empty SACK bitmap (§2, §3).
    var peerAcceptsCompactTrailer: Bool {
        peerHello.map { $0.capabilities & Wire.Capability.compactAcknowledgement != 0 } ?? false
    }

    /// The peer reads stuffed tails (§5.2).
    var peerAcceptsStuffedTails: Bool {
        peerHello.map { $0.capabilities & Wire.Capability.stuffedTails != 0 } ?? false
    }

    /// The peer reads address targets in binary, OPEN-IPV4 and OPEN-IPV6 (§5.2).
    var peerAcceptsCompactTargets: Bool {
        peerHello.map { $0.capabilities & Wire.Capability.compactTargets != 0 } ?? false
    }

    /// The half this end allocates from: the handshake's decision, else the configured one.
    public var usesOddStreamIDs: Bool { localUsesOddIDs ?? configuration.usesOddStreamIDs }

    /// The half this end takes against a peer whose HELLO is `hello`, or nil if the two cannot
    /// agree (a role conflict, §3.4). A pure function of both HELLOs' fields, so both ends reach
    /// the same answer whichever HELLO each saw first.
    func decideHalf(against hello: Hello) -> Bool? {
        let preferred = configuration.usesOddStreamIDs
        let weNegotiate = configuration.negotiatesStreamIDHalves
        let peerNegotiates = hello.capabilities & Wire.Capability.negotiatedHalves != 0
        if let decided = localUsesOddIDs, decided != hello.usesOddStreamIDs { return decided }
        if preferred != hello.usesOddStreamIDs { return preferred }
        switch (weNegotiate, peerNegotiates) {
        case (true, true):
            // The same preference on both ends: the larger session ID takes the odd half.
            guard session != hello.session else { return nil }
            return session > hello.session
        case (true, false):
            return !hello.usesOddStreamIDs  // the peer cannot move, so we do
        case (false, true):
            return preferred  // the peer moves
        case (false, false):
            return nil
        }
    }

    /// Streams open now, in both directions.
    public var streamCount: Int { streams.count }

    /// Events are queued in order; the application drains them after every input.
    public mutating func pollEvent() -> LinkEvent? { events.popFirst() }

    /// How many bytes the core wants queued below it (in the kernel's tty buffer and the UART):
    /// one millisecond of line time, at least 16 bytes — enough for an I/O layer that tops the
    /// queue up every millisecond, and no more, because every byte queued there delays an urgent
    /// message by one byte time. An I/O layer that may wake up later adds its own slack (the
    /// forwarder adds 12 ms of line time).
    public var preferredQueueBelow: Int {
        let rate = configuration.lineBytesPerSecond
        guard rate > 0 else { return 1 << 16 }
        return max(16, rate / 1000)
    }

    /// Someone is typing: a stream that was idle sent a little within the last two seconds. Bulk
    /// tails are stuffed into short blocks then (§8.3), and an I/O layer should keep its own
    /// queue short too, since a keystroke waits behind every byte of it.
    public func isInteractive(at now: LinkTime) -> Bool { now < interactiveUntil }

    /// What is queued below the core when the I/O layer keeps what it was asked for: the
    /// preferred queue plus the layer's declared slack. The timer and the window count this.
    var queueBelow: Int { preferredQueueBelow + configuration.queueSlackBelow }

    /// Largest frame body both ends accept: our configuration and the peer's HELLO.
    var effectiveMaxFrameBody: Int {
        min(configuration.maxFrameBody, peerHello.map { max(64, Int($0.maxFrame)) } ?? configuration.maxFrameBody)
    }

    /// Extra delay an acknowledgement may suffer while the peer streams a frame: one of its
    /// largest frames, if it sent sequenced frames within 2 s of when it was last heard. A
    /// function of state only, so a deadline computed from it does not move with the clock.
    var peerFrameAllowance: Int {
        guard let last = lastPeerFrameAt, let heard = lastHeardAt, heard - last < .seconds(2),
              let peer = peerHello else { return 0 }
        return Int(peer.maxFrame) + Wire.sequencedFrameOverhead + Int(peer.maxFrame) / 254
    }

    /// How long an acknowledgement may wait for a frame to ride on before it is sent alone.
    /// Short against any RTO, long enough for a local echo or reply to come back (§4.2).
    var acknowledgementDelay: LinkDuration { .milliseconds(3) }

    /// A frame that carries stream control or a sparse stream's data is closed at about this
    /// size (10 ms of line time), so that many new connections opened together go out in short
    /// frames the peer can act on one by one, instead of one long frame it must wait for (§8.3).
    var latencySensitiveFrameLimit: Int {
        let rate = configuration.lineBytesPerSecond
        return rate > 0 ? max(64, rate / 100) : 1024
    }

    /// Serialisation time of `bytes` at the line rate.
    func lineTime(_ bytes: Int) -> LinkDuration {
        let rate = configuration.lineBytesPerSecond
        guard rate > 0 else { return .zero }
        return LinkDuration(nanoseconds: Int64(bytes) * 1_000_000_000 / Int64(rate))
    }

    /// Bytes of data received and not yet consumed by the application, across all streams.
    public var bufferedReceiveBytes: Int { streams.totalUnconsumed }

    /// Bytes held by the core for sending: stream buffers plus unacknowledged frames.
    public var bufferedSendBytes: Int {
        streams.states.reduce(0) { $0 + $1.sendBuffer.count } + outstanding.reduce(0) { $0 + $1.body.count }
    }

    /// Bytes the application may still queue on `id` without being pushed back.
    public func sendSpace(on id: StreamID) -> Int {
        guard let s = streams[id] else { return 0 }
        return max(0, configuration.sendBufferLimit - s.sendBuffer.count)
    }

    /// Whether nothing is waiting to be sent or acknowledged.
    public var isQuiescent: Bool {
        outstanding.isEmpty && control.isEmpty && openFrame == nil && writer.isEmpty
            && streams.states.allSatisfy { $0.sendBuffer.isEmpty && (!$0.finQueued || $0.finSent) }
    }
}
