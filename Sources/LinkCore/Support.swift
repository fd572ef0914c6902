/// A FIFO of bytes with amortised O(1) append and removal from the front.
struct ByteQueue: Sendable {
    private var storage: [UInt8] = []
    private var head = 0

    var count: Int { storage.count - head }
    var isEmpty: Bool { head == storage.count }

    mutating func append<C: Collection>(contentsOf bytes: C) where C.Element == UInt8 {
        storage.append(contentsOf: bytes)
    }

    /// Removes up to `n` bytes from the front and appends them to `destination`. The bytes are
    /// copied out before the storage is reset, so a drained queue keeps its allocation.
    mutating func take(_ n: Int, appendingTo destination: inout [UInt8]) {
        let k = min(n, count)
        destination.append(contentsOf: storage[head..<(head + k)])
        head += k
        if head == storage.count {
            // Keep the allocation: a busy stream refills it at once.
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1 << 16 && head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }

    /// The first `n` bytes (or all there are), left in the queue.
    func prefix(_ n: Int) -> ArraySlice<UInt8> { storage[head..<(head + min(n, count))] }

    /// Drops up to `n` bytes from the front.
    mutating func removeFirst(_ n: Int) {
        head += min(n, count)
        if head == storage.count {
            storage.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1 << 16 && head * 2 > storage.count {
            storage.removeFirst(head)
            head = 0
        }
    }

    /// Where the first zero byte is among the first `n` bytes, counted from the front.
    func offsetOfFirstZero(in n: Int) -> Int? {
        let end = head + min(n, count)
        var i = head
        while i < end {
            if storage[i] == 0 { return i - head }
            i += 1
        }
        return nil
    }

    mutating func removeAll() {
        storage = []
        head = 0
    }
}

/// A FIFO of values with amortised O(1) operations, used for events and the DRR rounds.
public struct FIFO<Element>: Sendable where Element: Sendable {
    private var items: [Element] = []
    private var head = 0

    public init() {}

    public var isEmpty: Bool { head == items.count }
    public var count: Int { items.count - head }

    public mutating func append(_ e: Element) { items.append(e) }

    public mutating func popFirst() -> Element? {
        guard head < items.count else { return nil }
        let e = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return e
    }

    public var first: Element? { head < items.count ? items[head] : nil }

    public mutating func removeAll() {
        items.removeAll()
        head = 0
    }
}

/// SplitMix64: small, fast and seedable, for session IDs (the core takes no randomness from the OS).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Round-trip time estimation and retransmission timeout, after RFC 6298, with the frame's own
/// serialisation time at the line rate added on top (a 4 KB frame takes 355 ms at 115200 baud).
struct RTTEstimator: Sendable {
    var srtt: LinkDuration?
    var rttvar = LinkDuration.zero
    /// The shortest sample so far: the path's own delay, with the least queueing in it.
    var minimum: LinkDuration?
    static let initialRTO = LinkDuration.seconds(1)
    static let minimumVariance = LinkDuration.milliseconds(10)

    mutating func sample(_ r: LinkDuration) {
        let rn = max(r.nanoseconds, 0)
        minimum = min(minimum ?? LinkDuration(nanoseconds: rn), LinkDuration(nanoseconds: rn))
        if let s = srtt {
            let err = abs(s.nanoseconds - rn)
            rttvar = LinkDuration(nanoseconds: (3 * rttvar.nanoseconds + err) / 4)
            srtt = LinkDuration(nanoseconds: (7 * s.nanoseconds + rn) / 8)
        } else {
            srtt = LinkDuration(nanoseconds: rn)
            rttvar = LinkDuration(nanoseconds: rn / 2)
        }
    }

    /// RTO before the frame's own serialisation time is added.
    var baseRTO: LinkDuration {
        guard let s = srtt else { return RTTEstimator.initialRTO }
        return s + max(rttvar * 4, RTTEstimator.minimumVariance)
    }
}
