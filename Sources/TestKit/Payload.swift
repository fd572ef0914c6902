/// SplitMix64: the one pseudo-random generator of the test kit, for payloads the receiver can
/// regenerate and check byte for byte (the tests, the bench and the demo's data all use it).
public struct SplitMix64: Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    /// The finaliser alone: a well-mixed 64-bit value from any input.
    @inline(__always)
    public static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state &- 0x9E37_79B9_7F4A_7C15)
    }
}

public enum Payload {
    /// `count` reproducible pseudo-random bytes for `seed`.
    public static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SplitMix64(seed: seed &+ 0x9E37_79B9_7F4A_7C15)
        var bytes = [UInt8](repeating: 0, count: count)
        var index = 0
        while index < count {
            let z = generator.next()
            for shift in stride(from: 0, to: 64, by: 8) where index < count {
                bytes[index] = UInt8(truncatingIfNeeded: z >> UInt64(shift))
                index += 1
            }
        }
        return bytes
    }
}
