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
        /// S end: the connect to the target is in progress.
        case connecting
        case active(Channel, StreamChannelHandler)
        /// Closed, or never connected.
        case gone
    }

    let id: StreamID
    let openedAt: LinkTime
    /// The peer's address (C) or the target's (S), for logs.
    var peerDescription: String
    var socket: Socket = .connecting
    /// The core still has the stream. Once false, `id` may be reused by a new stream and nothing
    /// more may be said to the core about this connection.
    var streamAlive = true

    // MARK: Socket to link
    /// Bytes read from the socket that `Link.send` had no room for yet. While non-empty the
    /// socket is not read, so this holds at most one read's worth.
    var pendingToLink: ByteBuffer?
    /// The socket's input ended (the client shut down its write side); FIN goes to the core once
    /// `pendingToLink` is drained.
    var inputEnded = false
    var finishSent = false

    // MARK: Link to socket
    /// S end: bytes that arrived before the connect completed (the core allows DATA before
    /// OPEN-OK). Bounded by the stream's initial window, because nothing is consumed until written.
    var heldForSocket: [ByteBuffer] = []
    /// Socket writes not yet completed. Credit for them is granted when each one completes.
    var writesInFlight = 0
    /// The peer finished its direction; the socket's output is shut down once writes complete.
    var remoteFinished = false
    var outputClosed = false
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

    init(id: StreamID, openedAt: LinkTime, peerDescription: String) {
        self.id = id
        self.openedAt = openedAt
        self.peerDescription = peerDescription
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
        endedCleanly && remoteFinished && writesInFlight == 0 && outputClosed
    }

    var isSocketGone: Bool {
        if case .gone = socket { return true }
        return false
    }
}
