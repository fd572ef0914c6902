// MARK: - The stream table and its scheduler (docs/protocol.md §5–8)

/// The open streams and the deficit-round-robin rounds that schedule their sending (§8.1).
///
/// Streams are mutated in place, through `subscript`'s modify accessor or the table's methods,
/// never through a copy written back: a copy would share the send buffer's storage, and the
/// next append or take would duplicate the whole buffer (copy-on-write).
struct StreamTable: Sendable {
    private var entries: [StreamID: StreamState] = [:]
    /// Streams that turned active after being idle: served first (sparse-flow priority).
    private(set) var newStreams = FIFO<StreamID>()
    /// Streams with sustained work, served round-robin.
    private(set) var oldStreams = FIFO<StreamID>()
    /// Bytes delivered to the application and not yet consumed, over all streams.
    private(set) var totalUnconsumed = 0
    /// Streams of ours holding a compressor, and of the peer's holding our decompressor (§5.7).
    private(set) var liveCompressors = 0
    private(set) var liveDecompressors = 0

    subscript(id: StreamID) -> StreamState? {
        get { entries[id] }
        _modify { yield &entries[id] }
    }

    var count: Int { entries.count }
    var ids: Dictionary<StreamID, StreamState>.Keys { entries.keys }
    var states: Dictionary<StreamID, StreamState>.Values { entries.values }
    func contains(_ id: StreamID) -> Bool { entries[id] != nil }

    mutating func insert(_ s: StreamState) {
        precondition(entries[s.id] == nil, "stream \(s.id) is in use")
        entries[s.id] = s
        if s.locallyInitiated { openedHere += 1 }
    }

    /// Streams this end opened; the rest the peer opened. Each side's count has its own limit,
    /// so a peer that opens all it may cannot stop this end opening its own (§5.1).
    private(set) var openedHere = 0
    var openedByPeer: Int { entries.count - openedHere }

    /// Forgets a stream and the memory it held. Stale entries in the rounds are dropped when
    /// they come up.
    @discardableResult
    mutating func remove(_ id: StreamID) -> StreamState? {
        guard let s = entries.removeValue(forKey: id) else { return nil }
        if s.locallyInitiated { openedHere -= 1 }
        totalUnconsumed -= s.unconsumed
        if s.compression.deflater != nil { liveCompressors -= 1 }
        if s.inflater != nil { liveDecompressors -= 1 }
        return s
    }

    /// Forgets every stream (a session ended); returns their IDs in order.
    mutating func removeAll() -> [StreamID] {
        let ids = entries.keys.sorted()
        for id in ids { remove(id) }
        newStreams.removeAll()
        oldStreams.removeAll()
        return ids
    }

    // MARK: Receiving

    /// `n` bytes of DATA arrived on `id` (plain size): counted against its window.
    mutating func received(_ n: Int, on id: StreamID) -> PeerMessageVerdict {
        let verdict = entries[id]!.peerData(n)
        if verdict == .applied { totalUnconsumed += n }
        return verdict
    }

    /// The application consumed up to `n` bytes of `id`; returns how many it had.
    mutating func consumed(_ n: Int, on id: StreamID) -> Int {
        guard entries[id] != nil else { return 0 }
        let taken = entries[id]!.consume(n)
        totalUnconsumed -= taken
        return taken
    }

    /// The peer's FIN on `id`; frees its decompressor.
    mutating func peerFinished(_ id: StreamID) -> PeerMessageVerdict {
        let (verdict, hadInflater) = entries[id]!.peerFinished()
        if hadInflater { liveDecompressors -= 1 }
        return verdict
    }

    /// Makes `id` a decompressor, if fewer than `limit` exist; false if none may be made.
    mutating func makeInflater(for id: StreamID, limit: Int) -> Bool {
        guard entries[id]?.inflater == nil else { return true }
        guard liveDecompressors < limit, let z = StreamInflater(windowBits: Compression.windowBits) else { return false }
        liveDecompressors += 1
        entries[id]!.installInflater(z)
        return true
    }

    // MARK: Sending

    /// Gives `id` a compressor, if fewer than `limit` exist.
    mutating func makeDeflater(for id: StreamID, windowBits: Int, limit: Int) -> StreamDeflater? {
        guard liveCompressors < limit, let d = StreamDeflater(windowBits: windowBits) else { return nil }
        liveCompressors += 1
        // Held by the stream from now on, so that releasing it counts it free.
        entries[id]!.compression = .on(d, probeIn: 0, probeOut: 0)
        return d
    }

    /// `id`'s direction is finished: its compressor is freed for another stream.
    mutating func releaseCompressor(of id: StreamID) {
        if entries[id]?.compression.deflater != nil { liveCompressors -= 1 }
        entries[id]?.compression = .off
    }

    /// Takes `n` plain bytes of `id`'s send buffer, spending its credit.
    mutating func takePlain(_ n: Int, of id: StreamID, appendingTo out: inout [UInt8]) {
        entries[id]!.sendBuffer.take(n, appendingTo: &out)
        entries[id]!.spendCredit(n)
    }

    /// FIN of `id` went into a frame.
    mutating func finEmitted(_ id: StreamID) {
        entries[id]!.finEmitted()
        releaseCompressor(of: id)
    }

    // MARK: Rounds (§8.1)

    /// Streams in the rounds, stale entries included.
    var competing: Int { newStreams.count + oldStreams.count }

    /// The stream at the head of the sparse queue, if any.
    var firstNew: StreamID? { newStreams.first }

    /// Puts a stream into the rounds if it has something to send.
    mutating func markActive(_ id: StreamID) {
        guard let s = entries[id], !s.inActiveList, s.hasSendableWork else { return }
        entries[id]!.inActiveList = true
        entries[id]!.deficit = 0
        newStreams.append(id)
    }

    /// The stream at the head of the rounds that really has work; stale entries are dropped.
    /// New (previously idle) streams go first, so a keystroke does not wait a whole round.
    mutating func nextWithWork() -> StreamID? {
        while let id = newStreams.first {
            if let s = entries[id], s.inActiveList, s.hasSendableWork { return id }
            _ = newStreams.popFirst()
            entries[id]?.inActiveList = false
        }
        while let id = oldStreams.first {
            if let s = entries[id], s.inActiveList, s.hasSendableWork { return id }
            _ = oldStreams.popFirst()
            entries[id]?.inActiveList = false
        }
        return nil
    }

    /// Moves the head stream to the back of the round-robin, its turn used up.
    mutating func rotate(_ id: StreamID) {
        if newStreams.first == id { _ = newStreams.popFirst() } else if oldStreams.first == id { _ = oldStreams.popFirst() }
        entries[id]?.deficit = 0
        oldStreams.append(id)
    }

    /// Takes the head stream out of the rounds: it has nothing to send.
    mutating func leaveRounds(_ id: StreamID) {
        if newStreams.first == id { _ = newStreams.popFirst() } else if oldStreams.first == id { _ = oldStreams.popFirst() }
        entries[id]?.inActiveList = false
        entries[id]?.deficit = 0
    }
}
