#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LinkCore
import LinkSimulation

// linksim: runs the deterministic two-peer simulation.
//   linksim seeds [FIRST] [COUNT] [--compress|--plain]
//                                   random scenarios; prints failing seeds. One seed in two
//                                   compresses; --compress makes every seed do so, --plain none.
//   linksim seeds ... --protect|--authenticate
//                                   every seed's ends share a key and seal (§11)
//   linksim replay SEED [--compress|--plain] [--protect|--authenticate]
//                                   one random scenario, verbose
//   linksim figures                 the figures for docs/benchmarks.md

var args = Array(CommandLine.arguments.dropFirst())
/// `--compress` or `--plain`, wherever it is given: forces compression on or off in every seed.
var compression: Bool?
if let i = args.firstIndex(where: { $0 == "--compress" || $0 == "--plain" }) {
    compression = args[i] == "--compress"
    args.remove(at: i)
}
/// `--protect` or `--authenticate`: every seed's ends share a key and seal in that mode.
var protection: LinkProtection.Mode?
if let i = args.firstIndex(where: { $0 == "--protect" || $0 == "--authenticate" }) {
    protection = args[i] == "--protect" ? .encrypt : .authenticate
    args.remove(at: i)
}
let replayHint = (compression.map { $0 ? " --compress" : " --plain" } ?? "")
    + (protection.map { $0 == .encrypt ? " --protect" : " --authenticate" } ?? "")

func describe(_ r: SimulationResult) -> String {
    let st = r.statistics
    return "t=\(r.finishedAt)s delivered=\(r.payloadDelivered) retx=\(st.map(\.retransmissions)) rto=\(st.map(\.timeoutRetransmissions)) crc=\(st.map(\.crcErrors)) cable=\(r.cable)"
}

switch args.first ?? "seeds" {
case "replay":
    let seed = UInt64(args.dropFirst().first ?? "1") ?? 1
    let sc = Scenario.random(seed: seed, compression: compression, protection: protection)
    print("faults: \(sc.faults) restart: \(String(describing: sc.restart)) text: \(sc.text)")
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
        let maxFrame = args.count > 2 ? Int(args[2]).flatMap { $0 > 0 ? $0 : nil } : nil
        var sim = Simulation(Scenario.bulk(seed: seed, ber: ber, maxFrame: maxFrame,
                                           window: args.count > 3 ? Int(args[3]) : nil))
        let r = sim.run()
        let t = r.streamCompletion[0] ?? r.finishedAt
        let g = Double(200_000) / t / 11_520
        total += g
        print("seed \(seed) goodput \(g) retx \(r.statistics[0].retransmissions) rto \(r.statistics[0].timeoutRetransmissions) probes \(r.statistics[0].tailProbes)/\(r.statistics[0].probeRepairs) frame \(r.statistics[0].currentFrameTarget) idle \(r.idleSteps[0]) ms carried \(r.cable[0].carried) growths \(r.statistics[1].windowGrowths) passed=\(r.passed)")
    }
    print("mean goodput \(total / 5)")
case "figures":
    Figures.printAll()
case "cpu":
    print("core encode+decode: \(Figures.cpu()) MB/s")
    print("core encode+decode of text, compressed: \(Figures.cpu(megabytes: 50, compressed: true)) MB/s of payload")
default:
    let first = UInt64(args.dropFirst().first ?? "1") ?? 1
    let count = UInt64(args.dropFirst(2).first ?? "2000") ?? 2000
    var failed = 0
    var stuffed = 0, suffixed = 0
    for seed in first..<(first + count) {
        var sim = Simulation(Scenario.random(seed: seed, compression: compression, protection: protection))
        let r = sim.run()
        stuffed += r.statistics.reduce(0) { $0 + $1.stuffedFramesSent }
        suffixed += r.statistics.reduce(0) { $0 + $1.suffixedFramesSent }
        if !r.passed {
            failed += 1
            print("FAIL seed \(seed): \(r.failures.prefix(3)) — replay: swift run linksim replay \(seed)\(replayHint)")
        }
    }
    print("\(count - UInt64(failed))/\(count) seeds passed (\(stuffed) frames with stuffed tails, \(suffixed) with suffixes)")
    // A failing seed fails the sweep's step in scripts/test.
    if failed > 0 { exit(1) }
}
