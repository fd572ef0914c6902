import ArgumentParser
import Dashboard
import Forwarding
import Logging
import NIOCore
import NIOPosix

/// `--ui [ADDR:]PORT`: where the dashboard listens; loopback unless an address is given.
struct DashboardAddress: Equatable, Sendable {
    var host: String
    var port: Int

    static func parse(_ text: String) throws -> DashboardAddress {
        let expected = "the dashboard's address is [ADDR:]PORT, e.g. 8080 or 127.0.0.1:8080 (0: any free port), not \"\(text)\""
        if let port = Int(text) {
            guard (0...65_535).contains(port) else { throw CommandLineError(expected) }
            return DashboardAddress(host: "127.0.0.1", port: port)
        }
        guard let endpoint = Endpoint(parsing: text), (0...65_535).contains(endpoint.port), !endpoint.host.isEmpty else {
            throw CommandLineError(expected)
        }
        return DashboardAddress(host: endpoint.host, port: endpoint.port)
    }
}

/// What starts a dashboard: the address and, if the user gave one, the token's file.
struct DashboardOptions: Equatable, Sendable {
    var address: DashboardAddress
    var tokenFile: String?
}

/// The dashboard of one process: its event loop group (the links' too), the hub and the server.
final class DashboardSession: Sendable {
    let group: MultiThreadedEventLoopGroup
    let hub: DashboardHub
    let server: DashboardServer
    let terminalLevel: Logger.Level
    /// Where a generated token was written; nil when the user gave one.
    let tokenPath: String?

    private init(group: MultiThreadedEventLoopGroup, hub: DashboardHub, server: DashboardServer, terminalLevel: Logger.Level,
                 tokenPath: String?) {
        self.group = group
        self.hub = hub
        self.server = server
        self.terminalLevel = terminalLevel
        self.tokenPath = tokenPath
    }

    /// "dashboard at http://127.0.0.1:8080/#token=… (the token is also in …)".
    var announcement: String {
        "dashboard at \(server.url)" + (tokenPath.map { " (the token is also in \($0))" } ?? "")
    }

    /// Starts the server and prints its URL, with the token, on standard error (not through the
    /// log: the token goes to the user's terminal once and to a file only they can read).
    static func start(_ options: DashboardOptions, verbosity: Int, announce: Bool = true) async throws -> DashboardSession {
        let level = StderrLogHandler.logLevel(forVerbosity: verbosity)
        let token: String
        var tokenPath: String?
        do {
            if let file = options.tokenFile {
                token = try DashboardToken.load(path: file)
            } else {
                token = DashboardToken.generate()
            }
        } catch {
            throw CommandLineError(error.description)
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let hub = DashboardHub(eventLoopGroup: group, version: Socket2Ser.version) { hub, id in
            Self.logger(link: id, level: level, hub: hub)
        }
        let serverLogger = Logger(label: "socket2ser.ui") { StderrLogHandler(label: $0, logLevel: level) }
        let server: DashboardServer
        do {
            if options.tokenFile == nil {
                let path = DashboardToken.defaultPath()
                try DashboardToken.store(token, at: path)
                tokenPath = path
            }
            server = try await DashboardServer.start(
                hub: hub, settings: DashboardServer.Settings(host: options.address.host, port: options.address.port, token: token),
                tokenConfigured: options.tokenFile != nil, logger: serverLogger)
        } catch {
            try? await group.shutdownGracefully()
            throw CommandLineError("\(error)")
        }
        let session = DashboardSession(group: group, hub: hub, server: server, terminalLevel: level, tokenPath: tokenPath)
        if announce { StandardError.write("socket2ser: \(session.announcement)\n") }
        return session
    }

    /// A link's logger: the terminal at its level, and the dashboard's event log from `info`.
    static func logger(link id: String, level: Logger.Level, hub: DashboardHub) -> Logger {
        Logger(label: "socket2ser") { label in
            MultiplexLogHandler([StderrLogHandler(label: label, logLevel: level), DashboardLogHandler(hub: hub, link: id)])
        }
    }

    func logger(link id: String, level: Logger.Level? = nil) -> Logger {
        Self.logger(link: id, level: level ?? terminalLevel, hub: hub)
    }

    /// Adds a link run elsewhere (the command line, a config line) to the dashboard.
    func show(_ handle: LinkHandle, id: String, origin: DashboardHub.Origin) -> String {
        hub.register(handle, preferredID: id, origin: origin)
    }

    func stop() async {
        await hub.stopDashboardLinks()
        await server.stop()
        try? await group.shutdownGracefully()
    }
}

extension Optional {
    func asyncMap<T>(_ transform: (Wrapped) async throws -> T) async rethrows -> T? {
        guard let self else { return nil }
        return try await transform(self)
    }
}
