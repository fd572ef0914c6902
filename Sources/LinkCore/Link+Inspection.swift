// MARK: - Inspection: a read-only view of the core's state

extension Link {
    /// A read-only snapshot of this end's protocol state, for tests and tools (a dashboard, say).
    ///
    /// They read the state through this view rather than through `Link`'s stored properties, so
    /// that the representation behind it (which flags, which collections, which enums) can change
    /// without touching them. Everything here is a value computed from the state at the time
    /// `inspection` was read; it never changes the link.
    public var inspection: Inspection { Inspection(link: self) }

    /// See `Link.inspection`. A copy of the link taken when it was read (its buffers are shared
    /// until either side changes, so taking one is cheap); the properties derive their answers
    /// from that copy.
    public struct Inspection: Sendable {
        private let link: Link

        fileprivate init(link: Link) { self.link = link }

        // MARK: Handshake and supervision (§3, §9)

        /// The peer's last HELLO, if one was accepted in this session.
        public var peerHello: Hello? { link.peerHello }

        /// When the peer was last heard (any valid frame), nil before the handshake and after
        /// the grace period ran out.
        public var lastHeardAt: LinkTime? { link.lastHeardAt }

        /// When this end last sent a PING, if it has.
        public var lastPingSentAt: LinkTime? { link.lastPingSentAt }

        // MARK: Line I/O

        /// Bytes of the frame the line decoder is assembling; never more than `maxFrameLength`.
        public var partialFrameLength: Int { link.decoder.frame.count }

        /// The longest frame the line decoder keeps; longer ones are skipped as oversize.
        public var maxFrameLength: Int { link.decoder.maxFrameLength }

        /// A sequenced frame is being built and streamed to the line (§8.3).
        public var isFrameOpen: Bool { link.openFrame != nil }

        /// The body size the next frame will aim at, from the current error estimate (§8.2).
        /// `statistics.currentFrameTarget` is the size the last frame aimed at.
        public var frameTarget: Int { link.frameTarget }

        /// Bytes the core counts as queued below it: `preferredQueueBelow` plus the I/O layer's
        /// declared slack. The retransmission timeout and the send window allow for them.
        public var queueBelow: Int { link.queueBelow }

        // MARK: ARQ (§4)

        /// The sequence number the next new frame will carry.
        public var nextSequence: SequenceNumber { link.nextSequence }

        /// The next sequence number expected from the peer.
        public var expectedSequence: SequenceNumber { link.expectedSequence }

        /// Frames sent and not yet cumulatively acknowledged, in sequence order.
        public var outstandingFrames: [OutstandingFrame] {
            link.outstanding.map { frame in
                OutstandingFrame(sequence: frame.sequence, bodyBytes: frame.body.count,
                                 transmissions: frame.transmissions, isAcknowledged: frame.fate == .acked,
                                 retransmissionDeadline: link.retransmissionDeadline(of: frame))
            }
        }

        /// The retransmission timeout a frame of `lineBytes` encoded bytes would get if it were
        /// sent now: measured RTT, line times and the current backoff (§4.5).
        public func retransmissionTimeout(forLineBytes lineBytes: Int) -> LinkDuration {
            let probe = SentFrame(sequence: link.nextSequence, body: [], lastSentAt: .zero, transmission: 0,
                                  transmissions: 1, oldestLiveTransmission: 0, lineBytes: lineBytes)
            return link.retransmissionDeadline(of: probe) - .zero
        }

        /// Frames received ahead of a gap and held until it is filled.
        public var heldOutOfOrder: Int { link.outOfOrder.count }

        /// Retransmitted frames whose fragments are being reassembled (§4.6).
        public var fragmentAssemblies: Int { link.fragments.count }

        // MARK: Streams and remote listeners (§5–8)

        /// The streams open now, in both directions, in ID order.
        public var streamIDs: [StreamID] { link.streams.ids.sorted() }

        /// Stream `id`'s state, or nil if no such stream is open.
        public func stream(_ id: StreamID) -> StreamInspection? {
            link.streams[id].map(StreamInspection.init)
        }

        /// Streams whose credit grant is held back because the link-wide receive budget is
        /// spent (§6), in the order they will be granted.
        public var withheldGrants: [StreamID] { link.withheldGrants }

        /// What the peer's HELLO offers to take compressed (§5.7), if this end can use it.
        public var peerCompression: Compression.Offer? { link.peerCompression }

        /// Streams of this end holding a compressor, and streams of the peer's holding one of
        /// this end's decompressors (§5.7); each is at most the number the HELLOs allow.
        public var compressorsInUse: Int { link.streams.liveCompressors }
        public var decompressorsInUse: Int { link.streams.liveDecompressors }

        /// Listeners the peer asked of this end and holds now (§5.6).
        public var peerListens: Set<ListenID> { link.peerListens }
    }

    /// One sequenced frame on the line, waiting for its cumulative acknowledgement (§4).
    public struct OutstandingFrame: Sendable, Equatable {
        public let sequence: SequenceNumber
        /// Length of the frame's body (its messages), without header and trailer.
        public let bodyBytes: Int
        /// How many times it was sent, the first time included.
        public let transmissions: Int
        /// The peer acknowledged it selectively (SACK); it stays outstanding until the cumulative
        /// acknowledgement passes it.
        public let isAcknowledged: Bool
        /// When its retransmission timer runs out, as things stand (§4.5).
        public let retransmissionDeadline: LinkTime
    }

    /// One stream's state, as seen through `Inspection.stream(_:)`.
    public struct StreamInspection: Sendable, Equatable {
        /// Where a stream is in its opening handshake (§5).
        public enum Phase: Sendable, Equatable {
            /// This end opened it and waits for OPEN-OK; data may already flow (§5.3).
            case opening
            /// The peer opened it; the application has not accepted or refused it yet.
            case awaitingAccept
            /// Accepted by both ends.
            case open
        }

        public let id: StreamID
        public let phase: Phase
        /// Bytes the peer still lets this end send (its credit).
        public let sendCredit: Int
        /// Bytes queued by the application and not yet put in a frame.
        public let bufferedSendBytes: Int
        /// The application finished its side; FIN goes out once the buffer drains.
        public let finQueued: Bool
        /// FIN is in a frame: this end's direction is closed.
        public let finSent: Bool
        /// Bytes the peer may still send before it exceeds the credit this end granted.
        public let receiveRemaining: Int
        /// Delivered to the application and not yet reported consumed.
        public let unconsumed: Int
        /// The peer's FIN arrived: its direction is closed.
        public let finReceived: Bool
        /// The receive window's current size (§6.1): its initial size, or more after growing.
        public let receiveWindow: Int
        /// A CREDIT for this stream waits in the control queue.
        public let grantQueued: Bool

        init(_ s: StreamState) {
            id = s.id
            switch s.opening {
            case .openQueued, .openSent: phase = .opening
            case .awaitingAccept: phase = .awaitingAccept
            case .acceptQueued, .open: phase = .open
            }
            sendCredit = s.sendCredit
            bufferedSendBytes = s.sendBuffer.count
            finQueued = s.finQueued
            finSent = s.finSent
            receiveRemaining = s.receiveRemaining
            unconsumed = s.unconsumed
            finReceived = s.finReceived
            receiveWindow = s.receiveWindow?.size ?? 0
            grantQueued = s.creditQueued
        }
    }
}
