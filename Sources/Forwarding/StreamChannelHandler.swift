import NIOCore

/// The handler on every forwarded TCP connection. It holds no state of its own beyond read
/// pausing: every event goes to `LinkRuntime`, which owns the `Connection`.
///
/// Back-pressure towards the socket's sender works by withholding `read()`: while the core has
/// no room for this connection's bytes, reads requested by the channel (auto-read) are parked
/// here and released on `resumeReading()`, so the kernel's receive buffer fills and TCP flow
/// control stops the sender. (The same technique as swift-nio-ssh's glue handler and NIO's
/// `BackPressureHandler`.)
final class StreamChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let runtime: LinkRuntime
    /// Set by the runtime when the connection is registered (S: at creation; C: once its stream
    /// exists, which may be after the handshake), through `attach(_:)`.
    private(set) var connection: Connection?
    private var context: ChannelHandlerContext?
    private var readPaused = false
    private var readRequested = false
    /// What arrived before the connection was attached: the read NIO had already asked for when
    /// the channel became active, and perhaps the end of the input. Bounded by one read, since
    /// reading is paused until then.
    private var early: [ByteBuffer] = []
    private var inputEndedEarly = false
    /// For an accepted connection: what its stream's OPEN names (empty: the far end's default).
    let target: String
    /// A SOCKS5 client waits for its reply: sent once the far end has connected.
    let socks: Bool

    /// For an accepted connection: the forward whose listener accepted it, as the command line
    /// writes it.
    let forward: String?

    init(runtime: LinkRuntime, connection: Connection?, target: String = "", socks: Bool = false, forward: String? = nil) {
        self.runtime = runtime
        self.forward = forward
        self.connection = connection
        self.target = target
        self.socks = socks
    }

    /// Gives the socket its connection, and hands over what arrived before.
    func attach(_ connection: Connection) {
        self.connection = connection
        let arrived = early
        early = []
        for buffer in arrived { runtime.socketRead(connection, buffer) }
        if inputEndedEarly {
            inputEndedEarly = false
            runtime.socketInputEnded(connection)
        }
    }

    // MARK: Read pausing

    func pauseReading() {
        readPaused = true
    }

    func resumeReading() {
        guard readPaused else { return }
        readPaused = false
        if readRequested, let context {
            readRequested = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if readPaused {
            readRequested = true
        } else {
            context.read()
        }
    }

    // MARK: Events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        runtime.socketActive(self, channel: context.channel)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let connection else {
            early.append(Self.unwrapInboundIn(data))
            return
        }
        runtime.socketRead(connection, Self.unwrapInboundIn(data))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            if let connection {
                runtime.socketInputEnded(connection)
            } else {
                inputEndedEarly = true
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let connection { runtime.socketFailed(connection, error: error) }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let connection { runtime.socketInactive(connection) }
        context.fireChannelInactive()
    }
}
