// MARK: - Bytes from the line (docs/protocol.md §1–5)

extension Link {
    /// Feeds bytes read from the line. Junk, damaged and oversize frames are skipped and counted.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, now: LinkTime) {
        statistics.lineBytesReceived += bytes.count
        var index = 0
        while index < bytes.count {
            guard let outcome = decoder.decode(bytes, index: &index) else { break }
            switch outcome {
            case .frame:
                let frame = decoder.frame
                handleFrame(frame, now: now)
            case .malformed:
                statistics.malformedFrames += 1
            case .oversize:
                statistics.oversizeFrames += 1
            }
        }
    }

    public mutating func receive<C: Collection>(_ bytes: C, now: LinkTime) where C.Element == UInt8 {
        if let _: Void = bytes.withContiguousStorageIfAvailable({ receive(UnsafeRawBufferPointer($0), now: now) }) {
            return
        }
        Array(bytes).withUnsafeBytes { receive($0, now: now) }
    }

    mutating func handleFrame(_ f: [UInt8], now: LinkTime) {
        let frame: Frame
        switch FrameReader.open(f, opener: &opener) {
        case .success(let opened): frame = opened
        case .failure(.crc):
            statistics.crcErrors += 1
            return
        case .failure(.malformed):
            statistics.malformedFrames += 1
            return
        case .failure(.unauthenticated):
            statistics.unauthenticatedFrames += 1
            return
        }
        statistics.framesReceived += 1
        if case .hello(let body) = frame {
            handleHello(body, now: now)
            return
        }
        heard(now: now)
        // Frames of a session that is not (or no longer) established are from before a restart
        // on one side; the HELLO exchange re-synchronises and the data is resent.
        guard isEstablished else { return }
        switch frame {
        case .hello:
            break
        case .sequenced(let seq, let body, let a):
            processAcknowledgement(ack: a.ack, sack: a.sack, now: now)
            lastPeerFrameAt = now
            receiveSequenced(seq, body: body, now: now)
        case .fragment(let seq, let index, let count, let body, let a):
            processAcknowledgement(ack: a.ack, sack: a.sack, now: now)
            lastPeerFrameAt = now
            receiveFragment(seq, index: index, count: count, bytes: body, now: now)
        case .control(let body, let a):
            processAcknowledgement(ack: a.ack, sack: a.sack, now: now)
            receiveControl(body, now: now)
        }
    }

    mutating func heard(now: LinkTime) {
        lastHeardAt = now
        if state.heard() {
            events.append(.linkRestored)
            // Resend the oldest unacknowledged frame at once instead of waiting out a backed-off
            // timer: the line is back, and its acknowledgement reveals every other gap.
            rtoBackoff = 0
            if let i = outstanding.firstIndex(where: { $0.fate != .acked }) { outstanding[i].fate = .lost }
        }
    }

    // MARK: Handshake (§3)

    mutating func handleHello(_ body: ArraySlice<UInt8>, now: LinkTime) {
        let hello: Hello
        switch Hello.decode(body) {
        case .success(let h): hello = h
        case .failure(.versionMismatch(let v)):
            if reportedVersionMismatch != v {
                reportedVersionMismatch = v
                events.append(.versionMismatch(peerVersion: v))
            }
            return
        case .failure(.notHello):
            statistics.malformedFrames += 1
            return
        }
        // A keyed end hears only a HELLO that proves the key (§11.1): anyone can send one.
        guard verifyHello(hello, body: body, now: now) == .proceed else { return }
        heard(now: now)
        var restarted = false
        var mayEstablish = true
        if let old = peerHello, old.session != hello.session {
            // A new session ID: the peer restarted. Its streams are gone, and so is its ARQ state.
            restarted = true
            statistics.peerRestarts += 1
            peerRestartUnreported = true
            resetSession(reason: .peerRestarted, now: now)
            // A keyed end has a new random now, which this HELLO did not prove: it is the peer
            // to echo, and the next HELLO, proving the new random, establishes.
            if let p = protectionState {
                protectionState!.candidateSession = hello.session
                protectionState!.peerRandom = hello.extensionValue(HelloExtension.Types.protection)
                    .map { Array($0[1...LinkProtection.randomLength]) } ?? p.peerRandom
                mayEstablish = false
                helloReplyOwed = true
            }
        }
        guard let half = decideHalf(against: hello) else {
            if !reportedRoleConflict {
                reportedRoleConflict = true
                events.append(.roleConflict)
            }
            return
        }
        localUsesOddIDs = half
        if (nextLocalStreamID & 1 == 1) != half { nextLocalStreamID = half ? 1 : 2 }
        let firstContact = peerHello == nil || restarted
        let nowEstablished = state.helloReceived(hello, ourSession: session, mayEstablish: mayEstablish)
        if nowEstablished { installSessionKeys() }
        peerCompression = Compression.Offer(hello)
        if hello.needsReply || hello.echo != session { helloReplyOwed = true }
        if firstContact {
            // Streams opened before the handshake get the peer's initial credit now.
            for id in Array(streams.ids) {
                streams[id]!.peerWindowKnown(peerInitialWindow)
                streams.markActive(id)
            }
        }
        if nowEstablished {
            lastHeardAt = now
            // One PING at once, so the round-trip time is known from the start: the application
            // reports it when the link comes up, and the first RTO is sized by it (§9).
            pingDue = true
            events.append(.established(peerSession: hello.session, peerRestarted: peerRestartUnreported))
            peerRestartUnreported = false
        }
    }

    /// Drops every stream and all sequencing state, e.g. when the peer restarted (§3.3).
    mutating func resetSession(reason: ResetReason, now: LinkTime) {
        // A frame being streamed must still be completed on the line; it belongs to the old session.
        closeOpenFrame(now: now)
        for id in streams.removeAll() { events.append(.streamReset(id, reason)) }
        control.removeAll()
        withheldGrants.removeAll()
        outstanding.removeAll()
        outOfOrder.removeAll()
        fragments.removeAll()
        nextSequence = SequenceNumber(0)
        expectedSequence = SequenceNumber(0)
        ackDebt.paid()
        rtoBackoff = 0
        pingDue = false
        pingDueSince = nil
        pongAwaited = false
        pongOwed = nil
        retireSessionKeys()
        state.ended()
        // Listeners belong to the session: the requester asks again once it is re-established.
        for id in ourListens.keys.sorted() { events.append(.listenRefused(id, .sessionEnded)) }
        ourListens.removeAll()
        for id in peerListens.sorted() { events.append(.listenCancelled(id)) }
        peerListens.removeAll()
        // The next handshake decides the halves afresh (§3.4); no stream is left to renumber.
        if configuration.negotiatesStreamIDHalves { localUsesOddIDs = nil }
    }

    // MARK: Acknowledgements (§4)

    mutating func processAcknowledgement(ack: SequenceNumber, sack: UInt32, now: LinkTime) {
        guard let first = outstanding.first else { return }
        // Ignore an ack outside what we have sent (cannot happen with a correct peer).
        let advance = ack - first.sequence
        guard advance >= 0, advance <= outstanding.count else { return }
        var progressed = false
        for i in outstanding.indices {
            let d = outstanding[i].sequence - ack
            let isAcked = d < 0 || (d >= 1 && d <= Wire.sackBits && sack & (1 << UInt32(d - 1)) != 0)
            guard isAcked, outstanding[i].fate != .acked else { continue }
            outstanding[i].fate = .acked
            progressed = true
            let frame = outstanding[i]
            if frame.transmissions == 1 { rtt.sample(now - frame.lastSentAt) }
            // Which copy got through is not known: count only the oldest that may have.
            highestAckedTransmission = max(highestAckedTransmission, frame.oldestLiveTransmission)
            if frame.transmissions == 1 { noteFrameOutcome(bytes: frame.lineBytes, lost: false) }
        }
        if advance > 0 { outstanding.removeFirst(advance) }
        // The cumulative ack names the next frame the peer lacks. If we hold that frame as
        // SACKed, the SACK was false (a damaged trailer that passed the CRC): resend it.
        if let first = outstanding.first, first.sequence == ack, first.fate == .acked {
            markLost(0, proven: false, now: now)
        }
        if progressed {
            rtoBackoff = 0
            statistics.smoothedRTTMilliseconds = (rtt.srtt?.seconds ?? 0) * 1000
        }
        // A serial line never reorders: if a frame sent after this one's last transmission got
        // through, this one was lost. That is proof. Resend it too if this acknowledgement left the
        // peer well after the frame should have reached it (one smoothed RTT plus the frame's own
        // line time), rather than at its (backed-off) timeout; but that is a guess, which a busy
        // peer on a fast line makes wrong, and it does not count as a bit error (§8.2).
        let lateness = (rtt.srtt ?? .seconds(1)) + max(rtt.rttvar * 2, .milliseconds(5)) + lineTime(peerFrameAllowance)
        for i in outstanding.indices where outstanding[i].fate == .inFlight {
            if outstanding[i].transmission < highestAckedTransmission {
                markLost(i, proven: true, now: now)
            } else if now >= outstanding[i].lastSentAt + lateness + lineTime(outstanding[i].lineBytes) {
                markLost(i, proven: false, now: now)
            }
        }
    }

    /// Marks a frame in flight lost, to be resent. Only a proven loss feeds the bit-error
    /// estimate that sizes frames (§8.2). A guess, from a timer or a late acknowledgement, may be
    /// wrong: a busy peer on a fast line, whose RTO is a few milliseconds, answers late without
    /// any bit error. So a guess asks for a PING, sent after the frame's new copy; if its PONG
    /// still lacks the frame, that proves the loss of every copy so far and it is counted then.
    /// On a line turned so noisy that no long frame gets through, the short PING and PONG do,
    /// and frames still shrink.
    mutating func markLost(_ i: Int, proven: Bool, now: LinkTime) {
        outstanding[i].fate = .lost
        outstanding[i].lossProven = proven
        if proven {
            noteFrameOutcome(bytes: outstanding[i].lineBytes, lost: true)
        } else if !pongAwaited || now >= (lastPingSentAt ?? .zero) + rtt.baseRTO {
            pingDue = true
        }
    }

    /// Feeds the bit-error estimate that sizes frames (§8.2): every frame whose fate is known
    /// adds its bits, every lost one adds a loss. Old evidence fades over about 2 MB of traffic.
    mutating func noteFrameOutcome(bytes: Int, lost: Bool) {
        let bits = Double(bytes * 8)
        let keep = 1 - bits / 16_000_000
        errorEstimateBits = errorEstimateBits * keep + bits
        errorEstimateLosses = errorEstimateLosses * keep + (lost ? 1 : 0)
    }

    // MARK: Sequenced frames (§4)

    mutating func receiveSequenced(_ seq: SequenceNumber, body: ArraySlice<UInt8>, now: LinkTime) {
        ackDebt.frameArrived(now: now)
        let d = seq - expectedSequence
        if d < 0 {
            statistics.duplicateFrames += 1
            return
        }
        if d == 0 {
            fragments[seq.rawValue] = nil
            deliver(body, now: now)
            expectedSequence = expectedSequence + 1
            while let next = outOfOrder.removeValue(forKey: expectedSequence.rawValue) {
                fragments[expectedSequence.rawValue] = nil
                deliver(next[...], now: now)
                expectedSequence = expectedSequence + 1
            }
            return
        }
        guard d <= Wire.sackBits else { return }
        if outOfOrder[seq.rawValue] == nil {
            fragments[seq.rawValue] = nil
            outOfOrder[seq.rawValue] = Array(body)
        } else {
            statistics.duplicateFrames += 1
        }
        ackDebt.gapSeen()
    }

    /// Collects the pieces of a frame resent in fragments; a complete set is a sequenced frame.
    mutating func receiveFragment(_ seq: SequenceNumber, index: Int, count: Int, bytes: ArraySlice<UInt8>, now: LinkTime) {
        ackDebt.frameArrived(now: now)
        let d = seq - expectedSequence
        guard d >= 0, d <= Wire.sackBits, count > 0, index < count, outOfOrder[seq.rawValue] == nil else {
            statistics.duplicateFrames += 1
            return
        }
        var assembly = fragments[seq.rawValue] ?? FragmentAssembly(count: count)
        if assembly.count != count { assembly = FragmentAssembly(count: count) }
        assembly.pieces[index] = Array(bytes)
        let total = assembly.pieces.values.reduce(0) { $0 + $1.count }
        guard total <= configuration.maxFrameBody + 64 else {
            fragments[seq.rawValue] = nil
            violation("fragments of frame \(seq) exceed the frame limit")
            return
        }
        guard assembly.pieces.count == count else {
            fragments[seq.rawValue] = assembly
            return
        }
        fragments[seq.rawValue] = nil
        var body: [UInt8] = []
        body.reserveCapacity(total)
        for i in 0..<count { body.append(contentsOf: assembly.pieces[i]!) }
        receiveSequenced(seq, body: body[...], now: now)
    }

    /// The acknowledgement trailer this end sends now: next expected frame and the SACK bitmap.
    var acknowledgementState: (ack: SequenceNumber, sack: UInt32) {
        var sack: UInt32 = 0
        if !outOfOrder.isEmpty {
            for i in 0..<Wire.sackBits where outOfOrder[(expectedSequence + (i + 1)).rawValue] != nil {
                sack |= 1 << UInt32(i)
            }
        }
        return (expectedSequence, sack)
    }

    mutating func receiveControl(_ body: ArraySlice<UInt8>, now: LinkTime) {
        var parser = MessageParser(body)
        while true {
            let message: Message?
            do { message = try parser.next() } catch {
                violation("control frame: \(error)")
                return
            }
            guard let message else { return }
            switch message {
            case .ping(let token):
                pongOwed = token
            case .pong(let token):
                guard token == pingToken else { break }
                pongAwaited = false
                if let sent = lastPingSentAt, outstanding.allSatisfy({ $0.fate == .acked }) {
                    rtt.sample(now - sent)
                    statistics.smoothedRTTMilliseconds = (rtt.srtt?.seconds ?? 0) * 1000
                }
                // This frame's acknowledgement (already applied) was written after the peer
                // read the PING, and so after every frame sent before the PING: one it still
                // lacks was lost (§4.3). The tail of a burst is repaired in one round trip. A
                // frame this acknowledgement just made a guess about is proven lost as well.
                for i in outstanding.indices where outstanding[i].transmission <= pingTransmission
                    && (outstanding[i].fate == .inFlight || outstanding[i].fate == .lost && !outstanding[i].lossProven) {
                    markLost(i, proven: true, now: now)
                    statistics.probeRepairs += 1
                }
            default:
                violation("stream message in a control frame")
                return
            }
        }
    }

    /// Hands a stream's received bytes to the application if its window lets them in.
    mutating func deliverData(_ bytes: [UInt8], on id: StreamID) {
        guard settle(streams.received(bytes.count, on: id), on: id) else { return }
        streams[id]!.shrinkReceiveWindowIfStalled()
        events.append(.received(id, bytes))
    }

    /// How far a stream's receive window may grow (§6.1): its initial size plus twice the
    /// bytes the line carries in the shortest round trip seen, so that a long round trip (a
    /// radio link) does not hold a stream below the line rate. On a cable the round trip is short
    /// and the window stays near its initial size, which bounds what a stalled reader takes.
    var receiveWindowLimit: Int {
        let rate = configuration.lineBytesPerSecond
        guard rate > 0, let least = rtt.minimum else { return configuration.initialWindow }
        let inFlight = Int(Double(rate) * least.seconds * 2)
        return min(configuration.initialWindow + inFlight, max(configuration.initialWindow, 4 << 20))
    }

    /// Acts on what a stream's state machine decided about a message from the peer; true if
    /// the message is to be applied.
    mutating func settle(_ verdict: PeerMessageVerdict, on id: StreamID) -> Bool {
        switch verdict {
        case .applied:
            return true
        case .ignored:
            return false
        case .violation(let what):
            violation(what)
            abortStream(id, .protocolViolation)
            return false
        case .creditExceeded:
            statistics.creditViolations += 1
            abortStream(id, .creditExceeded)
            return false
        }
    }

    mutating func violation(_ what: String) {
        statistics.protocolViolations += 1
        events.append(.protocolViolation(what))
    }

    // MARK: Messages (§5)

    mutating func deliver(_ body: ArraySlice<UInt8>, now: LinkTime) {
        var parser = MessageParser(body)
        while true {
            let message: Message?
            do { message = try parser.next() } catch {
                violation("frame body: \(error)")
                return
            }
            guard let message else { return }
            apply(message)
        }
    }

    mutating func apply(_ message: Message) {
        switch message {
        case .open(let id, let target):
            guard id.isOdd != usesOddStreamIDs else {
                violation("OPEN for \(id) from our half of the ID space")
                return
            }
            guard !streams.contains(id) else {
                violation("OPEN for \(id), which is in use")
                return
            }
            guard streams.openedByPeer < configuration.maxStreams else {
                statistics.refusedTooMany += 1
                control.append(.refuse(id, .tooManyStreams))
                return
            }
            streams.insert(StreamState(openedByPeer: id, peerWindow: peerInitialWindow,
                                       receiveWindow: configuration.initialWindow))
            events.append(.streamOpened(id, target: target))

        case .openOK(let id):
            // Unknown: this end reset the stream while the answer was on its way.
            guard streams.contains(id), settle(streams[id]!.peerAccepted(), on: id) else { return }
            events.append(.openAccepted(id))

        case .openRefused(let id, let reason):
            guard let s = streams[id], settle(s.peerRefused(), on: id) else { return }
            removeStream(id)
            events.append(.openRefused(id, reason))

        case .data(let id, let bytes):
            statistics.payloadBytesReceived += bytes.count
            guard streams.contains(id) else {
                // A stream this end reset or refused: the peer sent before it knew. Not an error.
                statistics.discardedBytes += bytes.count
                return
            }
            deliverData(Array(bytes), on: id)

        case .compressedData(let id, let bytes):
            guard configuration.compression != .off else {
                // Ignoring it would leave a hole in the stream's bytes: the stream ends here.
                violation("DATA-COMPRESSED for \(id), but this end offered no compression")
                if streams.contains(id) { abortStream(id, .protocolViolation) }
                return
            }
            guard let s = streams[id] else {
                statistics.discardedBytes += bytes.count
                return
            }
            guard settle(s.peerMayCompress(), on: id), let plain = inflate(id, bytes) else { return }
            statistics.payloadBytesReceived += plain.count
            // A flush marker alone, or the first part of a block, may give nothing yet.
            guard !plain.isEmpty else { return }
            deliverData(plain, on: id)

        case .fin(let id):
            guard streams.contains(id), settle(streams.peerFinished(id), on: id) else { return }
            events.append(.remoteFinished(id))
            closeIfDone(id)

        case .reset(let id, let reason):
            guard streams.contains(id) else { return }
            removeStream(id)
            events.append(.streamReset(id, reason))

        case .credit(let id, let increment):
            guard streams.contains(id), settle(streams[id]!.peerGranted(increment), on: id) else { return }
            streams.markActive(id)

        case .listen(let id, let bind, let port, let target):
            guard !peerListens.contains(id) else {
                violation("LISTEN for \(id), which is in use")
                return
            }
            guard peerListens.count < configuration.maxPeerListens else {
                statistics.refusedListensTooMany += 1
                control.append(.listenRefused(id, .tooMany))
                return
            }
            peerListens.insert(id)
            events.append(.listenRequested(id, bind: bind, port: port, target: target))
        case .listenOK(let id, let port):
            // Not ours, or cancelled while the answer was on its way: nothing to do.
            guard ourListens[id] == false else { return }
            ourListens[id] = true
            events.append(.listenAccepted(id, port: port))
        case .listenRefused(let id, let reason):
            guard ourListens.removeValue(forKey: id) != nil else { return }
            events.append(.listenRefused(id, reason == .sessionEnded ? .other : reason))
        case .unlisten(let id):
            guard peerListens.remove(id) != nil else { return }
            events.append(.listenCancelled(id))
        case .ping, .pong:
            violation("PING/PONG in a sequenced frame")
        }
    }
}
