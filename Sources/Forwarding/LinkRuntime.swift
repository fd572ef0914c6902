import LegacyWire
import LinkCore
import Logging
import NIOCore
import NIOPosix
import SerialPort

/// The I/O shell around one `Link`: the serial channel, the TCP connections and the timers, all
/// on one event loop.
///
/// Every input (bytes from the line, a socket read, a write completing, a timer) is handed to
/// the core at once; its outputs are then collected in one *service pass* (`servicePass(now:)`,
/// run by `driver`): events are acted on, bytes are pulled for the line as far as the pacer
/// allows, and the driver's single timer is re-armed for `Link.nextDeadline`. Passes are coalesced, so a burst of socket reads in
/// one loop iteration costs one pass.
///
/// Concurrency: the class is confined to `loop`. It is `@unchecked Sendable` only so that
/// closures NIO requires to be `@Sendable` (future callbacks, scheduled tasks, channel
/// initialisers) may capture it; every such closure runs on `loop`.
final class LinkRuntime: @unchecked Sendable {
    /// Replaced only by `apply(_:)` (a reload), which keeps the line's settings.
    var configuration: ForwarderConfiguration
    let logger: Logger
    let loop: EventLoop
    /// The line protocol's endpoint: the forwarder drives either wire through `LinkEndpoint` alone.
    var link: any LinkEndpoint
    /// Line rate used to model the queue below (bytes per second); 0 when unpaced.
    let lineRate: Int

    // MARK: Serial line
    /// The device: attach, reopen, paced writes (SerialLine.swift).
    let serial: SerialLine
    /// The last transmit pass filled the queue: the core probably has more.
    var coreMayHaveMore = false
    var topUpTask: Scheduled<Void>?

    // MARK: Core timer and service passes
    /// Runs the service passes and the core's one timer (LinkDriver.swift).
    let driver: LinkDriver

    // MARK: Connections
    /// Which connection carries which stream, and every connection still open (ConnectionTable.swift).
    var table = ConnectionTable()
    /// This end's own listeners (-L, C's -port), bound at start.
    var listeners: [Listener] = []
    /// The first of them's port, for status and `waitUntilListening`.
    var listeningPort: Int?
    /// Listeners this end holds for the peer's -R forwards, by the peer's request number.
    var peerListeners: [ListenID: Listener] = [:]
    /// Listeners for the peer being bound (counted against `LinkConfiguration.maxPeerListens`).
    var peerListenBindsInFlight = 0
    /// This end's -R requests of the current session, by request number.
    var remoteRequests: [ListenID: Forward] = [:]
    /// What the streams the peer opens may connect to.
    var policy: TargetPolicy
    /// Name lookups running for address rules (`LinkRuntime.maximumLookups` at most).
    var lookupsInFlight = 0

    // MARK: Waiting for the link (LinkRuntime+LinkStatus.swift)
    /// Connections accepted while the link was not up, oldest first, with when they give up.
    var waitingForLink: [(waiter: LinkWaiter, deadline: LinkTime)] = []
    var linkWaitTask: Scheduled<Void>?
    /// Since when this end has had no working link, for the messages that say so; nil while up.
    var noLinkSince: (at: LinkTime, wallClock: String)?
    /// What is known to be wrong with the peer (the same role, another protocol version).
    var peerProblem: String?
    /// A connection was already reset for want of a link in this outage: later ones are logged
    /// at -d 1 only, so a client that retries does not fill the log.
    var reportedLinkWaitThisOutage = false
    /// The link came up at this time and its line waits for the first RTT sample (or a second).
    var linkUpAnnouncementDue: LinkTime?
    var linkUpAnnouncementTask: Scheduled<Void>?
    /// When the link was last reported down, for "restored after 4.2 s".
    var linkDownAt: LinkTime?
    /// When each repeatable warning was last shown at the default level (`logRepeatable`).
    var lastWarnings: [String: LinkTime] = [:]
    /// `LinkStatistics.refusedTooMany` and `refusedListensTooMany` when last reported (`reportRefusedOpens`).
    var reportedRefusedOpens = 0
    var reportedRefusedListens = 0

    // MARK: Decoded frame trace (-d 4)
    /// Decoders of their own for each direction, so the trace never disturbs the core's.
    var frameTrace: (inbound: any FrameTracer, outbound: any FrameTracer)?

    // MARK: Status
    var linkState = ForwarderStatus.LinkState.handshaking
    var statisticsTask: RepeatedTask?
    var lastLoggedStatistics = LinkStatistics()
    /// Frames that failed the key (§11.3) as last reported in a warning.
    var reportedUnauthenticatedFrames = 0
    var shuttingDown = false
    /// Everything is closed; late callbacks do nothing.
    var stopped = false

