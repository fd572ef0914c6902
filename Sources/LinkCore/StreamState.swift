// MARK: - One stream's state (docs/protocol.md §5–6)

/// Where a stream is in its opening handshake (§5.3).
enum Opening: Sendable, Equatable {
    /// This end opened it and its OPEN waits for a frame: the peer knows nothing of it yet.
    case openQueued(target: String)
    /// Our OPEN is in a frame and neither OPEN-OK nor OPEN-REFUSED has come. Data may follow
    /// the OPEN already.
    case openSent
    /// The peer opened it; the application has not accepted or refused it yet.
    case awaitingAccept
    /// Accepted here; the OPEN-OK waits for a frame, and our data waits behind it.
    case acceptQueued
    /// Open at both ends.
    case open
}

/// This end's sending direction.
enum Outbound: Sendable, Equatable {
    /// The application may queue more; the window is the peer's credit.
    case sending(SendWindow)
    /// The application finished: FIN goes once the buffer has drained.
    case finishing(SendWindow)
    /// FIN is in a frame; nothing more is sent on the stream.
    case finished

    var window: SendWindow? {
        switch self {
        case .sending(let w), .finishing(let w): return w
        case .finished: return nil
        }
    }

    /// Changes the send window where it is, sending or finishing; nil once finished.
    mutating func withWindow<R>(_ body: (inout SendWindow) -> R) -> R? {
        switch self {
        case .sending(var w):
            let result = body(&w)
            self = .sending(w)
            return result
        case .finishing(var w):
            let result = body(&w)
            self = .finishing(w)
            return result
        case .finished:
            return nil
        }
    }
}

/// The peer's sending direction.
enum Inbound: Sendable {
    /// Data may come within the window; the decompressor exists once compressed data came (§5.7).
    case receiving(ReceiveWindow, inflater: StreamInflater?)
    /// The peer's FIN came. `unconsumed` of what it sent before are not consumed yet.
    case finished(unconsumed: Int)

    var unconsumed: Int {
        switch self {
        case .receiving(let w, _): return w.unconsumed
        case .finished(let n): return n
        }
    }
}

/// What a stream message from the peer means for the stream it names (§5). Decided in one
/// place, `StreamState`'s `peer…` methods, so that a message out of order is a violation and one
/// that merely crossed a RESET or a refusal is dropped without fuss.
enum PeerMessageVerdict: Sendable, Equatable {
    /// Applied to the stream.
    case applied
    /// Harmless and ignored: it crossed something this end sent.
    case ignored
    /// The peer broke the protocol on this stream: it is reset.
    case violation(String)
    /// More data than the credit this end granted: the stream is reset (`.creditExceeded`).
    case creditExceeded
}

/// One stream's state: lifecycle, send buffer and credit in each direction (§5–6).
struct StreamState: Sendable {
    let id: StreamID
    let locallyInitiated: Bool
    private(set) var opening: Opening
    private(set) var outbound: Outbound
    private(set) var inbound: Inbound

    /// Queued by the application, not yet in a frame. Mutated in place through the stream table,
    /// never through a copy of the state (which would copy the buffer).
    var sendBuffer = ByteQueue()
    /// Plain or through a compressor, and the compressed bytes waiting (§5.7).
    var compression = SendCompression.eligible

    // Scheduling hints, owned by the stream table (§8.1).
    /// `send` refused bytes; tell the application when there is room again.
    var sendBlocked = false
    var inActiveList = false
    var deficit = 0
    var creditQueued = false

    /// A stream this end opens, to `target`.
    init(opening id: StreamID, target: String, peerWindow: Int, receiveWindow: Int) {
        self.id = id
        locallyInitiated = true
        opening = .openQueued(target: target)
        outbound = .sending(SendWindow(credit: peerWindow))
        inbound = .receiving(ReceiveWindow(size: receiveWindow), inflater: nil)
    }

    /// A stream the peer opened.
    init(openedByPeer id: StreamID, peerWindow: Int, receiveWindow: Int) {
        self.id = id
        locallyInitiated = false
        opening = .awaitingAccept
        outbound = .sending(SendWindow(credit: peerWindow))
        inbound = .receiving(ReceiveWindow(size: receiveWindow), inflater: nil)
    }

