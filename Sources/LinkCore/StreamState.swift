/// One stream's state: lifecycle, send buffer and credit in each direction (docs/protocol.md §5–6).
struct StreamState: Sendable {
    /// Where the stream is in its opening handshake.
    enum Phase: Equatable, Sendable {
        /// This end sent (or will send) OPEN and waits for OPEN-OK. Data may already flow (§5.3).
        case opening(target: String)
        /// The peer opened it; the application has not accepted or refused yet.
        case awaitingAccept
        /// Accepted by both ends.
        case open
    }

    let id: StreamID
    let locallyInitiated: Bool
    var phase: Phase
    /// Our OPEN (or OPEN-OK) is in a frame, so DATA and FIN may follow it.
    var openEmitted = false

    // MARK: Sending
    var sendBuffer = ByteQueue()
    /// Bytes the peer still lets us send (its credit).
    var sendCredit: Int
    /// The application finished its side; FIN goes out after the buffer drains.
    var finQueued = false
    var finSent = false
    /// `send` refused bytes; tell the application when there is room again.
    var sendBlocked = false
    /// Plain or through a compressor, and the compressed bytes waiting (§5.7).
    var compression = SendCompression.eligible

    // MARK: Receiving
    /// Bytes the peer may still send before exceeding the credit we granted.
    var receiveRemaining: Int
    /// Delivered to the application but not yet reported consumed.
    var unconsumed = 0
    /// Consumed but not yet granted back to the peer.
    var pendingGrant = 0
    var finReceived = false
    /// The decompressor of the peer's compressed data, from its first DATA-COMPRESSED to its FIN.
    var inflater: StreamInflater?

    // MARK: Scheduling
    var inActiveList = false
    var deficit = 0
    var creditQueued = false

    init(id: StreamID, locallyInitiated: Bool, phase: Phase, sendCredit: Int, receiveWindow: Int) {
        self.id = id
        self.locallyInitiated = locallyInitiated
        self.phase = phase
        self.sendCredit = sendCredit
        self.receiveRemaining = receiveWindow
    }

    /// The peer has heard of this stream, or will from a frame already built: it opened it, or
    /// our OPEN is in a frame. A stream of ours still waiting for its OPEN to go out is not.
    var peerKnowsOf: Bool { !locallyInitiated || openEmitted }

    /// Something DATA or FIN can be sent for right now.
    var hasSendableWork: Bool {
        guard openEmitted, !finSent else { return false }
        // Compressed bytes have had their credit already.
        if compression.pendingCount > 0 { return true }
        if !sendBuffer.isEmpty { return sendCredit > 0 }
        return finQueued
    }
}

extension Link {
    /// Runs `body` on the send buffer of `s`, the working copy of stream `id`'s state, without
    /// copying the buffer. The copy shares the buffer's storage with the entry in `streams`, so
    /// mutating it through the copy would first duplicate the whole buffer (copy-on-write) — on
    /// every `send` and every drained queue. The entry's reference is dropped for the duration;
    /// the caller writes `s` back before anything reads the entry's buffer again.
    mutating func withSendBuffer<R>(_ id: StreamID, of s: inout StreamState, _ body: (inout ByteQueue) -> R) -> R {
        var buffer = ByteQueue()
        swap(&buffer, &s.sendBuffer)
        streams[id]?.sendBuffer = ByteQueue()
        let result = body(&buffer)
        s.sendBuffer = buffer
        return result
    }
}
