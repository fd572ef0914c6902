import LinkCore

/// Tunables of one end of the legacy wire (docs/legacy-protocol.md).
public struct LegacyConfiguration: Sendable {
    /// This end opens the streams, as the original's C does; the other end (S) only accepts them.
    public var opensStreams: Bool
    /// Streams at once: at most 254, the original's pool of IDs (its README says 253).
    public var maxStreams: Int
    /// Payload bytes per second the line carries; 0 when unpaced.
    public var lineBytesPerSecond: Int
    /// Bytes the application may queue per stream before `send` pushes back.
    public var sendBufferLimit: Int
    /// Bytes received for one stream and not yet consumed before that stream is reset. The old
    /// protocol has no flow control, so this is what bounds the memory a fast peer and a slow
    /// client can make this end hold.
    public var receiveLimit: Int
    /// Raw payload bytes per data frame: streams take turns a frame at a time.
    public var framePayload: Int
    /// After this end closes a stream (`FF FE id 02`), how long it keeps taking the peer's data
    /// for it while waiting for the peer's close. The original never acts on a close it
    /// receives, so its side ends only when its own socket does.
    public var closeLinger: LinkDuration

    public init(opensStreams: Bool, maxStreams: Int = 254, lineBytesPerSecond: Int = 11_520,
                sendBufferLimit: Int = 65_536, receiveLimit: Int = 4 << 20, framePayload: Int = 1024,
                closeLinger: LinkDuration = .seconds(30)) {
        self.opensStreams = opensStreams
        self.maxStreams = min(max(1, maxStreams), Int(LegacyWire.maxStreamID) + 1)
        self.lineBytesPerSecond = lineBytesPerSecond
        self.sendBufferLimit = max(1, sendBufferLimit)
        self.receiveLimit = max(1, receiveLimit)
        self.framePayload = min(max(16, framePayload), LegacyWire.maxPayload)
        self.closeLinger = closeLinger
    }
}

/// One end of the original socket2ser.py's protocol behind the interface the forwarder drives
/// (`LinkEndpoint`), so the forwarder runs the same code on either wire.
///
/// What the old protocol cannot give, this end does not pretend to: there is no handshake (the
/// link is "up" from the start and nothing proves a peer is there), no checksum (a corrupted byte
/// reaches the stream), no flow control (a stream whose client falls more than `receiveLimit`
/// behind is reset rather than buffered without bound), and no half-close (a close ends the
/// stream both ways). What it does: streams take turns on the line, every stream this end ends is
/// closed on the wire, and every frame it sends has a length the original reads correctly.
public struct LegacyLink: LinkEndpoint {
    public let configuration: LegacyConfiguration
    public private(set) var statistics = LinkStatistics()

    private struct Stream: Sendable {
        enum Phase: Sendable, Equatable {
            /// The peer opened it; the application has not accepted or refused it yet.
            case awaitingAnswer
            case open
            /// This end sent its close; the peer's data is still taken until its close comes or
            /// `closeLinger` passes.
            case closing(since: LinkTime)
        }

        var phase: Phase
        /// Bytes queued by `send`, from `sent` on.
        var outgoing: [UInt8] = []
        var sent = 0
        /// `finish` was called: the close goes after the queued bytes.
        var finishQueued = false
        /// `send` took fewer bytes than offered: `.writable` is due once there is room.
        var pushedBack = false
        /// Delivered and not yet consumed.
        var unconsumed = 0

        var pending: Int { outgoing.count - sent }
        var acceptsData: Bool { phase != .awaitingAnswer && !finishQueued && !isClosing }
        var isClosing: Bool { if case .closing = phase { true } else { false } }
    }

    private var streams: [UInt8: Stream] = [:]
    /// C: the IDs free to open, first out first. An ID goes to the back when its stream ends, so
    /// it is reused as late as possible (the original's S may still hold a socket for it).
    private var freeIDs = FIFO<UInt8>()
    /// Control frames to send before any data: opens, failed connects, closes of reset streams.
    private var controls = FIFO<LegacyFrame>()
    /// Streams with bytes or a close to send, in turn; `inTurns` holds the same IDs, so that an
    /// ID is queued once (it may outlive its stream there: a new stream with that ID takes its turn).
    private var turns = FIFO<UInt8>()
    private var inTurns = Set<UInt8>()
    private var events = FIFO<LinkEvent>()
    private var decoder = LegacyDecoder()
    /// The frame being handed to the line, and how much of it has gone.
    private var frame: [UInt8] = []
    private var frameOffset = 0

    public init(configuration: LegacyConfiguration) {
        self.configuration = configuration
        if configuration.opensStreams {
            for id in 0...LegacyWire.maxStreamID { freeIDs.append(id) }
        }
        // No handshake: the line is as up as it will ever be told.
        events.append(.established(peerSession: 0, peerRestarted: false))
    }

