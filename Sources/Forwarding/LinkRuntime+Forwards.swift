#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import LinkCore
import Logging
import NIOCore
import NIOPosix

// MARK: - Listeners: this end's own (-L, C's -port) and those it holds for the peer (-R)

/// A listening socket and what its connections become.
struct Listener {
    let channel: Channel
    /// The address it really listens on (the port the system chose, when 0 was asked for).
    let bound: Endpoint
    /// What the OPEN of each of its streams names; empty for the far end's default target.
    let target: String
    /// This end's forward it serves; nil for one held for the peer's -R.
    var forward: Forward?
    /// For one held for the peer's -R: the address the peer asked for (port 0: any).
    var requested: Endpoint? = nil
}

extension LinkRuntime {
    /// Binds a listener whose every connection becomes a stream to `target`, or (`socks`) first
    /// runs a SOCKS5 handshake that names the target.
    func listen(on address: Endpoint, target: String, socks: Bool = false, forward: Forward? = nil) -> EventLoopFuture<Listener> {
        ServerBootstrap(group: loop)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // Out of descriptors, accept(2) fails while the connection stays queued, so
                    // the listener is ready again at once: without a pause the loop spins.
                    try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler(
                        shouldForwardIOErrorCaught: true, backoffProvider: AcceptFailureReporter.backoff))
                    try channel.pipeline.syncOperations.addHandler(AcceptFailureReporter(runtime: self, address: address))
                }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try LinkRuntime.configureStreamSocket(channel, sendBufferBytes: self.socketSendBufferBytes)
                    if socks {
                        // Read for every connection, so that a reload's credentials and timeout
                        // apply at once, to listeners that did not change as well.
                        let timeout = TimeAmount.nanoseconds(Int64(self.configuration.socksHandshakeTimeoutSeconds * 1e9))
                        try channel.pipeline.syncOperations.addHandler(SOCKS5ServerHandler(
                            runtime: self, credentials: self.configuration.socksCredentials, handshakeTimeout: timeout,
                            forward: forward?.description))
                    } else {
                        try channel.pipeline.syncOperations.addHandler(
                            StreamChannelHandler(runtime: self, connection: nil, target: target, forward: forward?.description))
                    }
                }
            }
            .bind(host: address.host, port: address.port)
            .map { channel in
                Listener(channel: channel, bound: Endpoint(host: address.host, port: channel.localAddress?.port ?? address.port),
                         target: target, forward: forward)
            }
    }

    /// Binds every -L (and C's -port). One that cannot be bound gets a line and the others go
    /// on; only when none could be and the end has nothing else to do is it a startup error.
    /// Succeeds with the first listener's port.
    func startLocalListeners() -> EventLoopFuture<Int?> {
        let wanted = Self.listenerTargets(configuration.localListeners)
        guard !wanted.isEmpty else { return loop.makeSucceededFuture(nil) }
        let attempts = wanted.map { forward, target in
            let socks = if case .dynamic = forward { true } else { false }
            return listen(on: forward.listen, target: target, socks: socks, forward: forward)
                .map { Result<Listener, Error>.success($0) }
                .recover { Result<Listener, Error>.failure($0) }
                .map { (forward, $0) }
        }
        return EventLoopFuture.whenAllSucceed(attempts, on: loop).flatMapThrowing { results in
            var failures: [(Forward, ForwarderError)] = []
            for (forward, result) in results {
                switch result {
                case .success(let listener):
                    self.listeners.append(listener)
                case .failure(let error):
                    failures.append((forward, ForwarderError.cannotListen(
                        host: forward.listen.host, port: forward.listen.port, reason: PlainErrors.describe(error))))
                }
            }
            let hasOtherWork = self.configuration.forwards.contains { if case .remote = $0 { true } else { false } }
                || self.configuration.defaultTarget != nil || !self.configuration.allowRules.isEmpty
            if self.listeners.isEmpty, !hasOtherWork, let (_, first) = failures.first {
                for listener in self.listeners { listener.channel.close(promise: nil) }
                throw first  // nothing this end could do: a startup error, reported once
            }
            for (forward, failure) in failures { self.logger.warning("\(forward): \(failure)") }
            if self.listeners.count > 1 || self.configuration.form == .link {
                for listener in self.listeners {
                    self.logger.notice("\(listener.forward.map { "\($0)" } ?? "listener"): listening on \(listener.bound)")
                }
            }
            self.listeningPort = self.listeners.first?.bound.port
            return self.listeningPort
        }
    }

    /// The forwards this end listens for, with what their streams' OPEN names.
    static func listenerTargets(_ forwards: [Forward]) -> [(Forward, String)] {
        forwards.compactMap { forward -> (Forward, String)? in
            switch forward {
            case .local(_, let target): return (forward, target?.description ?? "")
            case .dynamic: return (forward, "")
            case .remote: return nil  // the far end listens for these
            }
        }
    }

    /// Takes a new set of forwards and rules (a reload): listeners and -R requests of forwards
    /// that went away are closed or withdrawn, new ones are set up, and everything unchanged,
    /// with its streams, is left alone. Streams of a removed forward run to their end.
    func apply(_ new: ForwarderConfiguration) {
        let old = configuration
        configuration = new
        policy = new.targetPolicy
        let removed = old.forwards.filter { !new.forwards.contains($0) }
        // New forwards, and unchanged ones that are not working (their port was busy, the far
        // end refused them): a reload is the user's way to try those again.
        let added = new.forwards.filter { forward in
            guard old.forwards.contains(forward) else { return true }
            if case .remote = forward { return !remoteRequests.values.contains(forward) }
            return !listeners.contains { $0.forward == forward }
        }
        for (id, listener) in peerListeners where !new.allowsPeerListener(on: listener.requested ?? listener.bound) {
            listener.channel.close(promise: nil)
            peerListeners[id] = nil
            try? link.refuseListen(id, reason: .notAllowed)
            let why = new.gatewayPorts || Self.isLoopback(listener.bound.host)
                ? "--allow-listen no longer allows it" : "--gateway-ports is off now"
            logger.notice("stopped listening on \(listener.bound) for the peer (-R): \(why)")
        }
        for forward in removed {
            if case .remote = forward {
                for (id, requested) in remoteRequests where requested == forward {
                    try? link.cancelListen(id)
                    remoteRequests[id] = nil
                }
            } else {
                for listener in listeners where listener.forward == forward { listener.channel.close(promise: nil) }
                listeners.removeAll { $0.forward == forward }
            }
            logger.notice("\(forward): removed")
        }
        for (forward, target) in Self.listenerTargets(added) {
            let socks = if case .dynamic = forward { true } else { false }
            listen(on: forward.listen, target: target, socks: socks, forward: forward).whenComplete { result in
                switch result {
                case .success(let listener):
                    guard !self.shuttingDown, self.configuration.forwards.contains(forward) else {
                        listener.channel.close(promise: nil)
                        return
                    }
                    self.listeners.append(listener)
                    self.logger.notice("\(forward): listening on \(listener.bound)")
                case .failure(let error):
                    self.logger.warning("\(forward): cannot listen on \(forward.listen): \(PlainErrors.describe(error))")
                }
            }
        }
        if link.isEstablished { added.forEach(requestRemoteForward) }
        scheduleService()
    }

    func closeListeners() {
        for listener in listeners { listener.channel.close(promise: nil) }
        listeners.removeAll()
        for listener in peerListeners.values { listener.channel.close(promise: nil) }
        peerListeners.removeAll()
    }
}

