import Foundation

/// Text through the line (issue 11, §6): logs, JSON, HTML and source code (`TextCorpus`), up and
/// then down, each on a fresh rig with both ends at their default, `--compress auto`. Goodput is
/// taken against the line rate, so compression shows as a figure above 1; the cable's counters
/// give the line bytes each payload byte cost. Random data (`bulk`) and keystrokes (`echo`)
/// are the other two targets of the issue, measured by those scenarios with the same default.
enum BenchCompress {
    static func run(_ run: BenchRun) throws {
        let size = run.settings.size(full: 600 << 10, quick: 48 << 10)
        for up in [true, false] {
            let label = "\(run.name)-\(up ? "up" : "down")"
            let rig = try run.rig(label: label)
            let outcome = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID() | BenchPayload.textFlag,
                                               up: up ? size : 0, down: up ? 0 : size, ioTimeout: run.settings.ioTimeout,
                                               deadline: run.settings.deadline(bytes: size, atLeast: 0.5))
            run.stopRigs()
            let direction = up ? "up" : "down"
            let result = up ? outcome.up : outcome.down
            run.checkIntact("\(direction): text intact", result, error: outcome.error)
            run.throughput("\(direction): text goodput / line rate", bytesPerSecond: result?.bytesPerSecond ?? 0, atLeast: 2.0)
            if let counters = run.rigReports[label]?.cableCounters,
               let carried = (up ? counters.bToA : counters.aToB)["sent"], carried > 0 {
                run.info("\(direction): payload bytes per line byte", String(format: "%.2f (%d line bytes for %d)",
                                                                             Double(size) / Double(carried), carried, size))
                run.details["\(direction)Ratio"] = Double(size) / Double(carried)
            }
        }
        run.details["bytes"] = Double(size)
    }
}
