import LinkCore
import LinkSimulation
#if canImport(Glibc)
import Glibc
#endif

/// The figures reported in docs/benchmarks.md, measured on the simulated 115200-baud line.
enum Figures {
    static let rate = 11_520.0

    static func bulk(ber: Double, seeds: ClosedRange<UInt64> = 1...5) -> Double {
        var total = 0.0
        for seed in seeds {
            var sim = Simulation(Scenario.bulk(seed: seed, ber: ber))
            let r = sim.run()
            precondition(r.passed, "bulk seed \(seed) failed: \(r.failures)")
            total += 200_000 / (r.streamCompletion[0] ?? r.finishedAt) / rate
        }
        return total / Double(seeds.count)
    }

    static func duplex() -> (Double, Double) {
        var s = Scenario(seed: 7)
        s.timeLimit = 600
        s.streams = [StreamPlan(opener: .a, openAt: 0, bytesOut: 200_000, bytesBack: 0),
                     StreamPlan(opener: .b, openAt: 0, bytesOut: 200_000, bytesBack: 0)]
        var sim = Simulation(s)
        let r = sim.run()
        precondition(r.passed, "duplex failed: \(r.failures)")
        return (200_000 / r.streamCompletion[0]! / rate, 200_000 / r.streamCompletion[1]! / rate)
    }

    /// 8 streams of 100 KB at once: total goodput and Jain's index of the per-stream bytes
    /// delivered by the time the first stream finished.
    static func eightStreams() -> (total: Double, jain: Double) {
        var s = Scenario(seed: 8)
        s.timeLimit = 600
        s.streams = (0..<8).map { _ in StreamPlan(opener: .a, openAt: 0, bytesOut: 100_000, bytesBack: 0) }
        var sim = Simulation(s)
        var firstDone: [Int]?
        let r = sim.run { result in
            if firstDone == nil, result.dataCompletion.contains(where: { $0 != nil }) { firstDone = result.streamBytes }
        }
        precondition(r.passed, "8 streams failed: \(r.failures)")
        let end = r.dataCompletion.compactMap { $0 }.max()!
        let x = (firstDone ?? r.streamBytes).map(Double.init)
        let jain = x.reduce(0, +) * x.reduce(0, +) / (Double(x.count) * x.map { $0 * $0 }.reduce(0, +))
        return (800_000 / end / rate, jain)
    }

    /// 1-byte messages on new streams while a bulk stream runs: the worst and median extra wait
    /// over the same message on an idle line, in milliseconds of line time.
    static func interactiveWait() -> (worst: Double, median: Double, idle: Double) {
        func latencies(withBulk: Bool) -> [Double] {
            var s = Scenario(seed: 9)
            s.timeLimit = 600
            if withBulk { s.streams.append(StreamPlan(opener: .a, openAt: 0, bytesOut: 150_000, bytesBack: 0)) }
            for k in 0..<40 {
                s.streams.append(StreamPlan(opener: .a, openAt: 1.0 + Double(k) * 0.2371, bytesOut: 1, bytesBack: 0))
            }
            var sim = Simulation(s)
            let r = sim.run()
            precondition(r.passed, "interactive failed: \(r.failures)")
            return s.streams.indices.dropFirst(withBulk ? 1 : 0).map { (r.firstByteAt[$0]! - s.streams[$0].openAt) * 1000 }
        }
        let idle = latencies(withBulk: false)
        let busy = latencies(withBulk: true).sorted()
        let base = idle.max()!
        return (busy.last! - base, busy[busy.count / 2] - base, base)
    }

    /// Encode + decode throughput of the core on one core, in MB/s of payload.
    /// Payload MB/s through both cores on one CPU. `compressed`: the payload is text and both
    /// ends compress (docs/protocol.md §5.7), so the figure is deflate plus inflate plus the rest.
    static func cpu(megabytes: Int = 200, compressed: Bool = false) -> Double {
        var config = LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: 0, seed: 1)
        config.compression = compressed ? .always : .off
        config.initialWindow = 1 << 20
        config.sendBufferLimit = 1 << 18
        var a = Link(configuration: config)
        config.usesOddStreamIDs = false
        config.seed = 2
        var b = Link(configuration: config)
        var t = LinkTime.zero
        var x: [UInt8] = []
        var y: [UInt8] = []
        func pump() {
            x.removeAll(keepingCapacity: true)
            if a.pollTransmit(into: &x, maxBytes: 1 << 18, now: t) > 0 { b.receive(x, now: t) }
            y.removeAll(keepingCapacity: true)
            if b.pollTransmit(into: &y, maxBytes: 1 << 18, now: t) > 0 { a.receive(y, now: t) }
        }
        for _ in 0..<4 { pump() }
        let id = try! a.openStream()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var rng = SplitMix64(seed: 3)
        for i in chunk.indices { chunk[i] = UInt8(truncatingIfNeeded: rng.next()) }
        if compressed { chunk = TextCorpus.generate(count: chunk.count, seed: 3) }
        let total = megabytes << 20
        var sent = 0
        var received = 0
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        while received < total {
            if sent < total { sent += try! a.send(chunk[..<min(chunk.count, total - sent)], on: id) }
            pump()
            t = t + .milliseconds(1)
            while let e = b.pollEvent() {
                switch e {
                case .streamOpened(let sid, _): try! b.accept(sid)
                case .received(let sid, let bytes):
                    received += bytes.count
                    b.consumed(bytes.count, on: sid)
                default: break
                }
            }
            while a.pollEvent() != nil {}
        }
        var end = timespec()
        clock_gettime(CLOCK_MONOTONIC, &end)
        let seconds = Double(end.tv_sec - start.tv_sec) + Double(end.tv_nsec - start.tv_nsec) / 1e9
        return Double(total) / 1e6 / seconds
    }

    static func printAll() {
        print("| figure | measured | target |")
        print("|---|---|---|")
        print("| bulk goodput, clean line (mean of 5 seeds) | \(f(bulk(ber: 0))) | ≥ 0.99 |")
        print("| bulk goodput, BER 1e-5 | \(f(bulk(ber: 1e-5))) | ≥ 0.90 |")
        print("| bulk goodput, BER 1e-4 | \(f(bulk(ber: 1e-4))) | ≥ 0.60 |")
        let d = duplex()
        print("| duplex goodput, each way | \(f(d.0)) / \(f(d.1)) | ≥ 0.97 |")
        let e = eightStreams()
        print("| 8 streams: total goodput, Jain index | \(f(e.total)), \(f(e.jain)) | —, ≥ 0.99 |")
        let w = interactiveWait()
        print("| 1-byte message behind bulk: extra wait worst / median (idle latency \(f1(w.idle)) ms) | \(f1(w.worst)) ms / \(f1(w.median)) ms | ≤ 25 ms |")
        print("| core CPU: encode + decode, one core | \(f1(cpu())) MB/s | ≥ 300 MB/s |")
    }

    static func f(_ x: Double) -> String { String(Int((x * 1000).rounded())).leftPadded(4).inserting3() }
    static func f1(_ x: Double) -> String { String(Double(Int((x * 10).rounded())) / 10) }
}

extension String {
    func leftPadded(_ n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
    /// "0994" -> "0.994"
    func inserting3() -> String { String(prefix(count - 3)) + "." + String(suffix(3)) }
}
