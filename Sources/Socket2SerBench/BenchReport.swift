import Foundation

/// How a row is judged.
enum BenchRowKind: String, Codable, Sendable {
    /// Bytes intact, streams completed: PASS or FAIL, and a FAIL makes the bench exit non-zero.
    case correctness
    /// Speed, latency, memory against a target: PASS or MISS. Not asserted under `--quick`.
    case performance
    /// A figure reported for context, with no target.
    case info
}

enum BenchResult: String, Codable, Sendable {
    case pass = "PASS", miss = "MISS", fail = "FAIL", info = "-"
}

/// One line of the table.
struct BenchRow: Codable, Sendable {
    var scenario: String
    var metric: String
    /// The figure, as shown in the table.
    var measured: String
    /// The figure as a number (a ratio of the line rate, milliseconds, MB, …) for tools.
    var value: Double?
    var unit: String
    var target: String
    var kind: BenchRowKind
    var result: BenchResult
}

/// Everything one scenario produced.
struct BenchScenarioReport: Codable, Sendable {
    var name: String
    var summary: String
    var seconds: Double
    var rows: [BenchRow]
    /// Extra numbers worth keeping (per-stream rates, cable counters summed, …).
    var details: [String: Double]
    /// S, C and cable as last seen, cable counters and exit statuses, per rig.
    var rigs: [String: RigReport]
    var error: String?
}

/// The JSON file `--json` names.
struct BenchReport: Codable, Sendable {
    struct Host: Codable, Sendable {
        var processors: Int
        var cpu: String
        var kernel: String
    }

    struct Options: Codable, Sendable {
        var baud: Int
        var seed: UInt64
        var quick: Bool
        var scenarios: [String]
        var lineBytesPerSecond: Double
    }

    var tool = "socket2ser bench"
    var date: String
    var host: Host
    var options: Options
    var seconds: Double
    var scenarios: [BenchScenarioReport]
    /// Rows by result: PASS, MISS, FAIL and "-" (info).
    var summary: [String: Int]
    var correctnessFailures: Int
    var targetsMissed: Int
}

enum BenchTable {
    /// The table printed on stdout: one row per measured figure.
    static func render(_ rows: [BenchRow], quick: Bool) -> String {
        let header = ["Scenario", "Metric", "Measured", "Target", "Result"]
        let body = rows.map { row -> [String] in
            var result = row.result.rawValue
            if quick && row.kind == .performance { result = "(\(result))" }
            return [row.scenario, row.metric, row.measured, row.target, result]
        }
        var widths = header.map(\.count)
        for line in body {
            for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func format(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                i == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ")
        }
        var lines = [format(header), format(widths.map { String(repeating: "-", count: $0) })]
        var previous: String?
        for (row, cells) in zip(rows, body) {
            var cells = cells
            if row.scenario == previous { cells[0] = "" }
            previous = row.scenario
            lines.append(format(cells))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
