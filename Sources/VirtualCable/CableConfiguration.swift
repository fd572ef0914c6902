/// One scheduled outage of the cable: for `seconds` seconds starting `start` seconds after
/// ``VirtualCable/start()``, every byte that leaves the sending UART is lost.
///
/// A struct rather than a tuple so that ``CableConfiguration`` can be `Sendable` and `Equatable`.
public struct CableOutage: Sendable, Equatable, Hashable {
    /// Seconds since the cable started at which the outage begins.
    public var start: Double
    /// How long the outage lasts, in seconds.
    public var seconds: Double

    public init(start: Double, seconds: Double) {
        self.start = start
        self.seconds = seconds
    }

    /// Whether the instant `t` (seconds since the cable started) falls inside the outage.
    /// The window is half-open, `[start, start + seconds)`, so back-to-back outages never
    /// count one byte twice.
    func contains(_ t: Double) -> Bool {
        t >= start && t < start + seconds
    }
}

/// Bursts of errors, as a radio link sees them when it fades: the two-state Gilbert–Elliott
/// model. The line is *good* (the cable's `ber` applies) or *bad* (`badBER` applies); after each
/// byte it moves from good to bad with probability `enter` and back with `leave`, so a bad spell
/// lasts 1/`leave` bytes on average and comes every 1/`enter` bytes.
public struct CableBursts: Sendable, Equatable, Hashable {
    public var enter: Double
    public var leave: Double
    public var badBER: Double

    public init(enter: Double, leave: Double, badBER: Double) {
        self.enter = enter
        self.leave = leave
        self.badBER = badBER
    }
}

/// Everything that describes how the virtual null-modem cable behaves.
///
/// The defaults describe a clean 115200 baud 8N1 line, which is what a user without hardware
/// most likely wants; tests and benchmarks then switch on faults one at a time.
public struct CableConfiguration: Sendable, Equatable {
    /// Line rate in bits per second. 0 means unpaced: bytes move as fast as the two ends take them.
    public var baud: Int
    /// Bits on the wire per byte: 10 for 8N1 (start bit, eight data bits, stop bit).
    public var bitsPerByte: Int
    /// Probability that any one data bit is flipped on the way.
    public var ber: Double
    /// Probability that a byte is lost entirely (as if its start bit were never seen).
    public var dropRate: Double
    /// Probability, per byte carried, that a burst of 1–32 random junk bytes follows it.
    /// Junk models noise picked up by the receiver, so it takes no line time.
    public var junkRate: Double
    /// Windows, in seconds since the cable started, during which every byte is lost.
    public var outages: [CableOutage]
    /// Seed of the cable's own pseudo-random generator, so that a run's faults can be replayed.
    public var seed: UInt64
    /// Size of the modelled UART transmit FIFO: how many bytes the cable takes from the sending
    /// pty ahead of the line. Keeping it small is what leaves the rest queued in the sender's
    /// kernel buffer, where `TIOCOUTQ` can see it, just as with a real serial port.
    public var fifoBytes: Int
    /// Bytes handed to the receiving pty at once while a burst goes on. Nil: like a 16550 UART,
    /// its receive FIFO trigger level (8 bytes, more at high rates so that hand-overs come at most
    /// every 250 µs). 62: like an FTDI USB adapter, which sends its buffer when it is full. The
    /// rest of a burst is handed over four character times after its last byte either way.
    public var receiveBatch: Int?
    /// One-way latency added after the UART, in seconds (a radio link's air time and modem
    /// buffering); 0 for a cable. Paced cables only.
    public var delay: Double = 0
    /// Up to this much more latency, at random per hand-over, in seconds; bytes still arrive in
    /// the order they were sent, as on any serial link.
    public var jitter: Double = 0
    /// Bursts of errors (Gilbert–Elliott), or nil for errors spread evenly at `ber`.
    public var bursts: CableBursts?
    /// If set, a symlink created at this path pointing at end A's device (``VirtualCable/pathA``).
    public var linkA: String?
    /// If set, a symlink created at this path pointing at end B's device (``VirtualCable/pathB``).
    public var linkB: String?
    /// Times end B is unplugged, in seconds since the cable started: for `seconds` its device
    /// hangs up and `linkB` is gone, as when a USB adapter is pulled; then it comes back as a new
    /// pseudo-terminal, under a new name, and `linkB` points there (as udev moves a by-id name).
    public var unplugsOfB: [CableOutage] = []
    /// Where end B's link goes when it comes back; nil: `linkB` again. A different path is a
    /// device that comes back under another name (ttyUSB0 as ttyUSB1).
    public var replugLinkB: String?

