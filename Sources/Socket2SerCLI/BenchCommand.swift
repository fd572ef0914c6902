import ArgumentParser
import Foundation
import Socket2SerBench

/// `socket2ser bench`: reproducible measurements of the whole path.
///
/// Only the command line lives here: its options, their checks and `--list`. The harness itself
/// (scenarios, rigs, clients, the target service, the report) is the `Socket2SerBench` module;
/// see `Bench` there and docs/benchmarks.md for the method and current figures.
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
        let bench = Bench(baud: baud, seed: seed, scenarios: try selectedScenarios(), quick: quick, json: json,
                          strict: strict, keepLogs: keepLogs, forwarderDebug: forwarderDebug)
        let status = await bench.run(diagnostics: { StandardError.write($0) })
        if status != 0 { throw ExitCode(status) }
    }
}
