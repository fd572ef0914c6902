import LinkCore
import NIOCore

/// The server side of a SOCKS5 handshake (RFC 1928, with RFC 1929 username/password), as a
/// value: bytes in, what to answer out. It never touches a socket, so every malformed, truncated
/// or hostile request can be tested byte by byte.
///
/// Only CONNECT is served. Names are not resolved here: they travel to the far end, which
/// resolves them (as `curl --socks5-hostname` expects), so a name that means something only
/// behind the board works.
public struct SOCKS5Negotiation: Sendable {
    /// Username and password a client must give (RFC 1929); nil: no authentication.
    public struct Credentials: Sendable, Equatable {
        public var username: String
        public var password: String
        public init(username: String, password: String) {
            self.username = username
            self.password = password
        }
    }

    /// What the handshake asks of its caller after some bytes.
    public enum Step: Equatable, Sendable {
        /// Nothing to do until more bytes arrive.
        case needMore
        /// Send these bytes and wait for more.
        case reply([UInt8])
        /// Send these bytes (if any), then close: the client asked for something this server
        /// will not do, or broke the protocol.
        case fail([UInt8], reason: String)
        /// The client asks to connect to `target`; answer with `reply(for:)` once known. Bytes
        /// after the request are the stream's first bytes.
        case connect(Endpoint)
    }

    /// Reply codes (RFC 1928 §6).
    public enum ReplyCode: UInt8, Sendable {
        case succeeded = 0x00
        case generalFailure = 0x01
        case notAllowed = 0x02
        case networkUnreachable = 0x03
        case hostUnreachable = 0x04
        case connectionRefused = 0x05
        case ttlExpired = 0x06
        case commandNotSupported = 0x07
        case addressTypeNotSupported = 0x08
    }

    enum State: Sendable {
        case greeting
        case authenticating
        case request
        case finished
    }

    private var state = State.greeting
    private let credentials: Credentials?
    /// The longest any message of the handshake can be (a request with a 255-byte name).
    static let longestMessage = 513

    public init(credentials: Credentials?) {
        self.credentials = credentials
    }

    /// Consumes what it can from `buffer` and says what to do.
    public mutating func feed(_ buffer: inout ByteBuffer) -> Step {
        switch state {
        case .greeting: return greeting(&buffer)
        case .authenticating: return authentication(&buffer)
        case .request: return request(&buffer)
        case .finished: return .needMore
        }
    }

    /// VER NMETHODS METHODS...
    private mutating func greeting(_ buffer: inout ByteBuffer) -> Step {
        guard let bytes = buffer.getBytes(at: buffer.readerIndex, length: min(buffer.readableBytes, 2)), bytes.count == 2 else {
            return firstByteCheck(buffer)
        }
        guard bytes[0] == 5 else { return fail(nil, "not SOCKS5 (version \(bytes[0]))") }
        let count = Int(bytes[1])
        guard buffer.readableBytes >= 2 + count else { return .needMore }
        buffer.moveReaderIndex(forwardBy: 2)
        let methods = buffer.readBytes(length: count) ?? []
        let wanted: UInt8 = credentials == nil ? 0x00 : 0x02
        guard methods.contains(wanted) else {
            state = .finished
            let why = credentials == nil ? "the client offers no method without authentication"
                : "the client does not offer username/password authentication"
            return .fail([5, 0xFF], reason: why)
        }
        state = credentials == nil ? .request : .authenticating
        return .reply([5, wanted])
    }

