import Testing
@testable import VirtualCable

/// The pure parts of the cable — pacing arithmetic, FIFO, random faults, configuration — tested
/// without a clock or a device, so they can assert exact numbers.
@Suite struct CableModelTests {
    @Test func pacerCarriesExactlyTheLineRateOverLongBusyPeriods() {
        var pacer = LinePacer(baud: 115_200, bitsPerByte: 10)
        pacer.becomeBusy(at: 1_000)
        // One hour in: exactly 11520 bytes per second, no drift from rounding.
        #expect(pacer.bytesDue(at: 1_000 + 3_600 * 1_000_000_000) == 3_600 * 11_520)
        // An awkward rate over a long time: no overflow, still exact.
        var fast = LinePacer(baud: 3_000_001, bitsPerByte: 10)
        fast.becomeBusy(at: 0)
        let seconds: UInt64 = 1_000_000
        #expect(fast.bytesDue(at: seconds * 1_000_000_000) == seconds * 3_000_001 / 10)
    }

    @Test func pacerDeadlinesAgreeWithDueCounts() {
        var pacer = LinePacer(baud: 9_600, bitsPerByte: 10)
        pacer.becomeBusy(at: 500)
        for index in [1, 2, 3, 100, 12_345] as [UInt64] {
            let end = pacer.endOfByte(index)!
            #expect(pacer.bytesDue(at: end) == index)
            #expect(pacer.bytesDue(at: end - 1) == index - 1)
        }
        pacer.didSend(3)
        #expect(pacer.nextDeadline == pacer.endOfByte(4))
        #expect(pacer.bytesDue(at: pacer.endOfByte(5)!) == 2)
        pacer.becomeIdle()
        #expect(pacer.nextDeadline == nil)
        #expect(pacer.bytesDue(at: .max) == 0)
    }

    @Test func fifoKeepsOrderAcrossWrapAround() {
        var fifo = ByteFIFO(capacity: 4)
        var out: [UInt8] = []
        for chunk in [[1, 2, 3], [4, 5, 6], [7]] as [[UInt8]] {
            let taken = chunk.withUnsafeBytes { fifo.append(contentsOf: $0) }
            #expect(taken == min(chunk.count, 4 - (fifo.count - taken)))
            while fifo.count > 1 { out.append(fifo.removeFirst()) }
        }
        while !fifo.isEmpty { out.append(fifo.removeFirst()) }
        #expect(out == [1, 2, 3, 4, 5, 6, 7])
        let full: [UInt8] = [9, 9, 9, 9, 9, 9]
        #expect(full.withUnsafeBytes { fifo.append(contentsOf: $0) } == 4)
        #expect(fifo.room == 0)
    }

    @Test func eventCountdownHasTheRequestedProbability() {
        var rng = Xoshiro256StarStar(seed: 42)
        var countdown = EventCountdown(probability: 0.01, rng: &rng)
        let hits = (0..<1_000_000).filter { _ in countdown.trial(&rng) }.count
        #expect(abs(hits - 10_000) < 500)  // five standard deviations

        var never = EventCountdown(probability: 0, rng: &rng)
        #expect(!(0..<10_000).contains { _ in never.trial(&rng) })
        var always = EventCountdown(probability: 1, rng: &rng)
        #expect((0..<10_000).allSatisfy { _ in always.trial(&rng) })
    }

    @Test func faultInjectorIsDeterministicPerSeed() {
        func run(seed: UInt64) -> ([UInt8], DirectionCounters) {
            let configuration = CableConfiguration(ber: 0.01, dropRate: 0.01, junkRate: 0.01, seed: seed)
            var injector = FaultInjector(configuration: configuration, stream: 1)
            var out: [UInt8] = []
            var counters = DirectionCounters()
            for byte in testBytes(10_000, seed: 7) { injector.carry(byte, at: 0, into: &out, counters: &counters) }
            return (out, counters)
        }
        #expect(run(seed: 5) == run(seed: 5))
        #expect(run(seed: 5).0 != run(seed: 6).0)
    }

    /// Gilbert–Elliott: errors come in fades of about 1/leave bytes, about every 1/enter bytes,
    /// and none outside them when the base bit error rate is 0.
    @Test func burstsClusterTheErrors() {
        var configuration = CableConfiguration(seed: 3)
        configuration.bursts = CableBursts(enter: 0.001, leave: 0.05, badBER: 0.05)
        var injector = FaultInjector(configuration: configuration, stream: 1)
        var counters = DirectionCounters()
        let data = testBytes(200_000, seed: 9)
        var out: [UInt8] = []
        var damaged: [Int] = []
        for (index, byte) in data.enumerated() {
            let before = out.count
            injector.carry(byte, at: 0, into: &out, counters: &counters)
            if out[before] != byte { damaged.append(index) }
        }
        // 200 fades expected (one every 1,000 bytes), each about 20 bytes long with ~8 flips.
        #expect(counters.bursts > 140 && counters.bursts < 260, "\(counters.bursts) fades")
        #expect(counters.bitsFlipped > 900 && counters.bitsFlipped < 2_400, "\(counters.bitsFlipped) bits")
        // Clustered: most damaged bytes have another within 40 bytes before them.
        let clustered = zip(damaged.dropFirst(), damaged).filter { $0 - $1 <= 40 }.count
        #expect(Double(clustered) / Double(max(1, damaged.count - 1)) > 0.6, "\(clustered) of \(damaged.count)")
        // The same seed gives the same fades.
        var again = FaultInjector(configuration: configuration, stream: 1)
        var second: [UInt8] = []
        var ignored = DirectionCounters()
        for byte in data { again.carry(byte, at: 0, into: &second, counters: &ignored) }
        #expect(second == out)
    }

    @Test func outageWindowIsHalfOpen() {
        let configuration = CableConfiguration(outages: [CableOutage(start: 1, seconds: 0.5)])
        let injector = FaultInjector(configuration: configuration, stream: 1)
        #expect(!injector.inOutage(0.999))
        #expect(injector.inOutage(1.0))
        #expect(injector.inOutage(1.499))
        #expect(!injector.inOutage(1.5))
    }

    @Test(arguments: [
        CableConfiguration(baud: -1),
        CableConfiguration(ber: -0.1),
        CableConfiguration(dropRate: 1.5),
        CableConfiguration(junkRate: .nan),
        CableConfiguration(outages: [CableOutage(start: -1, seconds: 1)]),
        CableConfiguration(outages: [CableOutage(start: 1, seconds: .infinity)]),
        CableConfiguration(fifoBytes: 0),
        { var c = CableConfiguration(); c.delay = -0.1; return c }(),
        { var c = CableConfiguration(); c.jitter = 11; return c }(),
        { var c = CableConfiguration(baud: 0); c.delay = 0.08; return c }(),
        { var c = CableConfiguration(); c.bursts = CableBursts(enter: 0.1, leave: 0, badBER: 0.1); return c }(),
        { var c = CableConfiguration(); c.bursts = CableBursts(enter: 1.5, leave: 0.1, badBER: 0.1); return c }(),
    ])
    func badConfigurationsAreRejected(_ configuration: CableConfiguration) {
        #expect(throws: VirtualCableError.self) { try VirtualCable(configuration: configuration) }
    }
}
