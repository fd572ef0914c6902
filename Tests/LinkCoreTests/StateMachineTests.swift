@testable import LinkCore
import Testing

/// The core's small state machines, each driven through its events directly, and the verdicts
/// a stream gives messages from the peer, seen end to end on a link.
@Suite("State machines")
struct StateMachineTests {
    // MARK: Windows

    @Test("a receive window lets in its size, owes a grant after a quarter is consumed, and reopens by the grant")
    func receiveWindow() {
        var w = ReceiveWindow(size: 1000)
        let first = w.receive(600), over = w.receive(401)  // over the credit: refused, nothing changes
        #expect(first && !over)
        #expect(w.remaining == 400 && w.unconsumed == 600)
        #expect(w.consume(200) == 200 && !w.grantDue)
        #expect(w.consume(900) == 400)  // only what was delivered
        #expect(w.grantDue && w.increment == 600)
        w.granted(600)
        #expect(w.remaining == 1000 && w.pendingGrant == 0 && w.increment == nil)
        #expect(w.remaining + w.unconsumed + w.pendingGrant == w.size)
    }

    @Test("a receive window grows when grants come less than two round trips apart, up to its limit, and shrinks back when the reader stalls")
    func adaptiveReceiveWindow() {
        let ms = { (n: Int64) in LinkTime(nanoseconds: n * 1_000_000) }
        var w = ReceiveWindow(size: 4000)
        func cycle(_ n: Int, at t: LinkTime, rtt: LinkDuration?, limit: Int = 10_000) -> Bool {
            _ = w.receive(n)
            _ = w.consume(n)
            let increment = w.increment!
            w.granted(increment)
            return w.grantSent(at: t, roundTrip: rtt, limit: limit)
        }
        let first = cycle(1000, at: ms(0), rtt: .milliseconds(100))  // nothing to compare with yet
        let slow = cycle(1000, at: ms(300), rtt: .milliseconds(100))  // 300 ms apart: the reader or the line is the limit
        let noRTT = cycle(1000, at: ms(310), rtt: nil)
        #expect(!first && !slow && !noRTT && w.size == 4000)
        let fast = cycle(1000, at: ms(400), rtt: .milliseconds(100))  // 90 ms apart, round trip 100 ms
        #expect(fast && w.size == 6000 && w.pendingGrant == 2000)  // the extra goes with the next grant
        let again = cycle(1000, at: ms(450), rtt: .milliseconds(100))
        #expect(again && w.size == 9000)
        let capped = cycle(1000, at: ms(500), rtt: .milliseconds(100))
        #expect(capped && w.size == 10_000)
        let past = cycle(1000, at: ms(550), rtt: .milliseconds(100))
        #expect(!past && w.size == 10_000)
        #expect(w.remaining + w.unconsumed + w.pendingGrant == w.size)
        // The reader stops: half the window waits for it. Back to the base size; what was granted
        // already stays granted, and consumption pays the difference off before any new credit.
        if let increment = w.increment { w.granted(increment) }
        let flood = w.receive(w.remaining)
        let shrank = w.shrinkIfStalled()
        #expect(flood && shrank && w.size == 4000 && w.debt == 6000)
        #expect(w.remaining + w.unconsumed + w.pendingGrant - w.debt == w.size)
        _ = w.consume(5000)
        #expect(w.pendingGrant == 0 && w.debt == 1000)
        _ = w.consume(w.unconsumed)
        #expect(w.debt == 0 && w.remaining + w.pendingGrant == w.size)
    }

    @Test("a send window refuses a grant past 2^31 - 1 and changes nothing")
    func sendWindow() {
        var w = SendWindow(credit: 10)
        w.spend(10)
        let granted = w.grant(100)
        #expect(granted && w.credit == 100)
        let overflowed = !w.grant(UInt32.max)
        #expect(overflowed)
        #expect(w.credit == 100)
    }

    // MARK: Stream lifecycle