    public init(
        baud: Int = 115_200,
        bitsPerByte: Int = 10,
        ber: Double = 0,
        dropRate: Double = 0,
        junkRate: Double = 0,
        outages: [CableOutage] = [],
        seed: UInt64 = 1,
        fifoBytes: Int = 256,
        receiveBatch: Int? = nil,
        linkA: String? = nil,
        linkB: String? = nil
    ) {
        self.baud = baud
        self.bitsPerByte = bitsPerByte
        self.ber = ber
        self.dropRate = dropRate
        self.junkRate = junkRate
        self.outages = outages
        self.seed = seed
        self.fifoBytes = fifoBytes
        self.receiveBatch = receiveBatch
        self.linkA = linkA
        self.linkB = linkB
    }

    /// Checks every field and describes the first bad one, so that a command line or a test
    /// gets one clear sentence instead of a cable that silently misbehaves.
    public func validate() throws(VirtualCableError) {
        func bad(_ message: String) -> VirtualCableError { .invalidConfiguration(message) }
        if baud < 0 { throw bad("baud must be 0 (unpaced) or positive, got \(baud)") }
        if bitsPerByte < 1 { throw bad("bits per byte must be positive, got \(bitsPerByte)") }
        for (name, rate) in [("bit error rate", ber), ("drop rate", dropRate), ("junk rate", junkRate)] {
            if !(rate >= 0 && rate <= 1) {
                throw bad("\(name) must be a probability between 0 and 1, got \(rate)")
            }
        }
        for outage in outages {
            if !(outage.start.isFinite && outage.start >= 0 && outage.seconds.isFinite && outage.seconds >= 0) {
                throw bad("an outage needs a non-negative start and length, got \(outage.start):\(outage.seconds)")
            }
        }
        for unplug in unplugsOfB {
            if !(unplug.start.isFinite && unplug.start >= 0 && unplug.seconds.isFinite && unplug.seconds >= 0) {
                throw bad("an unplug needs a non-negative start and length, got \(unplug.start):\(unplug.seconds)")
            }
        }
        let sorted = unplugsOfB.sorted { $0.start < $1.start }
        for (first, second) in zip(sorted, sorted.dropFirst()) where second.start < first.start + first.seconds {
            throw bad("unplugs overlap: \(first.start):\(first.seconds) and \(second.start):\(second.seconds)")
        }
        if fifoBytes < 1 { throw bad("the FIFO must hold at least one byte, got \(fifoBytes)") }
        if let receiveBatch, !(1...4096).contains(receiveBatch) {
            throw bad("the receive batch must be 1 to 4096 bytes, got \(receiveBatch)")
        }
        for (name, value) in [("delay", delay), ("jitter", jitter)] where !(value.isFinite && value >= 0 && value <= 10) {
            throw bad("the \(name) must be 0 to 10 seconds, got \(value)")
        }
        if (delay > 0 || jitter > 0) && baud == 0 { throw bad("a delay needs a paced cable (a baud rate above 0)") }
        if let bursts {
            for (name, rate) in [("burst entry", bursts.enter), ("burst exit", bursts.leave), ("burst bit error rate", bursts.badBER)]
                where !(rate >= 0 && rate <= 1) {
                throw bad("the \(name) must be a probability between 0 and 1, got \(rate)")
            }
            if bursts.leave == 0 { throw bad("the burst exit probability must be above 0, or a burst never ends") }
        }
    }
}

/// Why a ``VirtualCable`` could not be made.
public enum VirtualCableError: Error, Equatable, CustomStringConvertible {
    /// A configuration field is out of range; the message names it.
    case invalidConfiguration(String)
    /// The kernel refused to make a pseudo-terminal pair.
    case openpty(errno: Int32)
    /// A link path could not be created (for example it exists and is not a symlink).
    case link(path: String, reason: String)
    /// Internal plumbing (the stop pipe) could not be made.
    case system(call: String, errno: Int32)

    public var description: String {
        switch self {
        case .invalidConfiguration(let message):
            return "invalid cable configuration: \(message)"
        case .openpty(let code):
            return "cannot open a pseudo-terminal: \(errorText(code))"
        case .link(let path, let reason):
            return "cannot create link \(path): \(reason)"
        case .system(let call, let code):
            return "\(call) failed: \(errorText(code))"
        }
    }
}
