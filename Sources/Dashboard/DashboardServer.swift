import Forwarding
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import ServiceLifecycle
import NIOCore
import SerialPort
import Synchronization

/// The dashboard's HTTP server: Hummingbird 2 on the process's event loop group, serving the
/// embedded page, the JSON API and the live channel of docs/api.md, and /metrics.
public final class DashboardServer: Sendable {
    public struct Settings: Sendable {
        public var host: String
        public var port: Int
        /// The token every change needs; on a non-loopback address every request needs it.
        public var token: String
        /// Read `/api/ports` from here (tests give a fixture tree).
        public var sysRoot = "/sys"
        public var devRoot = "/dev"

        public init(host: String, port: Int, token: String) {
            self.host = host
            self.port = port
            self.token = token
        }

        public var isLoopback: Bool { Endpoint.isLoopback(host: host) }
    }

    public let hub: DashboardHub
    public let settings: Settings
    /// The port it listens on (the system's choice when 0 was asked for).
    public let port: Int
    private let task: Task<Void, Never>
    private let sampler: Task<Void, Never>
    private let group: ServiceGroup

    private init(hub: DashboardHub, settings: Settings, port: Int, task: Task<Void, Never>, sampler: Task<Void, Never>,
                 group: ServiceGroup) {
        self.group = group
        self.hub = hub
        self.settings = settings
        self.port = port
        self.task = task
        self.sampler = sampler
    }

    /// The address to open, with the token in the fragment (never sent to the server).
    public var url: String {
        let host = settings.host.contains(":") ? "[\(settings.host)]" : settings.host
        return "http://\(host == "0.0.0.0" || host == "[::]" ? "127.0.0.1" : host):\(port)/#token=\(settings.token)"
    }

    /// Starts listening; returns once it does.
    ///
    /// - Throws: `DashboardError` with one line: a non-loopback address without a configured
    ///   token (`tokenConfigured`), or an address that cannot be bound.
    public static func start(hub: DashboardHub, settings: Settings, tokenConfigured: Bool, logger: Logger) async throws(DashboardError)
        -> DashboardServer
    {
        guard settings.isLoopback || tokenConfigured else {
            throw .badRequest("""
                the dashboard listens on \(settings.host), which is not loopback: give it a token with \
                --ui-token-file FILE (anyone who can reach the port could otherwise watch the links)
                """)
        }
        let started = Mutex<(port: Int?, continuation: CheckedContinuation<Int, any Error>?)>((nil, nil))
        let responder = DashboardResponder(hub: hub, settings: settings)
        let bound = responder.boundPort
        var quiet = logger
        quiet.logLevel = .warning
        let app = Application(
            responder: CallbackResponder<BasicRequestContext> { request, _ in await responder.respond(to: request) },
            configuration: ApplicationConfiguration(address: .hostname(settings.host, port: settings.port),
                                                    serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? settings.port
                bound.value.withLock { $0 = port }
                let continuation = started.withLock { state in
                    state.port = port
                    defer { state.continuation = nil }
                    return state.continuation
                }
                continuation?.resume(returning: port)
            },
            eventLoopGroupProvider: .shared(hub.eventLoopGroup),
            logger: quiet)
        let failure = Mutex<(any Error)?>(nil)
        // In a service group of its own, so that `stop()` is a graceful shutdown (requests in
        // flight are answered, the listener closes) rather than a cancellation.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [app], logger: quiet))
        let task = Task {
            do {
                try await group.run()
            } catch {
                let continuation = started.withLock { state in
                    defer { state.continuation = nil }
                    return state.continuation
                }
                failure.withLock { $0 = error }
                continuation?.resume(throwing: error)
            }
        }
        let port: Int
        do {
            port = try await withCheckedThrowingContinuation { continuation in
                let ready: Int?? = started.withLock { state in
                    if let port = state.port { return .some(port) }
                    if failure.withLock({ $0 }) != nil { return .some(nil) }
                    state.continuation = continuation
                    return .none
                }
                switch ready {
                case .some(.some(let port)): continuation.resume(returning: port)
                case .some(.none): continuation.resume(throwing: failure.withLock { $0 }!)
                case .none: break
                }
            }
        } catch {
            task.cancel()
            throw .badRequest("cannot listen on \(Endpoint(host: settings.host, port: settings.port)) for the dashboard: \(PlainErrors.describe(error))")
        }
        let sampler = Task { await hub.run() }
        return DashboardServer(hub: hub, settings: settings, port: port, task: task, sampler: sampler, group: group)
    }