    private func firstByteCheck(_ buffer: ByteBuffer) -> Step {
        if let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), first != 5 {
            return .fail([], reason: "not SOCKS5 (version \(first))")
        }
        return .needMore
    }

    /// RFC 1929: VER(1) ULEN UNAME PLEN PASSWD.
    private mutating func authentication(_ buffer: inout ByteBuffer) -> Step {
        let start = buffer.readerIndex
        guard buffer.readableBytes >= 2, let version = buffer.getInteger(at: start, as: UInt8.self),
              let userLength = buffer.getInteger(at: start + 1, as: UInt8.self) else { return .needMore }
        guard version == 1 else { return fail([1, 1], "bad authentication version \(version)") }
        guard buffer.readableBytes >= 2 + Int(userLength) + 1,
              let passwordLength = buffer.getInteger(at: start + 2 + Int(userLength), as: UInt8.self),
              buffer.readableBytes >= 3 + Int(userLength) + Int(passwordLength) else { return .needMore }
        buffer.moveReaderIndex(forwardBy: 2)
        let user = buffer.readBytes(length: Int(userLength)) ?? []
        buffer.moveReaderIndex(forwardBy: 1)
        let password = buffer.readBytes(length: Int(passwordLength)) ?? []
        // Compared without an early exit, so timing tells nothing about how much matched.
        let expected = credentials!
        let userMatches = constantTimeEqual(user, Array(expected.username.utf8))
        let passwordMatches = constantTimeEqual(password, Array(expected.password.utf8))
        guard userMatches && passwordMatches else { return fail([1, 1], "wrong username or password") }
        state = .request
        return .reply([1, 0])
    }

    /// VER CMD RSV ATYP DST.ADDR DST.PORT.
    private mutating func request(_ buffer: inout ByteBuffer) -> Step {
        let start = buffer.readerIndex
        if let version = buffer.getInteger(at: start, as: UInt8.self), version != 5 {
            return fail(Self.reply(.generalFailure), "bad request version \(version)")
        }
        guard buffer.readableBytes >= 5, let header = buffer.getBytes(at: start, length: 5) else { return .needMore }
        guard header[0] == 5 else { return fail(Self.reply(.generalFailure), "bad request version \(header[0])") }
        let addressLength: Int
        switch header[3] {
        case 1: addressLength = 4
        case 4: addressLength = 16
        case 3:
            addressLength = 1 + Int(header[4])
            guard header[4] > 0 else { return fail(Self.reply(.generalFailure), "an empty host name") }
        default:
            return fail(Self.reply(.addressTypeNotSupported), "address type \(header[3]) is not supported")
        }
        guard buffer.readableBytes >= 4 + addressLength + 2 else { return .needMore }
        guard header[1] == 1 else {
            let command = header[1] == 2 ? "BIND" : header[1] == 3 ? "UDP ASSOCIATE" : "command \(header[1])"
            return fail(Self.reply(.commandNotSupported), "\(command) is not supported, only CONNECT")
        }
        buffer.moveReaderIndex(forwardBy: 4)
        let host: String
        switch header[3] {
        case 1:
            host = (buffer.readBytes(length: 4) ?? []).map(String.init).joined(separator: ".")
        case 4:
            let raw = buffer.readBytes(length: 16) ?? []
            let groups = stride(from: 0, to: 16, by: 2).map { String(UInt16(raw[$0]) << 8 | UInt16(raw[$0 + 1]), radix: 16) }
            host = IPAddress(groups.joined(separator: ":"))?.description ?? groups.joined(separator: ":")
        default:
            buffer.moveReaderIndex(forwardBy: 1)
            let name = buffer.readBytes(length: addressLength - 1) ?? []
            guard let text = String(validating: name, as: UTF8.self), !text.contains(where: { $0.isWhitespace || $0 == "\0" }) else {
                return fail(Self.reply(.generalFailure), "the host name is not valid text")
            }
            // The OPEN that carries it holds "host:port" in 255 bytes.
            guard text.utf8.count <= Wire.maxTargetLength - 6 else {
                return fail(Self.reply(.generalFailure), "a host name longer than \(Wire.maxTargetLength - 6) bytes")
            }
            host = text
        }
        let port = Int(buffer.readInteger(as: UInt16.self) ?? 0)
        guard port > 0 else { return fail(Self.reply(.generalFailure), "port 0") }
        state = .finished
        return .connect(Endpoint(host: host, port: port))
    }

    private mutating func fail(_ reply: [UInt8]?, _ reason: String) -> Step {
        state = .finished
        return .fail(reply ?? [], reason: reason)
    }

    /// A reply to a request: VER REP RSV ATYP BND.ADDR BND.PORT, with the bound address unknown
    /// (0.0.0.0:0), which clients accept.
    public static func reply(_ code: ReplyCode) -> [UInt8] {
        [5, code.rawValue, 0, 1, 0, 0, 0, 0, 0, 0]
    }

    /// The reply code for the far end's refusal (issue 9's mapping).
    public static func replyCode(for refusal: OpenRefusal) -> ReplyCode {
        switch refusal {
        case .connectionRefused: return .connectionRefused
        case .unreachable: return .hostUnreachable
        case .timeout: return .ttlExpired
        case .notAllowed: return .notAllowed
        case .tooManyStreams, .other: return .generalFailure
        }
    }
}

