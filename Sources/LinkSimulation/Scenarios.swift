import Synchronization
import LinkCore

extension Scenario {
    /// A random scenario for the seed sweep: a few streams both ways with half-closes, resets,
    /// refusals, stalled readers and late opens, over a cable with random faults.
    /// `bytesPerSecond` is kept high so thousands of seeds run in seconds of real time.
    /// `compression`: nil draws it (one seed in two compresses); true or false forces it.
    /// `protection`: every seed's ends share a key and seal in this mode (§11); nil, none.
    public static func random(seed: UInt64, compression: Bool? = nil, protection: LinkProtection.Mode? = nil) -> Scenario {
        var rng = SplitMix64(seed: seed ^ 0xA5A5_5A5A_C3C3_3C3C)
        func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }
        func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(rng.next() % UInt64(range.count)) }
        var s = Scenario(seed: seed)
        s.bytesPerSecond = 200_000
        s.timeLimit = 90
        let kind = int(0...5)
        switch kind {
        case 0: break // clean
        case 1: s.faults.bitErrorRate = [1e-5, 1e-4, 5e-4][int(0...2)]
        case 2: s.faults.dropRate = [1e-4, 1e-3][int(0...1)]
        case 3: s.faults.junkRate = [1e-4, 1e-3][int(0...1)]
        case 4:
            let start = 0.05 + uniform() * 0.3
            s.faults.outages = [start...(start + 0.2 + uniform() * 2.5)]
        default:
            s.faults.bitErrorRate = 1e-5
            s.faults.dropRate = 1e-4
            s.faults.junkRate = 1e-4
        }
        if int(0...7) == 0 { s.restart = (side: int(0...1) == 0 ? .a : .b, at: 0.1 + uniform() * 0.3) }
        let n = int(2...6)
        for i in 0..<n {
            var p = StreamPlan(opener: int(0...2) == 0 ? .b : .a, openAt: i == 0 ? 0 : uniform() * 0.4,
                               bytesOut: int(0...3) == 0 ? 0 : int(1...60_000), bytesBack: int(0...2) == 0 ? 0 : int(1...60_000))
            switch int(0...9) {
            case 0: p.refuse = true
            case 1: p.resetAfter = int(0...p.bytesOut)
            case 2: p.stallReaderUntil = (side: int(0...1) == 0 ? .a : .b, time: 0.2 + uniform() * 1.5)
            case 3: p.respondAfterFin = true
            default: break
            }
            s.streams.append(p)
        }
        // Drawn last, so that the seeds' other choices stay what they were: one in four is a
        // radio link, with a latency and fades (issue 11).
        if int(0...3) == 0 {
            s.faults.delay = [0.02, 0.08, 0.15][int(0...2)]
            if int(0...1) == 0 { s.faults.bursts = (enter: 2e-5, leave: 0.02, badBER: 0.01) }
        }
        // Compression (§5.7), drawn after everything else. Both ends compress; half such seeds
        // carry text, the others random bytes (which turns compression off by itself), and some
        // allow fewer compressed streams than there are streams.
        let compresses = int(0...1) == 0
        let text = int(0...1) == 0
        let cap = [16, 1, 2][int(0...2)]
        // One seed in three has someone typing next to the bulk, so that bulk tails are stuffed
        // and keystrokes ride in their suffixes (§5.2, §8.3).
        if int(0...2) == 0 {
            var typing = StreamPlan(opener: int(0...1) == 0 ? .a : .b, openAt: uniform() * 0.3,
                                    bytesOut: int(5...40), bytesBack: int(0...40))
            typing.typingInterval = [0.02, 0.05, 0.1][int(0...2)]
            s.streams.append(typing)
        }
        let compressing = compression ?? compresses
        if compressing { s.text = text }
        let key = (0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        s.configure = { c in
            if compressing {
                c.compression = .always
                c.maxCompressedStreams = cap
            }
            if let protection {
                c.protection = try! LinkProtection(key: key, mode: protection)
                c.protection!.randomBytes = SeededRandomBytes(seed: c.seed).take
            }
        }
        return s
    }

    /// One bulk stream from A to B over a 115200-baud line.
    public static func bulk(seed: UInt64 = 1, bytes: Int = 200_000, ber: Double = 0, maxFrame: Int? = nil,
                            window: Int? = nil) -> Scenario {
        var s = Scenario(seed: seed)
        s.configure = { c in
            if let maxFrame { c.maxFrameBody = maxFrame }
            if let window { c.initialWindow = window }
        }
        s.faults.bitErrorRate = ber
        s.streams = [StreamPlan(opener: .a, openAt: 0, bytesOut: bytes, bytesBack: 0)]
        s.timeLimit = 600
        return s
    }
}

/// Each session's random for a simulated keyed end, from its configuration's seed, so that a
/// seed replays exactly (a real end uses the system's cryptographic generator).
final class SeededRandomBytes: Sendable {
    private let rng: Mutex<SplitMix64>

    init(seed: UInt64) { rng = Mutex(SplitMix64(seed: seed ^ 0x5EA1_5EA1)) }

    @Sendable func take(_ count: Int) -> [UInt8] {
        rng.withLock { r in (0..<count).map { _ in UInt8(truncatingIfNeeded: r.next()) } }
    }
}
