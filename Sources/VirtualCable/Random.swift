import Foundation

/// SplitMix64: used only to spread one 64-bit seed over the larger state of
/// ``Xoshiro256StarStar``, as its authors recommend (a seed of 0 must not give a zero state).
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// xoshiro256**: a small, fast generator with good statistics. The cable draws every random
/// decision from one of these so that a given seed and byte stream always produce the same
/// faults, which is what makes a failing end-to-end run reproducible.
struct Xoshiro256StarStar: RandomNumberGenerator {
    private var s0, s1, s2, s3: UInt64

    init(seed: UInt64) {
        var mixer = SplitMix64(seed: seed)
        s0 = mixer.next()
        s1 = mixer.next()
        s2 = mixer.next()
        s3 = mixer.next()
    }

    mutating func next() -> UInt64 {
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    /// A uniform double in the open interval (0, 1): never 0, so its logarithm is finite.
    mutating func nextOpenUnit() -> Double {
        // 53 random bits, shifted by half a step so that neither end is reachable.
        (Double(next() >> 11) + 0.5) * 0x1.0p-53
    }

    private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
        (x << k) | (x >> (64 - k))
    }
}

/// Counts down to the next occurrence of an event that happens independently with
/// probability `p` at each trial.
///
/// Instead of drawing one random number per trial (per bit, per byte) the gap to the next
/// event is drawn from the geometric distribution. That is statistically the same, costs one
/// draw per event instead of one per trial, and — because draws happen per event, not per
/// delivery batch — keeps the fault pattern independent of how the bytes were batched.
struct EventCountdown {
    let probability: Double
    /// Trials left that will not see the event before the next one that will.
    private(set) var remaining: UInt64

    init(probability: Double, rng: inout Xoshiro256StarStar) {
        self.probability = probability
        self.remaining = 0
        self.remaining = Self.gap(probability, &rng)
    }

    /// Runs one trial: `true` if the event happens on it.
    mutating func trial(_ rng: inout Xoshiro256StarStar) -> Bool {
        if remaining == 0 {
            remaining = Self.gap(probability, &rng)
            return true
        }
        if remaining != .max { remaining -= 1 }  // .max stands for "never" (p = 0)
        return false
    }

    /// Skips `count` trials known to see no event; the caller checked `count <= remaining`.
    mutating func skip(_ count: UInt64) {
        if remaining != .max { remaining -= count }
    }

    /// Number of failures before the next success: floor(ln U / ln(1 - p)).
    static func gap(_ p: Double, _ rng: inout Xoshiro256StarStar) -> UInt64 {
        if p <= 0 { return .max }
        if p >= 1 { return 0 }
        let g = log(rng.nextOpenUnit()) / log1p(-p)
        return g >= 1.8e19 ? .max - 1 : UInt64(g)
    }
}
