#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import CSerialShim
import Testing
@testable import VirtualCable

/// The cable end to end, through real pseudo-terminals, the way socket2ser uses it.
///
/// Serialized: several tests measure time, and on a two-core machine they would otherwise
/// compete with each other for the CPU.
@Suite(.serialized, .tags(.timing)) struct VirtualCableTests {
    /// 8N1 at 115200 baud: 11520 bytes per second.
    static let bytesPerSecond115200 = 11_520.0

    @Test(arguments: [0, 115_200])
    func cleanCableCarriesBytesIntactBothWays(baud: Int) throws {
        let size = baud == 0 ? 200_000 : 2_000
        try withCable(CableConfiguration(baud: baud)) { cable, a, b in
            let forth = testBytes(size, seed: 1)
            // Wait for the counters as well: they are published just after the bytes.
            let there = exchange(sends: [(a, forth)], readers: [b]) {
                $0[b].count >= size && cable.counters.aToB.bytesDelivered >= UInt64(size)
            }
            #expect(there[b] == forth)

            let back = testBytes(size, seed: 2)
            let returned = exchange(sends: [(b, back)], readers: [a]) {
                $0[a].count >= size && cable.counters.bToA.bytesDelivered >= UInt64(size)
            }
            #expect(returned[a] == back)

            let counters = cable.counters
            #expect(counters.aToB.bytesDelivered == UInt64(size))
            #expect(counters.bToA.bytesDelivered == UInt64(size))
            #expect(counters.aToB.bytesOverrun == 0 && counters.bToA.bytesOverrun == 0)
        }
    }

    @Test func fullDuplexPacesEachDirectionIndependently() throws {
        // Half a second of line time each way. If the directions shared one line, this would
        // take a whole second.
        let size = Int(Self.bytesPerSecond115200 / 2)
        try withCable(CableConfiguration(baud: 115_200)) { _, a, b in
            let forth = testBytes(size, seed: 3)
            let back = testBytes(size, seed: 4)
            let result = exchange(sends: [(a, forth), (b, back)], readers: [a, b]) {
                $0[a].count >= size && $0[b].count >= size
            }
            #expect(result[b] == forth)
            #expect(result[a] == back)
            #expect(result.elapsed > 0.45 && result.elapsed < 0.8, "took \(result.elapsed) s")
        }
    }

    @Test func pacingMatchesTheLineRate() throws {
        let size = 23_040  // two seconds at 115200 baud 8N1
        try withCable(CableConfiguration(baud: 115_200)) { _, a, b in
            let data = testBytes(size, seed: 5)
            let result = exchange(sends: [(a, data)], readers: [b]) { $0[b].count >= size }
            #expect(result[b] == data)
            #expect(result.elapsed >= 1.8 && result.elapsed <= 2.6, "took \(result.elapsed) s")
            // Rate between first and last arrival: catches drift that a wide band would hide.
            let span = result.lastArrival[b]! - result.firstArrival[b]!
            let rate = Double(size - 1) / span
            #expect(abs(rate / Self.bytesPerSecond115200 - 1) < 0.02, "carried \(rate) B/s")
        }
    }

    /// A radio link's latency: each byte arrives `delay` (plus at most `jitter`) after its line
    /// time, in order, and the line rate is unchanged.
    @Test func delayAndJitterAddLatencyButKeepOrderAndRate() throws {
        var configuration = CableConfiguration(baud: 115_200)
        configuration.delay = 0.2
        configuration.jitter = 0.05
        try withCable(configuration) { _, a, b in
            let one = exchange(sends: [(a, [0x42])], readers: [b]) { $0[b].count >= 1 }
            #expect(one[b] == [0x42])
            // One byte's line time is 87 µs; the hand-over waits 4 character times more.
            let latency = one.firstArrival[b]! - one.started
            #expect(latency >= 0.2 && latency < 0.25 + 0.05, "took \(latency) s")

            let size = 11_520  // one second of line time
            let data = testBytes(size, seed: 12)
            let result = exchange(sends: [(a, data)], readers: [b]) { $0[b].count >= size }
            #expect(result[b] == data, "in order, intact")
            let span = result.lastArrival[b]! - result.firstArrival[b]!
            #expect(span > 0.9 && span < 1.2, "spread over \(span) s")
            #expect(result.firstArrival[b]! - result.started >= 0.2)
        }
    }

    @Test func aUSBLikeReceiveBatchHandsOverFewerLargerPiecesAtTheSameRate() throws {
        let size = 11_520  // one second at 115200 baud 8N1
        var readsByBatch: [Int] = []
        for batch in [nil, 62] as [Int?] {
            try withCable(CableConfiguration(baud: 115_200, receiveBatch: batch)) { _, a, b in
                let data = testBytes(size, seed: 6)
                let result = exchange(sends: [(a, data)], readers: [b]) { $0[b].count >= size }
                #expect(result[b] == data)
                let span = result.lastArrival[b]! - result.firstArrival[b]!
                let rate = Double(size - 1) / span
                #expect(abs(rate / Self.bytesPerSecond115200 - 1) < 0.03, "batch \(String(describing: batch)): \(rate) B/s")
                readsByBatch.append(result.reads[b] ?? 0)
            }
        }
        // 16550-like: a hand-over every 8 bytes (1440 in this second); FTDI-like: every 62 (186).
        // A reader on a busy machine coalesces the small hand-overs (617 reads were seen in CI
        // with the bench's builds around), so the unbatched count is held to twice the batched
        // one, not to its ideal eight times.
        #expect(readsByBatch[1] * 2 < readsByBatch[0], "reads: \(readsByBatch)")
        #expect(readsByBatch[1] <= size / 62 + 20, "reads: \(readsByBatch)")
        #expect(throws: VirtualCableError.invalidConfiguration("the receive batch must be 1 to 4096 bytes, got 0")) {
            try CableConfiguration(receiveBatch: 0).validate()
        }
    }

    @Test func unpacedIsMuchFaster() throws {
        let size = 23_040
        try withCable(CableConfiguration(baud: 0)) { _, a, b in
            let data = testBytes(size, seed: 6)
            let result = exchange(sends: [(a, data)], readers: [b]) { $0[b].count >= size }
            #expect(result[b] == data)
            #expect(result.elapsed < 0.5, "took \(result.elapsed) s")
        }
    }

    /// Sends `data` from A to B and returns what arrived, once the counters say every byte has
    /// crossed the line and everything delivered has been read.
    private func carry(_ data: [UInt8], over cable: VirtualCable, a: Int32, b: Int32) -> [UInt8] {
        let result = exchange(sends: [(a, data)], readers: [b]) { seen in
            let counters = cable.counters.aToB
            // Done only when every byte sent has been accounted for at the far end as well:
            // the pump counts a byte sent before it has handed it over, and on a busy machine
            // the reader can catch up with what was delivered so far in between.
            let accounted = counters.bytesDelivered + counters.bytesOverrun + counters.bytesLostToOutage
                + counters.bytesDropped == counters.bytesSent + counters.junkBytesInserted
            return counters.bytesSent == UInt64(data.count) && accounted
                && UInt64(seen[b].count) == counters.bytesDelivered
        }
        return result[b]
    }

    @Test func bitErrorRateFlipsTheExpectedNumberOfBits() throws {
        let size = 100_000  // 800 000 data bits: about 800 flips at 1e-3
        try withCable(CableConfiguration(baud: 0, ber: 1e-3, seed: 11)) { cable, a, b in
            let data = testBytes(size, seed: 7)
            let received = carry(data, over: cable, a: a, b: b)
            let flipped = cable.counters.aToB.bitsFlipped
            #expect(flipped > 650 && flipped < 950, "flipped \(flipped) bits")
            // The counter is honest: exactly that many bits differ, and nothing else changed.
            #expect(received.count == size)
            #expect(bitDifferences(received, data) == Int(flipped))
        }
    }

    @Test func dropRateDropsTheExpectedNumberOfBytes() throws {
        let size = 100_000  // about 1000 drops at 1 %
        try withCable(CableConfiguration(baud: 0, dropRate: 0.01, seed: 12)) { cable, a, b in
            let data = testBytes(size, seed: 8)
            let received = carry(data, over: cable, a: a, b: b)
            let dropped = cable.counters.aToB.bytesDropped
            #expect(dropped > 850 && dropped < 1_150, "dropped \(dropped) bytes")
            #expect(received.count == size - Int(dropped))
            #expect(isSubsequence(received, of: data))
        }
    }

    @Test func junkRateInsertsBurstsOfJunk() throws {
        let size = 50_000  // about 100 bursts of 16.5 bytes on average
        try withCable(CableConfiguration(baud: 0, junkRate: 0.002, seed: 13)) { cable, a, b in
            let data = testBytes(size, seed: 9)
            let received = carry(data, over: cable, a: a, b: b)
            let junk = cable.counters.aToB.junkBytesInserted
            #expect(junk > 900 && junk < 2_500, "inserted \(junk) junk bytes")
            #expect(received.count == size + Int(junk))
            #expect(isSubsequence(data, of: received))
        }
    }

    @Test func theSameSeedReproducesTheSameFaults() throws {
        func faultyRun(seed: UInt64) throws -> ([UInt8], DirectionCounters) {
            let configuration = CableConfiguration(baud: 0, ber: 1e-3, dropRate: 1e-3, junkRate: 1e-3, seed: seed)
            return try withCable(configuration) { cable, a, b in
                let received = carry(testBytes(30_000, seed: 10), over: cable, a: a, b: b)
                return (received, cable.counters.aToB)
            }
        }
        let first = try faultyRun(seed: 99)
        let second = try faultyRun(seed: 99)
        #expect(first == second)
        #expect(try faultyRun(seed: 100).0 != first.0)
    }

    @Test func outageLosesBytesOnlyInsideItsWindow() throws {
        // One second of traffic at 115200 baud; the line is down from 0.3 s to 0.5 s.
        let size = Int(Self.bytesPerSecond115200)
        let outage = CableOutage(start: 0.3, seconds: 0.2)
        try withCable(CableConfiguration(baud: 115_200, outages: [outage])) { cable, a, b in
            let data = testBytes(size, seed: 14)
            let received = carry(data, over: cable, a: a, b: b)
            let lost = Int(cable.counters.aToB.bytesLostToOutage)
            // The line stayed busy, so the window covers 0.2 s of line time: 2304 bytes.
            #expect(abs(lost - 2_304) <= 30, "lost \(lost) bytes")
            #expect(received.count == size - lost)
            // The loss is one contiguous gap, starting about 0.3 s into the transfer: bytes
            // before and after the window arrived intact.
            let gapStart = zip(received, data).prefix { $0 == $1 }.count
            #expect(gapStart > 2_900 && gapStart <= 3_456, "gap starts at byte \(gapStart)")
            #expect(Array(received[gapStart...]) == Array(data[(gapStart + lost)...]))
        }
    }

    @Test func readerAndWriterMayCloseAndReopenTheirEnds() throws {
        // Its own cable, not `withCable`: the first ends are closed in the middle of the test, and
        // a second close of a descriptor number could close another test's file.
        let cable = try VirtualCable(configuration: CableConfiguration(baud: 0))
        defer { cable.stop() }
        cable.start()
        do {
            let a = try openEnd(cable.pathA)
            let b = try openEnd(cable.pathB)
            let first = testBytes(1_000, seed: 15)
            #expect(exchange(sends: [(a, first)], readers: [b]) { $0[b].count >= 1_000 }[b] == first)

            // Both ends go away, as when both socket2ser processes restart…
            close(a)
            close(b)
            // …and come back.
            let a2 = try openEnd(cable.pathA)
            defer { close(a2) }
            let b2 = try openEnd(cable.pathB)
            defer { close(b2) }
            let second = testBytes(1_000, seed: 16)
            let third = testBytes(1_000, seed: 17)
            let result = exchange(sends: [(a2, second), (b2, third)], readers: [a2, b2]) {
                $0[b2].count >= 1_000 && $0[a2].count >= 1_000
            }
            #expect(result[b2] == second)
            #expect(result[a2] == third)
        }
    }

    @Test func exclusiveModeEndsWhenTheOwnerCloses() throws {
        // socket2ser sets TIOCEXCL. The cable's own descriptor keeps the tty alive, so without
        // help the flag would outlive the process and lock out a non-root successor.
        let tiocgexcl: UInt = 0x8004_5440  // _IOR('T', 0x40, int); not exported by Glibc
        func isExclusive(_ fd: Int32) -> Bool {
            var value: Int32 = 0
            _ = ioctl(fd, tiocgexcl, &value)
            return value != 0
        }
        try withCable(CableConfiguration(baud: 0)) { cable, a, _ in
            let owner = try openEnd(cable.pathB)
            #expect(sfs_set_exclusive(owner) == 0)
            #expect(isExclusive(a) == false)
            #expect(isExclusive(owner))
            close(owner)
            // The release is asynchronous: wait for it, polling with a timeout.
            let successor = try openEnd(cable.pathB)  // root may open despite the flag
            defer { close(successor) }
            let deadline = monotonicSeconds() + 2
            while isExclusive(successor) && monotonicSeconds() < deadline {
                _ = poll(nil, 0, 5)
            }
            #expect(!isExclusive(successor))
        }
    }

    @Test func aSenderFasterThanTheLineIsHeldBackByItsOwnPty() throws {
        // Like a UART, the cable takes bytes only as the line frees its FIFO, so a sender that
        // writes faster than the line finds its writes no longer accepted. Nothing is lost.
        try withCable(CableConfiguration(baud: 460_800)) { cable, a, b in
            let data = testBytes(256 * 1024, seed: 18)
            let accepted = data.withUnsafeBytes { write(a, $0.baseAddress, $0.count) }
            #expect(accepted > 0 && accepted < data.count, "accepted \(accepted) bytes at once")
            #expect(cable.counters.aToB.bytesAccepted <= UInt64(accepted))
            let result = exchange(readers: [b]) { $0[b].count >= accepted }
            #expect(result[b] == Array(data[0..<accepted]))
        }
    }

    @Test func bytesNobodyReadsAreLostAsAnOverrun() throws {
        try withCable(CableConfiguration(baud: 4_000_000)) { cable, a, b in
            let data = testBytes(200_000, seed: 19)
            // Write everything on A while nobody reads B.
            let result = exchange(sends: [(a, data)], readers: []) { seen in
                seen.written[a] == data.count && cable.counters.aToB.bytesSent == UInt64(data.count)
            }
            #expect(result.written[a] == data.count)
            let counters = cable.counters.aToB
            #expect(counters.bytesOverrun > 0)
            #expect(counters.bytesDelivered + counters.bytesOverrun == UInt64(data.count))
            // What did arrive is the stream with the lost bytes cut out: in order, none changed.
            // Mostly that is a prefix, but as with a real driver, room can reappear in the
            // kernel's receive buffers after a loss, so a few later bytes may get through too.
            let arrived = exchange(readers: [b]) { $0[b].count >= Int(counters.bytesDelivered) }
            #expect(arrived[b].count == Int(counters.bytesDelivered))
            #expect(arrived[b].prefix(1024) == data.prefix(1024))
            #expect(isInOrderSubsequence(arrived[b], of: data))
        }
    }

    @Test func linksPointAtTheEndsAndAreRemovedOnStop() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("virtual-cable-\(getpid())-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let linkA = directory.appendingPathComponent("ttyA").path
        let linkB = directory.appendingPathComponent("ttyB").path
        // A stale link from an earlier run is replaced; a real file is never clobbered.
        #expect(symlink("/nonexistent", linkA) == 0)
        let regular = directory.appendingPathComponent("file").path
        #expect(FileManager.default.createFile(atPath: regular, contents: Data()))
        #expect(throws: VirtualCableError.self) {
            try VirtualCable(configuration: CableConfiguration(linkA: regular))
        }

        let cable = try VirtualCable(configuration: CableConfiguration(linkA: linkA, linkB: linkB))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: linkA) == cable.pathA)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: linkB) == cable.pathB)
        cable.start()
        // The link works as a device path.
        let a = try openEnd(linkA)
        let b = try openEnd(linkB)
        let result = exchange(sends: [(a, [1, 2, 3])], readers: [b]) { $0[b].count >= 3 }
        #expect(result[b] == [1, 2, 3])
        close(a)
        close(b)
        cable.stop()
        #expect(!FileManager.default.fileExists(atPath: linkA))
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: linkB)) == nil)
    }
}

/// `part` is `whole` with some stretches deleted: it follows `whole` byte for byte, and after
/// each gap its next 16 bytes (or all that is left) stand together further on in `whole`.
func isInOrderSubsequence(_ part: [UInt8], of whole: [UInt8]) -> Bool {
    var p = 0
    var w = 0
    while p < part.count {
        if w < whole.count && part[p] == whole[w] {
            p += 1
            w += 1
            continue
        }
        let probe = Array(part[p..<min(p + 16, part.count)])
        var found: Int?
        var start = w + 1
        while start + probe.count <= whole.count {
            if whole[start..<(start + probe.count)].elementsEqual(probe) {
                found = start
                break
            }
            start += 1
        }
        guard let found else { return false }
        w = found
    }
    return true
}
