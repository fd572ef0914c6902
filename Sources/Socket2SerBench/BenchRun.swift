#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

/// What every scenario needs to know about the run.
struct BenchSettings: Sendable {
    var baud: Int
    var seed: UInt64
    var quick: Bool
    /// `socket2ser` itself, spawned as the cable and both ends.
    var executable: String
    /// Where the children's stderr goes, one file per process per scenario.
    var logDirectory: String
    /// Longest any single socket read or write may block.
    var ioTimeout: Double = 30
    /// `-d` level passed to S and C (0: none), for diagnosing a figure from their logs.
    var forwarderDebug: Int = 0

    /// Payload bytes per second of the line: baud/10 for 8N1; 0 when unpaced.
    var lineRate: Double { Double(baud) / 10 }

    /// The line rate the forwarders are told. Unpaced, they get the highest rate the command
    /// line accepts, so their own pacing model holds them back as little as it can.
    var forwarderBaud: Int { baud > 0 ? baud : Self.fastestForwarderBaud }
    static let fastestForwarderBaud = 20_000_000

    /// A transfer size: `full` bytes at 115200 baud (or `quick` under `--quick`), scaled with the
    /// line rate so that a scenario takes about as long at any baud; unpaced, eight times as much.
    func size(full: Int, quick: Int) -> Int {
        let base = self.quick ? quick : full
        guard baud > 0 else { return base * 8 }
        return max(min(base, 1024), Int(Double(base) * Double(baud) / 115_200))
    }

    /// Seconds the line needs for `bytes` payload bytes, at best.
    func lineSeconds(_ bytes: Int) -> Double {
        baud > 0 ? Double(bytes) / lineRate : Double(bytes) / 5e6
    }

    /// A deadline generous enough for `bytes` at `fraction` of the line rate, plus setup.
    func deadline(bytes: Int, atLeast fraction: Double = 0.25) -> UInt64 {
        BenchClock.deadline(after: 30 + lineSeconds(bytes) / fraction)
    }
}

/// One scenario while it runs: its rigs, its rows and its details.
final class BenchRun: @unchecked Sendable {
    let name: String
    let settings: BenchSettings
    private(set) var rows: [BenchRow] = []
    var details: [String: Double] = [:]
    private(set) var rigReports: [String: RigReport] = [:]
    private var rigs: [(String, BenchRig)] = []
    private var nextID: UInt32 = 100

    init(name: String, settings: BenchSettings) {
        self.name = name
        self.settings = settings
    }

    /// A fresh cable (with these extra arguments) and, unless told otherwise, S and C over it.
    func rig(cable arguments: [String] = [], label: String? = nil, startForwarders: Bool = true,
             forwarderBaud: Int? = nil) throws -> BenchRig {
        let label = label ?? name
        let baudArguments = arguments.contains("--baud") ? [] : ["--baud", "\(settings.baud)"]
        let rig = try BenchRig(name: label, settings: settings, cableArguments: baudArguments + arguments)
        rigs.append((label, rig))
        if startForwarders {
            try rig.startForwarders(settings: settings, forwarderBaud: forwarderBaud ?? settings.forwarderBaud)
        }
        return rig
    }

    /// Stops every rig still running and keeps what they reported.
    func stopRigs() {
        for (label, rig) in rigs { rigReports[label] = rig.stop() }
        rigs = []
    }

    /// A stream number unique within the scenario, so the target keeps each transfer apart.
    func newID() -> UInt32 {
        nextID += 1
        return nextID
    }

    // MARK: Rows

    private func add(_ metric: String, _ measured: String, value: Double?, unit: String, target: String,
                     kind: BenchRowKind, result: BenchResult) {
        rows.append(BenchRow(scenario: name, metric: metric, measured: measured, value: value, unit: unit,
                             target: target, kind: kind, result: result))
    }

    /// A correctness check: PASS or FAIL.
    func check(_ metric: String, _ ok: Bool, measured: String, target: String) {
        add(metric, measured, value: ok ? 1 : 0, unit: "bool", target: target, kind: .correctness,
            result: ok ? .pass : .fail)
    }

    /// Every byte of a transfer arrived, unchanged, with equal SHA-256 digests at both ends.
    /// `asserted: false` for a transfer through another tool than socket2ser (the `original`
    /// scenario's Python tool): every byte is checked all the same, but a damaged transfer is a
    /// MISS, reported, not a FAIL of socket2ser.
    func checkIntact(_ metric: String, _ direction: DirectionOutcome?, error: String? = nil, asserted: Bool = true) {
        var measured = error ?? "did not run"
        if let direction {
            measured = "\(direction.received)/\(direction.expected) B, \(direction.corrupt) corrupt, "
                + (direction.digestsMatch ? "SHA-256 equal" : "SHA-256 differs")
            if let error, !direction.intact { measured += " (\(error))" }
        }
        let intact = direction?.intact ?? false
        let target = "all bytes, SHA-256 equal"
        if asserted {
            check(metric, intact, measured: measured, target: target)
        } else {
            add(metric, measured, value: intact ? 1 : 0, unit: "bool", target: target, kind: .performance,
                result: intact ? .pass : .miss)
        }
    }

