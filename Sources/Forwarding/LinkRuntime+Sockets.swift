#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LinkCore
import Logging
import NIOCore
import NIOPosix

// MARK: - Accepting (C) and connecting (S)

extension LinkRuntime {
    /// Kernel send buffer of forwarded TCP sockets, sized to the line (issue 11 §2): an eighth of
    /// a second of it, 2–64 KiB (64 KiB unpaced; Linux doubles the figure for its bookkeeping and
    /// keeps at least 4.6 KB). It holds what the peer sent for a client (or target) that does
    /// not read, beyond the stream's window, so it is kept small. Without a cap Linux autotunes
    /// it to megabytes.
    static func sendBufferBytes(lineRate: Int) -> Int {
        guard lineRate > 0 else { return 64 * 1024 }
        return min(64 * 1024, max(2 * 1024, lineRate / 8))
    }

    /// Kernel receive buffer of forwarded TCP sockets: 64 KiB whatever the line. What waits there
    /// takes no line time, and a small one starves an upload that shares its stream with a
    /// download (measured: 8 KiB cut echo-load's upload to 0.58 of the line rate).
    static let receiveBufferBytes = 64 * 1024

    /// The credit window each stream starts with, which the HELLO offers the peer (§6.1): half a
    /// second of the line plus 1 KiB, at least 5 KiB, at most 64 KiB (64 KiB unpaced). A stream
    /// whose reader stalls takes about that much line time after the stall, plus the socket
    /// buffers. The core grows a stream's window while a long round trip holds it back, and
    /// shrinks it back when its reader stalls.
    static func streamWindow(lineRate: Int) -> Int {
        guard lineRate > 0 else { return 64 * 1024 }
        return min(64 * 1024, max(4 * 1024, lineRate / 2) + 1024)
    }

    /// This line's socket send buffer size.
    var socketSendBufferBytes: Int { Self.sendBufferBytes(lineRate: lineRate) }
}

extension LinkRuntime {
    /// The options of every TCP connection a stream carries, accepted or made: half-close kept
    /// (a FIN is a stream's FIN, not its end), no Nagle delay, a send buffer of
    /// `sendBufferBytes`, so a stalled reader holds little beyond its stream's window, and a
    /// receive buffer of `receiveBufferBytes`. One read per wake-up: what the core has no room
    /// for waits in the connection, and with NIO's default of several reads a stream whose far
    /// reader stalled held up to 256 KiB there (a thousand stuck downloads: 417 MB at S).
    static func configureStreamSocket(_ channel: Channel, sendBufferBytes: Int) throws {
        guard let options = channel.syncOptions else { return }
        try options.setOption(ChannelOptions.maxMessagesPerRead, value: 1)
        try options.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        try options.setOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
        try options.setOption(ChannelOptions.socketOption(.so_sndbuf), value: sendBufferBytes)
        try options.setOption(ChannelOptions.socketOption(.so_rcvbuf), value: receiveBufferBytes)
    }