    init(configuration: ForwarderConfiguration, logger: Logger, loop: EventLoop) {
        self.configuration = configuration
        self.logger = logger
        self.loop = loop
        driver = LinkDriver(loop: loop)
        lineRate = configuration.unpaced ? 0 : configuration.serial.bytesPerSecond
        serial = SerialLine(path: configuration.devicePath, settings: configuration.serial, lineRate: lineRate,
                            loop: loop, logger: logger)
        policy = configuration.targetPolicy
        var linkConfiguration = LinkConfiguration(
            usesOddStreamIDs: configuration.form != .server,
            lineBytesPerSecond: lineRate,
            maxStreams: configuration.maxStreams,
            initialWindow: Self.streamWindow(lineRate: lineRate),
            gracePeriod: .seconds(configuration.gracePeriodSeconds),
            negotiatesStreamIDHalves: true,
            queueSlackBelow: serial.pacer.slack,
            seed: UInt64.random(in: 1...UInt64.max))
        linkConfiguration.compression = configuration.compression
        linkConfiguration.protection = configuration.protection
        link = Self.endpoint(for: configuration, linkConfiguration)
        if configuration.verbosity >= 4 {
            frameTrace = (link.makeFrameTracer(), link.makeFrameTracer())
        }
        driver.delegate = self
        serial.delegate = self
    }

    /// The one place the wire mode matters: which endpoint speaks on the line.
    private static func endpoint(for configuration: ForwarderConfiguration,
                                 _ linkConfiguration: LinkConfiguration) -> any LinkEndpoint {
        switch configuration.wire {
        case .socket2ser:
            return Link(configuration: linkConfiguration)
        case .legacy:
            return LegacyLink(configuration: LegacyConfiguration(
                opensStreams: configuration.form == .client, maxStreams: configuration.maxStreams,
                lineBytesPerSecond: linkConfiguration.lineBytesPerSecond,
                closeLinger: linkConfiguration.gracePeriod))
        }
    }
}


// MARK: - Lifecycle