    /// Payload throughput as a fraction of the line rate (MB/s on an unpaced cable, for information).
    /// `lineRate`: the rig's own, when it runs at another rate than the bench's `--baud`.
    func throughput(_ metric: String, bytesPerSecond: Double, atLeast target: Double?, lineRate: Double? = nil) {
        if settings.baud > 0 || lineRate != nil {
            let ratio = bytesPerSecond / (lineRate ?? settings.lineRate)
            let measured = String(format: "%.3f (%.0f B/s)", ratio, bytesPerSecond)
            if let target {
                add(metric, measured, value: ratio, unit: "of line rate", target: String(format: "≥ %.2f", target),
                    kind: .performance, result: ratio >= target ? .pass : .miss)
            } else {
                add(metric, measured, value: ratio, unit: "of line rate", target: "", kind: .info, result: .info)
            }
        } else {
            let metric = metric.replacingOccurrences(of: " / line rate", with: "")
            add(metric, String(format: "%.2f MB/s", bytesPerSecond / 1e6), value: bytesPerSecond / 1e6,
                unit: "MB/s", target: target == nil ? "" : "n/a unpaced", kind: .info, result: .info)
        }
    }

    /// A figure that must be at most `limit`.
    func atMost(_ metric: String, _ value: Double, limit: Double, unit: String, format: String = "%.2f") {
        add(metric, String(format: format, value) + " " + unit, value: value, unit: unit,
            target: "≤ " + String(format: format, limit) + " " + unit, kind: .performance,
            result: value <= limit ? .pass : .miss)
    }

    /// A figure that must be at least `limit`.
    func atLeast(_ metric: String, _ value: Double, limit: Double, unit: String, format: String = "%.2f") {
        add(metric, String(format: format, value) + (unit.isEmpty ? "" : " " + unit), value: value, unit: unit,
            target: "≥ " + String(format: format, limit) + (unit.isEmpty ? "" : " " + unit), kind: .performance,
            result: value >= limit ? .pass : .miss)
    }

    /// How a transfer used the line, from the cable's counters (available once the rig has
    /// stopped): bytes the line carried that way against the payload, and against what the line
    /// could have carried in the transfer's time. Separates protocol overhead (framing,
    /// acknowledgements, retransmissions) from a line left idle (pacing, windows).
    /// `aToB`: the direction S (on end A) sends in, i.e. downloads. `lineRate` as for `throughput`.
    func lineUse(_ metric: String, rig label: String, aToB: Bool, payload: Int, seconds: Double, lineRate: Double? = nil) {
        guard settings.baud > 0 || lineRate != nil, seconds > 0,
              let counters = rigReports[label]?.cableCounters,
              let sent = (aToB ? counters.aToB : counters.bToA)["sent"], sent > 0
        else { return }
        let overhead = Double(sent) / Double(payload) - 1
        let busy = Double(sent) / (seconds * (lineRate ?? settings.lineRate))
        info(metric, String(format: "%d line B for %d payload B: overhead %.2f%%, line busy %.1f%%",
                            Int(sent), payload, overhead * 100, busy * 100), value: busy, unit: "busy")
        details["\(metric): line bytes"] = Double(sent)
        details["\(metric): overhead"] = overhead
        details["\(metric): busy"] = busy
    }

    func info(_ metric: String, _ measured: String, value: Double? = nil, unit: String = "") {
        add(metric, measured, value: value, unit: unit, target: "", kind: .info, result: .info)
    }

    func fail(_ metric: String, _ reason: String) {
        add(metric, reason, value: nil, unit: "", target: "runs", kind: .correctness, result: .fail)
    }
}

// MARK: - Statistics

enum BenchStatistics {
    /// Jain's fairness index: 1 when every stream got the same, 1/n when one got everything.
    static func jain(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sum = values.reduce(0, +)
        let squares = values.reduce(0) { $0 + $1 * $1 }
        return squares > 0 ? sum * sum / (Double(values.count) * squares) : 0
    }

    /// The `p`-th percentile (0...100), nearest rank.
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}

/// Runs `count` bodies on their own threads, started together, and collects their results.
func benchParallel<T: Sendable>(_ count: Int, name: String, stackSize: Int = 256 << 10,
                                _ body: @escaping @Sendable (Int) -> T) -> [T?] {
    let results = Locked([T?](repeating: nil, count: count))
    let start = NSCondition()
    let go = Locked(false)
    var threads: [BenchThread] = []
    threads.reserveCapacity(count)
    for index in 0..<count {
        threads.append(BenchThread("\(name) \(index)", stackSize: stackSize) {
            start.lock()
            while !go.current { start.wait() }
            start.unlock()
            let result = body(index)
            results.withLock { $0[index] = result }
        })
    }
    start.lock()
    go.withLock { $0 = true }
    start.broadcast()
    start.unlock()
    for thread in threads { thread.join() }
    return results.current
}