    /// Connects the stream's connection to `address` (the target's name, or an address a rule
    /// allowed) on `connection`'s target port. Bytes the peer sends meanwhile are held.
    func connect(_ connection: Connection, address: String, port: Int) {
        let timeout = TimeAmount.nanoseconds(Int64(max(0.001, configuration.connectTimeoutSeconds) * 1e9))
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Before connect: SO_RCVBUF sets the window scale.
                    try LinkRuntime.configureStreamSocket(channel, sendBufferBytes: self.socketSendBufferBytes)
                    try channel.pipeline.syncOperations.addHandler(
                        StreamChannelHandler(runtime: self, connection: connection))
                }
            }
            .connect(host: address, port: port)
            .whenFailure { error in
                self.connectFailed(connection, error: error)
            }
    }

    private func connectFailed(_ connection: Connection, error: Error) {
        guard case .connecting = connection.socket else { return }
        connection.socket = .gone
        if connection.streamAlive {
            let refusal = Self.refusal(for: error)
            let why = PlainErrors.describe(error)
            connection.closeReason = "connect to \(connection.peerDescription) failed: \(why)"
            try? link.refuse(connection.id, reason: refusal)
            streamEnded(connection)
            logRepeatable("connect:\(connection.peerDescription):\(why)",
                          "stream \(connection.id): connect to \(connection.peerDescription) failed: \(why); the peer's client is reset",
                          event: .refused)
            scheduleService()
        }
        releaseIfDone(connection)
    }

    /// The refusal that tells the peer best why the target could not be reached.
    static func refusal(for error: Error) -> OpenRefusal {
        if let error = error as? ChannelError, case .connectTimeout = error { return .timeout }
        if let error = error as? IOError { return refusal(errno: error.errnoCode) }
        if let error = error as? NIOConnectionError {
            if error.dnsAError != nil && error.dnsAAAAError != nil && error.connectionErrors.isEmpty { return .unreachable }
            let causes = error.connectionErrors.map { refusal(for: $0.error) }
            if causes.contains(.connectionRefused) { return .connectionRefused }
            if causes.contains(.timeout) { return .timeout }
            return .unreachable
        }
        return .unreachable
    }

    static func refusal(errno code: CInt) -> OpenRefusal {
        switch code {
        case ECONNREFUSED: return .connectionRefused
        case ETIMEDOUT: return .timeout
        default: return .unreachable
        }
    }

    // MARK: Socket events (from StreamChannelHandler)

    func socketActive(_ handler: StreamChannelHandler, channel: Channel) {
        if let connection = handler.connection {
            // S end: the connect to the target succeeded.
            var held: [ByteBuffer] = []
            if case .connecting(let early) = connection.socket { held = early }
            connection.socket = .active(channel, handler)
            table.counted()
            guard connection.streamAlive, !shuttingDown else {
                abort(channel)
                return
            }
            forgetRepeatable(prefix: "connect:\(connection.peerDescription):")
            try? link.accept(connection.id)
            logger.info("stream \(connection.id): connected to \(connection.peerDescription)", metadata: ActivityKind.streamOpened.metadata)
            for buffer in held { writeToSocket(buffer, connection: connection, channel: channel) }
            closeOutputIfFinished(connection)
            scheduleService()
            return
        }

        // A client connected to one of the listeners. Nothing is read from it until its stream exists.
        let peer = channel.remoteAddress.map(Self.describe) ?? "unknown peer"
        guard !shuttingDown else {
            abort(channel)
            return
        }
        handler.pauseReading()
        var accepted = AcceptedSocket(channel: channel, handler: handler, peerDescription: peer, target: handler.target,
                                      acceptedAt: loop.linkNow)
        accepted.socks = handler.socks
        table.counted()
        if link.isEstablished {
            openStream(for: accepted)
        } else {
            // The ID halves are decided by the handshake (docs/protocol.md §3.4): until then the
            // connection waits here, without a stream, so the wait costs no line bytes at all.
            startWaitingForLink(.unopened(accepted))
        }
    }

    /// Gives an accepted socket its stream, and starts reading from it.
    func openStream(for accepted: AcceptedSocket) {
        let channel = accepted.channel
        guard channel.isActive else { return }  // the client gave up while it waited
        let id: StreamID
        do {
            id = try link.openStream(target: accepted.target)
        } catch {
            logRepeatable("open:\(error)", """
                connection from \(accepted.peerDescription) reset at once: \(error) (\(link.streamCount) open)
                """, event: .refused)
            if accepted.socks {
                replyAndClose(channel, .generalFailure)
            } else {
                abort(channel)
            }
            return
        }
        let connection = Connection(id: id, openedAt: accepted.acceptedAt, peerDescription: accepted.peerDescription,
                                    forward: accepted.handler.forward, target: accepted.target)
        connection.socket = .active(channel, accepted.handler)
        connection.socksReplyPending = accepted.socks
        register(connection)
        logger.info("stream \(id): connection from \(accepted.peerDescription)", metadata: ActivityKind.streamOpened.metadata)
        accepted.handler.attach(connection)
        // What arrived early may already fill the stream's buffer: then reading stays paused
        // until `.writable`, as for any other connection.
        if connection.pendingToLink == nil { accepted.handler.resumeReading() }
        if linkState != .up { startWaitingForLink(.opened(connection)) }
        scheduleService()
    }

    func socketRead(_ connection: Connection, _ buffer: ByteBuffer) {
        connection.bytesFromSocket += buffer.readableBytes
        if logger.logLevel <= .trace {
            logger.trace("stream \(connection.id) socket in \(buffer.readableBytes) B: \(hexDump(buffer.readableBytesView))")
        }
        guard connection.streamAlive else { return }  // closing; nobody to give it to
        switch connection.toLink {
        case .reading(pending: nil):
            offer(buffer, from: connection)
        case .reading(pending: var pending?):
            // A read that was already under way when reading paused.
            var more = buffer
            pending.writeBuffer(&more)
            connection.toLink = .reading(pending: pending)
        case .draining, .done:
            return  // nothing is read after the input ended
        }
    }

    /// Gives socket bytes to the core. What it has no room for waits in `pendingToLink`, and the
    /// socket is not read again until `.writable` says there is room.
    func offer(_ buffer: ByteBuffer, from connection: Connection) {
        guard connection.streamAlive else {
            connection.toLink = .done
            return
        }
        var buffer = buffer
        let taken: Int
        do {
            taken = try link.send(buffer.readableBytesView, on: connection.id)
        } catch {
            logger.debug("stream \(connection.id): \(error); dropping \(buffer.readableBytes) B")
            connection.toLink = .done
            return
        }
        buffer.moveReaderIndex(forwardBy: taken)
        let rest = buffer.readableBytes > 0 ? buffer : nil
        let finishNow = connection.offered(leaving: rest)
        if rest != nil {
            connection.handler?.pauseReading()
        } else {
            connection.handler?.resumeReading()
            if finishNow { sendFinish(connection) }
        }
        if taken > 0 { scheduleService() }
    }

    /// The client shut down its sending side (TCP half-close): FIN follows its last bytes.
    func socketInputEnded(_ connection: Connection) {
        switch connection.toLink {
        case .reading(pending: nil):
            sendFinish(connection)
        case .reading(pending: let pending?):
            connection.toLink = .draining(pending: pending)
        case .draining, .done:
            return
        }
    }

    private func sendFinish(_ connection: Connection) {
        connection.toLink = .done
        guard connection.streamAlive else { return }
        try? link.finish(connection.id)
        scheduleService()
    }

    func socketFailed(_ connection: Connection, error: Error) {
        connection.failed = true
        if connection.closeReason == nil { connection.closeReason = "socket error: \(error)" }
        logger.debug("stream \(connection.id): socket error: \(error)")
    }

    func socketInactive(_ connection: Connection) {
        connection.socket = .gone
        if connection.streamAlive {
            // After we shut down our output, an end of input closes the socket altogether (NIO
            // then reports no separate end of input): that, with no error, is a clean end, and
            // the stream finishes by itself once the FINs have crossed. Anything else (RST, an
            // error, a close while our output was still open) aborts the stream.
            if connection.outputShutDown && !connection.failed {
                socketInputEnded(connection)
            } else {
                if connection.closeReason == nil { connection.closeReason = "socket closed" }
                try? link.reset(connection.id, reason: .aborted)
                streamEnded(connection)
                scheduleService()
            }
        }
        releaseIfDone(connection)
    }

    // MARK: Link to socket

    /// Bytes from the peer for this stream's socket. Credit is granted only when the write
    /// completes, so a socket that stops reading stops only its own stream (§6).
    func deliver(_ bytes: [UInt8], on id: StreamID) {
        guard let connection = table[id] else {
            // Cannot happen while this table mirrors the core's; if it does, do not leak credit.
            logger.debug("stream \(id): data for a stream without a connection; resetting it")
            link.consumed(bytes.count, on: id)
            try? link.reset(id, reason: .aborted)
            return
        }
        switch connection.socket {
        case .connecting(var held):
            held.append(ByteBuffer(bytes: bytes))
            connection.socket = .connecting(held: held)
        case .active(let channel, _):
            writeToSocket(channel.allocator.buffer(bytes: bytes), connection: connection, channel: channel)
        case .gone:
            link.consumed(bytes.count, on: id)  // nowhere to deliver; do not let it clog the budget
        }
    }

    func writeToSocket(_ buffer: ByteBuffer, connection: Connection, channel: Channel) {
        let count = buffer.readableBytes
        if logger.logLevel <= .trace {
            logger.trace("stream \(connection.id) socket out \(count) B: \(hexDump(buffer.readableBytesView))")
        }
        connection.writeStarted()
        let promise = loop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { result in
            connection.writeCompleted()
            if case .success = result {
                connection.bytesToSocket += count
                if connection.streamAlive {
                    self.link.consumed(count, on: connection.id)
                    self.scheduleService()
                }
            }
            self.closeOutputIfFinished(connection)
        }
        channel.write(buffer, promise: promise)
        table.needsFlush(connection)
    }

    /// Once the peer finished and every byte before its FIN is written, shut down the socket's
    /// output (TCP half-close). If the input already ended, NIO closes the socket altogether.
    func closeOutputIfFinished(_ connection: Connection) {
        guard case .finishing(inFlight: 0) = connection.toSocket, let channel = connection.channel else { return }
        connection.toSocket = .shutDown
        channel.close(mode: .output, promise: nil)
    }

    func remoteFinished(_ id: StreamID) {
        guard let connection = table[id] else { return }
        connection.peerFinished()
        closeOutputIfFinished(connection)
    }

    /// C end: the peer could not reach the target. Reset the client at once, so it neither
    /// hangs (the original left it open) nor mistakes the end for a complete, empty reply.
    func openRefused(_ id: StreamID, reason: OpenRefusal) {
        guard let connection = table[id] else { return }
        connection.closeReason = "refused by the peer: \(reason)"
        streamEnded(connection)
        if connection.socksReplyPending, let channel = connection.channel {
            // A SOCKS client is told why in its reply, then the connection closes (RFC 1928 §6).
            connection.socksReplyPending = false
            let code = SOCKS5Negotiation.replyCode(for: reason)
            logRepeatable("refused:\(reason)", """
                SOCKS stream \(id) from \(connection.peerDescription): the peer refused it (\(reason)); \
                replied \(code) to the client
                """)
            channel.writeAndFlush(channel.allocator.buffer(bytes: SOCKS5Negotiation.reply(code))).whenComplete { _ in
                channel.close(promise: nil)
            }
        } else {
            logRepeatable("refused:\(reason)",
                          "stream \(id) from \(connection.peerDescription): the peer refused it (\(reason)); the client is reset")
            if let channel = connection.channel { abort(channel) }
        }
        releaseIfDone(connection)
    }

    /// The far end connected a stream of ours: a SOCKS client gets its success reply now.
    func openAccepted(_ id: StreamID) {
        guard let connection = table[id], connection.socksReplyPending, let channel = connection.channel else { return }
        connection.socksReplyPending = false
        channel.write(channel.allocator.buffer(bytes: SOCKS5Negotiation.reply(.succeeded)), promise: nil)
        table.needsFlush(connection)
    }

    /// Tells a SOCKS client that waits for its reply why it gets no stream, then closes.
    func replyAndClose(_ channel: Channel, _ code: SOCKS5Negotiation.ReplyCode) {
        channel.writeAndFlush(channel.allocator.buffer(bytes: SOCKS5Negotiation.reply(code))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }

    /// A SOCKS client that gave up or broke the protocol before naming a target.
    func socksFailed(peer: String, reason: String) {
        logRepeatable("socks:\(reason)", "SOCKS client \(peer) dropped: \(reason)")
    }

    func streamReset(_ id: StreamID, reason: ResetReason) {
        guard let connection = table[id] else { return }
        connection.closeReason = "reset: \(reason)"
        if reason == .protocolViolation || reason == .creditExceeded {
            logRepeatable("violation:\(reason)", """
                stream \(id) (\(connection.peerDescription)): the peer broke the protocol (\(reason)); \
                the stream and its connection are reset
                """)
        }
        streamEnded(connection)
        if let channel = connection.channel {
            abort(channel)
        }
        releaseIfDone(connection)
    }

    /// Both directions finished normally; the socket closes itself once its output is shut down.
    func streamClosed(_ id: StreamID) {
        guard let connection = table[id] else { return }
        connection.closeReason = connection.closeReason ?? "closed"
        connection.endedCleanly = true
        streamEnded(connection)
        connection.peerFinished()
        closeOutputIfFinished(connection)
        releaseIfDone(connection)
    }

    /// Closes with RST (SO_LINGER 0), so the other party sees the abort rather than a clean end.
    func abort(_ channel: Channel) {
        abortFuture(channel).whenComplete { _ in }
    }

    /// `abort(_:)`, completing when the channel is closed.
    func abortFuture(_ channel: Channel) -> EventLoopFuture<Void> {
        guard let provider = channel as? SocketOptionProvider else { return channel.close() }
        return provider.setSoLinger(linger(l_onoff: 1, l_linger: 0))
            .flatMapError { _ in channel.eventLoop.makeSucceededVoidFuture() }
            .flatMap { channel.close() }
    }

    // MARK: Bookkeeping

    /// "127.0.0.1:5000" rather than NIO's "[IPv4]127.0.0.1/127.0.0.1:5000".
    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        if case .v6 = address { return "[\(ip)]:\(port)" }
        return "\(ip):\(port)"
    }

    func register(_ connection: Connection) { table.add(connection) }

    /// The core no longer has the stream; its ID may be reused from now on.
    func streamEnded(_ connection: Connection) { table.streamEnded(connection) }

    /// Forgets a connection whose stream and socket are both gone, and logs its summary.
    func releaseIfDone(_ connection: Connection) {
        guard table.releaseIfDone(connection) else { return }
        let seconds = ((loop.linkNow - connection.openedAt).seconds * 10).rounded() / 10
        logger.info("""
            stream \(connection.id) closed (\(connection.closeReason ?? "closed")): \
            \(connection.bytesFromSocket) B read from the socket, \(connection.bytesToSocket) B written to it, \(seconds) s
            """, metadata: ActivityKind.streamClosed.metadata)
    }
}
