/// One end of a line protocol, sans-IO: what the forwarder drives, whichever wire the line
/// speaks. `Link` (this module, docs/protocol.md) is one; `LegacyLink` (LegacyWire,
/// docs/legacy-protocol.md) speaks the original socket2ser.py's frames behind the same calls and
/// the same `LinkEvent`s, so the forwarding layer never asks which wire it has.
///
/// Inputs: `receive(_:now:)` with bytes from the line, `handleTimeout(now:)` when `nextDeadline`
/// passes, and the application's commands. Outputs: `pollTransmit(maxBytes:now:)`, `pollEvent()`,
/// `nextDeadline`, `preferredQueueBelow`. A wire that lacks a command (the legacy one has no
/// listen requests) throws `LinkError.peerLacks` for it.
public protocol LinkEndpoint: Sendable {
    /// What the line does for the user, for the log's "link up" line and the dashboard.
    var wire: WireSummary { get }
    var statistics: LinkStatistics { get }
    var isEstablished: Bool { get }
    var streamCount: Int { get }
    /// Bytes received for streams and not yet `consumed`.
    var bufferedReceiveBytes: Int { get }
    /// Bytes the application queued with `send` that have not gone to the line yet.
    var bufferedSendBytes: Int { get }
    /// Bytes the I/O layer should keep queued below the endpoint (in the kernel, the UART).
    var preferredQueueBelow: Int { get }
    /// Listeners the peer may hold at this end at once; more are refused.
    var maxPeerListens: Int { get }
    var nextDeadline: LinkTime? { get }
    /// Someone is typing: an I/O layer should keep its own queue short.
    func isInteractive(at now: LinkTime) -> Bool
    /// A reader of this wire's frames for the -d 4 trace, one per direction, apart from the
    /// endpoint's own so that tracing never disturbs it.
    func makeFrameTracer() -> any FrameTracer

    mutating func receive(_ bytes: UnsafeRawBufferPointer, now: LinkTime)
    /// At most `maxBytes` for the line; fewer only when nothing more is waiting now, which the
    /// I/O layer takes as the sign that it need not come back before the next event.
    mutating func pollTransmit(maxBytes: Int, now: LinkTime) -> [UInt8]
    mutating func handleTimeout(now: LinkTime)
    mutating func pollEvent() -> LinkEvent?

    mutating func openStream(target: String) throws(LinkError) -> StreamID
    mutating func accept(_ id: StreamID) throws(LinkError)
    mutating func refuse(_ id: StreamID, reason: OpenRefusal) throws(LinkError)
    /// Queues bytes on a stream; returns how many were taken (fewer when its buffer is full:
    /// `.writable` follows once there is room).
    mutating func send<C: Collection>(_ bytes: C, on id: StreamID) throws(LinkError) -> Int where C.Element == UInt8
    mutating func finish(_ id: StreamID) throws(LinkError)
    mutating func reset(_ id: StreamID, reason: ResetReason) throws(LinkError)
    mutating func consumed(_ count: Int, on id: StreamID)
    mutating func resetAll(reason: ResetReason)

    mutating func requestListen(bind: String, port: UInt16, target: String) throws(LinkError) -> ListenID
    mutating func cancelListen(_ id: ListenID) throws(LinkError)
    mutating func acceptListen(_ id: ListenID, port: UInt16) throws(LinkError)
    mutating func refuseListen(_ id: ListenID, reason: ListenRefusal) throws(LinkError)
}

/// What a wire gives the user, said in the log rather than found out the hard way.
public struct WireSummary: Sendable, Equatable {
    /// How the log names the wire ("socket2ser", "legacy (the original socket2ser.py's)").
    public var name: String
    /// A handshake proved a peer is there before the link is called up. Without one the link is
    /// up from the start, and "link up" says that nothing was checked.
    public var provesPeer: Bool
    /// What the wire cannot do, said once when the link comes up; nil when nothing is missing.
    public var limits: String?

    public init(name: String, provesPeer: Bool, limits: String? = nil) {
        self.name = name
        self.provesPeer = provesPeer
        self.limits = limits
    }
}

/// Reads one direction of the line for a trace: bytes in pieces of any size, a line of text for
/// each whole frame.
public protocol FrameTracer: Sendable {
    mutating func describe(_ bytes: UnsafeRawBufferPointer) -> [String]
}

extension Link: LinkEndpoint {
    public var wire: WireSummary { WireSummary(name: "socket2ser", provesPeer: true) }
    public var maxPeerListens: Int { configuration.maxPeerListens }
    public func makeFrameTracer() -> any FrameTracer { COBSFrameTracer(maxFrameLength: configuration.maxFrameBody + 64) }
}

/// The trace of docs/protocol.md's frames: COBS, then `FrameDescription`.
struct COBSFrameTracer: FrameTracer {
    var decoder: COBSDecoder

    init(maxFrameLength: Int) { decoder = COBSDecoder(maxFrameLength: maxFrameLength) }

    mutating func describe(_ bytes: UnsafeRawBufferPointer) -> [String] {
        var lines: [String] = []
        var index = 0
        while index < bytes.count, let outcome = decoder.decode(bytes, index: &index) {
            switch outcome {
            case .frame: lines.append(FrameDescription.describe(decoder.frame))
            case .malformed: lines.append("junk (not a COBS frame)")
            case .oversize: lines.append("oversize frame")
            }
        }
        return lines
    }
}
