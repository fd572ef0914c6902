// MARK: - Flow-control windows (docs/protocol.md §6)

/// The credit the peer has granted this end on one stream: how many more bytes of DATA it may
/// send there. Spent as DATA goes into frames, refilled by the peer's CREDIT.
struct SendWindow: Sendable, Equatable {
    private(set) var credit: Int

    init(credit: Int) { self.credit = credit }

    /// `n` bytes went into DATA (or into the compressor, whose output is then free, §5.7).
    mutating func spend(_ n: Int) {
        precondition(n <= credit, "spent more than the peer's credit")
        credit -= n
    }

    /// The peer's CREDIT. False, and nothing changes, if the window would pass 2^31 − 1 bytes:
    /// the peer broke the rules (§6).
    mutating func grant(_ increment: UInt32) -> Bool {
        let (sum, overflow) = credit.addingReportingOverflow(Int(increment))
        guard !overflow, sum <= Int(Int32.max) else { return false }
        credit = sum
        return true
    }

    /// A stream opened before the handshake gets the peer's initial window once its HELLO is in.
    mutating func addInitial(_ window: Int) { credit += window }
}

/// The credit this end has granted the peer on one stream, and where the bytes it let in are
/// (§6). `remaining` may still arrive; `unconsumed` arrived and the application has not
/// consumed them yet; `pendingGrant` were consumed and are not granted back yet. The three add
/// up to the window's size, plus `debt` after a shrink: consumed bytes not granted back, because
/// credit already given cannot be taken back.
///
/// The size adapts (§6.1): it grows while the peer is held back by it and the application keeps
/// up (a long round trip), and shrinks back to `base` when the application stops consuming.
///
/// After swift-nio-ssh's `ChildChannelWindowManager`: consuming says whether a grant is due, and
/// the grant itself is taken when the CREDIT goes into a frame.
struct ReceiveWindow: Sendable, Equatable {
    /// The size a stream starts with, and returns to when its reader stalls.
    let base: Int
    private(set) var size: Int
    private(set) var remaining: Int
    private(set) var unconsumed = 0
    private(set) var pendingGrant = 0
    private(set) var debt = 0
    /// When the last CREDIT went out.
    private(set) var lastGrantAt: LinkTime?

    init(size: Int) {
        base = size
        self.size = size
        remaining = size
    }

    /// A CREDIT went out at `now`. Grants go out as the application consumes, a quarter of the
    /// window at a time; if this one follows the last by less than two round trips, the reader
    /// keeps up and a window's worth takes less than a round trip or so to arrive: the window,
    /// not the reader, holds the peer back (a long round trip). Then the window grows by half,
    /// up to `limit`, and the extra credit goes out with the next grant. Returns whether it grew.
    /// (The receiver cannot see the credit still on its way to the peer, so it judges by how
    /// often it grants, as QUIC receivers do.)
    mutating func grantSent(at now: LinkTime, roundTrip: LinkDuration?, limit: Int) -> Bool {
        defer { lastGrantAt = now }
        guard let last = lastGrantAt, let roundTrip, size < limit, now - last < roundTrip * 2 else { return false }
        let grown = min(limit, size + size / 2)
        pendingGrant += grown - size
        size = grown
        return true
    }

    /// The application is not keeping up (half the window waits for it): back to `base`. What the
    /// peer was already granted stays granted; consumption pays the difference off first.
    /// Returns whether it shrank.
    mutating func shrinkIfStalled() -> Bool {
        guard size > base, unconsumed >= size / 2 else { return false }
        var excess = size - base
        let absorbed = min(pendingGrant, excess)
        pendingGrant -= absorbed
        excess -= absorbed
        debt += excess
        size = base
        return true
    }

    /// `n` bytes arrived. False, and nothing changes, if they exceed the credit granted.
    mutating func receive(_ n: Int) -> Bool {
        guard n <= remaining else { return false }
        remaining -= n
        unconsumed += n
        return true
    }

    /// The application consumed up to `n` bytes; returns how many it really had unconsumed.
    mutating func consume(_ n: Int) -> Int {
        let taken = min(n, unconsumed)
        unconsumed -= taken
        let paid = min(debt, taken)
        debt -= paid
        pendingGrant += taken - paid
        return taken
    }

    /// A quarter of the window has been consumed: a CREDIT is worth its line bytes.
    var grantDue: Bool { pendingGrant >= max(1, size / 4) }

    /// The increment a CREDIT sent now carries, or nil if nothing was consumed.
    var increment: UInt32? { pendingGrant > 0 ? UInt32(min(pendingGrant, Int(UInt32.max))) : nil }

    /// The CREDIT carrying `increment` went into a frame: the peer may send that much more.
    mutating func granted(_ increment: UInt32) {
        let n = Int(increment)
        pendingGrant -= n
        remaining += n
    }
}
