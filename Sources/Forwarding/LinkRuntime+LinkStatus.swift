#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LinkCore
import Logging
import NIOCore

// MARK: - What the link is doing, said at the default level (-d 0)

/// The lines a user sees without asking for more: the link coming up (with its RTT), going down,
/// recovering, being lost, and why there is no link at all. They are logged at `notice` (the
/// default level shows them) or `warning`; anything per connection stays at `info` (-d 1).
extension LinkRuntime {
    func linkEstablished(peerSession: UInt64, peerRestarted: Bool, now: LinkTime) {
        let wasDownFor = noLinkSince.map { now - $0.at }
        linkState = .up
        noLinkSince = nil
        peerProblem = nil
        linkDownAt = nil
        reportedLinkWaitThisOutage = false
        linkIsUpForWaiters()
        requestRemoteForwards()
        if peerRestarted {
            logger.warning("""
                link up again: the peer on \(configuration.devicePath) restarted (new session \
                \(String(peerSession, radix: 16))); the streams it had were reset
                """, metadata: ActivityKind.linkUp.metadata)
            return
        }
        logger.debug("link established (peer session \(String(peerSession, radix: 16)))",
                     metadata: wasDownFor.map { ["after": "\(Self.seconds($0)) s"] })
        // The core sends a PING at once (docs/protocol.md §9); the line waits for its answer, or
        // at most a second, so that it can say how far away the peer is.
        linkUpAnnouncementDue = now
        linkUpAnnouncementTask?.cancel()
        linkUpAnnouncementTask = loop.scheduleTask(in: .seconds(1)) {
            self.linkUpAnnouncementTask = nil
            self.announceLinkUpIfDue(force: true)
        }
    }

    /// Logs "link up" once the first RTT sample is in (called on every service pass).
    func announceLinkUpIfDue(force: Bool = false) {
        guard linkUpAnnouncementDue != nil, linkState == .up else { return }
        let rtt = link.statistics.smoothedRTTMilliseconds
        let wire = link.wire
        guard rtt > 0 || force || !wire.provesPeer else { return }
        linkUpAnnouncementDue = nil
        linkUpAnnouncementTask?.cancel()
        linkUpAnnouncementTask = nil
        guard wire.provesPeer else {
            // No handshake: nothing is known of the far end, and the line must not claim it is.
            logger.notice("line ready on \(configuration.devicePath), \(wire.name) wire\(wire.limits.map { "; \($0)" } ?? "")",
                          metadata: ActivityKind.linkUp.metadata)
            return
        }
        let measured = rtt > 0 ? "RTT \(Self.milliseconds(rtt)) ms" : "RTT not measured yet"
        let sealed = switch configuration.protection?.mode {
        case .encrypt: ", encrypted (the peer proved the key)"
        case .authenticate: ", authenticated, not encrypted (the peer proved the key)"
        case nil: ""
        }
        logger.notice("link up: peer found on \(configuration.devicePath), \(measured)\(sealed)", metadata: ActivityKind.linkUp.metadata)
    }

    func linkWentDown(now: LinkTime) {
        linkState = .down
        linkDownAt = now
        noLinkSince = (now, wallClockTime())
        logger.warning("""
            link down: nothing heard from the peer on \(configuration.devicePath); holding \
            \(link.streamCount) stream(s) for up to \(Self.seconds(configuration.gracePeriodSeconds)) s
            """, metadata: ActivityKind.linkDown.metadata)
    }

    func linkRestored(now: LinkTime) {
        linkState = .up
        let after = linkDownAt.map { " after \(Self.seconds($0, now)) s" } ?? ""
        linkDownAt = nil
        noLinkSince = nil
        reportedLinkWaitThisOutage = false
        linkIsUpForWaiters()
        logger.notice("link restored\(after): the peer on \(configuration.devicePath) is back; nothing was lost",
                      metadata: ActivityKind.linkRestored.metadata)
    }

    func linkLost(now: LinkTime) {
        linkState = .handshaking
        linkDownAt = nil
        if noLinkSince == nil { noLinkSince = (now, wallClockTime()) }
        logger.warning("""
            link lost: the peer on \(configuration.devicePath) stayed silent past the grace period \
            (\(Self.seconds(configuration.gracePeriodSeconds)) s); its streams were reset
            """, metadata: ActivityKind.linkLost.metadata)
    }

    func peerHasSameRole() {
        let role = configuration.form.rawValue
        let other = configuration.form == .server ? "C" : "S"
        peerProblem = "the peer on \(configuration.devicePath) is also \(role)"
        logger.warning("""
            the peer on \(configuration.devicePath) is also \(role): one end must be S and the other C; \
            start it as \(other)
            """)
    }

    func peerSpeaks(version: UInt8) {
        peerProblem = "the peer on \(configuration.devicePath) speaks protocol version \(version), this end 1"
        logger.warning("""
            the peer on \(configuration.devicePath) speaks protocol version \(version) and this end \
            version 1: nothing can be exchanged; run the same version of socket2ser on both ends
            """)
    }

    /// One line, once per kind: the keys or modes differ, so nothing is exchanged (§11.1).
    func peerProtectionDiffers(_ why: ProtectionMismatch) {
        let mine = configuration.protection.map { "--protect \($0.mode)" } ?? "no key"
        peerProblem = "\(why) on \(configuration.devicePath) (this end: \(mine))"
        let fix = switch why {
        case .peerHasNoKey, .peerHasKey: "give both ends the same --key-file, or neither"
        case .differentKey: "give both ends the same key file"
        case .differentMode: "use the same --protect at both ends"
        }
        logger.error("\(why) on \(configuration.devicePath) (this end: \(mine)): nothing is exchanged; \(fix)")
    }

