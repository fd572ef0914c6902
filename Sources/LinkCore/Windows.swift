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
/// up to the window's size.
///
/// After swift-nio-ssh's `ChildChannelWindowManager`: consuming says whether a grant is due, and
/// the grant itself is taken when the CREDIT goes into a frame.
struct ReceiveWindow: Sendable, Equatable {
    let size: Int
    private(set) var remaining: Int
    private(set) var unconsumed = 0
    private(set) var pendingGrant = 0

    init(size: Int) {
        self.size = size
        remaining = size
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
        pendingGrant += taken
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
