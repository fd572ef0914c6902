import LinkCore

/// How much the shell hands the line, and when it looks again: a pure value (no I/O, no clock;
/// time and the driver's own queue report are passed in), so its arithmetic is tested alone.
///
/// The core asks for `preferredQueueBelow` bytes queued below it (1 ms of line time). The event
/// loop may wake up late, so the pacer keeps `slack` more (12 ms of line time); without it the
/// UART runs dry between top-ups on a busy machine. The core is told about that slack
/// (`LinkConfiguration.queueSlackBelow`), so its retransmission timer and window count the same
/// queue the shell keeps.
///
/// What is queued below the core is the larger of what the driver reports (TIOCOUTQ; a
/// pseudo-terminal always says 0) and the line modelled from its rate, plus what the serial
/// channel holds and the kernel has not taken yet.
///
/// Hysteresis: once the queue is above half its target, nothing more is handed down until it has
/// drained to half. On a saturated line a frame was otherwise cut each time a few bytes drained,
/// and frames carried one or two messages each (socks-churn 307 → 420 conn/s with it).
struct TransmitPacer {
    /// Line time allowed for a late wake-up of the event loop.
    static let wakeUpSlackMilliseconds = 12
    /// The same while someone types (`Link.isInteractive`): every byte queued is a byte a
    /// keystroke waits behind, so the queue is kept short and the line may idle now and then.
    static let interactiveSlackMilliseconds = 4

    /// Payload bytes per second of the line; 0 when unpaced (the kernel's buffer is the limit).
    let lineRate: Int
    /// Bytes kept queued beyond what the core asks for.
    let slack: Int
    let interactiveSlack: Int
    private var line: LineQueueModel
    /// Handed to the serial channel and not yet taken by the kernel.
    private(set) var inChannel = 0

    init(lineRate: Int) {
        self.lineRate = lineRate
        slack = lineRate > 0 ? lineRate * Self.wakeUpSlackMilliseconds / 1000 : 0
        interactiveSlack = lineRate > 0 ? lineRate * Self.interactiveSlackMilliseconds / 1000 : 0
        line = LineQueueModel(bytesPerSecond: lineRate)
    }

    /// The device was (re)opened or went away: nothing is queued.
    mutating func reset(now: LinkTime) {
        inChannel = 0
        line.reset(now: now)
    }

    /// What to keep queued below the core.
    func target(preferred: Int, interactive: Bool = false) -> Int { preferred + (interactive ? interactiveSlack : slack) }

    /// Bytes queued below the core at `now`; `reported`: what the driver says its queue holds.
    mutating func queued(now: LinkTime, reported: Int) -> Int {
        max(reported, line.queued(at: now)) + inChannel
    }

    /// How many bytes to pull from the core now: up to the target, or none while the queue is
    /// still above half of it.
    mutating func budget(now: LinkTime, preferred: Int, reported: Int, interactive: Bool = false) -> Int {
        let target = target(preferred: preferred, interactive: interactive)
        let queued = queued(now: now, reported: reported)
        let budget = target - queued
        return queued > 0 && budget < target / 2 ? 0 : max(0, budget)
    }

    /// `count` bytes were handed to the serial channel.
    mutating func handedDown(_ count: Int) { inChannel += count }

    /// A write of `count` bytes completed at `now` (`succeeded`: the kernel took them).
    mutating func written(_ count: Int, succeeded: Bool, now: LinkTime) {
        inChannel -= count
        if succeeded { line.add(count, now: now) }
    }

    /// When to look again while the core has more: about when the queue has drained to half its
    /// target, between 1 and 5 ms; 2 ms unpaced. NIO cannot say when a tty queue drains.
    mutating func topUpDelay(now: LinkTime, preferred: Int, reported: Int, interactive: Bool = false) -> LinkDuration {
        guard lineRate > 0 else { return .milliseconds(2) }
        let excess = max(0, queued(now: now, reported: reported) - target(preferred: preferred, interactive: interactive) / 2)
        let nanoseconds = min(5_000_000, max(1_000_000, Int64(excess) * 1_000_000_000 / Int64(lineRate)))
        return LinkDuration(nanoseconds: nanoseconds)
    }
}

/// The bytes queued below the forwarder on a line whose driver cannot report them (a
/// pseudo-terminal's TIOCOUTQ always reads 0): everything written, drained at the line rate.
struct LineQueueModel {
    /// Payload bytes per second the line carries; 0 models nothing.
    let bytesPerSecond: Int
    private(set) var bytes = 0
    /// The time up to which draining has been accounted for.
    private var drainedUpTo = LinkTime.zero

    init(bytesPerSecond: Int) {
        self.bytesPerSecond = bytesPerSecond
    }

    /// Forgets everything, as when the device is (re)opened.
    mutating func reset(now: LinkTime) {
        bytes = 0
        drainedUpTo = now
    }

    /// The bytes still queued at `now`.
    mutating func queued(at now: LinkTime) -> Int {
        guard bytesPerSecond > 0, bytes > 0 else {
            drainedUpTo = now
            return 0
        }
        let elapsed = max(0, (now - drainedUpTo).nanoseconds)
        let drained = Int(elapsed * Int64(bytesPerSecond) / 1_000_000_000)
        guard drained > 0 else { return bytes }
        if drained >= bytes {
            bytes = 0
            drainedUpTo = now
        } else {
            // Account for exactly the line time of the bytes drained, not up to `now`: dropping
            // the fraction of a byte time at every look made the model drain slower than the
            // line when looks come every few hundred microseconds, and the line idled (1.5 %).
            bytes -= drained
            let drainTime: Int64 = Int64(drained) * 1_000_000_000 / Int64(bytesPerSecond)
            drainedUpTo = LinkTime(nanoseconds: drainedUpTo.nanoseconds + drainTime)
        }
        return bytes
    }

    /// `count` bytes were handed to the kernel at `now`.
    mutating func add(_ count: Int, now: LinkTime) {
        guard bytesPerSecond > 0 else { return }
        _ = queued(at: now)
        bytes += count
    }
}