    @Test("our stream: OPEN queued, sent, accepted; the peer may send only once it accepted")
    func outboundOpening() {
        var s = StreamState(opening: StreamID(1), target: "x:1", peerWindow: 0, receiveWindow: 100)
        #expect(!s.peerKnowsOf && s.queuedOpenTarget == "x:1")
        #expect(s.peerGranted(10) == .ignored)  // a stale CREDIT for an earlier stream of this ID
        #expect(s.sendCredit == 0)
        #expect(s.peerAccepted() == .violation("OPEN-OK for #1 before its OPEN was sent"))
        s.openOrAcceptEmitted()
        #expect(s.peerKnowsOf && s.openEmitted && s.queuedOpenTarget == nil)
        if case .violation = s.peerData(5) {} else { Issue.record("data before OPEN-OK was let in") }
        #expect(s.peerAccepted() == .applied)
        #expect(s.peerData(5) == .applied)
        #expect(s.peerAccepted() == .violation("a second OPEN-OK for #1"))
        #expect(s.peerRefused() == .violation("OPEN-REFUSED for #1, which is open"))
    }

    @Test("the peer's stream: awaiting accept, accepted, OPEN-OK emitted; OPEN-OK from the peer is a violation")
    func inboundOpening() {
        var s = StreamState(openedByPeer: StreamID(2), peerWindow: 50, receiveWindow: 100)
        #expect(s.peerData(10) == .applied)  // data may follow the OPEN at once (§5.3)
        #expect(!s.openEmitted)
        #expect(s.accepted() && !s.accepted())
        #expect(s.opening == .acceptQueued && !s.openEmitted)
        s.openOrAcceptEmitted()
        #expect(s.opening == .open && s.openEmitted)
        #expect(s.peerAccepted() == .violation("OPEN-OK for #2, which the peer opened"))
    }

    @Test("the peer's direction: data within the window, FIN, then data or a second FIN is a violation")
    func inboundDirection() {
        var s = StreamState(openedByPeer: StreamID(2), peerWindow: 0, receiveWindow: 100)
        #expect(s.peerData(101) == .creditExceeded)
        #expect(s.peerData(60) == .applied)
        #expect(s.consume(10) == 10)
        let (verdict, hadInflater) = s.peerFinished()
        #expect(verdict == .applied && !hadInflater && s.finReceived)
        #expect(s.unconsumed == 50)  // what it sent before FIN is still owed to the application
        #expect(s.peerData(1) == .violation("data for #2 after the peer's FIN"))
        #expect(s.peerFinished().0 == .violation("a second FIN for #2"))
        #expect(s.consume(100) == 50 && s.unconsumed == 0)
        #expect(!s.wantsGrant)  // nothing is granted to a finished direction
    }

    @Test("our direction: sending, finishing, finished; a CREDIT after our FIN is ignored")
    func outboundDirection() {
        var s = StreamState(openedByPeer: StreamID(2), peerWindow: 100, receiveWindow: 100)
        _ = s.accepted()
        s.openOrAcceptEmitted()
        s.sendBuffer.append(contentsOf: [1, 2, 3])
        #expect(s.hasSendableWork && s.plainSendable == 3)
        s.spendCredit(3)
        var out: [UInt8] = []
        s.sendBuffer.take(3, appendingTo: &out)
        #expect(!s.hasSendableWork)
        #expect(s.finish() && !s.finish() && s.finQueued && s.hasSendableWork)
        #expect(s.peerGranted(10) == .applied && s.sendCredit == 107)
        s.finEmitted()
        #expect(s.finSent && s.sendCredit == 0 && !s.hasSendableWork)
        #expect(s.peerGranted(10) == .ignored)
    }

    // MARK: Session, acknowledgements, frames

    @Test("the session: handshaking until the peer echoes us, then alive, silent, alive; ended keeps the peer's HELLO")
    func session() {
        let hello = Hello(usesOddStreamIDs: false, needsReply: true, session: 7, echo: 0, maxFrame: 1024,
                          maxStreams: 8, initialWindow: 1000, capabilities: 0, extensions: [])
        var state = SessionState.handshaking(peer: nil)
        let early = state.helloReceived(hello, ourSession: 42)
        #expect(!early)
        #expect(state == .handshaking(peer: hello))
        var echoing = hello
        echoing.echo = 42
        let completed = state.helloReceived(echoing, ourSession: 42)
        #expect(completed && state.isEstablished)
        let stale = state.helloReceived(hello, ourSession: 42)  // a stale HELLO changes nothing
        #expect(!stale && state.isEstablished)
        let restoredWhileAlive = state.heard()
        #expect(!restoredWhileAlive)
        let silent = state.silenceDetected(), again = state.silenceDetected()
        #expect(silent && state.isSilent && !again)
        let restored = state.heard()
        #expect(restored && !state.isSilent)
        state.ended()
        #expect(state == .handshaking(peer: hello))
    }

