// MARK: - Application commands (docs/protocol.md §5–6)

extension Link {
    /// Opens a stream to `target` ("host:port"; empty means the peer's default target). DATA may
    /// be sent at once; it travels before OPEN-OK arrives (§5.3). Before the handshake completes
    /// the OPEN waits in the queue.
    public mutating func openStream(target: String = "") throws(LinkError) -> StreamID {
        guard target.utf8.count <= Wire.maxTargetLength else { throw .targetTooLong }
        // With negotiated halves this end's half is known only once the handshake is done.
        guard !configuration.negotiatesStreamIDHalves || localUsesOddIDs != nil else { throw .notEstablished }
        let limit = min(configuration.maxStreams, peerMaxStreams ?? configuration.maxStreams)
        guard streams.openedHere < limit else { throw .tooManyStreams }
        let id = allocateStreamID()
        streams.insert(StreamState(opening: id, target: target, peerWindow: peerInitialWindow,
                                   receiveWindow: configuration.initialWindow))
        control.append(.open(id))
        statistics.streamsOpened += 1
        return id
    }

    /// IDs go round-robin through this end's half of the space, so an ID is reused only after
    /// thousands of others: anything the peer still had in flight for it is long gone (§5.1).
    mutating func allocateStreamID() -> StreamID {
        while true {
            let candidate = StreamID(nextLocalStreamID)
            nextLocalStreamID = nextLocalStreamID &+ 2
            if nextLocalStreamID == 0 || nextLocalStreamID == 1 {
                nextLocalStreamID = usesOddStreamIDs ? 1 : 2
            }
            if !streams.contains(candidate) { return candidate }
        }
    }

    /// Accepts a stream the peer opened (after `.streamOpened`).
    public mutating func accept(_ id: StreamID) throws(LinkError) {
        guard streams.contains(id) else { throw .unknownStream(id) }
        guard streams[id]!.accepted() else { throw .invalidState(id, "not awaiting accept") }
        control.append(.openOK(id))
        statistics.streamsAccepted += 1
    }

    /// Refuses a stream the peer opened. Data it already sent is discarded (§5.3).
    public mutating func refuse(_ id: StreamID, reason: OpenRefusal) throws(LinkError) {
        guard let s = streams[id] else { throw .unknownStream(id) }
        guard s.opening == .awaitingAccept else { throw .invalidState(id, "not awaiting accept") }
        removeStream(id)
        control.append(.refuse(id, reason))
    }

    /// Queues bytes on a stream. Returns how many were taken: fewer than offered when the
    /// stream's send buffer is full; `.writable` follows when there is room again.
    @discardableResult
    public mutating func send<C: Collection>(_ bytes: C, on id: StreamID) throws(LinkError) -> Int where C.Element == UInt8 {
        guard let buffered = streams[id]?.sendBuffer.count else { throw .unknownStream(id) }
        guard !streams[id]!.finQueued else { throw .invalidState(id, "send after finish") }
        let n = min(max(0, configuration.sendBufferLimit - buffered), bytes.count)
        if n > 0 { streams[id]!.sendBuffer.append(contentsOf: bytes.prefix(n)) }
        if n < bytes.count { streams[id]!.sendBlocked = true }
        if n > 0 { streams.markActive(id) }
        return n
    }

    /// Half-closes this end's direction: FIN follows the buffered data (§5.4).
    public mutating func finish(_ id: StreamID) throws(LinkError) {
        guard streams.contains(id) else { throw .unknownStream(id) }
        guard streams[id]!.finish() else { return }
        streams.markActive(id)
    }

    /// Aborts a stream in both directions. Unsent data is dropped; the peer gets RESET (§5.5).
    ///
    /// A stream this end opened whose OPEN has not left yet (it waits for the handshake) is
    /// simply forgotten: the peer never heard of it, so it costs no line bytes at all (§5.5).
    public mutating func reset(_ id: StreamID, reason: ResetReason = .aborted) throws(LinkError) {
        guard let s = streams[id] else { throw .unknownStream(id) }
        removeStream(id)
        if s.peerKnowsOf { control.append(.reset(id, reason)) }
    }