    /// Why there is no link, for a message: "no peer on /dev/ttyUSB0 since 12:03:01 UTC".
    var whyNoLink: String {
        if let peerProblem { return peerProblem }
        if !serial.isAttached, let gone = serial.goneSince {
            return "the serial device \(configuration.devicePath) is gone (for \(Self.seconds(gone, loop.linkNow)) s)"
        }
        let since = noLinkSince.map { " since \($0.wallClock)" } ?? ""
        return "no peer on \(configuration.devicePath)\(since)"
    }
}

// MARK: - A bounded wait for the link

extension LinkRuntime {
    /// A connection accepted while the link is not up waits for it at most
    /// `effectiveLinkWaitSeconds`; then it is reset, so its client neither hangs nor takes the end
    /// for a reply. The wait costs no line bytes: before the handshake the connection has no
    /// stream at all, and while the link is down a stream reset before its OPEN left is forgotten
    /// without a word (docs/protocol.md §5.5).
    func startWaitingForLink(_ waiter: LinkWaiter) {
        let wait = LinkDuration.seconds(configuration.effectiveLinkWaitSeconds)
        waitingForLink.append((waiter, loop.linkNow + wait))
        armLinkWait()
    }

    /// The link is up: connections that waited without a stream get one now, in the order they
    /// came; those that had one simply stop counting down.
    func linkIsUpForWaiters() {
        let waiting = waitingForLink
        stopWaitingForLink()
        for entry in waiting {
            if case .unopened(let accepted) = entry.waiter { openStream(for: accepted) }
        }
    }

    private func armLinkWait() {
        guard linkWaitTask == nil, let first = waitingForLink.first else { return }
        linkWaitTask = loop.scheduleTask(deadline: NIODeadline(first.deadline)) {
            self.linkWaitTask = nil
            self.linkWaitExpired()
        }
    }

    func stopWaitingForLink() {
        waitingForLink.removeAll()
        linkWaitTask?.cancel()
        linkWaitTask = nil
    }

    private func linkWaitExpired() {
        guard !shuttingDown else { return }
        let now = loop.linkNow
        var expired: [LinkWaiter] = []
        while let first = waitingForLink.first, first.deadline <= now {
            waitingForLink.removeFirst()
            if first.waiter.isStillWaiting { expired.append(first.waiter) }
        }
        if linkState != .up && !expired.isEmpty {
            let waited = Self.seconds(configuration.effectiveLinkWaitSeconds)
            let why = whyNoLink
            for waiter in expired {
                switch waiter {
                case .unopened(let accepted):
                    if accepted.socks {
                        replyAndClose(accepted.channel, .networkUnreachable)  // there is no link
                    } else {
                        abort(accepted.channel)
                    }
                    logger.info("connection from \(accepted.peerDescription) reset: waited \(waited) s for the link; \(why)")
                case .opened(let connection):
                    connection.closeReason = "no link after \(waited) s: \(why)"
                    try? link.reset(connection.id, reason: .aborted)
                    streamEnded(connection)
                    if let channel = connection.channel { abort(channel) }
                    releaseIfDone(connection)
                    logger.info("""
                        stream \(connection.id) from \(connection.peerDescription) reset: waited \(waited) s for the \
                        link; \(why)
                        """)
                }
            }
            if !reportedLinkWaitThisOutage {
                reportedLinkWaitThisOutage = true
                logger.warning("""
                    \(why): reset \(expired.count) connection(s) that waited \(waited) s for the link \
                    (later ones are logged at -d 1)
                    """)
            }
            scheduleService()
        }
        armLinkWait()
    }
}

// MARK: - Repeated warnings

extension LinkRuntime {
    /// How long a repeated warning stays at -d 1 before it may show at the default level again.
    static let repeatedWarningInterval = LinkDuration.seconds(60)

    /// Logs a problem that concerns one connection: as a warning (or `level`) the first time in
    /// a minute (for that `key`), and at info (-d 1) while it repeats, so that a client retrying
    /// in a loop, or a hostile peer, cannot flood the log.
    func logRepeatable(_ key: String, _ message: @autoclosure () -> String, event: ActivityKind? = nil,
                       level: Logger.Level = .warning) {
        let now = loop.linkNow
        if let last = lastWarnings[key], now - last < Self.repeatedWarningInterval {
            logger.info("\(message())", metadata: event?.metadata)
            return
        }
        lastWarnings[key] = now
        if lastWarnings.count > 1_000 { lastWarnings = [key: now] }
        logger.log(level: level, "\(message())", metadata: event?.metadata)
    }

    /// Lets warnings whose key starts with `prefix` show again, e.g. once a target answers.
    func forgetRepeatable(prefix: String) {
        guard !lastWarnings.isEmpty else { return }
        for key in lastWarnings.keys where key.hasPrefix(prefix) { lastWarnings[key] = nil }
    }
}

// MARK: - Formatting

extension LinkRuntime {
    /// Seconds with at most one decimal: "10", "4.2".
    static func seconds(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? "\(Int(rounded))" : "\(rounded)"
    }

    static func seconds(_ from: LinkTime, _ to: LinkTime) -> String { seconds((to - from).seconds) }

    static func seconds(_ duration: LinkDuration) -> String { seconds(duration.seconds) }

    /// Milliseconds with one decimal: "4.3".
    static func milliseconds(_ value: Double) -> String { "\((value * 10).rounded() / 10)" }
}

/// The time of day in UTC, "12:03:01 UTC", as the log's own timestamps are in UTC.
func wallClockTime() -> String {
    var seconds = time(nil)
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func pad(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
    return "\(pad(parts.tm_hour)):\(pad(parts.tm_min)):\(pad(parts.tm_sec)) UTC"
}