    // MARK: LinkEndpoint: state

    public var wire: WireSummary {
        WireSummary(name: "legacy (the original socket2ser.py's protocol)", provesPeer: false, limits: """
            it has no handshake (whether the far end runs shows only once a stream works), no checksum \
            (a corrupted byte reaches the stream), no flow control (a stream whose client falls \
            \(configuration.receiveLimit >> 20) MiB behind is reset) and no half-close (a close ends a \
            stream both ways)
            """)
    }

    public var isEstablished: Bool { true }
    public var streamCount: Int { streams.count }
    public var bufferedReceiveBytes: Int { streams.values.reduce(0) { $0 + $1.unconsumed } }
    public var bufferedSendBytes: Int { streams.values.reduce(0) { $0 + $1.pending } }
    public var maxPeerListens: Int { 0 }
    public func isInteractive(at now: LinkTime) -> Bool { false }
    public func makeFrameTracer() -> any FrameTracer { LegacyFrameTracer() }

    /// 5 ms of line time: nothing here is urgent enough to want less.
    public var preferredQueueBelow: Int {
        let rate = configuration.lineBytesPerSecond
        return rate > 0 ? max(64, rate / 200) : 1 << 16
    }

    public var nextDeadline: LinkTime? {
        streams.values.compactMap { stream -> LinkTime? in
            if case .closing(let since) = stream.phase { return since + configuration.closeLinger }
            return nil
        }.min()
    }

    public mutating func pollEvent() -> LinkEvent? { events.popFirst() }

