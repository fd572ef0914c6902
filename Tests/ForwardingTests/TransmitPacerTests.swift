@testable import Forwarding
import LinkCore
import Testing

/// The shell's pacing arithmetic, alone: no line, no loop, time passed in.
@Suite("Transmit pacer")
struct TransmitPacerTests {
    static let rate = 11_520  // 115200 baud 8N1
    static let preferred = 16

    @Test("an empty line gets the whole target: the core's wish plus 12 ms of line time")
    func emptyGetsTarget() {
        var pacer = TransmitPacer(lineRate: Self.rate)
        #expect(pacer.slack == Self.rate * 12 / 1000)
        let start = LinkTime(nanoseconds: 1_000_000_000)
        pacer.reset(now: start)
        #expect(pacer.budget(now: start, preferred: Self.preferred, reported: 0) == Self.preferred + pacer.slack)
    }

    @Test("while someone types, the queue kept below the core is 4 ms of line time, not 12")
    func interactiveQueueIsShort() {
        var pacer = TransmitPacer(lineRate: Self.rate)
        let start = LinkTime(nanoseconds: 1_000_000_000)
        pacer.reset(now: start)
        #expect(pacer.interactiveSlack == Self.rate * 4 / 1000)
        #expect(pacer.budget(now: start, preferred: Self.preferred, reported: 0, interactive: true)
                == Self.preferred + pacer.interactiveSlack)
        #expect(pacer.target(preferred: Self.preferred, interactive: true) < pacer.target(preferred: Self.preferred))
    }

    @Test("hysteresis: nothing more until the queue has drained to half its target, then a refill")
    func hysteresis() {
        var pacer = TransmitPacer(lineRate: Self.rate)
        var now = LinkTime(nanoseconds: 1_000_000_000)
        pacer.reset(now: now)
        let target = pacer.target(preferred: Self.preferred)
        pacer.handedDown(target)
        pacer.written(target, succeeded: true, now: now)
        #expect(pacer.inChannel == 0)
        #expect(pacer.queued(now: now, reported: 0) == target)
        // A third of the target drains: still above half, nothing is handed down.
        now = now + LinkDuration(nanoseconds: Int64(target / 3) * 1_000_000_000 / Int64(Self.rate))
        #expect(pacer.budget(now: now, preferred: Self.preferred, reported: 0) == 0)
        // Past half: the budget is what drained, a bigger piece at once.
        now = now + LinkDuration(nanoseconds: Int64(target / 4) * 1_000_000_000 / Int64(Self.rate))
        let budget = pacer.budget(now: now, preferred: Self.preferred, reported: 0)
        #expect(budget >= target / 2 && budget <= target)
        #expect(budget == target - pacer.queued(now: now, reported: 0))
    }

    @Test("what the driver reports counts when it is more than the model, and the channel's bytes on top")
    func reportedAndInChannel() {
        var pacer = TransmitPacer(lineRate: Self.rate)
        let now = LinkTime(nanoseconds: 5_000_000)
        pacer.reset(now: now)
        #expect(pacer.queued(now: now, reported: 40) == 40)
        pacer.handedDown(30)
        #expect(pacer.queued(now: now, reported: 40) == 70)
        pacer.written(30, succeeded: false, now: now)  // a failed write never reached the line
        #expect(pacer.queued(now: now, reported: 0) == 0)
    }

    @Test("the look-again delay is when half the target remains, within 1 to 5 ms; 2 ms unpaced")
    func topUpDelay() {
        var pacer = TransmitPacer(lineRate: Self.rate)
        let now = LinkTime(nanoseconds: 1_000_000)
        pacer.reset(now: now)
        #expect(pacer.topUpDelay(now: now, preferred: Self.preferred, reported: 0) == .milliseconds(1))
        let target = pacer.target(preferred: Self.preferred)
        pacer.handedDown(target)
        pacer.written(target, succeeded: true, now: now)
        let delay = pacer.topUpDelay(now: now, preferred: Self.preferred, reported: 0)
        let expected = Int64(target - target / 2) * 1_000_000_000 / Int64(Self.rate)
        #expect(delay.nanoseconds == min(5_000_000, max(1_000_000, expected)))
        pacer.handedDown(10_000)
        #expect(pacer.topUpDelay(now: now, preferred: Self.preferred, reported: 0) == .milliseconds(5))

        var unpaced = TransmitPacer(lineRate: 0)
        #expect(unpaced.slack == 0)
        #expect(unpaced.topUpDelay(now: now, preferred: 1 << 16, reported: 0) == .milliseconds(2))
        #expect(unpaced.budget(now: now, preferred: 1 << 16, reported: 0) == 1 << 16)
    }
}
