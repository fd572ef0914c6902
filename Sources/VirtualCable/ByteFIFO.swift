/// A fixed-capacity first-in first-out byte queue: the modelled UART transmit FIFO.
///
/// A ring buffer so that taking bytes from the front never moves the rest.
struct ByteFIFO {
    private var storage: [UInt8]
    private var head = 0
    private(set) var count = 0

    init(capacity: Int) {
        precondition(capacity > 0)
        storage = [UInt8](repeating: 0, count: capacity)
    }

    var capacity: Int { storage.count }
    var room: Int { storage.count - count }
    var isEmpty: Bool { count == 0 }

    /// Appends as many of `bytes` as fit; returns how many did.
    @discardableResult
    mutating func append(contentsOf bytes: UnsafeRawBufferPointer) -> Int {
        let n = min(bytes.count, room)
        var tail = (head + count) % storage.count
        for i in 0..<n {
            storage[tail] = bytes[i]
            tail += 1
            if tail == storage.count { tail = 0 }
        }
        count += n
        return n
    }

    /// Removes and returns the oldest byte.
    mutating func removeFirst() -> UInt8 {
        precondition(count > 0)
        let byte = storage[head]
        head += 1
        if head == storage.count { head = 0 }
        count -= 1
        return byte
    }
}
