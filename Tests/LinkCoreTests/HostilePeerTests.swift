@testable import LinkCore
import Testing

/// A peer that follows the wire format but not good manners (issue 12): each limit holds, the
/// end's memory stays bounded, and a well-behaved stream still works beside it.
@Suite("A hostile but well-formed peer")
struct HostilePeerTests {
    @Test("a flood of OPENs beyond maxStreams is refused with tooMany; the streams held stay at the limit, and a later stream works")
    func openFlood() throws {
        let pair = Pair(seed: 91) { side, c in if side == .a { c.maxStreams = 64 } }
        #expect(pair.establish())
        #expect(pair.quiesce())
        var maxHeld = 0
        pair.invariant = { p in maxHeld = max(maxHeld, p.a.streamCount) }
        // B's core keeps to A's limit, so the flood is written by hand, as B's next frames:
        // 2,000 OPENs (even IDs, B's half) in 40 frames.
        var next: UInt16 = 1000
        for _ in 0..<40 {
            let messages = (0..<50).map { _ -> Message in
                defer { next += 2 }
                return .open(StreamID(next), target: "flood")
            }
            let seq = pair.b.inspection.nextSequence
            pair.a.receive(sequencedFrame(seq: seq, messages: messages, ack: pair.b.inspection.expectedSequence), now: pair.now)
            pair.b.nextSequence = seq + 1
        }
        #expect(pair.a.statistics.refusedTooMany == 2000 - 64)
        #expect(maxHeld <= 64 && pair.a.streamCount == 64)
        pair.run(for: .seconds(2))
        #expect(pair.a.streamCount <= 64)
        #expect(pair.a.bufferedReceiveBytes == 0)
        #expect(pair.a.statistics.protocolViolations == 0)
        // A's own streams still work beside the 64 it holds.
        let id = try pair.open(.a, target: "after")
        pair.write(.a, id, Array("still here".utf8), finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == Array("still here".utf8))
    }

    @Test("a peer that never acknowledges: at most 32 frames and a bounded number of bytes wait, and sending stops there")
    func neverAcknowledges() throws {
        let pair = Pair(seed: 92)
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        pair.filter = { side, _, _ in side == .b ? .drop : .deliver }   // B's acknowledgements never arrive
        var maxOutstanding = 0, maxInFlight = 0
        pair.invariant = { p in
            maxOutstanding = max(maxOutstanding, p.a.inspection.outstandingFrames.count)
            maxInFlight = max(maxInFlight, p.a.bytesInFlight)
        }
        pair.write(.a, id, pattern(2_000_000, seed: 4))
        pair.run(for: .seconds(20))
        #expect(maxOutstanding <= 32)
        // What waits is bounded by the window, not by what the application offered.
        #expect(maxInFlight <= 64 * 1024 + 32 * 100)
        #expect((pair.a.inspection.stream(id)?.bufferedSendBytes ?? 0) <= pair.a.configuration.sendBufferLimit)
    }
}