/// Runs the SOCKS5 handshake on a connection accepted by a -D listener. Once the client has
/// asked for a target, it puts a `StreamChannelHandler` for that target in its place, hands it
/// whatever followed the request, and tells the runtime; the runtime answers the client when the
/// far end has connected (or refused). A client that does not finish in time is dropped.
final class SOCKS5ServerHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let runtime: LinkRuntime
    private var negotiation: SOCKS5Negotiation
    private var buffered: ByteBuffer?
    private var timeout: Scheduled<Void>?
    private let handshakeTimeout: TimeAmount

    /// The -D forward whose listener accepted the client, for the stream it becomes.
    private let forward: String?

    init(runtime: LinkRuntime, credentials: SOCKS5Negotiation.Credentials?, handshakeTimeout: TimeAmount,
         forward: String? = nil) {
        self.runtime = runtime
        self.forward = forward
        self.negotiation = SOCKS5Negotiation(credentials: credentials)
        self.handshakeTimeout = handshakeTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        let channel = context.channel
        let peer = channel.remoteAddress.map(LinkRuntime.describe) ?? "unknown peer"
        let seconds = Double(handshakeTimeout.nanoseconds) / 1e9
        timeout = context.eventLoop.scheduleTask(in: handshakeTimeout) { [runtime] in
            runtime.socksFailed(peer: peer, reason: "no complete request within \(LinkRuntime.seconds(seconds)) s")
            channel.close(promise: nil)
        }
        // Not passed on: the connection becomes a stream only once it names a target.
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = Self.unwrapInboundIn(data)
        if var pending = buffered {
            pending.writeBuffer(&incoming)
            incoming = pending
        }
        while true {
            switch negotiation.feed(&incoming) {
            case .needMore:
                guard incoming.readableBytes <= SOCKS5Negotiation.longestMessage else {
                    fail(context, [], reason: "a request longer than SOCKS5 allows")
                    return
                }
                buffered = incoming.readableBytes > 0 ? incoming : nil
                return
            case .reply(let bytes):
                context.writeAndFlush(Self.wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
            case .fail(let bytes, let reason):
                fail(context, bytes, reason: reason)
                return
            case .connect(let target):
                timeout?.cancel()
                timeout = nil
                buffered = nil
                handOver(context, target: target, rest: incoming)
                return
            }
        }
    }

    private func fail(_ context: ChannelHandlerContext, _ reply: [UInt8], reason: String) {
        timeout?.cancel()
        timeout = nil
        let peer = context.channel.remoteAddress.map(LinkRuntime.describe) ?? "unknown peer"
        runtime.socksFailed(peer: peer, reason: reason)
        let channel = context.channel
        if reply.isEmpty {
            channel.close(promise: nil)
        } else {
            context.writeAndFlush(Self.wrapOutboundOut(channel.allocator.buffer(bytes: reply))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    private func handOver(_ context: ChannelHandlerContext, target: Endpoint, rest: ByteBuffer) {
        let stream = StreamChannelHandler(runtime: runtime, connection: nil, target: target.description, socks: true,
                                          forward: forward)
        do {
            try context.pipeline.syncOperations.addHandler(stream, position: .after(self))
        } catch {
            context.close(promise: nil)
            return
        }
        // The stream handler joins an active channel: the runtime is told here, as
        // `channelActive` would have told it, and then gets what followed the request.
        runtime.socketActive(stream, channel: context.channel)
        if rest.readableBytes > 0 { context.fireChannelRead(Self.wrapInboundOut(rest)) }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timeout?.cancel()
        timeout = nil
        context.fireChannelInactive()
    }

    /// The client ended its output before naming a target, so it can never finish the handshake:
    /// closed at once. (Accepted sockets keep half-closed input for the streams they become, so
    /// without this such a connection, a port probe say, was held until the timeout and then
    /// logged as a client that did not finish in time.)
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            timeout?.cancel()
            timeout = nil
            let peer = context.channel.remoteAddress.map(LinkRuntime.describe) ?? "unknown peer"
            runtime.logger.info("SOCKS client \(peer) closed the connection before naming a target")
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