    // MARK: Derived

    /// The peer has heard of this stream, or will from a frame already built.
    var peerKnowsOf: Bool {
        if case .openQueued = opening { return false }
        return true
    }

    /// Our OPEN or OPEN-OK is in a frame, so DATA and FIN may follow it.
    var openEmitted: Bool { opening == .openSent || opening == .open }

    /// The OPEN this stream still has to send, if it waits for one.
    var queuedOpenTarget: String? {
        if case .openQueued(let target) = opening { return target }
        return nil
    }

    var sendCredit: Int { outbound.window?.credit ?? 0 }
    /// Plain bytes that may go now: buffered, and within the peer's credit.
    var plainSendable: Int { min(sendBuffer.count, sendCredit) }
    var finQueued: Bool {
        if case .sending = outbound { return false }
        return true
    }
    var finSent: Bool { outbound == .finished }
    var finReceived: Bool {
        if case .finished = inbound { return true }
        return false
    }
    var receiveWindow: ReceiveWindow? {
        if case .receiving(let w, _) = inbound { return w }
        return nil
    }
    var inflater: StreamInflater? {
        if case .receiving(_, let z) = inbound { return z }
        return nil
    }
    var unconsumed: Int { inbound.unconsumed }

    /// Both directions ended with FIN.
    var isDone: Bool { finSent && finReceived }

    /// Something DATA or FIN can be sent for right now.
    var hasSendableWork: Bool {
        guard openEmitted, let window = outbound.window else { return false }
        // Compressed bytes have had their credit already.
        if compression.pendingCount > 0 { return true }
        if !sendBuffer.isEmpty { return window.credit > 0 }
        return finQueued
    }

    // MARK: Events from the application

    /// The application accepted the peer's stream.
    mutating func accepted() -> Bool {
        guard opening == .awaitingAccept else { return false }
        opening = .acceptQueued
        return true
    }

    /// The application finished its direction. False if it already had.
    mutating func finish() -> Bool {
        guard case .sending(let w) = outbound else { return false }
        outbound = .finishing(w)
        return true
    }

    // MARK: Events from the frame builder

    /// Our OPEN or OPEN-OK went into a frame.
    mutating func openOrAcceptEmitted() {
        switch opening {
        case .openQueued: opening = .openSent
        case .acceptQueued: opening = .open
        case .openSent, .awaitingAccept, .open: break
        }
    }

    /// `n` plain bytes went into DATA, or into the compressor.
    mutating func spendCredit(_ n: Int) {
        guard outbound.withWindow({ $0.spend(n) }) != nil else { preconditionFailure("data taken after FIN") }
    }

    /// Our FIN went into a frame.
    mutating func finEmitted() {
        precondition(finQueued && !finSent, "FIN emitted out of turn")
        outbound = .finished
    }

    /// A CREDIT of ours went into a frame at `now`, carrying `increment`; the window may grow
    /// (`ReceiveWindow.grantSent`). Returns whether it grew.
    mutating func grantEmitted(_ increment: UInt32, at now: LinkTime, roundTrip: LinkDuration?, limit: Int) -> Bool {
        creditQueued = false
        guard case .receiving(var w, let z) = inbound else { return false }
        w.granted(increment)
        let grew = w.grantSent(at: now, roundTrip: roundTrip, limit: limit)
        inbound = .receiving(w, inflater: z)
        return grew
    }

    // MARK: Events from the peer (§5)

    /// OPEN-OK: the peer accepted a stream we opened.
    mutating func peerAccepted() -> PeerMessageVerdict {
        switch opening {
        case .openSent:
            opening = .open
            return .applied
        case .openQueued:
            return .violation("OPEN-OK for \(id) before its OPEN was sent")
        case .awaitingAccept, .acceptQueued, .open:
            return .violation(locallyInitiated ? "a second OPEN-OK for \(id)" : "OPEN-OK for \(id), which the peer opened")
        }
    }

