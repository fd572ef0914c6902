import LinkCore
import Logging
import NIOCore
import NIOPosix
import SerialPort

/// What a `SerialLine` tells the runtime that owns it. Every call is on the line's loop.
protocol SerialLineDelegate: AnyObject {
    /// Bytes arrived from the device.
    func line(received bytes: ByteBuffer, now: LinkTime)
    /// The line can take bytes again: attached, or writable again.
    func lineWantsService()
    /// Unpaced only: the kernel took a write, the cue to write more if the core has more.
    func lineTookBytes()
    /// The device went away (EOF, EIO, hang-up); `why` in plain words. The line reopens it.
    func lineGone(why: String)
    /// The device is back after `away`, attached and ready.
    func lineBack(after away: LinkDuration?)
}

/// The serial device of one link: attaching a descriptor to NIO, writing with the pacer's
/// accounting, and, when the device goes away, reopening the same path with backoff.
///
/// Late events of an old channel (a device that went and came back) are told apart by a
/// generation number and ignored. Confined to `loop`, like the runtime that owns it.
final class SerialLine: @unchecked Sendable {
    // @unchecked: every use, and every closure it schedules, runs on `loop`.
    struct Attachment {
        let channel: Channel
        /// The descriptor NIO reads from; valid while `channel` is active.
        let fd: CInt
        let generation: Int
        /// TIOCOUTQ says something (not a pseudo-terminal).
        let reportsOutputQueue: Bool
    }

    let path: String
    let settings: SerialSettings
    let loop: EventLoop
    let logger: Logger
    weak var delegate: SerialLineDelegate?
    /// What is queued below the core, and how much to hand down next.
    var pacer: TransmitPacer
    private(set) var attachment: Attachment?
    /// Incremented for every attach attempt, so late events of an old channel are ignored.
    private var generation = 0
    private var lostGeneration = 0
    private var reconnectTask: Scheduled<Void>?
    private var reconnectDelay = SerialLine.initialReconnectDelay
    /// Since when the device has been gone; nil while attached.
    private(set) var goneSince: LinkTime?
    private var lastError: String?
    private var closed = false
    /// Shutdown has begun: a device that goes away is not reopened.
    private var reopeningStopped = false

    static let initialReconnectDelay = TimeAmount.milliseconds(100)
    static let maximumReconnectDelay = TimeAmount.seconds(2)

    init(path: String, settings: SerialSettings, lineRate: Int, loop: EventLoop, logger: Logger) {
        self.path = path
        self.settings = settings
        self.loop = loop
        self.logger = logger
        pacer = TransmitPacer(lineRate: lineRate)
    }

    var isAttached: Bool { attachment != nil }

    // MARK: Attaching