extension LinkRuntime {
    /// Attaches the serial descriptor (already opened and configured) and, for a C end, starts
    /// listening. Succeeds with the bound port (C) or nil (S). On failure the descriptor has been
    /// closed.
    func start(serialFD fd: CInt) -> EventLoopFuture<Int?> {
        loop.assertInEventLoop()
        noLinkSince = (loop.linkNow, wallClockTime())
        let interval = TimeAmount.nanoseconds(Int64(max(0.5, configuration.statisticsLogIntervalSeconds) * 1e9))
        statisticsTask = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            self.logStatisticsIfChanged()
            self.reportUnauthenticatedFrames()
        }
        return serial.attach(fd: fd)
            .flatMapError { error in
                SerialPort.releaseExclusiveUse(fileDescriptor: fd)
                _ = closeDescriptor(fd)
                return self.loop.makeFailedFuture(ForwarderError.cannotAttachDevice(
                    path: self.configuration.devicePath, reason: "\(error)"))
            }
            .flatMap { () -> EventLoopFuture<Int?> in
                self.startLocalListeners()
            }
            .map { port in
                self.scheduleService()
                return port
            }
    }

    /// Stops accepting, resets every stream (telling the peer), gives the resulting frames up to
    /// `flushTime` to reach the line, then closes every socket and the device.
    func shutdown(flushTime: TimeAmount = .seconds(1)) -> EventLoopFuture<Void> {
        loop.assertInEventLoop()
        guard !shuttingDown else { return loop.makeSucceededVoidFuture() }
        shuttingDown = true
        closeListeners()
        serial.stopReopening()
        statisticsTask?.cancel()
        statisticsTask = nil
        reportUnauthenticatedFrames()
        linkWaitTask?.cancel()
        linkWaitTask = nil
        // Clients that waited for the link without a stream are cut off too: a reset, never a
        // clean end they could take for an empty reply.
        for entry in waitingForLink { if case .unopened(let accepted) = entry.waiter { abort(accepted.channel) } }
        waitingForLink = []
        linkUpAnnouncementTask?.cancel()
        linkUpAnnouncementTask = nil

        let open = table.streamCount
        link.resetAll(reason: .shutdown)
        for connection in table.streamConnections {
            connection.closeReason = connection.closeReason ?? "shutdown"
            streamEnded(connection)
        }
        if open > 0 { logger.info("shutting down: reset \(open) stream(s)") }

        // Push the RESETs out regardless of the usual queue target: nothing else is coming.
        let now = loop.linkNow
        if serial.isAttached {
            var wrote = 0
            while wrote < 1 << 20 {
                let chunk = link.pollTransmit(maxBytes: 1 << 16, now: now)
                if chunk.isEmpty { break }
                writeToSerial(chunk)
                wrote += chunk.count
            }
            serial.flush()
        }

        let promise = loop.makePromise(of: Void.self)
        waitForLineToDrain(until: loop.now + flushTime, promise: promise)
        return promise.futureResult
    }

    /// Polls every 5 ms until the frames written so far have left (or `deadline`), then closes.
    private func waitForLineToDrain(until deadline: NIODeadline, promise: EventLoopPromise<Void>) {
        if serial.isDrained(now: loop.linkNow) || loop.now >= deadline {
            closeEverything().cascade(to: promise)
        } else {
            loop.scheduleTask(in: .milliseconds(5)) { self.waitForLineToDrain(until: deadline, promise: promise) }
        }
    }

    private func closeEverything() -> EventLoopFuture<Void> {
        driver.stop()
        topUpTask?.cancel()
        topUpTask = nil
        var closing: [EventLoopFuture<Void>] = []
        for connection in table.connections {
            if let channel = connection.channel {
                // Only a connection that ended with both FINs and has written everything may see
                // a clean end; any other was cut off, and its client must see a reset.
                let future = connection.isCompleteForSocket ? channel.close() : abortFuture(channel)
                closing.append(future.recover { _ in })
            } else {
                connection.socket = .gone
                releaseIfDone(connection)
            }
        }
        closing.append(serial.close())
        linkState = .stopped
        stopped = true
        return EventLoopFuture.andAllComplete(closing, on: loop)
    }

    /// Every connection this end holds (a stream that has ended shows as closing until its socket
    /// is done), for `Forwarder.detailedStatus()`.
    func streamSnapshots() -> [StreamStatus] {
        let now = loop.linkNow
        // Streams held while the link is down, found once rather than per connection.
        var waiting = Set<ObjectIdentifier>()
        if linkState != .up {
            for entry in waitingForLink { if case .opened(let connection) = entry.waiter { waiting.insert(ObjectIdentifier(connection)) } }
        }
        return table.connections.map { connection in
            StreamStatus(id: connection.id.rawValue, forward: connection.forward, client: connection.peerDescription,
                         target: connection.target, bytesFromSocket: connection.bytesFromSocket,
                         bytesToSocket: connection.bytesToSocket, ageSeconds: (now - connection.openedAt).seconds,
                         state: streamState(of: connection, waitingForLink: waiting.contains(ObjectIdentifier(connection))))
        }.sorted { $0.id < $1.id }
    }

    private func streamState(of connection: Connection, waitingForLink: Bool) -> StreamStatus.State {
        guard connection.streamAlive else { return .closing }
        if case .connecting = connection.socket { return .opening }
        if connection.socksReplyPending || waitingForLink { return .opening }
        if case .done = connection.toLink { return .halfClosed }
        if case .open = connection.toSocket { return .open }
        return .halfClosed
    }

    /// Resets a stream on request (the dashboard): the peer and the client see an abort.
    func resetStream(_ id: StreamID, reason: String) -> Bool {
        guard let connection = table[id], connection.streamAlive else { return false }
        connection.closeReason = reason
        try? link.reset(id, reason: .aborted)
        streamEnded(connection)
        if let channel = connection.channel { abort(channel) }
        releaseIfDone(connection)
        scheduleService()
        return true
    }

    /// A consistent snapshot for `Forwarder.status()`.
    func snapshot() -> ForwarderStatus {
        let statistics = link.statistics
        var status = ForwarderStatus()
        status.linkState = linkState
        status.deviceOpen = serial.isAttached
        status.streamsOpen = link.streamCount
        status.connectionsOpen = table.count
        status.connectionsTotal = table.total
        status.listeningPort = listeningPort
        status.payloadBytesSent = statistics.payloadBytesSent
        status.payloadBytesReceived = statistics.payloadBytesReceived
        status.lineBytesSent = statistics.lineBytesSent
        status.lineBytesReceived = statistics.lineBytesReceived
        status.retransmissions = statistics.retransmissions
        status.crcErrors = statistics.crcErrors
        status.bufferedReceiveBytes = link.bufferedReceiveBytes
        status.bufferedSendBytes = link.bufferedSendBytes
        status.rttMilliseconds = statistics.smoothedRTTMilliseconds
        status.statistics = statistics
        return status
    }
}