    /// OPEN-REFUSED: the peer refused a stream we opened. `.applied` means the stream is gone.
    func peerRefused() -> PeerMessageVerdict {
        switch opening {
        case .openSent: return .applied
        case .openQueued: return .violation("OPEN-REFUSED for \(id) before its OPEN was sent")
        case .awaitingAccept, .acceptQueued, .open: return .violation("OPEN-REFUSED for \(id), which is open")
        }
    }

    /// Whether the peer may send on this stream now: it opened it, or it accepted ours.
    private var peerMaySend: PeerMessageVerdict {
        switch opening {
        case .awaitingAccept, .acceptQueued, .open: return .applied
        case .openQueued, .openSent: return .violation("data or FIN for \(id) before the peer accepted it")
        }
    }

    /// DATA (or the plain size of DATA-COMPRESSED) of `n` bytes.
    mutating func peerData(_ n: Int) -> PeerMessageVerdict {
        guard case .applied = peerMaySend else { return peerMaySend }
        switch inbound {
        case .receiving(var w, let z):
            guard w.receive(n) else { return .creditExceeded }
            inbound = .receiving(w, inflater: z)
            return .applied
        case .finished:
            return .violation("data for \(id) after the peer's FIN")
        }
    }

    /// Whether DATA-COMPRESSED may arrive now: the peer may send, and its direction is open.
    /// Checked before inflating; `peerData` then checks the plain bytes against the window.
    func peerMayCompress() -> PeerMessageVerdict {
        guard case .applied = peerMaySend else { return peerMaySend }
        if finReceived { return .violation("data for \(id) after the peer's FIN") }
        return .applied
    }

    /// Gives the stream the decompressor made for it.
    mutating func installInflater(_ z: StreamInflater) {
        guard case .receiving(let w, nil) = inbound else { return }
        inbound = .receiving(w, inflater: z)
    }

    /// What the peer may still send, in plain bytes: the bound on inflating (§5.7).
    var receiveRemaining: Int { receiveWindow?.remaining ?? 0 }

    /// FIN: the peer's direction ends. `.applied` carries no decompressor any more; the caller
    /// frees the one it had (`hadInflater`).
    mutating func peerFinished() -> (PeerMessageVerdict, hadInflater: Bool) {
        guard case .applied = peerMaySend else { return (peerMaySend, false) }
        switch inbound {
        case .receiving(let w, let z):
            inbound = .finished(unconsumed: w.unconsumed)
            return (.applied, z != nil)
        case .finished:
            return (.violation("a second FIN for \(id)"), false)
        }
    }

    /// CREDIT of `increment` bytes.
    mutating func peerGranted(_ increment: UInt32) -> PeerMessageVerdict {
        // The peer cannot know a stream whose OPEN has not left: a CREDIT for its ID is a stale one
        // for an earlier stream of that ID, harmless, so it is ignored like one for an unknown ID.
        if case .openQueued = opening { return .ignored }
        // Finished: the CREDIT was sent before our FIN reached the peer.
        guard let granted = outbound.withWindow({ $0.grant(increment) }) else { return .ignored }
        return granted ? .applied : .violation("CREDIT for \(id) overflows the window")
    }

    /// The handshake completed: a stream opened before it gets the peer's initial window.
    mutating func peerWindowKnown(_ initial: Int) {
        _ = outbound.withWindow { $0.addInitial(initial) }
    }

    /// Data arrived: a window whose reader stopped consuming shrinks back to its base (§6.1).
    mutating func shrinkReceiveWindowIfStalled() {
        guard case .receiving(var w, let z) = inbound, w.size > w.base else { return }
        _ = w.shrinkIfStalled()
        inbound = .receiving(w, inflater: z)
    }

    /// The application consumed up to `n` delivered bytes; returns how many it had.
    mutating func consume(_ n: Int) -> Int {
        switch inbound {
        case .receiving(var w, let z):
            let taken = w.consume(n)
            inbound = .receiving(w, inflater: z)
            return taken
        case .finished(let left):
            let taken = min(n, left)
            inbound = .finished(unconsumed: left - taken)
            return taken
        }
    }

    /// A CREDIT is due, and none is queued already.
    var wantsGrant: Bool { !creditQueued && (receiveWindow?.grantDue ?? false) }
}