    // MARK: Line input

    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: LinkTime) {
        statistics.lineBytesReceived += bytes.count
        let skipped = decoder.skippedBytes
        for frame in decoder.feed(bytes) {
            statistics.framesReceived += 1
            handle(frame, now: now)
        }
        statistics.malformedFrames = decoder.malformedFrames
        statistics.discardedBytes += decoder.skippedBytes - skipped
    }

    public mutating func receive<C: Collection>(_ bytes: C, now: LinkTime) where C.Element == UInt8 {
        Array(bytes).withUnsafeBytes { receive($0, now: now) }
    }

    private mutating func handle(_ frame: LegacyFrame, now: LinkTime) {
        switch frame {
        case .open(let id): peerOpened(id)
        case .connectFailed(let id): peerCouldNotConnect(id)
        case .closed(let id): peerClosed(id)
        case .data(let id, let bytes): peerSent(bytes, on: id)
        }
    }

    private mutating func peerOpened(_ id: UInt8) {
        guard !configuration.opensStreams else {
            violation("the peer opened stream \(id), but on the legacy wire only C opens streams (is the far end C too?)")
            return
        }
        if streams[id] != nil {
            // The original's C reuses an ID once it has sent its close; that close was lost.
            streams[id] = nil
            events.append(.streamReset(Self.streamID(id), .peerRestarted))
        }
        guard streams.count < configuration.maxStreams else {
            statistics.refusedTooMany += 1
            controls.append(.connectFailed(id))
            return
        }
        streams[id] = Stream(phase: .awaitingAnswer)
        statistics.streamsOpened += 1
        events.append(.streamOpened(Self.streamID(id), target: ""))
    }

    private mutating func peerCouldNotConnect(_ id: UInt8) {
        guard configuration.opensStreams else {
            violation("the peer said stream \(id) could not connect, but this end opens no streams (is the far end S too?)")
            return
        }
        guard streams[id] != nil else { return }
        remove(id)
        events.append(.openRefused(Self.streamID(id), .connectionRefused))
    }

    /// The peer's socket for `id` ended, and with it the stream, both ways: the old protocol has
    /// no half-close. Bytes this end still had to send for it cannot arrive, so then it is a
    /// reset, not a clean end.
    private mutating func peerClosed(_ id: UInt8) {
        guard let stream = streams[id] else { return }
        let lost = stream.pending > 0 && !stream.isClosing
        statistics.discardedBytes += stream.pending
        remove(id)
        events.append(lost ? .streamReset(Self.streamID(id), .aborted) : .streamClosed(Self.streamID(id)))
    }

    private mutating func peerSent(_ bytes: [UInt8], on id: UInt8) {
        guard var stream = streams[id] else {
            statistics.discardedBytes += bytes.count
            return
        }
        stream.unconsumed += bytes.count
        guard stream.unconsumed <= configuration.receiveLimit else {
            // No flow control to slow the peer: rather than hold without bound, end the stream.
            statistics.creditViolations += 1
            statistics.discardedBytes += bytes.count
            close(id, queueClose: !stream.isClosing)
            events.append(.streamReset(Self.streamID(id), .creditExceeded))
            return
        }
        streams[id] = stream
        statistics.payloadBytesReceived += bytes.count
        events.append(.received(Self.streamID(id), bytes))
    }

    private mutating func violation(_ what: String) {
        statistics.protocolViolations += 1
        events.append(.protocolViolation(what))
    }

    // MARK: Line output

    /// Up to `maxBytes` of line bytes; fewer only when nothing more is waiting. Frames are built
    /// whole (a control frame, or up to `framePayload` bytes of one stream's data) and handed out
    /// in pieces of any size, so a small budget never stalls the line.
    public mutating func pollTransmit(maxBytes: Int, now: LinkTime) -> [UInt8] {
        var out: [UInt8] = []
        while out.count < maxBytes {
            if frameOffset == frame.count {
                frame.removeAll(keepingCapacity: true)
                frameOffset = 0
                guard buildFrame(now: now) else { break }
            }
            let take = min(maxBytes - out.count, frame.count - frameOffset)
            out += frame[frameOffset..<frameOffset + take]
            frameOffset += take
        }
        return out
    }

    /// The next frame into `frame`: control frames first, then the streams' data in turn.
    /// False when there is nothing to send.
    private mutating func buildFrame(now: LinkTime) -> Bool {
        if let control = controls.popFirst() {
            emit(control)
            return true
        }
        while let id = turns.popFirst() {
            inTurns.remove(id)
            guard var stream = streams[id], stream.pending > 0 || stream.finishQueued, !stream.isClosing else { continue }
            if stream.pending > 0 {
                let count = Self.framePrefix(stream.outgoing[stream.sent...], limit: configuration.framePayload)
                let chunk = Array(stream.outgoing[stream.sent..<stream.sent + count])
                stream.sent += count
                if stream.sent == stream.outgoing.count {
                    stream.outgoing.removeAll(keepingCapacity: true)
                    stream.sent = 0
                } else if stream.sent >= 16_384 {
                    stream.outgoing.removeFirst(stream.sent)
                    stream.sent = 0
                }
                statistics.payloadBytesSent += count
                emit(.data(id, chunk))
                if stream.pushedBack, stream.pending <= configuration.sendBufferLimit / 2 {
                    stream.pushedBack = false
                    events.append(.writable(Self.streamID(id)))
                }
            } else {
                stream.finishQueued = false
                stream.phase = .closing(since: now)
                emit(.closed(id))
            }
            streams[id] = stream
            if stream.pending > 0 || stream.finishQueued { takeTurn(id) }
            return true
        }
        return false
    }

    /// How many of `bytes` (at most `limit`) one data frame carries, with an escaped length the
    /// original reads correctly (`LegacyWire.isSafeLength`): one or two fewer when needed.
    public static func framePrefix(_ bytes: ArraySlice<UInt8>, limit: Int) -> Int {
        var count = min(limit, bytes.count)
        var length = count + bytes.prefix(count).reduce(0) { $0 + ($1 == LegacyWire.escape ? 1 : 0) }
        while count > 1, !LegacyWire.isSafeLength(length) {
            count -= 1
            length -= bytes[bytes.startIndex + count] == LegacyWire.escape ? 2 : 1
        }
        return count
    }

    /// Encodes `legacyFrame` as the frame to hand out next.
    private mutating func emit(_ legacyFrame: LegacyFrame) {
        // IDs here are at most `maxStreamID` and data is cut to safe lengths: this cannot throw.
        try? LegacyEncoder.encode(legacyFrame, into: &frame)
        statistics.framesSent += 1
        statistics.lineBytesSent += frame.count
    }

    // MARK: Timers

    public mutating func handleTimeout(now: LinkTime) {
        let expired = streams.filter { _, stream in
            if case .closing(let since) = stream.phase { return now >= since + configuration.closeLinger }
            return false
        }.keys.sorted()
        for id in expired {
            // The peer never closed its side: its end is not known to be complete.
            remove(id)
            events.append(.streamReset(Self.streamID(id), .aborted))
        }
    }

    // MARK: Commands

    public mutating func openStream(target: String) throws(LinkError) -> StreamID {
        guard configuration.opensStreams else {
            throw .peerLacks("streams opened by S: on the legacy wire only C opens streams")
        }
        guard target.isEmpty else {
            throw .peerLacks("a named target: the legacy wire connects every stream to the far end's -ip/-port")
        }
        guard streams.count < configuration.maxStreams, let id = freeIDs.popFirst() else { throw .tooManyStreams }
        streams[id] = Stream(phase: .open)
        controls.append(.open(id))
        statistics.streamsOpened += 1
        let stream = Self.streamID(id)
        // The original's S never confirms an open; it only says when its connect fails.
        events.append(.openAccepted(stream))
        return stream
    }

    public mutating func accept(_ id: StreamID) throws(LinkError) {
        let key = try existing(id)
        guard streams[key]?.phase == .awaitingAnswer else { throw .invalidState(id, "already answered") }
        streams[key]?.phase = .open
        statistics.streamsAccepted += 1
    }

    public mutating func refuse(_ id: StreamID, reason: OpenRefusal) throws(LinkError) {
        let key = try existing(id)
        guard streams[key]?.phase == .awaitingAnswer else { throw .invalidState(id, "already answered") }
        remove(key)
        controls.append(.connectFailed(key))
    }

    public mutating func send<C: Collection>(_ bytes: C, on id: StreamID) throws(LinkError) -> Int where C.Element == UInt8 {
        let key = try existing(id)
        guard var stream = streams[key], stream.acceptsData else { throw .invalidState(id, "not open for sending") }
        let room = max(0, configuration.sendBufferLimit - stream.pending)
        let taken = min(room, bytes.count)
        if taken < bytes.count { stream.pushedBack = true }
        guard taken > 0 else {
            streams[key] = stream
            return 0
        }
        stream.outgoing.append(contentsOf: bytes.prefix(taken))
        streams[key] = stream
        takeTurn(key)
        return taken
    }

    public mutating func finish(_ id: StreamID) throws(LinkError) {
        let key = try existing(id)
        guard var stream = streams[key], stream.acceptsData else { throw .invalidState(id, "already finished") }
        stream.finishQueued = true
        streams[key] = stream
        takeTurn(key)
    }

    public mutating func reset(_ id: StreamID, reason: ResetReason) throws(LinkError) {
        let key = try existing(id)
        close(key, queueClose: streams[key]?.isClosing == false)
    }

    public mutating func consumed(_ count: Int, on id: StreamID) {
        guard let key = UInt8(exactly: id.rawValue), streams[key] != nil else { return }
        streams[key]!.unconsumed = max(0, streams[key]!.unconsumed - count)
    }

    public mutating func resetAll(reason: ResetReason) {
        for (id, stream) in streams.sorted(by: { $0.key < $1.key }) {
            close(id, queueClose: !stream.isClosing)
        }
    }

    public mutating func requestListen(bind: String, port: UInt16, target: String) throws(LinkError) -> ListenID {
        throw .peerLacks("listen requests (-R): the legacy wire has none")
    }

    public mutating func cancelListen(_ id: ListenID) throws(LinkError) { throw .unknownListen(id) }
    public mutating func acceptListen(_ id: ListenID, port: UInt16) throws(LinkError) { throw .unknownListen(id) }
    public mutating func refuseListen(_ id: ListenID, reason: ListenRefusal) throws(LinkError) { throw .unknownListen(id) }

    // MARK: Helpers

    /// Queues `id` for a turn on the line, unless it is queued already.
    private mutating func takeTurn(_ id: UInt8) {
        if inTurns.insert(id).inserted { turns.append(id) }
    }

    private static func streamID(_ id: UInt8) -> StreamID { StreamID(UInt16(id)) }

    private func existing(_ id: StreamID) throws(LinkError) -> UInt8 {
        guard let key = UInt8(exactly: id.rawValue), streams[key] != nil else { throw .unknownStream(id) }
        return key
    }

    /// Ends a stream at this end: unsent bytes are dropped, and the peer is told unless it was
    /// told already.
    private mutating func close(_ id: UInt8, queueClose: Bool) {
        statistics.discardedBytes += streams[id]?.pending ?? 0
        remove(id)
        if queueClose { controls.append(.closed(id)) }
    }

    private mutating func remove(_ id: UInt8) {
        guard streams.removeValue(forKey: id) != nil else { return }
        if configuration.opensStreams { freeIDs.append(id) }
    }
}

/// The -d 4 trace of the legacy wire's frames.
struct LegacyFrameTracer: FrameTracer {
    var decoder = LegacyDecoder()

    mutating func describe(_ bytes: UnsafeRawBufferPointer) -> [String] {
        let malformed = decoder.malformedFrames
        var lines = decoder.feed(bytes).map { frame -> String in
            switch frame {
            case .open(let id): "OPEN \(id)"
            case .connectFailed(let id): "CONNECT-FAILED \(id)"
            case .closed(let id): "CLOSED \(id)"
            case .data(let id, let bytes): "DATA \(id) \(bytes.count) B"
            }
        }
        if decoder.malformedFrames > malformed { lines.append("junk (\(decoder.malformedFrames - malformed) malformed frame(s))") }
        return lines
    }
}