// MARK: - -R: asking the far end to listen, and listening for it

extension LinkRuntime {
    /// Once the link is established: asks the far end for every -R forward (again after a
    /// restart or a lost link: listeners belong to the session, docs/protocol.md §5.6).
    func requestRemoteForwards() {
        remoteRequests.removeAll()
        configuration.forwards.forEach(requestRemoteForward)
        if !remoteRequests.isEmpty { scheduleService() }
    }

    /// Asks the far end to listen for `forward`, if it is a -R.
    private func requestRemoteForward(_ forward: Forward) {
        guard case .remote(let listen, let target) = forward else { return }
        do {
            let id = try link.requestListen(bind: listen.host, port: UInt16(listen.port), target: target.description)
            remoteRequests[id] = forward
        } catch {
            logger.warning("\(forward): cannot ask the far end to listen: \(error)")
        }
    }

    func remoteForwardAccepted(_ id: ListenID, port: UInt16) {
        guard let forward = remoteRequests[id] else { return }
        logger.notice("\(forward): the far end listens on \(Endpoint(host: forward.listen.host, port: Int(port)))")
    }

    func remoteForwardRefused(_ id: ListenID, reason: ListenRefusal) {
        guard let forward = remoteRequests.removeValue(forKey: id) else { return }
        guard reason != .sessionEnded else { return }  // asked again when the link is re-established
        var hint = ""
        if reason == .notAllowed {
            let rule = forward.listen.port == 0 ? String(forward.listen.description.dropLast()) + "*" : forward.listen.description
            hint = Self.isLoopback(forward.listen.host)
                ? " (it needs --allow-listen \(rule))"
                : " (it needs --allow-listen \(rule) and --gateway-ports to listen on \(forward.listen.host))"
        }
        logger.warning("\(forward): refused by the far end: \(reason)\(hint)")
    }