    /// Hands an open, configured descriptor to a pipe channel. On failure the caller still owns it.
    func attach(fd: CInt) -> EventLoopFuture<Void> {
        generation += 1
        let generation = generation
        return NIOPipeBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SerialChannelHandler(line: self, generation: generation))
                }
            }
            .takingOwnershipOfDescriptor(inputOutput: fd)
            .map { channel in
                guard generation > self.lostGeneration, !self.closed, !self.reopeningStopped else {
                    channel.close(promise: nil)
                    return
                }
                self.attachment = Attachment(channel: channel, fd: fd, generation: generation,
                                             reportsOutputQueue: !SerialPort.isPseudoTerminal(fd))
                self.pacer.reset(now: self.loop.linkNow)
                self.delegate?.lineWantsService()
            }
    }

    // MARK: Events of the channel (SerialChannelHandler)

    func received(_ buffer: ByteBuffer, generation: Int) {
        guard generation == attachment?.generation else { return }
        delegate?.line(received: buffer, now: loop.linkNow)
    }

    func failed(_ error: Error, generation: Int) {
        guard generation == self.generation else { return }
        lastError = "\(error)"
    }

    /// The device went away: forget the channel and try to open the same path again.
    func gone(generation: Int) {
        guard generation == self.generation, generation > lostGeneration else { return }
        lostGeneration = generation
        attachment = nil
        pacer.reset(now: loop.linkNow)
        guard !closed, !reopeningStopped else { return }
        if goneSince == nil {
            goneSince = loop.linkNow
            delegate?.lineGone(why: lastError ?? "the line hung up")
        }
        lastError = nil
        scheduleReopen()
    }

    private func scheduleReopen() {
        guard !closed, !reopeningStopped, reconnectTask == nil else { return }
        let delay = reconnectDelay
        reconnectDelay = min(reconnectDelay * 2, Self.maximumReconnectDelay)
        reconnectTask = loop.scheduleTask(in: delay) {
            self.reconnectTask = nil
            self.reopen()
        }
    }

    private func reopen() {
        guard !closed, !reopeningStopped, attachment == nil else { return }
        let port: SerialPort
        do {
            port = try SerialPort.open(device: path, settings: settings)
        } catch {
            logger.debug("serial device still unavailable: \(error)")
            scheduleReopen()
            return
        }
        // A replugged FTDI adapter starts again at its 16 ms default.
        Forwarder.report(AdapterQuirks.checkLatencyTimer(device: port.path), logger: logger)
        let fd = port.takeFileDescriptor()
        attach(fd: fd).whenComplete { result in
            switch result {
            case .success:
                guard self.attachment != nil else {
                    self.scheduleReopen()
                    return
                }
                let away = self.goneSince.map { self.loop.linkNow - $0 }
                self.goneSince = nil
                self.reconnectDelay = Self.initialReconnectDelay
                self.delegate?.lineBack(after: away)
            case .failure(let error):
                SerialPort.releaseExclusiveUse(fileDescriptor: fd)
                closeDescriptor(fd)
                self.logger.debug("serial device reopened but could not be attached: \(error)")
                self.scheduleReopen()
            }
        }
    }

    // MARK: Writing

    /// What the driver says its output queue holds (TIOCOUTQ, one ioctl); 0 where it cannot say
    /// (a pty) or without a device. Read once per pass and handed to the calls below: the kernel
    /// takes nothing from what this pass writes before the pass ends.
    func reportedQueue() -> Int {
        guard let attachment, attachment.reportsOutputQueue else { return 0 }
        return SerialPort.outputQueue(fd: attachment.fd) ?? 0
    }

    /// Bytes queued below the core: in the channel, in the kernel's tty buffer or, where the
    /// driver cannot say, on the line as modelled from its rate. 0 without a device.
    func queued(now: LinkTime) -> Int {
        guard attachment != nil else { return 0 }
        return pacer.queued(now: now, reported: reportedQueue())
    }

    /// How many bytes to pull from the core now; 0 without a device or while NIO holds more than
    /// its high-water mark (the writability change asks for a pass).
    func budget(now: LinkTime, preferred: Int, reported: Int, interactive: Bool) -> Int {
        guard let attachment, attachment.channel.isActive, attachment.channel.isWritable else { return 0 }
        return pacer.budget(now: now, preferred: preferred, reported: reported, interactive: interactive)
    }

    /// When to look again while the core has more.
    func topUpDelay(now: LinkTime, preferred: Int, reported: Int, interactive: Bool) -> LinkDuration {
        guard attachment != nil else { return .milliseconds(2) }
        return pacer.topUpDelay(now: now, preferred: preferred, reported: reported, interactive: interactive)
    }

    /// Writes `chunk` (not yet flushed). Without an active channel it is dropped: the core
    /// retransmits what the line lost.
    func write(_ chunk: [UInt8]) {
        guard let attachment, attachment.channel.isActive else { return }
        let count = chunk.count
        pacer.handedDown(count)
        let generation = attachment.generation
        let promise = loop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { result in
            guard generation == self.attachment?.generation else { return }
            var succeeded = false
            if case .success = result { succeeded = true }
            self.pacer.written(count, succeeded: succeeded, now: self.loop.linkNow)
            // Unpaced, the kernel's buffer is the only limit, so its taking bytes is the cue to
            // write more. Paced, the top-up timer is: a pass per completion would spin.
            if self.pacer.lineRate == 0 { self.delegate?.lineTookBytes() }
        }
        attachment.channel.write(attachment.channel.allocator.buffer(bytes: chunk), promise: promise)
    }

    func flush() { attachment?.channel.flush() }

    /// Everything written has left: nothing in the channel, nothing queued below.
    func isDrained(now: LinkTime) -> Bool {
        guard let attachment, attachment.channel.isActive else { return true }
        return pacer.inChannel == 0 && queued(now: now) == 0
    }

    // MARK: Closing

    /// Stops reopening and closes the device (releasing exclusive use). Late events are ignored.
    func close() -> EventLoopFuture<Void> {
        closed = true
        reconnectTask?.cancel()
        reconnectTask = nil
        guard let attachment else { return loop.makeSucceededVoidFuture() }
        self.attachment = nil
        lostGeneration = attachment.generation
        if attachment.channel.isActive { SerialPort.releaseExclusiveUse(fileDescriptor: attachment.fd) }
        return attachment.channel.close().recover { _ in }
    }

    /// Stops reopening a device that is gone (shutdown has begun); an attached one stays.
    func stopReopening() {
        reopeningStopped = true
        reconnectTask?.cancel()
        reconnectTask = nil
    }
}

/// The handler on the serial line's pipe channel: bytes in go to the line (and on to the core),
/// writability and the end of the device too.
final class SerialChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let line: SerialLine
    /// Which attachment of the device this is; a stale channel's late events are ignored.
    private let generation: Int

    init(line: SerialLine, generation: Int) {
        self.line = line
        self.generation = generation
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        line.received(Self.unwrapInboundIn(data), generation: generation)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { line.delegate?.lineWantsService() }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        line.failed(error, generation: generation)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        line.gone(generation: generation)
        context.fireChannelInactive()
    }
}
