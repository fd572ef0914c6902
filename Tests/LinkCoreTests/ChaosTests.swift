@testable import LinkCore
import Testing

/// Random applications on a random line: streams opened, written, finished and reset at random
/// on both ends, over a line that drops and damages frames and is cut now and then, paced or
/// not. Whatever arrives must be a prefix of what was sent; once the line is clean, every
/// stream not reset is delivered in full.
@Suite("Chaos")
struct ChaosTests {
    @Test("random traffic over a random faulty line never delivers wrong data", arguments: Array(1...12) as [UInt64])
    func chaos(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let paced = seed % 2 == 0
        let pair = Pair(seed: seed) { _, c in
            if paced { c.lineBytesPerSecond = 11_520 }
            c.gracePeriod = .seconds(20)
        }
        if paced { pair.clockBytesPerSecond = 11_520; pair.pollLimit = pair.a.preferredQueueBelow }
        var frng = SplitMix64(seed: seed &+ 1000)
        let ber = [0.0, 1e-5, 5e-5][Int(seed % 3)]
        let corrupt = bitErrorFilter(ber: ber, seed: seed, sides: [.a, .b])
        pair.filter = { side, frame, now in
            if frng.next() % 100 < 3 { return .drop }
            return corrupt(side, frame, now)
        }
        #expect(pair.establish(timeLimit: .seconds(60)))
        var expected: [Side: [StreamID: [UInt8]]] = [.a: [:], .b: [:]]
        var live: [(Side, StreamID)] = []
        let rounds = 40
        for round in 0..<rounds {
            let side: Side = rng.next() % 2 == 0 ? .a : .b
            switch rng.next() % 6 {
            case 0, 1, 2:
                if let id = try? pair.open(side, target: "r\(round)") {
                    let n = Int(rng.next() % (paced ? 3000 : 60_000))
                    let data = pattern(n, seed: rng.next())
                    expected[side]![id] = data
                    live.append((side, id))
                    pair.write(side, id, data, finish: rng.next() % 3 != 0)
                }
            case 3:
                if !live.isEmpty {
                    let (s, id) = live[Int(rng.next() % UInt64(live.count))]
                    try? pair[s].reset(id)
                    expected[s]![id] = nil
                }
            case 4:
                if rng.next() % 4 == 0 { pair.cut(for: .seconds(Double(rng.next() % 8))) }
            default:
                break
            }
            pair.run(for: .milliseconds(Int64(rng.next() % 500)))
            // Invariant: whatever arrived is a prefix of what was sent.
            for s in Side.allCases {
                for (id, data) in expected[s]! {
                    let got = pair.receivedBytes(s.other, id)
                    #expect(got.count <= data.count && Array(data.prefix(got.count)) == got, "seed \(seed) stream \(id) from \(s)")
                }
            }
        }
        pair.outage = nil
        pair.filter = nil
        let ok = pair.run(timeLimit: .seconds(300)) { p in
            Side.allCases.allSatisfy { s in expected[s]!.allSatisfy { (id, data) in
                p.receivedCount(s.other, id) == data.count || p.log.contains { e in
                    if case .streamReset(id, _) = e.event { return true }; return false } } }
        }
        #expect(ok, "seed \(seed)")
        for s in Side.allCases {
            for (id, data) in expected[s]! where !pair.log.contains(where: { if case .streamReset(id, _) = $0.event { return true }; return false }) {
                #expect(pair.receivedBytes(s.other, id) == data, "seed \(seed) stream \(id) from \(s): \(pair.receivedCount(s.other, id)) of \(data.count)")
            }
        }
        // Only the applications reset streams; the line never broke the protocol.
        #expect(!pair.log.contains { e in
            switch e.event {
            case .protocolViolation, .streamReset(_, .creditExceeded), .streamReset(_, .protocolViolation): return true
            default: return false
            }
        })
    }
}
