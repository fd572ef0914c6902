import LinkCore

/// Faults a simulated cable injects, all drawn from one seeded generator.
public struct FaultModel: Sendable {
    /// Probability that any one bit is flipped.
    public var bitErrorRate: Double = 0
    /// Probability that a byte is lost.
    public var dropRate: Double = 0
    /// Probability, per byte, that a burst of 1–32 junk bytes is inserted before it.
    public var junkRate: Double = 0
    /// Windows (start, end) in seconds during which every byte is lost: a pulled cable.
    public var outages: [ClosedRange<Double>] = []
    /// One-way latency after the line, in seconds (a radio link); bytes keep their order.
    public var delay: Double = 0
    /// Gilbert–Elliott fades, as the virtual cable's `--burst`: after each byte the line fades
    /// with probability `enter` and recovers with `leave`; faded, each bit flips with `badBER`.
    public var bursts: (enter: Double, leave: Double, badBER: Double)?

    public init(bitErrorRate: Double = 0, dropRate: Double = 0, junkRate: Double = 0, outages: [ClosedRange<Double>] = [],
                delay: Double = 0, bursts: (enter: Double, leave: Double, badBER: Double)? = nil) {
        self.bitErrorRate = bitErrorRate
        self.dropRate = dropRate
        self.junkRate = junkRate
        self.outages = outages
        self.delay = delay
        self.bursts = bursts
    }

    var lastFaultEnds: Double { outages.map(\.upperBound).max() ?? 0 }
}

/// Counters of what a direction of the cable did.
public struct CableCounters: Sendable, Equatable {
    public var carried = 0
    public var bitsFlipped = 0
    public var dropped = 0
    public var junk = 0
    public var lostInOutage = 0
}

/// One direction of a simulated UART line: bytes queued by the sender leave at `bytesPerSecond`
/// and arrive, possibly damaged, at the receiver. The queue models the kernel tty buffer plus the
/// UART FIFO; the core is asked to keep it at `preferredQueueBelow`.
struct SimulatedLine {
    let bytesPerSecond: Int
    var faults: FaultModel
    var queue: [UInt8] = []
    var queueHead = 0
    /// Fractional bytes of line time carried over between steps.
    var credit = 0.0
    var rng: SplitMix64
    var bitsToNextError: Double
    var counters = CableCounters()
    var faultsEnabled = true
    /// Bytes off the line that wait for the latency, with the time they arrive.
    var inFlight: [(at: Double, bytes: [UInt8])] = []
    var faded = false

    init(bytesPerSecond: Int, faults: FaultModel, seed: UInt64) {
        self.bytesPerSecond = bytesPerSecond
        self.faults = faults
        rng = SplitMix64(seed: seed)
        bitsToNextError = 0
        bitsToNextError = nextErrorGap()
    }

    var queued: Int { queue.count - queueHead }

    mutating func enqueue(_ bytes: [UInt8]) {
        if queueHead > 4096 && queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        queue.append(contentsOf: bytes)
    }

    mutating func uniform() -> Double { Double(rng.next() >> 11) / Double(1 << 53) }

    /// Geometric gap (in bits) to the next bit error.
    mutating func nextErrorGap() -> Double {
        let p = faults.bitErrorRate
        guard p > 0 else { return .infinity }
        let u = max(uniform(), 1e-300)
        return (log(u) / log1p(-p)).rounded(.down)
    }

    /// Carries the bytes whose line time ends within `dt` seconds starting at `time`, and hands
    /// over those whose latency has passed by then.
    mutating func advance(by dt: Double, at time: Double, into out: inout [UInt8]) {
        guard faults.delay > 0 else {
            carry(by: dt, at: time, into: &out)
            return
        }
        var carried: [UInt8] = []
        carry(by: dt, at: time, into: &carried)
        if !carried.isEmpty { inFlight.append((time + faults.delay, carried)) }
        while let first = inFlight.first, first.at <= time + 1e-12 {
            out.append(contentsOf: first.bytes)
            inFlight.removeFirst()
        }
    }

    private mutating func carry(by dt: Double, at time: Double, into out: inout [UInt8]) {
        credit += dt * Double(bytesPerSecond)
        let n = min(Int(credit), queued)
        credit -= Double(n)
        if queued == 0 { credit = min(credit, 1) }
        guard n > 0 else { return }
        let inOutage = faultsEnabled && faults.outages.contains { $0.contains(time) }
        for k in 0..<n {
            var b = queue[queueHead + k]
            counters.carried += 1
            if inOutage {
                counters.lostInOutage += 1
                continue
            }
            if faultsEnabled {
                if faults.junkRate > 0 && uniform() < faults.junkRate {
                    let len = Int(rng.next() % 32) + 1
                    for _ in 0..<len { out.append(UInt8(truncatingIfNeeded: rng.next())) }
                    counters.junk += len
                }
                if faults.dropRate > 0 && uniform() < faults.dropRate {
                    counters.dropped += 1
                    continue
                }
                if let bursts = faults.bursts {
                    if faded {
                        for bit in 0..<8 where uniform() < bursts.badBER {
                            b ^= 1 << UInt8(bit)
                            counters.bitsFlipped += 1
                        }
                        if uniform() < bursts.leave { faded = false }
                    } else if uniform() < bursts.enter {
                        faded = true
                    }
                }
                if faults.bitErrorRate > 0 {
                    var bit = 0.0
                    while bitsToNextError < 8 - bit {
                        bit += bitsToNextError
                        b ^= 1 << UInt8(Int(bit))
                        counters.bitsFlipped += 1
                        bit += 1
                        bitsToNextError = nextErrorGap()
                    }
                    bitsToNextError -= 8 - bit
                }
            }
            out.append(b)
        }
        queueHead += n
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
