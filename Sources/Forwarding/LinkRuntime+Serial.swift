import LinkCore
import Logging
import NIOCore
import NIOPosix
import SerialPort

// MARK: - The serial line: attaching, pacing writes, and coming back after the device is gone

extension LinkRuntime {
    /// Hands an open, configured descriptor to a pipe channel. On failure the caller still owns it.
    func attachSerial(fd: CInt) -> EventLoopFuture<Void> {
        serialGeneration += 1
        let generation = serialGeneration
        return NIOPipeBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        SerialChannelHandler(runtime: self, generation: generation))
                }
            }
            .takingOwnershipOfDescriptor(inputOutput: fd)
            .map { channel in
                guard generation > self.lostGeneration, !self.shuttingDown else {
                    channel.close(promise: nil)
                    return
                }
                self.serial = SerialAttachment(channel: channel, fd: fd, generation: generation,
                                               reportsOutputQueue: !isPseudoTerminal(fd))
                self.pacer.reset(now: self.loop.linkNow)
                self.scheduleService()
            }
    }

    func serialRead(_ buffer: ByteBuffer, generation: Int) {
        guard generation == serial?.generation else { return }
        if logger.logLevel <= .trace {
            logger.trace("line in  \(buffer.readableBytes) B: \(hexDump(buffer.readableBytesView))")
        }
        let now = loop.linkNow
        buffer.withUnsafeReadableBytes { link.receive($0, now: now) }
        if frameTrace != nil { buffer.withUnsafeReadableBytes { traceFrames($0, inbound: true) } }
        scheduleService()
    }

    func serialFailed(error: Error, generation: Int) {
        guard generation == serialGeneration else { return }
        lastSerialError = "\(error)"
    }

    /// The device went away (EOF, EIO, hang-up): keep the streams (the core holds them for the
    /// grace period) and try to open the same path again with backoff.
    func serialGone(generation: Int) {
        guard generation == serialGeneration, generation > lostGeneration else { return }
        lostGeneration = generation
        serial = nil
        pacer.reset(now: loop.linkNow)
        topUpTask?.cancel()
        topUpTask = nil
        guard !shuttingDown else { return }
        if deviceGoneAt == nil {
            deviceGoneAt = loop.linkNow
            let why = " (\(lastSerialError ?? "the line hung up"))"
            logger.warning("""
                serial device \(configuration.devicePath) is gone\(why); holding \(link.streamCount) stream(s) \
                for up to \(configuration.gracePeriodSeconds) s and reopening it
                """)
        }
        lastSerialError = nil
        scheduleReopen()
    }

    private func scheduleReopen() {
        guard !shuttingDown, reconnectTask == nil else { return }
        let delay = reconnectDelay
        reconnectDelay = min(reconnectDelay * 2, LinkRuntime.maximumReconnectDelay)
        reconnectTask = loop.scheduleTask(in: delay) {
            self.reconnectTask = nil
            self.reopen()
        }
    }

    private func reopen() {
        guard !shuttingDown, serial == nil else { return }
        let port: SerialPort
        do {
            port = try SerialPort.open(path: configuration.devicePath, settings: configuration.serial)
        } catch {
            logger.debug("serial device still unavailable: \(error)")
            scheduleReopen()
            return
        }
        let fd = port.takeFileDescriptor()
        attachSerial(fd: fd).whenComplete { result in
            switch result {
            case .success:
                guard self.serial != nil else {
                    self.scheduleReopen()
                    return
                }
                let away = self.deviceGoneAt.map { self.loop.linkNow - $0 }
                self.deviceGoneAt = nil
                self.reconnectDelay = LinkRuntime.initialReconnectDelay
                let seconds = away.map { " after \((($0.seconds) * 10).rounded() / 10) s" } ?? ""
                self.logger.warning("serial device \(self.configuration.devicePath) is back\(seconds)")
            case .failure(let error):
                SerialPort.releaseExclusiveUse(fileDescriptor: fd)
                closeDescriptor(fd)
                self.logger.debug("serial device reopened but could not be attached: \(error)")
                self.scheduleReopen()
            }
        }
    }

    // MARK: Pacing

    /// What the driver says its output queue holds (TIOCOUTQ); 0 where it cannot say (a pty).
    func reportedQueue(_ attachment: SerialAttachment) -> Int {
        attachment.reportsOutputQueue ? ttyOutputQueueBytes(attachment.fd) : 0
    }

    /// Bytes queued below the core: in the serial channel, in the kernel's tty buffer or, where
    /// the driver cannot say, in the line as modelled from its rate.
    func queuedBelowCore(now: LinkTime, attachment: SerialAttachment) -> Int {
        pacer.queued(now: now, reported: reportedQueue(attachment))
    }

    /// Pulls bytes from the core for the line, as much as the pacer allows (`preferredQueueBelow`
    /// plus its slack) and no more: every byte queued in the kernel delays an urgent frame by a byte time, while
    /// frames are built just in time inside the core (docs/protocol.md §8.3).
    func transmit(now: LinkTime) {
        guard let serial, serial.channel.isActive else { return }
        // Not writable: NIO holds more than its high-water mark; the writability change calls back.
        guard serial.channel.isWritable else { return }
        var budget = pacer.budget(now: now, preferred: link.preferredQueueBelow, reported: reportedQueue(serial))
        var wrote = 0
        while budget > 0 {
            let chunk = link.pollTransmit(maxBytes: budget, now: now)
            if chunk.isEmpty { break }
            writeToSerial(chunk, attachment: serial)
            budget -= chunk.count
            wrote += chunk.count
        }
        if wrote > 0 { serial.channel.flush() }
        coreMayHaveMore = budget <= 0
        if coreMayHaveMore { armTopUp(now: now, attachment: serial) }
    }

    func writeToSerial(_ chunk: [UInt8], attachment: SerialAttachment) {
        if logger.logLevel <= .trace {
            logger.trace("line out \(chunk.count) B: \(hexDump(chunk))")
            if frameTrace != nil { chunk.withUnsafeBytes { traceFrames($0, inbound: false) } }
        }
        let count = chunk.count
        pacer.handedDown(count)
        let generation = attachment.generation
        let promise = loop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { result in
            guard generation == self.serial?.generation else { return }
            var succeeded = false
            if case .success = result { succeeded = true }
            self.pacer.written(count, succeeded: succeeded, now: self.loop.linkNow)
            // Unpaced, the kernel's buffer is the only limit, so its taking bytes is the cue to
            // write more. Paced, the top-up timer is: a pass per completion would spin, writing
            // the few bytes the line sent in the meantime.
            if self.lineRate == 0 && self.coreMayHaveMore { self.scheduleService() }
        }
        attachment.channel.write(attachment.channel.allocator.buffer(bytes: chunk), promise: promise)
    }

    /// NIO cannot say when the tty queue drains, so while the core has more to send, look again
    /// after a few milliseconds of line time: about when half the queue has gone out.
    private func armTopUp(now: LinkTime, attachment: SerialAttachment) {
        guard topUpTask == nil else { return }
        let delay = pacer.topUpDelay(now: now, preferred: link.preferredQueueBelow, reported: reportedQueue(attachment))
        topUpTask = loop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) {
            self.topUpTask = nil
            self.driver.runPass()
        }
    }
}

// MARK: - Decoded frame trace (-d 4)

extension LinkRuntime {
    /// Logs every whole frame in `bytes`, decoded (docs/protocol.md §2–5), one line each.
    func traceFrames(_ bytes: UnsafeRawBufferPointer, inbound: Bool) {
        guard var trace = frameTrace else { return }
        var index = 0
        while index < bytes.count {
            let outcome = inbound ? trace.inbound.decode(bytes, index: &index) : trace.outbound.decode(bytes, index: &index)
            guard let outcome else { break }
            let direction = inbound ? "line in  frame" : "line out frame"
            switch outcome {
            case .frame:
                let frame = inbound ? trace.inbound.frame : trace.outbound.frame
                logger.trace("\(direction): \(FrameDescription.describe(frame))")
            case .malformed:
                logger.trace("\(direction): junk (not a COBS frame)")
            case .oversize:
                logger.trace("\(direction): oversize frame")
            }
        }
        frameTrace = trace
    }
}
