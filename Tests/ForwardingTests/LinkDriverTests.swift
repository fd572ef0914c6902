@testable import Forwarding
import LinkCore
import NIOCore
import NIOEmbedded
import Testing

/// The driver on NIO's embedded event loop, with virtual time: passes coalesce, one timer for
/// the core's deadline, and a real pair of `Link`s handshaking through it without a real clock.
@Suite("Link driver (embedded event loop, virtual time)")
struct LinkDriverTests {
    /// Records what the driver asks of it; answers with a deadline the test sets.
    final class Recorder: LinkDriverDelegate {
        var passes: [LinkTime] = []
        var timeouts: [LinkTime] = []
        var deadline: LinkTime?
        func servicePass(now: LinkTime) -> LinkTime? {
            passes.append(now)
            return deadline
        }
        func deadlinePassed(now: LinkTime) { timeouts.append(now) }
    }

    /// An embedded loop and a driver on it, reporting to a recorder (returned, so it stays alive).
    static func rig() -> (loop: EmbeddedEventLoop, driver: LinkDriver, recorder: Recorder) {
        let loop = EmbeddedEventLoop()
        let driver = LinkDriver(loop: loop)
        let recorder = Recorder()
        driver.delegate = recorder
        return (loop, driver, recorder)
    }

    @Test("passes asked for in one loop iteration run once")
    func coalesced() {
        let (loop, driver, recorder) = Self.rig()
        for _ in 0..<10 { driver.schedulePass() }
        #expect(recorder.passes.isEmpty)
        loop.run()
        #expect(recorder.passes.count == 1)
        driver.schedulePass()
        loop.run()
        #expect(recorder.passes.count == 2)
    }

    @Test("the timer fires at the core's deadline on the loop's clock, then a pass follows")
    func timerAtDeadline() {
        let (loop, driver, recorder) = Self.rig()
        let start = loop.linkNow
        recorder.deadline = start + .milliseconds(40)
        driver.schedulePass()
        loop.run()
        #expect(driver.armedDeadline == start + .milliseconds(40))
        recorder.deadline = nil
        loop.advanceTime(by: .milliseconds(39))
        #expect(recorder.timeouts.isEmpty)
        loop.advanceTime(by: .milliseconds(1))
        #expect(recorder.timeouts == [start + .milliseconds(40)])
        #expect(recorder.passes.last == start + .milliseconds(40))
        #expect(driver.armedDeadline == nil)  // the core has no deadline now
    }

    @Test("a due deadline fires 1 ms later, never in a tight loop; an earlier armed timer is kept")
    func dueAndEarlier() {
        let (loop, driver, recorder) = Self.rig()
        let start = loop.linkNow
        recorder.deadline = start  // already due
        driver.schedulePass()
        loop.run()
        #expect(driver.armedDeadline == start + .milliseconds(1))
        #expect(recorder.timeouts.isEmpty)
        recorder.deadline = start + .milliseconds(50)  // later: the earlier wake-up stays
        driver.schedulePass()
        loop.run()
        #expect(driver.armedDeadline == start + .milliseconds(1))
        loop.advanceTime(by: .milliseconds(1))
        #expect(recorder.timeouts.count == 1)
        #expect(driver.armedDeadline == start + .milliseconds(50))  // re-armed by the pass after firing
    }

    @Test("after stop nothing runs")
    func stopped() {
        let (loop, driver, recorder) = Self.rig()
        recorder.deadline = loop.linkNow + .milliseconds(5)
        driver.schedulePass()
        loop.run()
        driver.stop()
        driver.schedulePass()
        loop.advanceTime(by: .seconds(1))
        #expect(recorder.passes.count == 1)
        #expect(recorder.timeouts.isEmpty)
    }

    /// One end of a pair of cores, each driven by its own driver on one embedded loop; what one
    /// transmits reaches the other at once (an ideal cable).
    final class End: LinkDriverDelegate {
        var link: Link
        let driver: LinkDriver
        weak var peer: End?
        var events: [LinkEvent] = []
        init(_ configuration: LinkConfiguration, loop: EmbeddedEventLoop) {
            link = Link(configuration: configuration)
            driver = LinkDriver(loop: loop)
            driver.delegate = self
        }
        func servicePass(now: LinkTime) -> LinkTime? {
            while let event = link.pollEvent() { events.append(event) }
            let bytes = link.pollTransmit(maxBytes: 1 << 16, now: now)
            if !bytes.isEmpty, let peer {
                bytes.withUnsafeBytes { peer.link.receive($0, now: now) }
                peer.driver.schedulePass()
            }
            return link.nextDeadline
        }
        func deadlinePassed(now: LinkTime) { link.handleTimeout(now: now) }
    }

    @Test("two real cores handshake and stay up through their drivers on virtual time alone")
    func twoCores() throws {
        let loop = EmbeddedEventLoop()
        let a = End(LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: 11_520, seed: 1), loop: loop)
        let b = End(LinkConfiguration(usesOddStreamIDs: false, lineBytesPerSecond: 11_520, seed: 2), loop: loop)
        a.peer = b
        b.peer = a
        a.driver.schedulePass()
        b.driver.schedulePass()
        loop.run()
        #expect(a.link.isEstablished && b.link.isEstablished)
        // A minute of virtual time: keepalives keep it up, and only timers advanced the clock.
        for _ in 0..<600 { loop.advanceTime(by: .milliseconds(100)) }
        #expect(a.link.isEstablished && b.link.isEstablished)
        #expect(!a.events.contains { if case .linkDown = $0 { return true } else { return false } })
        #expect(a.link.statistics.framesSent > 50)  // about one keepalive a second, each way
        #expect(a.driver.passes < 10_000, "no busy loop: \(a.driver.passes) passes")
    }
}
