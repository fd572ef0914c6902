import LinkCore
import Testing
@testable import Forwarding

/// The forwarder's model of the bytes queued in a pty, which cannot report them itself.
@Suite struct LineQueueModelTests {
    let start = LinkTime(nanoseconds: 1_000_000_000)

    func at(_ microseconds: Int64) -> LinkTime { LinkTime(nanoseconds: start.nanoseconds + microseconds * 1000) }

    @Test func drainsAtTheLineRateHoweverOftenItIsAsked() {
        // 11,520 B/s: one byte every 86.8 µs. Asked every 100 µs, each look drains one byte and
        // leaves 13 µs over; the model must carry those fractions, or it drains 13 % too slowly.
        for step: Int64 in [30, 100, 250, 1000, 7000] {
            var model = LineQueueModel(bytesPerSecond: 11_520)
            model.reset(now: start)
            model.add(11_520, now: start)
            var t: Int64 = 0
            while t < 500_000 {
                t += step
                _ = model.queued(at: at(t))
            }
            let expected = 11_520 - Int(Int64(11_520) * t / 1_000_000)
            #expect(abs(model.queued(at: at(t)) - expected) <= 1, "asked every \(step) µs")
        }
    }

    @Test func emptiesAndStartsAgainFromTheNextWrite() {
        var model = LineQueueModel(bytesPerSecond: 10_000)
        model.reset(now: start)
        model.add(100, now: start)
        #expect(model.queued(at: at(5_000)) == 50)
        #expect(model.queued(at: at(20_000)) == 0)
        // Idle for a while: the next bytes drain from when they were written, not from before.
        model.add(100, now: at(1_000_000))
        #expect(model.queued(at: at(1_000_000)) == 100)
        #expect(model.queued(at: at(1_004_000)) == 60)
    }

    @Test func unpacedModelsNothing() {
        var model = LineQueueModel(bytesPerSecond: 0)
        model.add(1 << 20, now: start)
        #expect(model.queued(at: start) == 0)
    }
}