    @Test("acknowledgement debt: owed from the first frame, urgent after a gap, paid by a trailer")
    func ackDebt() {
        var debt = AckDebt.none
        #expect(debt.deadline(delay: .milliseconds(3)) == nil)
        debt.frameArrived(now: LinkTime(nanoseconds: 1_000_000))
        debt.frameArrived(now: LinkTime(nanoseconds: 2_000_000))  // the first frame's time counts
        #expect(debt.deadline(delay: .milliseconds(3)) == LinkTime(nanoseconds: 4_000_000))
        debt.gapSeen()
        #expect(debt.isUrgent && debt.deadline(delay: .milliseconds(3)) == .zero)
        debt.paid()
        #expect(debt == .none)
    }

    @Test("the frame seam: a frame built in pieces equals the one written whole, and the reader opens it")
    func frameSeam() throws {
        let header: [UInt8] = [Wire.FrameType.sequenced.rawValue, 0x01, 0x02]
        let body = Array(pattern(700, seed: 3))
        let trailer: [UInt8] = [0x00, 0x05, 0, 0, 0, 1]
        var pieces = FrameWriter()
        pieces.begin(header: header)
        pieces.append(body[..<300])
        pieces.append(body[300...])
        pieces.seal(trailer: trailer)
        var whole = FrameWriter()
        whole.write(header + body + trailer)
        var a: [UInt8] = [], b: [UInt8] = []
        #expect(pieces.hand(.max, to: &a) == whole.hand(.max, to: &b))
        #expect(a == b && pieces.isEmpty)
        var decoder = COBSDecoder(maxFrameLength: 2000)
        var index = 0
        let decoded = a.withUnsafeBytes { raw in decoder.decode(raw, index: &index) }
        #expect(decoded == .frame)
        guard case .success(.sequenced(let seq, let got, let ack)) = FrameReader.open(decoder.frame) else {
            Issue.record("not opened as a sequenced frame")
            return
        }
        #expect(seq == SequenceNumber(0x0102) && Array(got) == body)
        #expect(ack == Acknowledgement(ack: SequenceNumber(5), sack: 1))
        var damaged = decoder.frame
        damaged[10] ^= 0x40
        #expect(FrameReader.open(damaged).failure == .crc)
        var short: [UInt8] = [Wire.FrameType.sequenced.rawValue]  // a sound CRC, but no room for header and trailer
        short.appendLE(CRC32C.checksum(short))
        #expect(FrameReader.open(short).failure == .malformed)
    }

    // MARK: Verdicts on a link

    /// What a peer that breaks the stream rules gets: that stream reset as a violation, one
    /// protocol violation counted, and the link going on.
    @Test("data after the peer's FIN, and a second OPEN-OK, reset the stream as violations; other streams go on",
          arguments: ["data after FIN", "second OPEN-OK"])
    func violationsOnTheLink(_ kind: String) throws {
        let pair = Pair(seed: 61)
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        #expect(pair.quiesce())
        let messages: [Message] = kind == "data after FIN" ? [.fin(id), .data(id, [1, 2, 3])] : [.openOK(id)]
        let seq = pair.b.inspection.nextSequence
        pair.a.receive(sequencedFrame(seq: seq, messages: messages, ack: pair.b.inspection.expectedSequence), now: pair.now)
        pair.b.nextSequence = seq + 1
        #expect(pair.run(timeLimit: .seconds(5)) { $0.has(.b, .streamReset(id, .protocolViolation)) })
        #expect(pair.has(.a, .streamReset(id, .protocolViolation)))
        #expect(pair.a.statistics.protocolViolations == 1)
        let next = try pair.openAccepted(from: .a)
        pair.write(.a, next, pattern(3000, seed: 9), finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(next)) })
    }
}

extension Result {
    var failure: Failure? {
        if case .failure(let f) = self { return f }
        return nil
    }
}
