import LinkCore

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
