// MARK: - Bytes to the line (docs/protocol.md §2, §4, §8)

extension Link {
    /// Returns up to `maxBytes` encoded bytes to write to the line, building frames just in time.
    ///
    /// Call it whenever the queue below (kernel tty buffer, UART) has room, keeping about
    /// `preferredQueueBelow` bytes there. Because frames are built only when asked for, an urgent
    /// message never waits behind more than the current COBS block of a bulk frame (§8.3).
    public mutating func pollTransmit(maxBytes: Int, now: LinkTime) -> [UInt8] {
        var chunk: [UInt8] = []
        pollTransmit(into: &chunk, maxBytes: maxBytes, now: now)
        return chunk
    }

    /// Appends up to `maxBytes` encoded bytes to `buffer` (lets the caller reuse one buffer);
    /// returns how many were appended.
    @discardableResult
    public mutating func pollTransmit(into buffer: inout [UInt8], maxBytes: Int, now: LinkTime) -> Int {
        guard maxBytes > 0 else { return 0 }
        while committedCount < maxBytes {
            if !produce(budget: maxBytes - committedCount, now: now) { break }
        }
        let n = writer.hand(maxBytes, to: &buffer)
        statistics.lineBytesSent += n
        return n
    }

    /// Encoded bytes that are final and may be handed to the line.
    var committedCount: Int { writer.committedCount }

    /// Adds one unit of output: a block of the open frame, a whole frame, or nothing. `budget`
    /// is how many bytes the current `pollTransmit` still wants: an unpaced line takes large
    /// chunks, a paced one a COBS block at a time.
    mutating func produce(budget: Int, now: LinkTime) -> Bool {
        if openFrame != nil {
            if !urgentWorkPending && appendToOpenFrame(budget: budget, now: now) { return true }
            closeOpenFrame(now: now)
            return true
        }
        if helloReplyOwed {
            emitHello(now: now)
            return true
        }
        guard isEstablished else { return false }
        if pingDue && pingDueSince == nil { pingDueSince = transmissionCounter }
        // Lost frames go again in the order they last left, so that one lost again and again
        // does not keep the others waiting. A PING that is due goes ahead of a frame already
        // resent since the PING was asked for: its PONG is what proves such a loss (§4.3).
        if let i = oldestLost, !(pingDue && outstanding[i].transmission > pingDueSince!) {
            retransmit(at: i, now: now)
            return true
        }
        if pongOwed != nil || pingDue {
            emitControlFrame(now: now)
            return true
        }
        if hasSequencedWork && canSendNewFrame {
            startFrame()
            return true
        }
        if let due = ackDebt.deadline(delay: acknowledgementDelay), now >= due {
            emitControlFrame(now: now)
            return true
        }
        return false
    }

    /// The lost frame whose last copy left first.
    var oldestLost: Int? {
        var best: Int?
        for i in outstanding.indices where outstanding[i].fate == .lost
            && best.map({ outstanding[i].transmission < outstanding[$0].transmission }) ?? true {
            best = i
        }
        return best
    }

    /// Work that should end the open frame at the next block boundary.
    var urgentWorkPending: Bool {
        helloReplyOwed || ackDebt.isUrgent || outstanding.contains(where: { $0.fate == .lost })
    }

    var hasSequencedWork: Bool {
        mutating get {
            dropStaleControl()
            return !control.isEmpty || streams.nextWithWork() != nil
        }
    }

    /// Drops queued control items that no longer apply (an OPEN or CREDIT for a stream that is
    /// gone), so that they never start a frame of their own: an empty sequenced frame would cost
    /// line bytes and an acknowledgement for nothing.
    mutating func dropStaleControl() {
        while let item = control.first, controlMessage(item) == nil {
            _ = control.popFirst()
            controlDropped(item)
        }
    }

    var bytesInFlight: Int { outstanding.reduce(0) { $1.fate == .acked ? $0 : $0 + $1.lineBytes } }

    /// The send window covers the bandwidth-delay product and no more (§4.4). It is also
    /// capped by the SACK bitmap's reach.
    var canSendNewFrame: Bool {
        guard outstanding.count < Wire.sackBits else { return false }
        let rate = configuration.lineBytesPerSecond
        guard rate > 0 else { return true }
        let rttEstimate = rtt.srtt.map { $0 + rtt.rttvar * 4 } ?? .seconds(1)
        let bdp = Int(Double(rate) * rttEstimate.seconds * 2)
        let limit = bdp + 4 * max(lastFrameTarget, 1024) + queueBelow
        return bytesInFlight < limit
    }