    /// The peer asks this end to listen for it: only where this end's --allow-listen rules say
    /// (a loopback address unless --gateway-ports), and for no more listeners at once than the
    /// core holds for the peer, binds still under way included. A peer that asks and cancels in
    /// a loop would otherwise have a socket opened for every request before the first bind ends.
    func peerWantsListener(_ id: ListenID, bind: String, port: UInt16, target: String) {
        let address = Endpoint(host: bind, port: Int(port))
        guard configuration.gatewayPorts || Self.isLoopback(bind) else {
            logRepeatable("listen-not-loopback", """
                the peer asked this end to listen on \(address) (-R); only loopback addresses are allowed \
                without --gateway-ports; refused
                """, event: .refused)
            try? link.refuseListen(id, reason: .notAllowed)
            return
        }
        guard configuration.allowsPeerListener(on: address) else {
            let rule = port == 0 ? String(address.description.dropLast()) + "*" : address.description
            logRepeatable("listen-not-allowed", """
                the peer asked this end to listen on \(address) (-R), which this end does not allow; refused \
                (allow it with --allow-listen \(rule))
                """, event: .refused)
            try? link.refuseListen(id, reason: .notAllowed)
            return
        }
        let limit = link.maxPeerListens
        guard peerListeners.count + peerListenBindsInFlight < limit else {
            logRepeatable("listen-too-many", """
                the peer asked this end to listen on \(address) (-R) while \(limit) listeners for it are held \
                or being set up, the most it may have; refused as too many
                """, event: .refused)
            try? link.refuseListen(id, reason: .tooMany)
            return
        }
        peerListenBindsInFlight += 1
        listen(on: address, target: target).whenComplete { result in
            self.peerListenBindsInFlight -= 1
            switch result {
            case .success(let listener):
                // Cancelled, the session ended, or a reload withdrew the permission meanwhile.
                guard !self.shuttingDown, self.configuration.allowsPeerListener(on: address),
                      (try? self.link.acceptListen(id, port: UInt16(listener.bound.port))) != nil else {
                    listener.channel.close(promise: nil)
                    try? self.link.refuseListen(id, reason: .notAllowed)
                    return
                }
                var held = listener
                held.requested = address
                self.peerListeners.updateValue(held, forKey: id)?.channel.close(promise: nil)
                // Once a minute per address at the default level: a peer that asks and cancels
                // in a loop must not fill the log.
                self.logRepeatable("peer-listening:\(address)",
                                   "listening on \(listener.bound) for the peer (-R): its streams go to \(target)",
                                   level: .notice)
            case .failure(let error):
                let inUse = (error as? IOError)?.errnoCode == EADDRINUSE
                let why = PlainErrors.describe(error)
                self.logger.warning("the peer asked this end to listen on \(address) (-R), which failed: \(why)")
                try? self.link.refuseListen(id, reason: inUse ? .addressInUse : .cannotListen)
            }
            self.scheduleService()
        }
    }

    func peerListenerCancelled(_ id: ListenID) {
        guard let listener = peerListeners.removeValue(forKey: id) else { return }
        listener.channel.close(promise: nil)
        logger.info("stopped listening on \(listener.bound) for the peer (-R)")
    }

    /// 127.0.0.0/8, ::1 and localhost: this computer only.
    static func isLoopback(_ host: String) -> Bool { Endpoint.isLoopback(host: host) }
}

// MARK: - Connecting what the peer opens, within the policy