    /// Stops serving: live channels end, then the listener closes.
    public func stop() async {
        sampler.cancel()
        await sampler.value
        hub.finishSubscribers()
        await group.triggerGracefulShutdown()
        await task.value
    }
}

/// The bound port, known once the server runs.
final class PortBox: Sendable {
    let value = Mutex(0)
}

/// Routes one request, after the checks of docs/api.md (Security).
struct DashboardResponder: Sendable {
    let hub: DashboardHub
    let settings: DashboardServer.Settings
    /// Set once the listener is bound: the Host a request must name.
    let boundPort = PortBox()

    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy: """
            default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
            base-uri 'none'; form-action 'none'; frame-ancestors 'none'
            """,
        .xContentTypeOptions: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        .cacheControl: "no-store",
    ]

    func respond(to request: Request) async -> Response {
        var response: Response
        do {
            response = try await route(request)
        } catch let error as DashboardError {
            response = Self.json(["error": error.message], status: error.status)
        } catch {
            // Never a stack trace or an internal type name: one line that says what failed.
            response = Self.json(["error": "the request failed"], status: 500)
        }
        for field in Self.securityHeaders { response.headers[field.name] = field.value }
        return response
    }

    private func route(_ request: Request) async throws -> Response {
        try checkHostAndOrigin(request)
        let path = request.uri.path
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map { $0.removingPercentEncoding ?? String($0) }
        let method = request.method

        if method == .get, !path.hasPrefix("/api/"), path != "/metrics" {
            guard let file = Assets.file(at: path) else { throw DashboardError.notFound("no such page: \(path)") }
            var headers = HTTPFields()
            headers[.contentType] = file.contentType
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: file.bytes)))
        }

        let mutating = method != .get && method != .head
        if mutating || !settings.isLoopback { try checkToken(request) }

        let p = parts + Array(repeating: "", count: max(0, 6 - parts.count))
        switch (method, parts.count, p[0], p[1], p[2], p[3], p[4], p[5]) {
        case (.get, 1, "metrics", _, _, _, _, _):
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: hub.metricsText())))
        case (.get, 2, "api", "overview", _, _, _, _):
            return Self.json(OverviewView(version: hub.version, links: hub.links(), readsNeedToken: !settings.isLoopback))
        case (.get, 2, "api", "links", _, _, _, _):
            return Self.json(hub.links())
        case (.get, 3, "api", "links", let id, _, _, _):
            guard let link = hub.link(id) else { throw DashboardError.notFound("no link \"\(id)\"") }
            return Self.json(link)
        case (.get, 4, "api", "links", let id, "streams", _, _):
            guard let streams = hub.streams(of: id) else { throw DashboardError.notFound("no link \"\(id)\"") }
            return Self.json(streams)
        case (.get, 4, "api", "links", let id, "history", _, _):
            guard let history = hub.history(of: id) else { throw DashboardError.notFound("no link \"\(id)\"") }
            return Self.json(history)
        case (.get, 2, "api", "events", _, _, _, _):
            let after = request.uri.queryParameters["after"].flatMap { Int($0) } ?? 0
            return Self.json(hub.events(after: after))
        case (.get, 2, "api", "ports", _, _, _, _):
            return Self.json(SerialDeviceList.list(sysRoot: settings.sysRoot, devRoot: settings.devRoot))
        case (.get, 2, "api", "live", _, _, _, _):
            return live()

        case (.post, 2, "api", "links", _, _, _, _):
            let body: LinkRequest = try await decode(request)
            return Self.json(try await hub.startLink(body), status: 201)
        case (.delete, 3, "api", "links", let id, _, _, _):
            try await hub.stopLink(id)
            return Response(status: .noContent)
        case (.post, 4, "api", "links", let id, "forwards", _, _):
            let body: LinkRequest.ForwardRequest = try await decode(request)
            return Self.json(try await hub.addForward(to: id, kind: body.kind, spec: body.spec), status: 201)
        case (.delete, 4, "api", "links", let id, "forwards", _, _):
            let query = request.uri.queryParameters
            guard let kind = query["kind"].map(String.init), let spec = query["spec"].map(String.init)
            else { throw DashboardError.badRequest("say which forward: ?kind=L&spec=…") }
            return Self.json(try await hub.removeForward(from: id, kind: kind, spec: spec))
        case (.post, 6, "api", "links", let id, "streams", let stream, "reset"):
            guard let number = Int(stream) else { throw DashboardError.badRequest("a stream is a number, not \"\(stream)\"") }
            try await hub.resetStream(of: id, stream: number)
            return Response(status: .noContent)
        default:
            // Every other GET was a page (above); what is left is an unknown API path or method.
            throw DashboardError(method == .get ? 404 : 405, "no such request: \(method) \(path)")
        }
    }

    // MARK: Checks

    /// DNS rebinding and cross-site requests (docs/api.md, Security).
    private func checkHostAndOrigin(_ request: Request) throws(DashboardError) {
        let host = (request.head.authority ?? "").lowercased()
        if settings.isLoopback {
            let port = boundPort.value.withLock { $0 }
            let bound = settings.host.contains(":") ? "[\(settings.host)]" : settings.host
            let allowed = ["127.0.0.1", "localhost", "[::1]", bound.lowercased()].map { "\($0):\(port)" }
            guard allowed.contains(host) else {
                throw DashboardError(403, "this dashboard answers to 127.0.0.1, localhost or [::1] only, not \"\(host)\"")
            }
        }
        if let origin = request.headers[.origin] {
            guard origin.lowercased() == "http://\(host)" else {
                throw DashboardError(403, "a request from another site (\(origin)) is refused")
            }
        }
    }

    private func checkToken(_ request: Request) throws(DashboardError) {
        var given: Substring?
        if let authorization = request.headers[.authorization], authorization.hasPrefix("Bearer ") {
            given = authorization.dropFirst("Bearer ".count)
        } else if let query = request.uri.queryParameters["token"] {
            given = query
        }
        guard let given, DashboardToken.matches(given, settings.token) else {
            throw DashboardError(401, "this needs the dashboard's token: open the URL socket2ser printed")
        }
    }

    private func decode<Body: Decodable>(_ request: Request) async throws -> Body {
        guard let type = request.headers[.contentType], type.lowercased().hasPrefix("application/json") else {
            throw DashboardError(415, "send the body as application/json")
        }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: 64 * 1024)
        } catch {
            throw DashboardError(413, "the body is larger than 64 KiB")
        }
        do {
            return try JSONDecoder().decode(Body.self, from: Data(buffer.readableBytesView))
        } catch {
            throw DashboardError.badRequest("the body is not the JSON docs/api.md describes: \(Self.describe(error))")
        }
    }

    private static func describe(_ error: any Error) -> String {
        guard let error = error as? DecodingError else { return "it does not parse" }
        switch error {
        case .keyNotFound(let key, _): return "\"\(key.stringValue)\" is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return "\"\(context.codingPath.map(\.stringValue).joined(separator: "."))\" has the wrong type"
        case .dataCorrupted: return "it does not parse"
        @unknown default: return "it does not parse"
        }
    }

    // MARK: Answers

    static func json(_ value: some Encodable, status: Int = 200) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        let text = JSON.text(value) ?? "{\"error\": \"cannot encode the answer\"}"
        return Response(status: HTTPResponse.Status(code: status), headers: headers,
                        body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    /// Server-sent events: each sample and each event, as the hub produces them.
    private func live() -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        let stream = hub.subscribe()
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            try await writer.write(ByteBuffer(string: "retry: 2000\n\n"))
            for await text in stream {
                try await writer.write(ByteBuffer(string: text))
            }
            try await writer.finish(nil)
        })
    }
}