    /// Reports that the application delivered `count` bytes of this stream to its consumer.
    /// Credit is granted for bytes consumed, not bytes received, so a stalled consumer stops
    /// only its own stream (§6).
    public mutating func consumed(_ count: Int, on id: StreamID) {
        guard count > 0, streams.consumed(count, on: id) > 0 else { return }
        considerGrant(id)
        if streams.totalUnconsumed < configuration.receiveBudget && !withheldGrants.isEmpty {
            let waiting = withheldGrants
            withheldGrants.removeAll()
            for w in waiting { considerGrant(w) }
        }
    }

    /// Resets every stream and tells the peer, for a shutdown.
    public mutating func resetAll(reason: ResetReason = .shutdown) {
        for id in streams.ids.sorted() {
            try? reset(id, reason: reason)
        }
    }

    /// Queues a CREDIT once a quarter of the window has been consumed, unless the link-wide
    /// receive budget is exhausted and this stream holds unconsumed bytes itself (§6): the
    /// streams whose readers have stalled are the ones that wait, not one whose reader keeps up
    /// (a thousand stuck downloads had starved every other stream).
    mutating func considerGrant(_ id: StreamID) {
        guard let s = streams[id], s.wantsGrant else { return }
        if streams.totalUnconsumed >= configuration.receiveBudget && s.unconsumed > 0 {
            withheldGrants.append(id)
            return
        }
        streams[id]!.creditQueued = true
        control.append(.credit(id))
    }

    /// Forgets a stream and the memory it held.
    mutating func removeStream(_ id: StreamID) { streams.remove(id) }

    /// Closes a stream whose both directions finished normally.
    mutating func closeIfDone(_ id: StreamID) {
        guard streams[id]?.isDone == true else { return }
        removeStream(id)
        events.append(.streamClosed(id))
    }
}

// MARK: - Remote listeners (docs/protocol.md §5.6)

extension Link {
    /// Asks the peer to listen on `bind:port` (port 0: any) and to open a stream to `target` for
    /// every connection it accepts there. `.listenAccepted` or `.listenRefused` answers. The
    /// request lasts as long as the session: after `.listenRefused(_, .sessionEnded)` ask again.
    public mutating func requestListen(bind: String, port: UInt16, target: String) throws(LinkError) -> ListenID {
        guard isEstablished else { throw .notEstablished }
        guard peerHello.map({ $0.capabilities & Wire.Capability.remoteListen != 0 }) == true else {
            throw .peerLacks("remote forwards (-R)")
        }
        guard bind.utf8.count <= Wire.maxTargetLength, target.utf8.count <= Wire.maxTargetLength else {
            throw .targetTooLong
        }
        var id = ListenID(nextListenID)
        while ourListens[id] != nil {
            nextListenID = nextListenID &+ 1
            id = ListenID(nextListenID)
        }
        nextListenID = nextListenID &+ 1
        ourListens[id] = false
        control.append(.listen(id, bind: bind, port: port, target: target))
        return id
    }

    /// Withdraws a request of ours, granted or not. The peer closes its listener.
    public mutating func cancelListen(_ id: ListenID) throws(LinkError) {
        guard ourListens.removeValue(forKey: id) != nil else { throw .unknownListen(id) }
        control.append(.unlisten(id))
    }

    /// Tells the peer this end listens for its request `id`, on `port`.
    public mutating func acceptListen(_ id: ListenID, port: UInt16) throws(LinkError) {
        guard peerListens.contains(id) else { throw .unknownListen(id) }
        control.append(.listenOK(id, port: port))
    }

    /// Refuses the peer's request `id`, or ends a listener already granted (it could not go
    /// on listening).
    public mutating func refuseListen(_ id: ListenID, reason: ListenRefusal) throws(LinkError) {
        guard peerListens.remove(id) != nil else { throw .unknownListen(id) }
        control.append(.listenRefused(id, reason))
    }

    /// Requests of ours the peer has granted, and those still waiting for an answer.
    public var listenRequests: [ListenID: Bool] { ourListens }
}
