import Crypto

/// SHA-256 for the bench's end-to-end digests: swift-crypto's, which the product links anyway
/// for the line's protection (docs/protocol.md §11). Its assembly runs at full speed in a debug
/// build too; the bench's own Swift copy, compiled without optimisation, cost more CPU than
/// both ends together (CI's `bench --quick` runs the debug build): a 256 KiB download beside 100
/// stalled ones took 78 s, the bench hashing what the target sent them.
struct BenchSHA256 {
    private var hasher = SHA256()

    init() {}

    mutating func update(bufferPointer bytes: UnsafeRawBufferPointer) {
        hasher.update(bufferPointer: bytes)
    }

    mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update(bufferPointer: $0) }
    }

    /// The digest; the hasher is spent afterwards.
    mutating func finalize() -> [UInt8] {
        Array(hasher.finalize())
    }
}
