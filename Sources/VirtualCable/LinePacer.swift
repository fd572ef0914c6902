/// The timing half of a UART transmitter: given when the line became busy, how many bytes
/// have fully left the wire by a given instant.
///
/// Time is in nanoseconds of a monotonic clock. All arithmetic is exact integer arithmetic
/// relative to the start of the current busy period — never "add one byte time per byte",
/// which would let rounding shave a little off the rate on every byte. A line that stays busy
/// therefore carries exactly `baud / bitsPerByte` bytes per second, however long it runs.
struct LinePacer {
    /// Line rate in bits per second (> 0).
    let baud: UInt64
    /// Bits on the wire per byte.
    let bitsPerByte: UInt64

    /// When the first byte of the current busy period started; `nil` while the line is idle.
    private(set) var busySince: UInt64?
    /// Bytes of the current busy period already taken off the line.
    private(set) var sentInPeriod: UInt64 = 0

    init(baud: Int, bitsPerByte: Int) {
        precondition(baud > 0 && bitsPerByte > 0)
        self.baud = UInt64(baud)
        self.bitsPerByte = UInt64(bitsPerByte)
    }

    private var nanosecondsPerBitTimesBaud: UInt64 { bitsPerByte * 1_000_000_000 }

    var isIdle: Bool { busySince == nil }

    /// Starts a busy period at `now` if the line is idle; a busy line just keeps going.
    mutating func becomeBusy(at now: UInt64) {
        if busySince == nil {
            busySince = now
            sentInPeriod = 0
        }
    }

    /// The line has nothing more to send: the next byte starts a new busy period.
    mutating func becomeIdle() {
        busySince = nil
        sentInPeriod = 0
    }

    /// How many more bytes have finished their stop bit by `now` and may be delivered.
    func bytesDue(at now: UInt64) -> UInt64 {
        guard let start = busySince, now > start else { return 0 }
        // floor((now - start) * baud / (bitsPerByte * 1e9)), with a 128-bit product so that
        // even a busy period of years at megabaud rates cannot overflow.
        let product = (now - start).multipliedFullWidth(by: baud)
        let total = nanosecondsPerBitTimesBaud.dividingFullWidth(product).quotient
        return total > sentInPeriod ? total - sentInPeriod : 0
    }

    /// Records that `count` due bytes were taken off the line.
    mutating func didSend(_ count: UInt64) {
        sentInPeriod += count
    }

    /// The instant the stop bit of byte number `index` (1-based) of the busy period ends.
    func endOfByte(_ index: UInt64) -> UInt64? {
        guard let start = busySince else { return nil }
        // ceil(index * bitsPerByte * 1e9 / baud), again with a 128-bit intermediate.
        let product = index.multipliedFullWidth(by: nanosecondsPerBitTimesBaud)
        let (quotient, remainder) = baud.dividingFullWidth(product)
        return start + quotient + (remainder == 0 ? 0 : 1)
    }

    /// Nanoseconds one byte takes on the wire, rounded down.
    var byteNanoseconds: UInt64 { nanosecondsPerBitTimesBaud / baud }

    /// When the next byte of the busy period will be due, or `nil` if the line is idle.
    var nextDeadline: UInt64? { endOfByte(sentInPeriod + 1) }
}
