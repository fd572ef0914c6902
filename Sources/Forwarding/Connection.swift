import LinkCore
import NIOCore

/// A TCP connection accepted by a listener that has no stream yet: it waits for the handshake
/// (docs/protocol.md §3.4), and nothing is read from it meanwhile.
struct AcceptedSocket {
    let channel: Channel
    let handler: StreamChannelHandler
    /// The client's address, for logs.
    let peerDescription: String
    /// What the stream's OPEN asks the peer to connect to; empty for its default target.
    let target: String
    /// When it was accepted, on the loop's clock.
    let acceptedAt: LinkTime
    /// A SOCKS5 client that waits for its reply.
    var socks = false
}

/// A connection that waits for the link, with or without its stream.
enum LinkWaiter {
    /// Accepted before the handshake: no stream yet.
    case unopened(AcceptedSocket)
    /// Its stream exists (the link was established, then went down).
    case opened(Connection)

    /// Still worth a reset when the wait runs out: its client is there and nothing ended it.
    var isStillWaiting: Bool {
        switch self {
        case .unopened(let accepted): return accepted.channel.isActive
        case .opened(let connection): return connection.streamAlive
        }
    }
}

/// One TCP connection and the stream that carries it. Owned by `LinkRuntime` and, like it,
/// touched only on the event loop.
///
/// Its lifetime is the longer of the two: the stream may end first (the peer's FIN arrived and
/// ours went out, yet the socket still has bytes to write), or the socket may close first (both
/// halves shut down cleanly while bytes it sent still wait for room in the core).
final class Connection: @unchecked Sendable {
    // @unchecked: confined to the event loop, like `LinkRuntime`.

    enum Socket {
        /// S end: the connect to the target is in progress. `held`: bytes that arrived meanwhile
        /// (the core allows DATA before OPEN-OK), bounded by the stream's initial window because
        /// nothing is consumed until written.
        case connecting(held: [ByteBuffer])
        case active(Channel, StreamChannelHandler)
        /// Closed, or never connected.
        case gone
    }

    /// The socket-to-link half: what the client sends, on its way into the core.
    enum ToLink {
        /// Reading. `pending`: bytes `Link.send` had no room for yet; while there are any the
        /// socket is not read, so this holds at most one read's worth.
        case reading(pending: ByteBuffer?)
        /// The client shut down its output (TCP half-close); FIN goes once `pending` is given.
        case draining(pending: ByteBuffer)
        /// FIN was given to the core, or the stream ended: nothing more goes in.
        case done
    }

    /// The link-to-socket half: what the peer sends, on its way out to the client.
    enum ToSocket {
        /// Writing; `inFlight` socket writes not completed yet (credit is granted as each does).
        case open(inFlight: Int)
        /// The peer finished its direction: the output is shut down once `inFlight` reaches 0.
        case finishing(inFlight: Int)
        /// The socket's output is shut down (after the peer's FIN and every byte before it).
        case shutDown
    }

    let id: StreamID
    let openedAt: LinkTime
    /// The peer's address (C) or the target's (S), for logs.
    var peerDescription: String
    var socket: Socket = .connecting(held: [])
    /// The core still has the stream. Once false, `id` may be reused by a new stream and nothing
    /// more may be said to the core about this connection.
    var streamAlive = true
    var toLink = ToLink.reading(pending: nil)
    var toSocket = ToSocket.open(inFlight: 0)
    /// Written to the socket since the last flush of this pass.
    var needsFlush = false

    // MARK: Accounting
    var bytesFromSocket = 0
    var bytesToSocket = 0
    var closeReason: String?
    /// The socket reported an error (e.g. ECONNRESET): its closing is not a clean end.
    var failed = false
    /// The stream closed with FIN in both directions (not reset, refused or cut off).
    var endedCleanly = false
    /// A SOCKS5 client still waits for the reply to its CONNECT (docs: issue 9): it gets one
    /// when the far end has connected, or refused.
    var socksReplyPending = false

    /// Which of this end's forwards accepted it ("-L 127.0.0.1:5000"), or nil: the peer opened it.
    let forward: String?
    /// What its OPEN names: empty for the far end's default target.
    let target: String

    init(id: StreamID, openedAt: LinkTime, peerDescription: String, forward: String? = nil, target: String = "") {
        self.id = id
        self.openedAt = openedAt
        self.peerDescription = peerDescription
        self.forward = forward
        self.target = target
    }

    /// Socket bytes waiting for room in the core.
    var pendingToLink: ByteBuffer? {
        switch toLink {
        case .reading(let pending): return pending
        case .draining(let pending): return pending
        case .done: return nil
        }
    }

    /// A socket write was handed to NIO.
    func writeStarted() {
        switch toSocket {
        case .open(let n): toSocket = .open(inFlight: n + 1)
        case .finishing(let n): toSocket = .finishing(inFlight: n + 1)
        case .shutDown: break  // the core delivers nothing after the peer's FIN
        }
    }

    /// A socket write completed (or failed).
    func writeCompleted() {
        switch toSocket {
        case .open(let n): toSocket = .open(inFlight: max(0, n - 1))
        case .finishing(let n): toSocket = .finishing(inFlight: max(0, n - 1))
        case .shutDown: break
        }
    }

    /// The peer's FIN arrived (or the stream closed with both FINs).
    func peerFinished() {
        if case .open(let n) = toSocket { toSocket = .finishing(inFlight: n) }
    }

    /// What is left of `pending` after an offer to the core: the half stays where it was, or
    /// (draining, all given) is ready for its FIN. Returns whether FIN is due now.
    func offered(leaving rest: ByteBuffer?) -> Bool {
        switch toLink {
        case .reading:
            toLink = .reading(pending: rest)
            return false
        case .draining:
            guard let rest else { return true }
            toLink = .draining(pending: rest)
            return false
        case .done:
            return false
        }
    }

    var channel: Channel? {
        if case .active(let channel, _) = socket { return channel }
        return nil
    }

    var handler: StreamChannelHandler? {
        if case .active(_, let handler) = socket { return handler }
        return nil
    }

    /// Both directions ended with FIN and every byte for the socket is written: closing it
    /// normally tells the client the truth. Anything else must end with a reset.
    var isCompleteForSocket: Bool {
        guard endedCleanly, case .shutDown = toSocket else { return false }
        return true
    }

    var outputShutDown: Bool {
        if case .shutDown = toSocket { return true }
        return false
    }

    var isSocketGone: Bool {
        if case .gone = socket { return true }
        return false
    }
}
