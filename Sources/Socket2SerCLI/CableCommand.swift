import ArgumentParser
import Dispatch
import Foundation
import Logging
import VirtualCable

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `socket2ser cable`: two pseudo-terminals joined like a null-modem cable.
///
/// Prints `A <path>` and `B <path>` on stdout as soon as the devices exist (flushed at once,
/// because tests and scripts read them to know what to open), carries bytes until SIGINT or
/// SIGTERM, then prints the cable's counters on stderr and exits 0.
struct CableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cable",
        abstract: "Run a virtual serial cable between two pseudo-terminals.",
        discussion: """
            Prints the two device paths as 'A <path>' and 'B <path>', then carries bytes between \
            them like a null-modem cable, paced like an 8N1 UART, until interrupted. Faults are \
            drawn from a seeded generator, so the same seed and traffic give the same faults.
            """)

    @Option(help: "Line rate in bits per second; 0 moves bytes as fast as possible.")
    var baud: Int = 115_200

    @Option(help: "Bit error rate: probability that each data bit is flipped.")
    var ber: Double = 0

    @Option(help: "Probability that each byte is dropped.")
    var drop: Double = 0

    @Option(help: "Probability per byte of inserting a burst of 1-32 random junk bytes.")
    var junk: Double = 0

    @Option(help: ArgumentHelp(
        "An outage: every byte is lost from START seconds after the cable starts, for SECONDS seconds. Repeatable.",
        valueName: "start:seconds"))
    var outage: [String] = []

    @Option(help: "Seed of the fault generator.")
    var seed: UInt64 = 1

    @Option(name: .customLong("receive-batch"), help: ArgumentHelp(
        "Bytes the receiving end gets at once during a burst: 8 like a 16550 UART (the default), 62 like an FTDI USB adapter.",
        valueName: "bytes"))
    var receiveBatch: Int?

    @Option(help: ArgumentHelp("One-way latency in milliseconds, as a radio link has (e.g. 80 for a SiK telemetry radio).",
                               valueName: "ms"))
    var delay: Double = 0

    @Option(help: ArgumentHelp("Up to this many milliseconds more latency, at random; bytes stay in order.", valueName: "ms"))
    var jitter: Double = 0

    @Option(help: ArgumentHelp("""
        Bursts of errors (Gilbert-Elliott): after each byte the line fades with probability ENTER and         recovers with LEAVE; while faded each bit flips with probability BER. E.g. 0.0002:0.02:0.01.
        """, valueName: "enter:leave:ber"))
    var burst: String?

    @Option(help: ArgumentHelp("""
        Unplug end B from START seconds after the cable starts, for SECONDS: its device hangs up and \
        --link-b goes; then it comes back as a new pty, under a new name, and --link-b points there \
        (as udev moves a by-id name). Repeatable.
        """, valueName: "start:seconds"))
    var unplug: [String] = []

    @Option(name: .customLong("replug-link-b"), help: ArgumentHelp(
        "With --unplug: where end B's link goes when it comes back (default: --link-b's path), as a device that returns under another name.",
        valueName: "path"))
    var replugLinkB: String?

    @Option(name: .customLong("link-a"), help: "Create a symlink at this path pointing to end A.")
    var linkA: String?

    @Option(name: .customLong("link-b"), help: "Create a symlink at this path pointing to end B.")
    var linkB: String?

    /// Parses one `--outage` value, `START:SECONDS`, both non-negative numbers of seconds.
    static func parseOutage(_ text: String) throws -> CableOutage {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let start = Double(parts[0]), let seconds = Double(parts[1]),
              start.isFinite, seconds.isFinite, start >= 0, seconds >= 0
        else {
            throw ValidationError("--outage must be START:SECONDS with two non-negative numbers, got '\(text)'")
        }
        return CableOutage(start: start, seconds: seconds)
    }

    /// Parses `--burst ENTER:LEAVE:BER`, three probabilities.
    static func parseBursts(_ text: String) throws -> CableBursts {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { Double($0) }
        guard parts.count == 3, let enter = parts[0], let leave = parts[1], let ber = parts[2] else {
            throw ValidationError("--burst must be ENTER:LEAVE:BER, three probabilities such as 0.0002:0.02:0.01, got '\(text)'")
        }
        return CableBursts(enter: enter, leave: leave, badBER: ber)
    }

    /// The cable configuration the options describe.
    func cableConfiguration() throws -> CableConfiguration {
        var configuration = CableConfiguration(
            baud: baud, ber: ber, dropRate: drop, junkRate: junk,
            outages: try outage.map(Self.parseOutage), seed: seed,
            receiveBatch: receiveBatch, linkA: linkA, linkB: linkB)
        configuration.delay = delay / 1000
        configuration.jitter = jitter / 1000
        configuration.bursts = try burst.map(Self.parseBursts)
        configuration.replugLinkB = replugLinkB
        configuration.unplugsOfB = try unplug.map { text in
            do { return try Self.parseOutage(text) } catch {
                throw ValidationError("--unplug must be START:SECONDS with two non-negative numbers, got '\(text)'")
            }
        }
        return configuration
    }

    func validate() throws {
        if baud < 0 { throw ValidationError("--baud must be 0 (unpaced) or positive, got \(baud)") }
        for (name, value) in [("--ber", ber), ("--drop", drop), ("--junk", junk)] where !(value >= 0 && value <= 1) {
            throw ValidationError("\(name) must be a probability between 0 and 1, got \(value)")
        }
        for (name, value) in [("--delay", delay), ("--jitter", jitter)] where !(value.isFinite && value >= 0 && value <= 10_000) {
            throw ValidationError("\(name) must be 0 to 10000 milliseconds, got \(value)")
        }
        // Parses the outages and checks everything else the library checks.
        do {
            try cableConfiguration().validate()
        } catch let error as VirtualCableError {
            throw ValidationError(error.description)
        }
    }

    func run() async throws {
        let cable: VirtualCable
        do {
            cable = try VirtualCable(configuration: try cableConfiguration())
        } catch let error as VirtualCableError {
            // A runtime failure, not a usage error: one line, no usage text.
            writeLine("socket2ser cable: \(error)", to: .standardError)
            throw ExitCode.failure
        }
        // The same signal handling as every other command: armed (registered, not only
        // requested) before the paths are announced, so that whoever reads them may stop the
        // cable at once and still get a clean stop. The cable logs nothing of its own.
        let quiet = Logger(label: "socket2ser cable") { StderrLogHandler(label: $0, logLevel: .warning) }
        let once = ResumeOnce()
        let received = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            once.set(continuation)
            Task {
                let signals = await ShutdownSignals.install(logger: quiet) { number in once.resume(returning: number) }
                once.keep(signals)
                cable.start()
                writeLine("A \(cable.pathA)\nB \(cable.pathB)", to: .standardOutput)
            }
        }
        once.releaseSignals()
        cable.stop()
        writeLine("socket2ser cable: stopped by \(received == SIGINT ? "SIGINT" : "SIGTERM")", to: .standardError)
        writeLine(cable.counters.description, to: .standardError)
    }
}

/// Resumes a continuation at most once, from whichever signal comes first, and holds the signal
/// handlers until the cable has stopped.
private final class ResumeOnce: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<Int32, Never>?
    private var signals: ShutdownSignals?

    func keep(_ signals: ShutdownSignals) {
        lock.withLock { self.signals = signals }
    }

    func releaseSignals() {
        let signals = lock.withLock { () -> ShutdownSignals? in
            defer { self.signals = nil }
            return self.signals
        }
        signals?.stop()
    }

    func set(_ continuation: CheckedContinuation<Int32, Never>) {
        lock.lock()
        defer { lock.unlock() }
        self.continuation = continuation
    }

    func resume(returning value: Int32) {
        lock.lock()
        let pending = continuation
        continuation = nil
        lock.unlock()
        pending?.resume(returning: value)
    }
}

/// Writes one line straight to the file descriptor: FileHandle does not buffer, so a reader on
/// the other end of a pipe sees it immediately.
private func writeLine(_ text: String, to handle: FileHandle) {
    handle.write(Data((text + "\n").utf8))
}
