import LinkCore
import LinkSimulation

// linksim: runs the deterministic two-peer simulation.
//   linksim seeds [FIRST] [COUNT]   random scenarios; prints failing seeds
//   linksim replay SEED             one random scenario, verbose
//   linksim figures                 the figures for docs/benchmarks.md

let args = Array(CommandLine.arguments.dropFirst())

func describe(_ r: SimulationResult) -> String {
    let st = r.statistics
    return "t=\(r.finishedAt)s delivered=\(r.payloadDelivered) retx=\(st.map(\.retransmissions)) rto=\(st.map(\.timeoutRetransmissions)) crc=\(st.map(\.crcErrors)) cable=\(r.cable)"
}

switch args.first ?? "seeds" {
case "replay":
    let seed = UInt64(args.dropFirst().first ?? "1") ?? 1
    let sc = Scenario.random(seed: seed)
    print("faults: \(sc.faults) restart: \(String(describing: sc.restart))")
    for (i, p) in sc.streams.enumerated() { print("stream \(i): \(p)") }
    var sim = Simulation(sc)
    let r = sim.run()
    print(describe(r))
    for st in r.statistics { print(st) }
    print(r.passed ? "PASS" : "FAIL seed \(seed):\n  " + r.failures.prefix(20).joined(separator: "\n  "))
case "bulk":
    let ber = Double(args.dropFirst().first ?? "0") ?? 0
    var total = 0.0
    for seed in UInt64(1)...5 {
        var sim = Simulation(Scenario.bulk(seed: seed, ber: ber, maxFrame: args.count > 2 ? Int(args[2]) : nil))
        let r = sim.run()
        let t = r.streamCompletion[0] ?? r.finishedAt
        let g = Double(200_000) / t / 11_520
        total += g
        print("seed \(seed) goodput \(g) retx \(r.statistics[0].retransmissions) rto \(r.statistics[0].timeoutRetransmissions) frame \(r.statistics[0].currentFrameTarget) idle \(r.idleSteps[0]) ms carried \(r.cable[0].carried) passed=\(r.passed)")
    }
    print("mean goodput \(total / 5)")
case "figures":
    Figures.printAll()
case "cpu":
    print("core encode+decode: \(Figures.cpu()) MB/s")
default:
    let first = UInt64(args.dropFirst().first ?? "1") ?? 1
    let count = UInt64(args.dropFirst(2).first ?? "2000") ?? 2000
    var failed = 0
    for seed in first..<(first + count) {
        var sim = Simulation(Scenario.random(seed: seed))
        let r = sim.run()
        if !r.passed {
            failed += 1
            print("FAIL seed \(seed): \(r.failures.prefix(3)) — replay: swift run linksim replay \(seed)")
        }
    }
    print("\(count - UInt64(failed))/\(count) seeds passed")
}
