/// What happened to the bytes going one way along the cable.
///
/// Every byte read from the sending pty is `accepted`; once the line has carried it it is
/// `sent`, and then exactly one of these happens to it: lost to an outage, dropped, or
/// handed to the receiving pty (possibly with bits flipped and junk after it), where it is
/// either `delivered` or, if that pty's buffer is full, lost to an `overrun`. So
/// `bytesDelivered + bytesOverrun == bytesSent - bytesLostToOutage - bytesDropped + junkBytesInserted`.
public struct DirectionCounters: Sendable, Equatable, Hashable {
    /// Bytes read from the sending pty into the UART FIFO.
    public var bytesAccepted: UInt64 = 0
    /// Bytes that have left the FIFO and crossed the line (each took one byte time).
    public var bytesSent: UInt64 = 0
    /// Bytes written to the receiving pty, junk included: what the far end can read.
    public var bytesDelivered: UInt64 = 0
    /// Data bits inverted by the bit error rate.
    public var bitsFlipped: UInt64 = 0
    /// Bytes removed by the drop rate.
    public var bytesDropped: UInt64 = 0
    /// Random bytes added by the junk rate.
    public var junkBytesInserted: UInt64 = 0
    /// Bytes that crossed the line during an outage and so never arrived.
    public var bytesLostToOutage: UInt64 = 0
    /// Bytes lost because the receiving pty's buffer was full (nobody reading the far end).
    public var bytesOverrun: UInt64 = 0
    /// Bad spells of the burst model that began (`--burst`).
    public var bursts: UInt64 = 0

    public init() {}

    mutating func add(_ other: DirectionCounters) {
        bytesAccepted += other.bytesAccepted
        bytesSent += other.bytesSent
        bytesDelivered += other.bytesDelivered
        bitsFlipped += other.bitsFlipped
        bytesDropped += other.bytesDropped
        junkBytesInserted += other.junkBytesInserted
        bytesLostToOutage += other.bytesLostToOutage
        bytesOverrun += other.bytesOverrun
        bursts += other.bursts
    }
}

extension DirectionCounters: CustomStringConvertible {
    public var description: String {
        "accepted \(bytesAccepted) sent \(bytesSent) delivered \(bytesDelivered) "
            + "bits-flipped \(bitsFlipped) dropped \(bytesDropped) junk \(junkBytesInserted) "
            + "outage-lost \(bytesLostToOutage) overrun \(bytesOverrun)" + (bursts > 0 ? " bursts \(bursts)" : "")
    }
}

/// A consistent snapshot of both directions of the cable.
public struct CableCounters: Sendable, Equatable, Hashable {
    /// Bytes written on end A travelling to end B.
    public var aToB = DirectionCounters()
    /// Bytes written on end B travelling to end A.
    public var bToA = DirectionCounters()

    public init() {}
}

extension CableCounters: CustomStringConvertible {
    public var description: String {
        "A->B: \(aToB)\nB->A: \(bToA)"
    }
}
