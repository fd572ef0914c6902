// MARK: - The link's own state (docs/protocol.md §3, §4.2, §9)

/// Where this end is with its peer. Handshaking until the peer's HELLO echoes this end's session
/// ID; then established, and either alive or silent (nothing heard for the silence timeout,
/// `.linkDown` reported) until the session ends.
enum SessionState: Sendable, Equatable {
    /// The peer has not confirmed this end's session yet. `peer`: its last HELLO, if any: kept
    /// across a session's end, so that a HELLO with another session ID shows a restart (§3.3).
    case handshaking(peer: Hello?)
    /// Both ends know each other's session.
    case established(peer: Hello, liveness: Liveness)

    enum Liveness: Sendable, Equatable {
        case alive
        /// Nothing heard for the silence timeout; the streams are held for the grace period.
        case silent
    }

    var peer: Hello? {
        switch self {
        case .handshaking(let peer): return peer
        case .established(let peer, _): return peer
        }
    }

    var isEstablished: Bool {
        if case .established = self { return true }
        return false
    }

    var isSilent: Bool {
        if case .established(_, .silent) = self { return true }
        return false
    }

    /// A HELLO from the peer. Returns true if it completed the handshake.
    mutating func helloReceived(_ hello: Hello, ourSession: UInt64, mayEstablish: Bool = true) -> Bool {
        switch self {
        case .handshaking:
            if mayEstablish && hello.echo == ourSession {
                self = .established(peer: hello, liveness: .alive)
                return true
            }
            self = .handshaking(peer: hello)
        case .established(_, let liveness):
            // The same session repeating itself (a retried HELLO): still established.
            self = .established(peer: hello, liveness: liveness)
        }
        return false
    }

    /// A valid frame from the peer. Returns true if that ended a silence.
    mutating func heard() -> Bool {
        guard case .established(let peer, .silent) = self else { return false }
        self = .established(peer: peer, liveness: .alive)
        return true
    }

    /// The silence timeout passed. Returns true if the link was alive until now.
    mutating func silenceDetected() -> Bool {
        guard case .established(let peer, .alive) = self else { return false }
        self = .established(peer: peer, liveness: .silent)
        return true
    }

    /// The session ended (a restart, or the grace period ran out): handshake again.
    mutating func ended() { self = .handshaking(peer: peer) }
}

/// What this end owes the peer in acknowledgements (§4.2).
enum AckDebt: Sendable, Equatable {
    /// Every frame received has been acknowledged in a trailer.
    case none
    /// Frames came since the last trailer. A standalone acknowledgement waits a moment after
    /// `since`, so that a reply, if one comes, carries it instead.
    case owed(since: LinkTime)
    /// A gap was seen: the peer should learn of it soon, even at the cost of a shorter frame.
    case urgent

    /// A sequenced frame or fragment arrived.
    mutating func frameArrived(now: LinkTime) {
        if case .none = self { self = .owed(since: now) }
    }

    /// A frame arrived ahead of a gap.
    mutating func gapSeen() { self = .urgent }

    /// A trailer carried the acknowledgement.
    mutating func paid() { self = .none }

    var isUrgent: Bool { self == .urgent }

    /// When a standalone acknowledgement is due, if one is owed.
    func deadline(delay: LinkDuration) -> LinkTime? {
        switch self {
        case .none: return nil
        case .owed(let since): return since + delay
        case .urgent: return .zero
        }
    }
}

/// What became of a sequenced frame on the line (§4).
enum Fate: Sendable, Equatable {
    /// Sent, and neither acknowledged nor known to be lost.
    case inFlight
    /// Known or presumed lost: it goes again at the next chance.
    case lost
    /// Acknowledged selectively (SACK); it stays outstanding until the cumulative
    /// acknowledgement passes it.
    case acked
}
