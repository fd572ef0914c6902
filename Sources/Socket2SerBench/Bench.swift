#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Forwarding
import Foundation

/// The benchmark harness behind `socket2ser bench`: what to run, already checked, and the run.
///
/// Every scenario starts a fresh `socket2ser cable` and a fresh pair of `socket2ser S` and
/// `socket2ser C` processes on its two ends, runs real TCP clients through C to a target service
/// inside this process (behind S), and checks every byte with SHA-256. The results go to a table
/// on stdout and, with `json`, to a JSON file. The executable spawned is the running one
/// (`/proc/self/exe`), so the harness must be linked into `socket2ser`. See docs/benchmarks.md.
public struct Bench: Sendable {
    /// Line rate of the virtual cable in bits per second; 0 runs every scenario unpaced.
    public var baud: Int
    /// Seed of the cable's faults and of the payloads.
    public var seed: UInt64
    /// The scenarios to run, in the order given.
    public var scenarios: [BenchScenario]
    /// A few seconds per scenario: correctness asserted, speed only reported.
    public var quick: Bool
    /// Where to write the results as JSON as well, if anywhere.
    public var json: String?
    /// Fail the run when a speed, latency or memory target is missed, too.
    public var strict: Bool
    /// Keep the children's logs even when everything passed.
    public var keepLogs: Bool
    /// `-d` level passed to S and C (0: none); any other keeps their logs.
    public var forwarderDebug: Int

    public init(baud: Int, seed: UInt64, scenarios: [BenchScenario], quick: Bool, json: String?, strict: Bool,
                keepLogs: Bool, forwarderDebug: Int) {
        self.baud = baud
        self.seed = seed
        self.scenarios = scenarios
        self.quick = quick
        self.json = json
        self.strict = strict
        self.keepLogs = keepLogs
        self.forwarderDebug = forwarderDebug
    }

    /// Runs the scenarios and returns the exit status: 1 if a correctness check failed (or, with
    /// `strict` and not `quick`, a target was missed), else 0. Progress, warnings and where the
    /// logs are go to `diagnostics`, one whole line per call; the table goes to stdout.
    public func run(diagnostics: @escaping @Sendable (String) -> Void) async -> Int32 {
        // The measurements block threads for minutes; keep them off Swift's cooperative pool.
        await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            BenchThread("bench main", stackSize: 8 << 20) { [self] in
                continuation.resume(returning: runBlocking(diagnostics: diagnostics))
            }
        }
    }

    // MARK: - Running

    private func runBlocking(diagnostics: @escaping @Sendable (String) -> Void) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // 1000 streams cost the bench two thousand sockets (both sides of each connection).
        raiseOpenFileLimit()
        let interrupts = installInterruptHandlers(diagnostics: diagnostics)
        defer { interrupts.forEach { $0.cancel() } }

        let executable = BenchHost.executablePath()
        if executable.contains("/debug/") {
            diagnostics("bench: warning: \(executable) is a debug build; figures will be pessimistic\n")
        }
        let logDirectory = NSTemporaryDirectory() + "socket2ser-bench-\(getpid())"
        try? FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        var settings = BenchSettings(baud: baud, seed: seed, quick: quick, executable: executable,
                                     logDirectory: logDirectory)
        settings.forwarderDebug = forwarderDebug

        let started = BenchClock.now()
        var reports: [BenchScenarioReport] = []
        for scenario in scenarios {
            diagnostics("bench: \(scenario.name): \(scenario.summary)...\n")
            let report = Self.run(scenario, settings: settings)
            reports.append(report)
            let counts = Dictionary(grouping: report.rows, by: \.result).mapValues(\.count)
            let tally = [BenchResult.pass, .miss, .fail].compactMap { r in counts[r].map { "\($0) \(r.rawValue)" } }
            diagnostics("bench: \(scenario.name) took \(String(format: "%.1f", report.seconds)) s: "
                + tally.joined(separator: ", ") + (report.error.map { " (\($0))" } ?? "") + "\n")
        }
        let seconds = BenchClock.seconds(BenchClock.now() - started)

        let rows = reports.flatMap(\.rows)
        let failures = rows.filter { $0.result == .fail }.count
        let misses = rows.filter { $0.result == .miss }.count
        let report = BenchReport(
            date: ISO8601DateFormatter().string(from: Date()),
            host: .init(processors: BenchHost.processors, cpu: BenchHost.cpuModel, kernel: BenchHost.kernel),
            options: .init(baud: baud, seed: seed, quick: quick, scenarios: scenarios.map(\.name),
                           lineBytesPerSecond: settings.lineRate),
            seconds: seconds, scenarios: reports,
            summary: Dictionary(grouping: rows, by: { $0.result.rawValue }).mapValues(\.count),
            correctnessFailures: failures, targetsMissed: misses)

        print(BenchTable.render(rows, quick: quick), terminator: "")
        let line = baud > 0 ? "\(baud) baud 8N1, line rate \(Int(settings.lineRate)) B/s" : "unpaced cable"
        print("\n\(line); seed \(seed); \(BenchHost.processors) CPUs (\(BenchHost.cpuModel)); "
            + String(format: "%.0f s", seconds))
        print("\(rows.filter { $0.result == .pass }.count) PASS, \(misses) MISS, \(failures) FAIL"
            + (quick ? " (quick: speed targets in parentheses are reported, not asserted)" : ""))

        if let json {
            do {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                try encoder.encode(report).write(to: URL(fileURLWithPath: json))
                print("results written to \(json)")
            } catch {
                diagnostics("bench: cannot write \(json): \(error.localizedDescription)\n")
            }
        }
        fflush(nil)

        let failed = failures > 0 || (strict && !quick && misses > 0)
        if failed || keepLogs || forwarderDebug > 0 {
            diagnostics("bench: logs of the cable, S and C are in \(logDirectory)\n")
        } else {
            try? FileManager.default.removeItem(atPath: logDirectory)
        }
        return failed ? 1 : 0
    }

    /// Runs one scenario; whatever it throws becomes a FAIL row, and its rigs are always stopped.
    private static func run(_ scenario: BenchScenario, settings: BenchSettings) -> BenchScenarioReport {
        let run = BenchRun(name: scenario.name, settings: settings)
        let started = BenchClock.now()
        var failure: String?
        do {
            try scenario.run(run)
        } catch {
            failure = "\(error)"
            run.fail("scenario ran", "\(error)")
        }
        run.stopRigs()
        for (label, rig) in run.rigReports {
            for (end, sample) in [("S", rig.server), ("C", rig.client)] {
                if let sample { run.details["\(label == run.name ? "" : label + ".")\(end)PeakRSSKiB"] = Double(sample.peakRSSKiB) }
            }
            for (end, status) in rig.exits where status == -SIGKILL && end != "cable" {
                run.info("\(end) shutdown", "needed SIGKILL (no clean exit within 2 s)")
            }
        }
        return BenchScenarioReport(
            name: scenario.name, summary: scenario.summary, seconds: BenchClock.seconds(BenchClock.now() - started),
            rows: run.rows, details: run.details, rigs: run.rigReports, error: failure)
    }

    /// On SIGINT or SIGTERM, kill every child so no forwarder or cable outlives the bench.
    private func installInterruptHandlers(diagnostics: @escaping @Sendable (String) -> Void) -> [DispatchSourceSignal] {
        let queue = DispatchQueue(label: "socket2ser.bench.signals")
        return [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                diagnostics("bench: interrupted; stopping the children\n")
                benchChildren.killAll()
                _exit(130)
            }
            source.resume()
            return source
        }
    }
}
