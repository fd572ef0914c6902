#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Dispatch
import Forwarding
import Foundation

/// `socket2ser bench`: reproducible measurements of the whole path.
///
/// Every scenario starts a fresh `socket2ser cable` and a fresh pair of `socket2ser S` and
/// `socket2ser C` processes on its two ends, runs real TCP clients through C to a target service
/// inside this process (behind S), and checks every byte with SHA-256. The results go to a table
/// on stdout and to a JSON file. See docs/benchmarks.md for the method and current figures.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput, latency and robustness over a virtual cable.",
        discussion: """
            Runs each scenario with its own virtual cable and its own S and C processes, real \
            TCP clients and a real target service on 127.0.0.1, and checks every byte with SHA-256. \
            Build in release mode for meaningful figures, with the static Swift runtime as in \
            the README's install section and docs/benchmarks.md:
              swift build -c release --static-swift-stdlib
              .build/release/socket2ser bench
            Scenarios: \(BenchScenario.names.joined(separator: ", ")).
            The exit status is 1 if any correctness check fails (bytes, completions); speed \
            targets that are missed are reported, and fail the run only with --strict.
            """)

    @Option(help: "Line rate of the virtual cable in bits per second; 0 runs every scenario unpaced.")
    var baud: Int = 115_200

    @Option(help: "Seed of the cable's faults and of the payloads.")
    var seed: UInt64 = 1

    @Option(name: .customLong("scenario"),
            help: ArgumentHelp("Run only this scenario; repeatable, or a comma-separated list.", valueName: "name"))
    var scenarios: [String] = []

    @Flag(help: "A few seconds per scenario: correctness asserted, speed only reported.")
    var quick = false

    @Option(help: ArgumentHelp("Also write the results as JSON to this file (default: none).", valueName: "path"))
    var json: String?

    @Flag(help: "Exit non-zero when a speed, latency or memory target is missed, too.")
    var strict = false

    @Flag(name: .customLong("keep-logs"), help: "Keep the children's logs even when everything passed.")
    var keepLogs = false

    @Option(name: .customLong("forwarder-debug"),
            help: ArgumentHelp("Pass -d LEVEL to S and C and keep their logs, to diagnose a figure.", valueName: "level"))
    var forwarderDebug: Int = 0

    @Flag(help: "List the scenarios and exit.")
    var list = false

    /// The scenarios to run, in the canonical order.
    func selectedScenarios() throws -> [BenchScenario] {
        let wanted = scenarios.flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !wanted.isEmpty else { return BenchScenario.all }
        for name in wanted where !BenchScenario.names.contains(name) {
            throw ValidationError("unknown scenario '\(name)'; choose from \(BenchScenario.names.joined(separator: ", "))")
        }
        return BenchScenario.all.filter { wanted.contains($0.name) }
    }

    func validate() throws {
        if baud < 0 { throw ValidationError("--baud must be 0 (unpaced) or positive, got \(baud)") }
        if baud > 0 && !ArgumentValues.baudRates.contains(baud) {
            throw ValidationError("--baud must be 0 or from 50 to 20000000, got \(baud)")
        }
        if !(0...3).contains(forwarderDebug) { throw ValidationError("--forwarder-debug is 0, 1, 2 or 3") }
        _ = try selectedScenarios()
    }

    func run() async throws {
        if list {
            for scenario in BenchScenario.all {
                print(scenario.name.padding(toLength: 16, withPad: " ", startingAt: 0) + scenario.summary)
            }
            return
        }
        let selected = try selectedScenarios()
        // The measurements block threads for minutes; keep them off Swift's cooperative pool.
        let status = await withCheckedContinuation { (continuation: CheckedContinuation<Int32, Never>) in
            BenchThread("bench main", stackSize: 8 << 20) { [self] in
                continuation.resume(returning: runBlocking(selected))
            }
        }
        if status != 0 { throw ExitCode(status) }
    }

    // MARK: - Running

    private func runBlocking(_ selected: [BenchScenario]) -> Int32 {
        signal(SIGPIPE, SIG_IGN)
        // 1000 streams cost the bench two thousand sockets (both sides of each connection).
        raiseOpenFileLimit()
        let interrupts = installInterruptHandlers()
        defer { interrupts.forEach { $0.cancel() } }

        let executable = BenchHost.executablePath()
        if executable.contains("/debug/") {
            StandardError.write("bench: warning: \(executable) is a debug build; figures will be pessimistic\n")
        }
        let logDirectory = NSTemporaryDirectory() + "socket2ser-bench-\(getpid())"
        try? FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        var settings = BenchSettings(baud: baud, seed: seed, quick: quick, executable: executable,
                                     logDirectory: logDirectory)
        settings.forwarderDebug = forwarderDebug

        let started = BenchClock.now()
        var reports: [BenchScenarioReport] = []
        for scenario in selected {
            StandardError.write("bench: \(scenario.name): \(scenario.summary)...\n")
            let report = Self.run(scenario, settings: settings)
            reports.append(report)
            let counts = Dictionary(grouping: report.rows, by: \.result).mapValues(\.count)
            let tally = [BenchResult.pass, .miss, .fail].compactMap { r in counts[r].map { "\($0) \(r.rawValue)" } }
            StandardError.write("bench: \(scenario.name) took \(String(format: "%.1f", report.seconds)) s: "
                + tally.joined(separator: ", ") + (report.error.map { " (\($0))" } ?? "") + "\n")
        }
        let seconds = BenchClock.seconds(BenchClock.now() - started)

        let rows = reports.flatMap(\.rows)
        let failures = rows.filter { $0.result == .fail }.count
        let misses = rows.filter { $0.result == .miss }.count
        let report = BenchReport(
            date: ISO8601DateFormatter().string(from: Date()),
            host: .init(processors: BenchHost.processors, cpu: BenchHost.cpuModel, kernel: BenchHost.kernel),
            options: .init(baud: baud, seed: seed, quick: quick, scenarios: selected.map(\.name),
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
                StandardError.write("bench: cannot write \(json): \(error.localizedDescription)\n")
            }
        }
        fflush(nil)

        let failed = failures > 0 || (strict && !quick && misses > 0)
        if failed || keepLogs || forwarderDebug > 0 {
            StandardError.write("bench: logs of the cable, S and C are in \(logDirectory)\n")
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
    private func installInterruptHandlers() -> [DispatchSourceSignal] {
        let queue = DispatchQueue(label: "socket2ser.bench.signals")
        return [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler {
                StandardError.write("bench: interrupted; stopping the children\n")
                BenchChildren.shared.killAll()
                _exit(130)
            }
            source.resume()
            return source
        }
    }
}
