import LinkCore
import NIOCore

/// What a `LinkDriver` drives: one service pass, and the core's timer.
protocol LinkDriverDelegate: AnyObject {
    /// Acts on the core's outputs; returns the core's next deadline (`Link.nextDeadline`).
    func servicePass(now: LinkTime) -> LinkTime?
    /// The core's deadline passed: `Link.handleTimeout(now:)`.
    func deadlinePassed(now: LinkTime)
}

/// The quinn-proto way of driving a sans-IO core: every input asks for a service pass, passes
/// asked for in one loop iteration run once, and a single timer is armed for the core's earliest
/// deadline. Time comes only from the event loop's clock (`EventLoop.now`), so on NIO's
/// `EmbeddedEventLoop` the driver runs on virtual time (`advanceTime(by:)`).
///
/// Confined to `loop`, like the runtime that owns it.
final class LinkDriver: @unchecked Sendable {
    // @unchecked: every use, and every closure it schedules, runs on `loop`.
    let loop: EventLoop
    weak var delegate: LinkDriverDelegate?
    private var passScheduled = false
    private var timer: Scheduled<Void>?
    private(set) var armedDeadline: LinkTime?
    private var stopped = false
    /// Passes run so far (the tests check that virtual time does not make it spin).
    private(set) var passes = 0

    /// A deadline already due fires this long after now: soon, but never in a tight loop.
    static let minimumTimerDelay = LinkDuration.milliseconds(1)

    init(loop: EventLoop) {
        self.loop = loop
    }

    var now: LinkTime { loop.linkNow }

    /// Asks for a service pass soon (later in this loop iteration). Cheap to call often.
    func schedulePass() {
        guard !passScheduled, !stopped else { return }
        passScheduled = true
        loop.execute { self.runPass() }
    }

    /// Runs a pass now (a pass already asked for still runs, and finds little to do).
    func runPass() {
        loop.assertInEventLoop()
        passScheduled = false
        guard !stopped, let delegate else { return }
        passes += 1
        let now = self.now
        rearm(for: delegate.servicePass(now: now), now: now)
    }

    /// One timer, always for the core's earliest deadline.
    private func rearm(for deadline: LinkTime?, now: LinkTime) {
        guard let deadline, !stopped else {
            cancelTimer()
            return
        }
        let at = max(deadline, now + Self.minimumTimerDelay)
        if timer != nil, let armed = armedDeadline, armed <= at {
            return  // an earlier (or equal) wake-up is already armed; it re-arms after firing
        }
        timer?.cancel()
        armedDeadline = at
        timer = loop.scheduleTask(deadline: NIODeadline(at)) {
            self.timer = nil
            self.armedDeadline = nil
            guard !self.stopped else { return }
            self.delegate?.deadlinePassed(now: self.now)
            self.runPass()
        }
    }

    private func cancelTimer() {
        timer?.cancel()
        timer = nil
        armedDeadline = nil
    }

    /// No more passes or timers.
    func stop() {
        stopped = true
        cancelTimer()
    }
}