    /// The frame body size for the current error rate (§8.2). With bit error rate p and
    /// per-frame overhead h, goodput L/(L+h)·(1−p)^(8(L+h)) peaks near L = √(h / 8p). The
    /// estimate of p starts from a weak prior (0.1 loss in 12.5 KB), so a clean line reaches the
    /// largest frames within a few hundred kilobytes and a noisy one shrinks them within a few.
    var frameTarget: Int {
        let p = (errorEstimateLosses + 0.1) / (errorEstimateBits + 100_000)
        let h = Double(Wire.sequencedFrameOverhead + 5)
        let l = (h / (8 * p)).squareRoot()
        let limit = effectiveMaxFrameBody
        guard l.isFinite else { return limit }
        return min(limit, max(min(configuration.minFrameBody, limit), Int(l)))
    }

    /// More streams with work than this, and a short one's data goes in two turns.
    static let manyStreams = 8
    /// More streams open than this, and a short one's data goes in two turns even while it is
    /// the only one with work: many others may get theirs any moment (a thousand downloads
    /// whose responses reach this end a few at a time), and its second turn then waits for
    /// their first.
    static let manyOpenStreams = 64
    /// The least a turn carries when a short stream's data is split.
    static let smallestTurn = 128

    /// A stream that was idle and sent at most this much at once is someone typing.
    static let interactiveBurst = 256
    /// How long after such a burst bulk tails stay stuffed.
    static let interactiveHold = LinkDuration.seconds(2)

    // MARK: Frames

    mutating func startFrame() {
        let seq = nextSequence
        nextSequence = nextSequence + 1
        let target = frameTarget
        lastFrameTarget = target
        statistics.currentFrameTarget = target
        var frame = OpenFrame(sequence: seq, body: [], target: target, tailStream: nil)
        frame.body.reserveCapacity(target)
        // The type byte goes out first, so whether the trailer will carry a SACK bitmap is decided
        // now; if one turns up before the frame closes, a CONTROL frame carries it (§4.2).
        frame.compactTrailer = peerAcceptsCompactTrailer && acknowledgementState.sack == 0
        var header = Self.frameHeader(.sequenced, seq)
        if frame.compactTrailer { header[0] |= Wire.compactTrailerFlag }
        writer.begin(header: header)
        openFrame = frame
    }

