import CLinkAccel

/// CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF.
///
/// Every frame ends with this checksum (docs/protocol.md §2). CRC-32C detects every burst error of
/// up to 32 bits and every odd number of bit errors, and has a Hamming distance of at least 4 for
/// the frame lengths we use. Computed with the SSE4.2 crc32 instruction where the CPU has it (CLinkAccel), else
/// slicing-by-8 tables.
public struct CRC32C: Sendable {
    public private(set) var state: UInt32 = 0xFFFF_FFFF

    public init() {}

    /// The finished checksum of everything passed to `update`.
    public var value: UInt32 { state ^ 0xFFFF_FFFF }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        state = CRC32C.advance(state, bytes)
    }

    public mutating func update<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if let done: Void = bytes.withContiguousStorageIfAvailable({ update(UnsafeRawBufferPointer($0)) }) {
            return done
        }
        let copy = Array(bytes)
        copy.withUnsafeBytes { update($0) }
    }

    public mutating func update(byte: UInt8) {
        state = CRC32C.table[Int((state ^ UInt32(byte)) & 0xFF)] ^ (state >> 8)
    }

    /// The checksum of `bytes` on its own.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc = CRC32C()
        crc.update(bytes)
        return crc.value
    }
}

extension CRC32C {
    static let polynomial: UInt32 = 0x82F6_3B78

    /// tables[k][b]: the CRC of byte b followed by k zero bytes (slicing-by-8).
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for b in 0..<256 {
            var c = UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ polynomial : c >> 1 }
            t[b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 {
                let prev = t[(k - 1) * 256 + b]
                t[k * 256 + b] = t[Int(prev & 0xFF)] ^ (prev >> 8)
            }
        }
        return t
    }()

    static let table: [UInt32] = Array(tables[0..<256])

    static func advance(_ start: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return start }
        return lk_crc32c_advance(start, base, bytes.count)
    }

    /// The portable Swift version (slicing-by-8), kept as the reference the tests compare with.
    static func advanceInSwift(_ start: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc = start
        guard let base = bytes.baseAddress else { return crc }
        let count = bytes.count
        return tables.withUnsafeBufferPointer { t in
            var i = 0
            while i + 8 <= count {
                let lo = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt32.self)) ^ crc
                let hi = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self))
                crc = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < count {
                crc = t[Int((crc ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (crc >> 8)
                i += 1
            }
            return crc
        }
    }
}
