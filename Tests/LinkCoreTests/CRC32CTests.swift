@testable import LinkCore
import Testing

@Suite("CRC-32C")
struct CRC32CTests {
    @Test("check value of \"123456789\" is 0xE3069283")
    func checkValue() {
        let input = Array("123456789".utf8)
        #expect(CRC32C.checksum(input) == 0xE306_9283)
        #expect(referenceCRC32C(input) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C().value == 0)
    }

    @Test("table-driven CRC equals the bitwise reference for every length and alignment")
    func matchesReference() {
        var rng = SplitMix64(seed: 0xC0C0)
        let data = randomBytes(300, using: &rng)
        for start in 0..<9 {
            for length in 0...(data.count - start) where length < 80 || length % 7 == 0 {
                let piece = Array(data[start..<(start + length)])
                // A slice (non-zero start index) and an array must agree with the reference.
                #expect(CRC32C.checksum(data[start..<(start + length)]) == referenceCRC32C(piece))
                #expect(CRC32C.checksum(piece) == referenceCRC32C(piece))
            }
        }
    }

    @Test("incremental updates in random pieces equal the one-shot checksum", arguments: [1, 2, 3, 4, 5])
    func incrementalEqualsOneShot(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        for _ in 0..<40 {
            let length = Int(rng.next() % 5000)
            let data = randomBytes(length, using: &rng)
            let oneShot = CRC32C.checksum(data)

            var pieces = CRC32C()
            var i = 0
            while i < length {
                let n = min(length - i, Int(rng.next() % 40))
                pieces.update(data[i..<(i + n)])
                i += n
            }
            #expect(pieces.value == oneShot)

            var bytewise = CRC32C()
            for b in data.prefix(600) { bytewise.update(byte: b) }
            #expect(bytewise.value == CRC32C.checksum(data.prefix(600)))

            // A collection without contiguous storage goes through the copying path.
            var lazy = CRC32C()
            lazy.update(data.lazy.map { $0 })
            #expect(lazy.value == oneShot)

            var raw = CRC32C()
            data.withUnsafeBytes { raw.update($0) }
            #expect(raw.value == oneShot)
        }
    }

    @Test("changing one byte anywhere changes the checksum")
    func singleByteChangesAreSeen() {
        var rng = SplitMix64(seed: 77)
        let data = randomBytes(1000, using: &rng)
        let good = CRC32C.checksum(data)
        for i in stride(from: 0, to: data.count, by: 13) {
            var bad = data
            bad[i] ^= UInt8(truncatingIfNeeded: rng.next() | 1)
            #expect(CRC32C.checksum(bad) != good)
        }
    }

    @Test("the accelerated CRC equals the portable Swift version for every length and alignment")
    func acceleratedEqualsPortable() {
        var rng = SplitMix64(seed: 0xACCE1)
        let data = randomBytes(5000, using: &rng)
        data.withUnsafeBytes { raw in
            for start in 0..<16 {
                for length in Array(0...130) + [255, 256, 257, 1000, 4096, 4984 - start] {
                    let piece = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                    for seed: UInt32 in [0xFFFF_FFFF, 0, 0x1234_5678] {
                        #expect(CRC32C.advance(seed, piece) == CRC32C.advanceInSwift(seed, piece))
                    }
                }
            }
        }
    }
}
