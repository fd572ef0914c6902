import LinkCore
import Logging
import NIOCore

// MARK: - Service passes and the core's timer

extension LinkRuntime: LinkDriverDelegate {
    /// Asks the driver for a service pass soon (later in this loop iteration). Cheap to call often.
    func scheduleService() { driver.schedulePass() }

    /// One service pass (run by `driver`): acts on the core's events, moves bytes to the line,
    /// flushes sockets; the driver re-arms its timer for the deadline returned.
    func servicePass(now: LinkTime) -> LinkTime? {
        guard !stopped else { return nil }
        drainEvents(now: now)
        reportRefusedOpens()
        transmit(now: now)
        // Building frames can finish streams and free send space: act on that in another pass.
        if drainEvents(now: now) > 0 { scheduleService() }
        flushSockets()
        announceLinkUpIfDue()
        return link.nextDeadline
    }

    func deadlinePassed(now: LinkTime) {
        link.handleTimeout(now: now)
    }

    /// Handles every queued event; returns how many there were.
    @discardableResult
    func drainEvents(now: LinkTime) -> Int {
        var count = 0
        while let event = link.pollEvent() {
            count += 1
            handle(event, now: now)
        }
        return count
    }

    func flushSockets() {
        for connection in table.takeFlushList() where connection.needsFlush {
            connection.needsFlush = false
            connection.channel?.flush()
        }
    }

    // MARK: Events

    func handle(_ event: LinkEvent, now: LinkTime) {
        switch event {
        case .established(let peerSession, let peerRestarted):
            linkEstablished(peerSession: peerSession, peerRestarted: peerRestarted, now: now)
        case .versionMismatch(let version):
            peerSpeaks(version: version)
        case .roleConflict:
            peerHasSameRole()
        case .protectionMismatch(let why):
            peerProtectionDiffers(why)
        case .linkDown:
            linkWentDown(now: now)
        case .linkRestored:
            linkRestored(now: now)
        case .linkLost:
            linkLost(now: now)
        case .protocolViolation(let what):
            // A peer can break the protocol in every frame: the first per minute is a warning.
            logRepeatable("protocol-violation", "protocol violation by the peer: \(what)")
        case .streamOpened(let id, let target):
            streamOpened(id, target: target)
        case .openAccepted(let id):
            logger.debug("stream \(id) accepted by the peer")
            openAccepted(id)
        case .openRefused(let id, let reason):
            openRefused(id, reason: reason)
        case .received(let id, let bytes):
            deliver(bytes, on: id)
        case .remoteFinished(let id):
            remoteFinished(id)
        case .streamReset(let id, let reason):
            streamReset(id, reason: reason)
        case .streamClosed(let id):
            streamClosed(id)
        case .writable(let id):
            if let connection = table[id], let pending = connection.pendingToLink {
                offer(pending, from: connection)
            }
        case .listenRequested(let id, let bind, let port, let target):
            peerWantsListener(id, bind: bind, port: port, target: target)
        case .listenAccepted(let id, let port):
            remoteForwardAccepted(id, port: port)
        case .listenRefused(let id, let reason):
            remoteForwardRefused(id, reason: reason)
        case .listenCancelled(let id):
            peerListenerCancelled(id)
        }
    }

    /// The core refuses every OPEN beyond --max-streams, and every LISTEN beyond the listeners a
    /// peer may hold, itself, without asking (§5.3, §5.6): one line says so, a warning at most
    /// once a minute, so a flood of them cannot flood the log.
    func reportRefusedOpens() {
        let stats = link.statistics
        reportNewRefusals(stats.refusedTooMany, since: &reportedRefusedOpens, key: "too-many-streams") { new, all in
            "the peer opened more streams than --max-streams \(configuration.maxStreams) allows at once; refused \(new) as too many (\(all) so far)"
        }
        reportNewRefusals(stats.refusedListensTooMany, since: &reportedRefusedListens, key: "listen-too-many") { new, all in
            """
            the peer asked this end to listen for more than the \(link.maxPeerListens) listeners it may \
            hold at once (-R); refused \(new) as too many (\(all) so far)
            """
        }
    }

    /// One repeatable line when `count` has grown since `reported`, which it then becomes.
    private func reportNewRefusals(_ count: Int, since reported: inout Int, key: String,
                                   _ message: (_ new: Int, _ all: Int) -> String) {
        guard count > reported else {
            reported = count  // a new core counts from 0
            return
        }
        let new = count - reported
        reported = count
        logRepeatable(key, message(new, count), event: .refused)
    }

    // MARK: Statistics log

    /// Logs a line of link statistics at debug level when something beyond keepalives changed.
    func logStatisticsIfChanged() {
        let s = link.statistics
        func significant(_ s: LinkStatistics) -> [Int] {
            [s.payloadBytesSent, s.payloadBytesReceived, s.retransmissions, s.crcErrors, s.unauthenticatedFrames, s.malformedFrames,
             s.oversizeFrames, s.duplicateFrames, s.protocolViolations, s.streamsOpened, s.streamsAccepted,
             s.peerRestarts]
        }
        guard significant(s) != significant(lastLoggedStatistics) else { return }
        let previous = lastLoggedStatistics
        lastLoggedStatistics = s
        guard logger.logLevel <= .debug else { return }
        let rtt = (s.smoothedRTTMilliseconds * 10).rounded() / 10
        logger.debug("""
            link: \(linkState), \(link.streamCount) stream(s); \
            sent \(s.payloadBytesSent) B payload in \(s.framesSent) frames (\(s.lineBytesSent) B on the line), \
            received \(s.payloadBytesReceived) B in \(s.framesReceived) frames (\(s.lineBytesReceived) B); \
            retransmits \(s.retransmissions) (+\(s.retransmissions - previous.retransmissions), \
            \(s.timeoutRetransmissions) on timeout), CRC errors \(s.crcErrors) (+\(s.crcErrors - previous.crcErrors)), \
            \(s.unauthenticatedFrames > 0 ? "frames failing the key \(s.unauthenticatedFrames) (+\(s.unauthenticatedFrames - previous.unauthenticatedFrames)), " : "")\
            malformed \(s.malformedFrames), duplicates \(s.duplicateFrames), RTT \(rtt) ms, \
            frame target \(s.currentFrameTarget) B\(compressionSummary(s))
            """)
    }

    /// Warns, at every verbosity, when frames have failed the key since the last report. With a
    /// key, noise is caught by the CRC, so a frame that passes the CRC and not the tag was made
    /// by someone (§11.3). Called with the statistics line (every 5 s) and once at shutdown, so
    /// a burst costs one line, and the last line's count "in all" is the end's total.
    func reportUnauthenticatedFrames() {
        let total = link.statistics.unauthenticatedFrames
        guard total > reportedUnauthenticatedFrames else { return }
        let new = total - reportedUnauthenticatedFrames
        reportedUnauthenticatedFrames = total
        logger.warning("""
            frames failing the key: \(new) new, \(total) in all (altered on the line, replayed, or sent by a \
            device with another key); each was dropped unread
            """)
    }

    /// ", compressed 120000 → 31000 B sent, 5000 → 1400 B received" once anything was.
    func compressionSummary(_ s: LinkStatistics) -> String {
        guard s.compressedPayloadBytesSent + s.compressedPayloadBytesReceived > 0 else { return "" }
        return ", compressed \(s.compressedPayloadBytesSent) → \(s.compressedBytesSent) B sent, "
            + "\(s.compressedPayloadBytesReceived) → \(s.compressedBytesReceived) B received"
    }
}
