import LinkCore
import Logging
import NIOCore
import NIOPosix
import SerialPort

// MARK: - The serial line's events, and pacing writes (the line itself is SerialLine.swift)

extension LinkRuntime: SerialLineDelegate {
    func line(received buffer: ByteBuffer, now: LinkTime) {
        if logger.logLevel <= .trace {
            logger.trace("line in  \(buffer.readableBytes) B: \(hexDump(buffer.readableBytesView))")
        }
        buffer.withUnsafeReadableBytes { link.receive($0, now: now) }
        if frameTrace != nil { buffer.withUnsafeReadableBytes { traceFrames($0, inbound: true) } }
        scheduleService()
    }

    func lineWantsService() { scheduleService() }

    func lineTookBytes() {
        if coreMayHaveMore { scheduleService() }
    }

    /// Keep the streams (the core holds them for the grace period); the line reopens the path.
    func lineGone(why: String) {
        topUpTask?.cancel()
        topUpTask = nil
        logger.warning("""
            serial device \(configuration.devicePath) is gone (\(why)); holding \(link.streamCount) stream(s) \
            for up to \(configuration.gracePeriodSeconds) s and reopening it
            """)
    }

    func lineBack(after away: LinkDuration?) {
        let seconds = away.map { " after \((($0.seconds) * 10).rounded() / 10) s" } ?? ""
        logger.warning("serial device \(configuration.devicePath) is back\(seconds)")
    }

    // MARK: Pacing

    /// Pulls bytes from the core for the line, as much as the pacer allows (`preferredQueueBelow`
    /// plus its slack) and no more: every byte queued in the kernel delays an urgent frame by a
    /// byte time, while frames are built just in time inside the core (docs/protocol.md §8.3).
    func transmit(now: LinkTime) {
        guard serial.isAttached else { return }
        let reported = serial.reportedQueue()
        var budget = serial.budget(now: now, preferred: link.preferredQueueBelow, reported: reported,
                                   interactive: link.isInteractive(at: now))
        var wrote = 0
        while budget > 0 {
            let chunk = link.pollTransmit(maxBytes: budget, now: now)
            if chunk.isEmpty { break }
            writeToSerial(chunk)
            budget -= chunk.count
            wrote += chunk.count
        }
        if wrote > 0 { serial.flush() }
        coreMayHaveMore = budget <= 0
        if coreMayHaveMore { armTopUp(now: now, reported: reported) }
    }

    func writeToSerial(_ chunk: [UInt8]) {
        if logger.logLevel <= .trace {
            logger.trace("line out \(chunk.count) B: \(hexDump(chunk))")
            if frameTrace != nil { chunk.withUnsafeBytes { traceFrames($0, inbound: false) } }
        }
        serial.write(chunk)
    }

    /// NIO cannot say when the tty queue drains, so while the core has more to send, look again
    /// after a few milliseconds of line time: about when half the queue has gone out.
    private func armTopUp(now: LinkTime, reported: Int) {
        guard topUpTask == nil else { return }
        let delay = serial.topUpDelay(now: now, preferred: link.preferredQueueBelow, reported: reported,
                                      interactive: link.isInteractive(at: now))
        topUpTask = loop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) {
            self.topUpTask = nil
            self.driver.runPass()
        }
    }
}

// MARK: - Decoded frame trace (-d 4)

extension LinkRuntime {
    /// Logs every whole frame in `bytes`, decoded by the wire's own tracer, one line each.
    func traceFrames(_ bytes: UnsafeRawBufferPointer, inbound: Bool) {
        guard var trace = frameTrace else { return }
        let lines = inbound ? trace.inbound.describe(bytes) : trace.outbound.describe(bytes)
        let direction = inbound ? "line in  frame" : "line out frame"
        for line in lines { logger.trace("\(direction): \(line)") }
        frameTrace = trace
    }
}