    mutating func appendRaw<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        openFrame!.body.append(contentsOf: bytes)
        writer.append(bytes)
    }

    /// Appends the next message (or the next block of a DATA-TAIL) to the open frame.
    /// Returns false when the frame should be closed.
    mutating func appendToOpenFrame(budget: Int, now: LinkTime) -> Bool {
        // Scalars only: a copy of the open frame would share its body's storage, and the next
        // append would then duplicate the body (copy-on-write).
        guard let target = openFrame?.target, let bodyCount = openFrame?.body.count else { return false }
        if let tail = openFrame!.tailStream { return continueTail(tail, budget: budget) }
        var room = target - bodyCount
        if let start = openFrame!.suffixStart {
            // The suffix is at most 255 bytes, and its length byte follows it.
            room = min(room, 255 - (bodyCount - start)) - 1
        }
        guard room > 0 else { return false }
        if openFrame!.latencySensitive && bodyCount >= latencySensitiveFrameLimit { return false }
        if let item = control.first {
            let message = controlMessage(item)
            // Encoded once, then measured: an OPEN's compact form needs its target parsed.
            var bytes: [UInt8] = []
            message?.encode(into: &bytes, compactTargets: peerAcceptsCompactTargets)
            guard bytes.count <= room || bodyCount == 0 else { return false }
            _ = control.popFirst()
            openFrame!.latencySensitive = true
            if message != nil {
                appendRaw(bytes)
                afterControlSent(item, now: now)
            } else {
                controlDropped(item)
            }
            return true
        }
        guard let id = streams.nextWithWork() else { return false }
        return serve(id, room: room, budget: budget, now: now)
    }

    /// The message for a queued control item, or nil if it no longer applies.
    func controlMessage(_ item: ControlItem) -> Message? {
        switch item {
        case .open(let id):
            guard let target = streams[id]?.queuedOpenTarget else { return nil }
            return .open(id, target: target)
        case .openOK(let id):
            return streams[id]?.opening == .acceptQueued ? .openOK(id) : nil
        case .refuse(let id, let reason):
            return .openRefused(id, reason)
        case .reset(let id, let reason):
            return .reset(id, reason)
        case .credit(let id):
            guard let increment = streams[id]?.receiveWindow?.increment else { return nil }
            return .credit(id, increment)
        case .listen(let id, let bind, let port, let target):
            return ourListens[id] == nil ? nil : .listen(id, bind: bind, port: port, target: target)
        case .listenOK(let id, let port):
            return peerListens.contains(id) ? .listenOK(id, port: port) : nil
        case .listenRefused(let id, let reason):
            return .listenRefused(id, reason)
        case .unlisten(let id):
            return .unlisten(id)
        }
    }

    /// A queued item that no longer applied was dropped. A CREDIT with nothing left to grant (a
    /// shrink took back what was pending, §6.1) must not leave its stream marked as having one
    /// queued, or the stream would never be granted credit again.
    mutating func controlDropped(_ item: ControlItem) {
        if case .credit(let id) = item { streams[id]?.creditQueued = false }
    }

    mutating func afterControlSent(_ item: ControlItem, now: LinkTime) {
        switch item {
        case .open(let id), .openOK(let id):
            streams[id]?.openOrAcceptEmitted()
            streams.markActive(id)
        case .credit(let id):
            guard let increment = streams[id]?.receiveWindow?.increment else { return }
            // The extra credit of a growth goes with the next grant the application's consumption
            // brings, not at once: a grant sent now would look like one more fast grant and grow
            // the window again in the same poll.
            if streams[id]!.grantEmitted(increment, at: now, roundTrip: rtt.minimum, limit: receiveWindowLimit) {
                statistics.windowGrowths += 1
            }
        case .refuse, .reset, .listen, .listenOK, .listenRefused, .unlisten:
            break
        }
    }

    /// Sends one DRR turn of stream `id` into the open frame (§8.1).
    mutating func serve(_ id: StreamID, room: Int, budget: Int, now: LinkTime) -> Bool {
        let sparse = streams.firstNew == id
        if sparse {
            openFrame!.latencySensitive = true
        } else if openFrame!.latencySensitive {
            return false
        }
        if streams[id]!.sendBuffer.isEmpty && streams[id]!.compression.pendingCount == 0 {
            // Only FIN is left.
            guard room >= 3 || openFrame!.body.isEmpty else { return false }
            var fin: [UInt8] = []
            Message.fin(id).encode(into: &fin)
            appendRaw(fin)
            streams.finEmitted(id)
            streams.leaveRounds(id)
            closeIfDone(id)
            return true
        }
        if streams[id]!.deficit <= 0 { streams[id]!.deficit = configuration.quantum }
        let fit = room - 5
        guard fit > 0 else { return false }
        let compressed = nextDataIsCompressed(id, continuing: false)
        // Scalars, not a copy of the state: a copy would share the send buffer's storage, and
        // taking from the buffer would then duplicate it.
        let plainAvailable = streams[id]!.plainSendable
        let pendingCompressed = streams[id]!.compression.pendingCount
        let available = compressed ? pendingCompressed : plainAvailable
        let alone = streams.competing == 1 && control.isEmpty
        if alone && openFrame!.body.isEmpty && available + (compressed ? plainAvailable : 0) > 2 * configuration.quantum
            && room > 64 {
            // The only stream with work: stream it with DATA-TAIL, so the frame can be as long as
            // the line allows yet end at any block boundary when something urgent turns up.
            // Stuffed while someone types, on a paced line (§8.3).
            // Not when encrypting: the markers that end the short blocks would be enciphered.
            let stuffed = isInteractive(at: now) && peerAcceptsStuffedTails && budget <= 1024
                && configuration.protection?.mode != .encrypt
            let type: Wire.MessageType = switch (compressed, stuffed) {
            case (false, false): .dataTail
            case (true, false): .dataCompressedTail
            case (false, true): .dataTailStuffed
            case (true, true): .dataCompressedTailStuffed
            }
            var header: [UInt8] = [type.rawValue]
            header.appendBE(id.rawValue)
            appendRaw(header)
            openFrame!.tailStream = id
            openFrame!.tailStart = openFrame!.body.count
            openFrame!.tailCompressed = compressed
            openFrame!.tailStuffed = stuffed
            return continueTail(id, budget: budget)
        }
        var n = min(streams[id]!.deficit, available, fit, Wire.maxDataMessage)
        // Among many streams, one with little waiting sends it in two turns, not one (§8.1):
        // otherwise a thousand short downloads finish one after the other, the first in
        // milliseconds and the last after the whole line time, and the slowest has a
        // hundredth of the fastest one's rate. With few streams it does not, so that a reply
        // next to a bulk transfer does not wait a bulk turn for its second half.
        var split = false
        // Short means little buffered in all, not little compressed output waiting or little
        // credit left: a compressed bulk stream keeps its whole quantum.
        let waiting = pendingCompressed + streams[id]!.sendBuffer.count
        // Once per activation: the stream's first turn, while it is at the head of the sparse
        // queue; its second turn takes the rest, not half of it again.
        if sparse && (streams.competing > Self.manyStreams || streams.count > Self.manyOpenStreams)
            && waiting < 2 * configuration.quantum {
            let half = max(Self.smallestTurn, (available + 1) / 2)
            if half < n {
                n = half
                split = true
            }
        }
        // DATA's header is written here and its bytes taken straight from the send buffer (or
        // the compressor's output), rather than through `Message.data`, which would copy them
        // once more.
        var bytes: [UInt8] = [(compressed ? Wire.MessageType.dataCompressed : .data).rawValue]
        bytes.appendBE(id.rawValue)
        bytes.appendBE(UInt16(n))
        takeData(n, of: id, compressed: compressed, appendingTo: &bytes)
        streams[id]!.deficit -= n
        let drained = streams[id]!.sendBuffer.isEmpty
        // A stream that was idle and had at most a burst waiting is someone typing, whether its
        // burst went in one turn or was split in two.
        if sparse && waiting <= Self.interactiveBurst {
            interactiveUntil = now + Self.interactiveHold
        }
        var finToo = false
        if drained && streams[id]!.compression.pendingCount == 0 && streams[id]!.finQueued && room - 5 - n >= 3 {
            Message.fin(id).encode(into: &bytes)
            streams.finEmitted(id)
            finToo = true
        }
        appendRaw(bytes)
        notifyWritableIfRoom(id)
        if !streams[id]!.hasSendableWork {
            streams.leaveRounds(id)
        } else if streams[id]!.deficit <= 0 || split {
            streams.rotate(id)
        }
        if finToo { closeIfDone(id) }
        return true
    }

    /// Adds the next block's worth of DATA-TAIL bytes, ending on a COBS block boundary so the
    /// frame can be closed right after without holding anything back.
    mutating func continueTail(_ id: StreamID, budget: Int) -> Bool {
        guard let target = openFrame?.target, let bodyCount = openFrame?.body.count, streams.contains(id) else { return false }
        let otherWork = !control.isEmpty || streams.competing > 1 || pingDue || pongOwed != nil
        // Other work ends the tail, but not before its first byte: an empty tail is malformed.
        if otherWork && bodyCount > openFrame!.tailStart { return beginSuffix() }
        let room = target - bodyCount
        guard room > 0 else { return false }
        let tailCompressed = openFrame!.tailCompressed
        // A compressed tail refills from the send buffer as it goes; a plain one ends where the
        // stream would rather compress, so that the next frame can.
        let compressed = nextDataIsCompressed(id, continuing: tailCompressed)
        guard compressed == tailCompressed else { return false }
        let available = compressed ? streams[id]!.compression.pendingCount : streams[id]!.plainSendable
        guard available > 0 else { return false }
        let stuffed = openFrame!.tailStuffed
        var n: Int
        if stuffed {
            // Up to the next zero or marker, which ends a COBS block: blocks of at most 128
            // bytes, each handed to the line whole (§5.2). Room is kept for a marker and the
            // suffix length.
            n = min(available, room - 2, Wire.stuffingRun - openFrame!.stuffRun, 254 - writer.blockLength)
            guard n > 0 else { return false }
            if let z = offsetOfFirstZero(in: n, of: id, compressed: compressed) { n = z + 1 }
        } else if budget > 1024 {
            // Unpaced line, lots wanted: append a large chunk at once. The last partial block
            // waits for the next chunk or the frame's end.
            n = min(available, room, budget)
        } else {
            // Paced line: exactly up to the end of the current COBS block, so that everything
            // appended can be handed to the line at once and nothing is held back (§8.3).
            n = min(available, room, 254 - writer.blockLength)
            if let z = offsetOfFirstZero(in: n, of: id, compressed: compressed) { n = z + 1 }
        }
        var chunk: [UInt8] = []
        chunk.reserveCapacity(n)
        takeData(n, of: id, compressed: compressed, appendingTo: &chunk)
        appendRaw(chunk)
        if stuffed {
            if chunk.last == 0 {
                openFrame!.stuffRun = 0
            } else {
                openFrame!.stuffRun += n
                if openFrame!.stuffRun == Wire.stuffingRun {
                    appendRaw(CollectionOfOne(0))
                    openFrame!.stuffRun = 0
                }
            }
        }
        notifyWritableIfRoom(id)
        if !streams[id]!.hasSendableWork { streams.leaveRounds(id) }
        return true
    }

    /// Where the first zero byte is among the next `n` bytes stream `id` would send.
    func offsetOfFirstZero(in n: Int, of id: StreamID, compressed: Bool) -> Int? {
        compressed ? streams[id]!.compression.deflater!.pending.offsetOfFirstZero(in: n)
            : streams[id]!.sendBuffer.offsetOfFirstZero(in: n)
    }

    /// Takes `n` bytes of stream `id` for a DATA message or tail: from its compressor's output,
    /// whose credit is spent already, or plain from its send buffer, spending credit.
    mutating func takeData(_ n: Int, of id: StreamID, compressed: Bool, appendingTo out: inout [UInt8]) {
        if compressed {
            streams[id]!.compression.deflater!.pending.take(n, appendingTo: &out)
        } else {
            streams.takePlain(n, of: id, appendingTo: &out)
            statistics.payloadBytesSent += n
            notePlainSent(n, on: id)
        }
    }

    /// Ends a stuffed tail where it is, so that the urgent message that interrupts it (stream
    /// control, or a stream that was idle) follows in the same frame, as its suffix (§5.2): it
    /// then costs neither this frame's end nor a frame of its own. Returns whether it did; if not,
    /// the frame closes and the message goes in the next.
    mutating func beginSuffix() -> Bool {
        guard let frame = openFrame, frame.tailStuffed, frame.suffixStart == nil, !pingDue, pongOwed == nil else {
            return false
        }
        let sparse = streams.firstNew.map { $0 != frame.tailStream } ?? false
        guard !control.isEmpty || sparse, frame.target - frame.body.count > 16 else { return false }
        openFrame!.tailStream = nil
        openFrame!.suffixStart = frame.body.count
        return true
    }

    mutating func notifyWritableIfRoom(_ id: StreamID) {
        guard let s = streams[id], s.sendBlocked, s.sendBuffer.count <= configuration.sendBufferLimit / 2 else { return }
        streams[id]!.sendBlocked = false
        events.append(.writable(id))
    }

    mutating func closeOpenFrame(now: LinkTime) {
        guard var frame = openFrame else { return }
        openFrame = nil
        if let tail = frame.tailStream { streams.markActive(tail) }
        if frame.tailStuffed {
            statistics.stuffedFramesSent += 1
            if frame.suffixStart != nil { statistics.suffixedFramesSent += 1 }
            // The suffix length ends the body (0: no suffix).
            let length = frame.suffixStart.map { frame.body.count - $0 } ?? 0
            let byte = [UInt8(length)]
            frame.body.append(contentsOf: byte)
            writer.append(byte)
        }
        var trailer: [UInt8] = []
        let (ack, sack) = acknowledgementState
        trailer.appendBE(ack.rawValue)
        if !frame.compactTrailer { trailer.appendBE(sack) }
        writer.seal(trailer: trailer)
        ackDebt.paid()
        transmissionCounter += 1
        let lineBytes = frame.body.count + Wire.sequencedFrameOverhead + sealOverhead + frame.body.count / 254 + 1
        outstanding.append(SentFrame(sequence: frame.sequence, body: frame.body, lastSentAt: now,
                                     transmission: transmissionCounter, transmissions: 1,
                                     oldestLiveTransmission: transmissionCounter, lineBytes: lineBytes))
        statistics.framesSent += 1
        // A gap opened while the frame was streamed, and its trailer had no room for the SACK
        // bitmap: send the bitmap now rather than in the trailer of the next frame (§4.2).
        if frame.compactTrailer && sack != 0 { emitControlFrame(now: now) }
    }

    mutating func retransmit(at i: Int, now: LinkTime) {
        let f = outstanding[i]
        // A frame longer than the line now carries well is resent in fragments; each fragment
        // that arrives is kept by the receiver, so a long frame gets through on a noisy line.
        let fitting = max(frameTarget, (f.body.count + 254) / 255)
        var pieceSize = f.fragmentSize ?? fitting
        // Keep the piece size between retransmissions (the receiver keeps pieces), unless the
        // line turned out much worse than when the frame was first cut.
        if pieceSize >= 2 * fitting { pieceSize = fitting }
        if f.body.count > pieceSize {
            outstanding[i].fragmentSize = pieceSize
            let count = (f.body.count + pieceSize - 1) / pieceSize
            for k in 0..<count {
                var raw = Self.frameHeader(.fragment, f.sequence) + [UInt8(k), UInt8(count)]
                raw.append(contentsOf: f.body[(k * pieceSize)..<min(f.body.count, (k + 1) * pieceSize)])
                appendTrailerAndEncode(&raw)
                statistics.framesSent += 1
            }
        } else {
            var raw = Self.frameHeader(.sequenced, f.sequence)
            raw.append(contentsOf: f.body)
            appendTrailerAndEncode(&raw)
            statistics.framesSent += 1
        }
        transmissionCounter += 1
        outstanding[i].lastSentAt = now
        outstanding[i].transmission = transmissionCounter
        outstanding[i].transmissions += 1
        if f.lossProven { outstanding[i].oldestLiveTransmission = transmissionCounter }
        outstanding[i].fate = .inFlight
        statistics.retransmissions += 1
    }

    /// Unsequenced control frame: acknowledgement, and PING or PONG if owed (§4.3, §9).
    mutating func emitControlFrame(now: LinkTime) {
        var raw: [UInt8] = [Wire.FrameType.control.rawValue]
        if let token = pongOwed {
            Message.pong(token).encode(into: &raw)
            pongOwed = nil
        }
        if pingDue {
            pingToken &+= 1
            Message.ping(pingToken).encode(into: &raw)
            lastPingSentAt = now
            pingTransmission = transmissionCounter
            pingDue = false
            pingDueSince = nil
            pongAwaited = true
        }
        appendTrailerAndEncode(&raw)
        statistics.framesSent += 1
    }

    /// `type (1) | seq (2)`, the start of a SEQUENCED or FRAGMENT frame (§2).
    static func frameHeader(_ type: Wire.FrameType, _ seq: SequenceNumber) -> [UInt8] {
        var header: [UInt8] = [type.rawValue]
        header.appendBE(seq.rawValue)
        return header
    }

    /// Appends the acknowledgement trailer to a complete SEQUENCED, CONTROL or FRAGMENT frame,
    /// leaving out an empty SACK bitmap where the peer accepts that (§2), and encodes it.
    mutating func appendTrailerAndEncode(_ raw: inout [UInt8]) {
        let (ack, sack) = acknowledgementState
        raw.appendBE(ack.rawValue)
        if sack == 0 && peerAcceptsCompactTrailer {
            raw[0] |= Wire.compactTrailerFlag
        } else {
            raw.appendBE(sack)
        }
        encodeWholeFrame(&raw)
        ackDebt.paid()
    }

    /// A complete frame, without its CRC, to the output (§2).
    mutating func encodeWholeFrame(_ raw: inout [UInt8]) { writer.write(raw) }

    mutating func emitHello(now: LinkTime) {
        var extensions = helloExtensions
        let proved = protectionState?.peerRandom != nil
        if let offer = protectionExtension(proofRoom: proved) { extensions.append(offer) }
        let hello = Hello(usesOddStreamIDs: usesOddStreamIDs, needsReply: !isEstablished,
                          session: session, echo: helloEcho,
                          maxFrame: UInt32(configuration.maxFrameBody), maxStreams: UInt16(clamping: configuration.maxStreams),
                          initialWindow: UInt32(configuration.initialWindow),
                          capabilities: Wire.Capability.compactAcknowledgement | Wire.Capability.remoteListen
                              | Wire.Capability.compactTargets | Wire.Capability.stuffedTails
                              | (configuration.negotiatesStreamIDHalves ? Wire.Capability.negotiatedHalves : 0),
                          extensions: extensions)
        var raw: [UInt8] = [Wire.FrameType.hello.rawValue]
        hello.encode(into: &raw)
        if proved { signHello(&raw) }
        encodeWholeFrame(&raw)
        helloReplyOwed = false
        lastHelloSentAt = now
        statistics.framesSent += 1
    }
}

