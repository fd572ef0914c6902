// MARK: - Time (docs/protocol.md §4.5, §9)

extension Link {
    /// The earliest time `handleTimeout(now:)` has something to do, or nil.
    public var nextDeadline: LinkTime? {
        var d: LinkTime?
        func consider(_ t: LinkTime?) {
            guard let t else { return }
            if d == nil || t < d! { d = t }
        }
        guard isEstablished else {
            if !helloReplyOwed { consider((lastHelloSentAt ?? .zero) + configuration.helloInterval) }
            return d
        }
        if case .owed(let since) = ackDebt { consider(since + acknowledgementDelay) }
        if let i = oldestUnacknowledged { consider(retransmissionDeadline(of: outstanding[i])) }
        consider(tailProbeDeadline)
        if let heard = lastHeardAt {
            if !pingDue {
                let base = max(heard, lastPingSentAt ?? heard)
                consider(base + configuration.keepaliveInterval)
            }
            if !state.isSilent { consider(heard + configuration.silenceTimeout) }
            consider(heard + configuration.gracePeriod)
        }
        return d
    }

    var oldestUnacknowledged: Int? {
        outstanding.firstIndex(where: { $0.fate == .inFlight })
    }

    /// RTO for a frame: measured RTT plus the line time of the frame itself, of the queue below
    /// and of one peer frame (the acknowledgement rides in its trailer), doubled per consecutive timeout up to a cap, so that after an outage the line is
    /// probed at least every two seconds (§4.5).
    func retransmissionDeadline(of frame: SentFrame) -> LinkTime {
        let base = rtt.baseRTO + lineTime(frame.lineBytes + queueBelow + peerFrameAllowance)
        let cap = max(LinkDuration.seconds(2), base)
        var rto = base
        for _ in 0..<min(rtoBackoff, 8) { rto = min(rto * 2, cap) }
        return frame.lastSentAt + rto
    }

    /// When to send a PING whose PONG tells which frames of the last burst were lost (§4.3):
    /// the newest frame in flight, sent after the last PING, is still unacknowledged one RTO
    /// after it left, not counting the peer's frames. Its acknowledgement may merely wait
    /// behind a long peer frame; then the probe costs a few bytes. The full retransmission
    /// still waits for the RTO, which does count them.
    var tailProbeDeadline: LinkTime? {
        guard !pingDue, let newest = outstanding.last(where: { $0.fate == .inFlight }),
              newest.transmission > pingTransmission,
              !outstanding.contains(where: { $0.fate == .lost }) else { return nil }
        return newest.lastSentAt + rtt.baseRTO + lineTime(newest.lineBytes + queueBelow)
    }

    /// Runs whatever timers are due at `now`: handshake retries, retransmission, keepalive,
    /// silence and the grace period.
    public mutating func handleTimeout(now: LinkTime) {
        guard isEstablished else {
            if now >= (lastHelloSentAt ?? .zero) + configuration.helloInterval { helloReplyOwed = true }
            return
        }
        if let i = oldestUnacknowledged, now >= retransmissionDeadline(of: outstanding[i]) {
            // A timer is a guess, to be proven by a PING's PONG before it counts as a bit error
            // (§8.2). Silence is an outage, and no PONG comes.
            markLost(i, proven: false, now: now)
            rtoBackoff += 1
            statistics.timeoutRetransmissions += 1
        }
        if let due = tailProbeDeadline, now >= due {
            pingDue = true
            statistics.tailProbes += 1
        }
        guard let heard = lastHeardAt else { return }
        if now >= max(heard, lastPingSentAt ?? heard) + configuration.keepaliveInterval { pingDue = true }
        if now >= heard + configuration.silenceTimeout && state.silenceDetected() {
            events.append(.linkDown)
        }
        if now >= heard + configuration.gracePeriod {
            // The peer stayed away too long. Reset everything and start a new session, so the
            // peer (if it returns) resets its side too instead of resuming stale sequence state.
            resetSession(reason: .linkLost, now: now)
            events.append(.linkLost)
            session = newSessionID()
            lastHeardAt = nil
            helloReplyOwed = true
        }
    }
}