extension LinkRuntime {
    /// The peer opened a stream: connect it to its target if this end's policy allows it.
    func streamOpened(_ id: StreamID, target: String) {
        guard !shuttingDown else {
            try? link.refuse(id, reason: .other)
            return
        }
        let endpoint: Endpoint
        if target.isEmpty {
            guard let defaultTarget = configuration.defaultTarget else {
                logRepeatable("open-no-default", """
                    the peer opened stream \(id) to this end's default target, but this end has none \
                    (start it as S -ip HOST -port PORT, or name the target in the far end's -L); refused
                    """, event: .refused)
                try? link.refuse(id, reason: .notAllowed)
                return
            }
            endpoint = defaultTarget
        } else {
            guard let parsed = Endpoint(parsing: target), parsed.port > 0 else {
                logRepeatable("open-bad-target", "the peer opened stream \(id) to \"\(target)\", which is not host:port; refused")
                try? link.refuse(id, reason: .notAllowed)
                return
            }
            endpoint = parsed
        }
        let verdict = policy.verdict(for: endpoint)
        guard verdict != .denied else {
            refuseNotAllowed(id, endpoint)
            return
        }
        let connection = Connection(id: id, openedAt: loop.linkNow, peerDescription: endpoint.description, target: target)
        register(connection)
        guard verdict == .needsAddresses else {
            connect(connection, address: endpoint.host, port: endpoint.port)
            return
        }
        // Resolved off the event loop; then only an address a rule allows is used, so the name
        // cannot lead anywhere else (and is not resolved a second time). A few at a time: a peer
        // opening thousands of streams to names must not tie up every thread of the process.
        guard lookupsInFlight < Self.maximumLookups else {
            connection.socket = .gone
            connection.closeReason = "too many name lookups at once"
            streamEnded(connection)
            releaseIfDone(connection)
            try? link.refuse(id, reason: .unreachable)
            logRepeatable("lookups", "stream \(id): \(Self.maximumLookups) name lookups are already running; refused")
            return
        }
        lookupsInFlight += 1
        let policy = self.policy
        DispatchQueue.global().async {
            let addresses = Self.resolve(endpoint.host)
            let allowed = policy.allowedAddresses(of: endpoint, among: addresses)
            self.loop.execute {
                self.lookupsInFlight -= 1
                guard connection.streamAlive, !self.shuttingDown else {
                    connection.socket = .gone
                    self.releaseIfDone(connection)
                    return
                }
                guard let address = allowed.first else {
                    connection.socket = .gone
                    connection.closeReason = "not allowed"
                    self.streamEnded(connection)
                    self.releaseIfDone(connection)
                    self.refuseNotAllowed(id, endpoint, resolved: addresses)
                    self.scheduleService()
                    return
                }
                self.connect(connection, address: "\(address)", port: endpoint.port)
            }
        }
    }

    private func refuseNotAllowed(_ id: StreamID, _ endpoint: Endpoint, resolved: [IPAddress]? = nil) {
        let addresses = resolved.map { list in
            list.isEmpty ? " (the name does not resolve)" : " (it resolves to \(list.map(\.description).joined(separator: ", ")))"
        } ?? ""
        logRepeatable("not-allowed:\(endpoint)", """
            the peer asked for \(endpoint)\(addresses), which this end does not allow; refused \
            (allow it with --allow \(endpoint))
            """, event: .refused)
        try? link.refuse(id, reason: .notAllowed)
    }

    /// Name lookups for address rules that may run at once, per line.
    static let maximumLookups = 16

    /// Every address `host` resolves to, in the resolver's order.
    static func resolve(_ host: String) -> [IPAddress] {
        if let literal = IPAddress(host) { return [literal] }
        var result: [IPAddress] = []
        forEachStreamAddress(host: host) { info in
            var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            guard getnameinfo(info.ai_addr, info.ai_addrlen, &text, socklen_t(text.count), nil, 0,
                              NI_NUMERICHOST) == 0 else { return true }
            let name = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if let address = IPAddress(name), !result.contains(address) { result.append(address) }
            return true
        }
        return result
    }
}

/// On a listener, after NIO's `AcceptBackoffHandler` (which waits a second before the next
/// accept once one failed): says when connections cannot be accepted for want of descriptors or
/// memory (a warning at most once a minute, info lines between) and, at info level, when they
/// can again. The connections wait in the
/// listen queue meanwhile, and those this end holds are served as before.
final class AcceptFailureReporter: ChannelInboundHandler {
    typealias InboundIn = Channel
    typealias InboundOut = Channel

    /// Failures that last until something is freed: accepting waits a second after one. Any
    /// other (a client that reset before it was accepted) does not hold up the next.
    static let lasting: Set<CInt> = [EMFILE, ENFILE, ENOBUFS, ENOMEM]

    static func backoff(_ error: IOError) -> TimeAmount? {
        lasting.contains(error.errnoCode) ? .seconds(1) : nil
    }

    private let runtime: LinkRuntime
    private let address: Endpoint
    /// Since the last failure, no connection was accepted.
    private var failing = false

    init(runtime: LinkRuntime, address: Endpoint) {
        self.runtime = runtime
        self.address = address
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if failing {
            failing = false
            runtime.logger.info("accepting connections on \(address) again")
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if let error = error as? IOError, Self.lasting.contains(error.errnoCode) {
            if !failing {
                failing = true
                let limit = error.errnoCode == EMFILE ? openFileLimit().map { " (at most \($0) for this process)" } ?? "" : ""
                // A warning once a minute, however often descriptors come and go meanwhile.
                runtime.logRepeatable("accept:\(address)", """
                    cannot accept connections on \(address): \(PlainErrors.describe(error))\(limit); they wait in the \
                    listen queue and accepting is tried again every second, while the connections this end holds go on
                    """)
            }
            return
        }
        context.fireErrorCaught(error)
    }
}
