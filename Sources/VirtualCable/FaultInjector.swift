/// The noisy half of the cable: decides what happens to each byte as it leaves the UART.
///
/// Pure and deterministic — given the same seed and the same bytes it makes the same
/// decisions, whatever the timing of the deliveries — so it can be unit-tested without
/// a clock and a failing end-to-end run can be replayed.
struct FaultInjector {
    private var rng: Xoshiro256StarStar
    private var drop: EventCountdown
    private var junk: EventCountdown
    /// Counts data bits, not bytes: the bit error rate applies per bit.
    private var flip: EventCountdown
    private let outages: [CableOutage]
    /// Gilbert–Elliott bursts: the bad state's flips, and the countdowns to the next change of state.
    private var burst: (badFlip: EventCountdown, enter: EventCountdown, leave: EventCountdown)?
    private var inBurst = false

    init(configuration: CableConfiguration, stream: UInt64) {
        // Each direction gets its own generator, derived from the seed and a stream number, so
        // that traffic one way never shifts the faults the other way.
        var mixer = SplitMix64(seed: configuration.seed ^ (stream &* 0xD1B5_4A32_D192_ED03))
        var rng = Xoshiro256StarStar(seed: mixer.next())
        drop = EventCountdown(probability: configuration.dropRate, rng: &rng)
        junk = EventCountdown(probability: configuration.junkRate, rng: &rng)
        flip = EventCountdown(probability: configuration.ber, rng: &rng)
        if let bursts = configuration.bursts {
            burst = (EventCountdown(probability: bursts.badBER, rng: &rng), EventCountdown(probability: bursts.enter, rng: &rng),
                     EventCountdown(probability: bursts.leave, rng: &rng))
        }
        self.rng = rng
        outages = configuration.outages
    }

    /// Whether the instant `t` (seconds since the cable started) falls in an outage.
    func inOutage(_ t: Double) -> Bool {
        outages.contains { $0.contains(t) }
    }

    /// Carries one byte whose stop bit ended at `t` seconds after the cable started: appends
    /// what the receiver would see (nothing, the byte, a corrupted byte, and/or junk) to `out`.
    mutating func carry(_ byte: UInt8, at t: Double, into out: inout [UInt8], counters: inout DirectionCounters) {
        counters.bytesSent += 1
        if !outages.isEmpty && inOutage(t) {
            counters.bytesLostToOutage += 1
            return
        }
        if drop.trial(&rng) {
            counters.bytesDropped += 1
        } else if inBurst {
            out.append(flipBitsInBurst(byte, counters: &counters))
        } else {
            out.append(flipBits(byte, counters: &counters))
        }
        if burst != nil { stepBurstState(counters: &counters) }
        if junk.trial(&rng) {
            // Noise on the line looks like a short burst of random bytes to the receiver.
            let length = 1 + Int(rng.next() % 32)
            for _ in 0..<length {
                out.append(UInt8(truncatingIfNeeded: rng.next()))
            }
            counters.junkBytesInserted += UInt64(length)
        }
    }

    /// After each byte the line may fade (good → bad) or recover (bad → good).
    private mutating func stepBurstState(counters: inout DirectionCounters) {
        guard var state = burst else { return }
        if inBurst {
            if state.leave.trial(&rng) { inBurst = false }
        } else if state.enter.trial(&rng) {
            inBurst = true
            counters.bursts += 1
        }
        burst = state
        _ = state
    }

    private mutating func flipBitsInBurst(_ byte: UInt8, counters: inout DirectionCounters) -> UInt8 {
        guard var state = burst else { return byte }
        var result = byte
        for bit in 0..<8 where state.badFlip.trial(&rng) {
            result ^= 1 << UInt8(bit)
            counters.bitsFlipped += 1
        }
        burst = state
        return result
    }

    /// Applies the bit error rate to the eight data bits of `byte`. Start and stop bits are not
    /// modelled: a flipped one would show up as a framing error, which a pty cannot report.
    private mutating func flipBits(_ byte: UInt8, counters: inout DirectionCounters) -> UInt8 {
        if flip.remaining >= 8 {  // the common case: no flip in this byte
            flip.skip(8)
            return byte
        }
        var result = byte
        for bit in 0..<8 where flip.trial(&rng) {
            result ^= 1 << UInt8(bit)
            counters.bitsFlipped += 1
        }
        return result
    }
}
