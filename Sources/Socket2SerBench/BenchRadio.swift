import Foundation

/// A serial radio link, as SiK telemetry radios make one (issue 11, §5): 57600 baud, 80 ms each
/// way with up to 10 ms of jitter, and bursts of errors when the signal fades (Gilbert–Elliott:
/// a fade every 5,000 bytes on average, 50 bytes long, with one bit in a hundred flipped).
/// Whatever `--baud` the bench was given, this is the radio's own rate.
enum BenchRadio {
    static let baud = 57_600
    static let delayMilliseconds = 80.0
    static let cable = ["--baud", "\(baud)", "--delay", "80", "--jitter", "10", "--burst", "0.00002:0.02:0.01"]
    static var lineRate: Double { Double(baud) / 10 }

    static func run(_ run: BenchRun) throws {
        // 28 s of line time each way, so that the first round trips (the request reaching the
        // target, the frame size growing from its prior) weigh as little as in `bulk`.
        let size = run.settings.size(full: 160 << 10, quick: 8 << 10)
        // The deadline is generous: the line time, a second of handshake and a few RTOs.
        let deadline = { BenchClock.deadline(after: Double(size) / lineRate * 3 + 20) }

        // Idle echo first, on an idle link: the latency a keystroke sees.
        let echoRig = try run.rig(cable: cable, label: "\(run.name)-echo", forwarderBaud: baud)
        let echoes = BenchClient.echoRoundTrips(port: echoRig.clientPort, count: run.settings.quick ? 10 : 40, interval: 0.05,
                                                ioTimeout: run.settings.ioTimeout, deadline: BenchClock.deadline(after: 60))
        run.stopRigs()
        let echoLimit = 2 * delayMilliseconds + 30
        run.check("echoes returned unchanged", echoes.error == nil && echoes.mismatches == 0 && !echoes.milliseconds.isEmpty,
                  measured: "\(echoes.milliseconds.count) round trips, \(echoes.mismatches) wrong" + (echoes.error.map { " (\($0))" } ?? ""),
                  target: "all, 0 wrong")
        if !echoes.milliseconds.isEmpty {
            let p50 = BenchStatistics.percentile(echoes.milliseconds, 50)
            run.atMost("idle echo round trip p50", p50, limit: echoLimit, unit: "ms", format: "%.1f")
            run.info("idle echo round trip p99 / max", String(format: "%.1f / %.1f ms (2 × delay = %.0f ms)",
                                                              BenchStatistics.percentile(echoes.milliseconds, 99),
                                                              echoes.milliseconds.max() ?? 0, 2 * delayMilliseconds))
            run.details["echoP50Milliseconds"] = p50
        }

        // Bulk each way, each on a fresh radio link.
        for up in [true, false] {
            let label = "\(run.name)-\(up ? "up" : "down")"
            let rig = try run.rig(cable: cable, label: label, forwarderBaud: baud)
            let outcome = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID(),
                                               up: up ? size : 0, down: up ? 0 : size, ioTimeout: run.settings.ioTimeout,
                                               deadline: deadline())
            run.stopRigs()
            let direction = up ? "up" : "down"
            run.checkIntact("\(direction): bytes intact", up ? outcome.up : outcome.down, error: outcome.error)
            run.throughput("\(direction): throughput / radio line rate", bytesPerSecond: (up ? outcome.up : outcome.down)?.bytesPerSecond ?? 0,
                           atLeast: 0.95, lineRate: lineRate)
            if let counters = run.rigReports[label]?.cableCounters {
                let bursts = (counters.aToB["bursts"] ?? 0) + (counters.bToA["bursts"] ?? 0)
                let flipped = (counters.aToB["bits-flipped"] ?? 0) + (counters.bToA["bits-flipped"] ?? 0)
                run.info("\(direction): fades the radio had", "\(bursts) fades, \(flipped) bits flipped")
                run.details["\(direction)Fades"] = Double(bursts)
            }
        }
        run.details["bytes"] = Double(size)
    }
}
