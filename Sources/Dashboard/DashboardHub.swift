import Foundation
import Forwarding
import Logging
import Metrics
import NIOCore
import Prometheus
import Synchronization

/// The forwarder a link runs right now, and why it has none. Whoever runs the link (the S/C
/// command, a config line's supervisor, the dashboard itself) keeps it current.
public final class LinkHandle: Sendable {
    private let state = Mutex<(forwarder: Forwarder?, failure: String?)>((nil, nil))
    public let configuration: ForwarderConfiguration

    public init(configuration: ForwarderConfiguration) {
        self.configuration = configuration
    }

    public var forwarder: Forwarder? {
        get { state.withLock { $0.forwarder } }
        set { state.withLock { $0.forwarder = newValue } }
    }

    /// Why the link is not running (it could not start); nil once it does.
    public var failure: String? {
        get { state.withLock { $0.failure } }
        set { state.withLock { $0.failure = newValue } }
    }
}

/// Everything the dashboard shows: the links, their last second, ten minutes of history, the
/// event log and the Prometheus registry. Sampled once a second; the page's live channel gets
/// each sample and each event as it happens.
public final class DashboardHub: Sendable {
    public enum Origin: String, Sendable {
        case commandLine = "command-line"
        case config
        case dashboard
    }

    /// Seconds of history kept per link: the chart's ten minutes.
    static let historyLength = 600
    /// Events kept for `GET /api/events` and for a page that connects.
    static let eventLength = 500

    struct Entry {
        let id: String
        let origin: Origin
        let handle: LinkHandle
        var task: Task<(any Error)?, Never>?
        var history: [SampleView] = []
        var view: LinkView?
        var streams: [StreamView] = []
        var last: (at: ContinuousClock.Instant, status: ForwarderStatus)?
        var lastStreamBytes: [UInt16: (out: Int, in: Int)] = [:]
        var state = ""
        var stateSince: Int64 = 0
        var metrics: LinkMetrics
    }

    struct State {
        var order: [String] = []
        var entries: [String: Entry] = [:]
        var events: [EventView] = []
        var nextSeq = 1
        var subscribers: [Int: AsyncStream<String>.Continuation] = [:]
        var nextSubscriber = 0
        var lastSnapshot: (time: Int64, text: String)?
    }

    private let state = Mutex(State())
    let registry = PrometheusCollectorRegistry()
    let metricsFactory: PrometheusMetricsFactory
    /// Where the links it starts itself run: the process's event loop group.
    let eventLoopGroup: any EventLoopGroup
    /// The logger of a link the page starts (its lines reach the terminal and this hub).
    let makeLogger: @Sendable (DashboardHub, String) -> Logger
    public let version: String

    /// - Parameter makeLogger: the logger of a link the page starts, given this hub and the link's id.
    public init(eventLoopGroup: any EventLoopGroup, version: String,
                makeLogger: @escaping @Sendable (DashboardHub, String) -> Logger) {
        self.eventLoopGroup = eventLoopGroup
        self.version = version
        self.makeLogger = makeLogger
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets["socket2ser_rtt_seconds"] =
            [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5]
        metricsFactory = factory
    }

    // MARK: Links

    /// Adds a link to show; returns its id (`preferred`, made unique).
    @discardableResult
    public func register(_ handle: LinkHandle, preferredID: String, origin: Origin) -> String {
        let metricsFactory = metricsFactory
        return state.withLock { state in
            var id = preferredID.isEmpty ? "link" : preferredID
            var n = 2
            while state.entries[id] != nil {
                id = "\(preferredID)-\(n)"
                n += 1
            }
            state.order.append(id)
            state.entries[id] = Entry(id: id, origin: origin, handle: handle,
                                      metrics: LinkMetrics(link: id, factory: metricsFactory))
            return id
        }
    }

    public func unregister(_ id: String) {
        state.withLock { state in
            state.entries[id] = nil
            state.order.removeAll { $0 == id }
        }
    }

    /// The default id of a link on `device`: its file name.
    public static func linkID(forDevice device: String) -> String {
        let parts = device.split(separator: "/").map(String.init)
        guard let last = parts.last else { return "link" }
        // /dev/pts/3 is "pts3", not "3".
        if last.allSatisfy(\.isNumber), parts.count >= 2 { return parts[parts.count - 2] + last }
        return last
    }

    // MARK: Sampling

    /// Samples every link once a second until cancelled.
    public func run() async {
        while !Task.isCancelled {
            await sample(periodic: true)
            try? await Task.sleep(for: .seconds(1))
        }
        finishSubscribers()
    }

    /// Takes one sample of every link and sends it to the live channel. Only the periodic one
    /// moves the rates, the history and the metrics on; another (after a change from the page)
    /// refreshes what the links are and keeps the last second's rates.
    func sample(periodic: Bool = false) async {
        let handles = state.withLock { state in state.order.compactMap { id in state.entries[id].map { (id, $0.handle) } } }
        var taken: [(id: String, status: ForwarderStatus?, streams: [StreamStatus], configuration: ForwarderConfiguration)] = []
        for (id, handle) in handles {
            if let forwarder = handle.forwarder {
                let detail = await forwarder.detailedStatus()
                taken.append((id, detail.status, detail.streams, detail.configuration))
            } else {
                taken.append((id, nil, [], handle.configuration))
            }
        }
        let now = ContinuousClock.now
        let wallClock = Self.milliseconds()
        let view: SnapshotView = state.withLock { state in
            for sample in taken {
                guard var entry = state.entries[sample.id] else { continue }
                Self.update(&entry, status: sample.status, streams: sample.streams, configuration: sample.configuration,
                            now: now, wallClock: wallClock, periodic: periodic)
                state.entries[sample.id] = entry
            }
            return Self.snapshotView(state, time: wallClock)
        }
        // Encoded outside the lock: the page's readers and the log never wait for it.
        guard let json = JSON.text(view) else { return }
        let text = "event: snapshot\ndata: \(json)\n\n"
        state.withLock { state in
            if (state.lastSnapshot?.time ?? .min) <= view.time { state.lastSnapshot = (view.time, text) }
        }
        broadcast(text)
    }

    private static func update(_ entry: inout Entry, status: ForwarderStatus?, streams: [StreamStatus],
                               configuration: ForwarderConfiguration, now: ContinuousClock.Instant, wallClock: Int64,
                               periodic: Bool) {
        let status = status ?? ForwarderStatus()
        let failure = entry.handle.failure
        let stateName: String
        if let failure, !failure.isEmpty, status.linkState == .starting || status.linkState == .stopped {
            stateName = "failed"
        } else {
            stateName = status.linkState.description
        }
        if stateName != entry.state {
            entry.state = stateName
            entry.stateSince = wallClock
        }
        let lineRate = configuration.unpaced ? 0 : configuration.serial.bytesPerSecond
        var lineRates = entry.view?.lineRates ?? Directions(out: 0, in: 0)
        var goodput = entry.view?.goodput ?? Directions(out: 0, in: 0)
        var seconds = 1.0
        if periodic, let last = entry.last {
            seconds = max(0.001, Double((now - last.at).components.attoseconds) / 1e18 + Double((now - last.at).components.seconds))
            func rate(_ new: Int, _ old: Int) -> Int { new >= old ? Int((Double(new - old) / seconds).rounded()) : 0 }
            lineRates = Directions(out: rate(status.lineBytesSent, last.status.lineBytesSent),
                                   in: rate(status.lineBytesReceived, last.status.lineBytesReceived))
            goodput = Directions(out: rate(status.payloadBytesSent, last.status.payloadBytesSent),
                                 in: rate(status.payloadBytesReceived, last.status.payloadBytesReceived))
        }
        func share(_ rate: Int) -> Double { lineRate > 0 ? min(1.5, Double(rate) / Double(lineRate)) : 0 }
        let utilisation = Directions(out: share(lineRates.out), in: share(lineRates.in))
        if periodic {
            entry.metrics.record(status, previous: entry.last?.status)
            entry.last = (now, status)
        }

        var streamBytes: [UInt16: (out: Int, in: Int)] = [:]
        let lastRates = Dictionary(entry.streams.map { ($0.id, ($0.rateOut, $0.rateIn)) }) { first, _ in first }
        entry.streams = streams.map { stream in
            let before = entry.lastStreamBytes[stream.id]
            streamBytes[stream.id] = (stream.bytesFromSocket, stream.bytesToSocket)
            func rate(_ new: Int, _ old: Int?) -> Int {
                guard let old, new >= old else { return 0 }
                return Int((Double(new - old) / seconds).rounded())
            }
            let rates = periodic ? (rate(stream.bytesFromSocket, before?.out), rate(stream.bytesToSocket, before?.in))
                : lastRates[Int(stream.id)] ?? (0, 0)
            return StreamView(id: Int(stream.id), forward: stream.forward ?? "from peer", client: stream.client,
                              target: stream.target.isEmpty ? "(default)" : stream.target,
                              bytesOut: stream.bytesFromSocket, bytesIn: stream.bytesToSocket,
                              rateOut: rates.0, rateIn: rates.1,
                              ageSeconds: (stream.ageSeconds * 10).rounded() / 10, state: stream.state.rawValue)
        }
        if periodic { entry.lastStreamBytes = streamBytes }

        let receivedBits = max(1, status.lineBytesReceived * 8)
        let role: String = switch configuration.form {
        case .server: "S"
        case .client: "C"
        case .link: "link"
        }
        entry.view = LinkView(
            id: entry.id, origin: entry.origin.rawValue, role: role, device: configuration.devicePath,
            serial: configuration.unpaced ? "\(configuration.serial) (unpaced)" : configuration.serial.description,
            lineRate: lineRate, state: stateName, stateSince: entry.stateSince, deviceOpen: status.deviceOpen,
            error: stateName == "failed" ? failure : nil, rttMs: status.rttMilliseconds > 0 ? (status.rttMilliseconds * 10).rounded() / 10 : nil,
            utilisation: utilisation, lineRates: lineRates, goodput: goodput,
            lineBytes: Directions(out: status.lineBytesSent, in: status.lineBytesReceived),
            payloadBytes: Directions(out: status.payloadBytesSent, in: status.payloadBytesReceived),
            retransmissions: status.retransmissions, crcErrors: status.crcErrors,
            unauthenticatedFrames: status.statistics.unauthenticatedFrames,
            frameSize: status.statistics.currentFrameTarget,
            bitErrorRate: Double(status.crcErrors) / Double(receivedBits), streamsOpen: status.streamsOpen,
            connectionsTotal: status.connectionsTotal, forwards: configuration.forwards.map(ForwardView.init),
            canStop: entry.origin == .dashboard)
        guard periodic else { return }
        entry.history.append(SampleView(time: wallClock, out: lineRates.out, in: lineRates.in,
                                        utilisationOut: utilisation.out, utilisationIn: utilisation.in))
        if entry.history.count > historyLength { entry.history.removeFirst(entry.history.count - historyLength) }
    }

    private static func snapshotView(_ state: State, time: Int64) -> SnapshotView {
        var links: [LinkView] = []
        var streams: [String: [StreamView]] = [:]
        var samples: [String: SampleView] = [:]
        for id in state.order {
            guard let entry = state.entries[id], let view = entry.view else { continue }
            links.append(view)
            streams[id] = entry.streams
            samples[id] = entry.history.last
        }
        return SnapshotView(time: time, links: links, streams: streams, samples: samples)
    }

    // MARK: Reading

    public func links() -> [LinkView] {
        state.withLock { state in state.order.compactMap { state.entries[$0]?.view } }
    }

    public func link(_ id: String) -> LinkView? { state.withLock { $0.entries[id]?.view } }

    public func streams(of id: String) -> [StreamView]? { state.withLock { $0.entries[id]?.streams } }

    public func history(of id: String) -> [SampleView]? { state.withLock { $0.entries[id]?.history } }

    public func events(after seq: Int) -> [EventView] {
        state.withLock { $0.events.filter { $0.seq > seq } }
    }

    /// Prometheus text format.
    public func metricsText() -> String { registry.emitToString() }

    // MARK: Events

    /// Adds a log line to the event log and sends it to the live channel.
    public func record(link: String?, level: Logger.Level, kind: String, message: String) {
        let event: EventView = state.withLock { state in
            let event = EventView(seq: state.nextSeq, time: Self.milliseconds(), link: link, level: Self.levelName(level),
                                  kind: kind, message: message)
            state.nextSeq += 1
            state.events.append(event)
            if state.events.count > Self.eventLength { state.events.removeFirst(state.events.count - Self.eventLength) }
            return event
        }
        if let json = JSON.text(event) { broadcast("event: log\ndata: \(json)\n\n") }
    }

    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace, .debug, .info: return "info"
        case .notice: return "notice"
        case .warning: return "warning"
        case .error, .critical: return "error"
        }
    }

    // MARK: The live channel

    /// A stream of server-sent-event texts: the last snapshot at once, then every sample and
    /// every event. A client too slow to take them loses the oldest, never the process's memory.
    func subscribe() -> AsyncStream<String> {
        let (stream, continuation) = AsyncStream<String>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let id: Int = state.withLock { state in
            let id = state.nextSubscriber
            state.nextSubscriber += 1
            state.subscribers[id] = continuation
            if let last = state.lastSnapshot { continuation.yield(last.text) }
            return id
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    var subscriberCount: Int { state.withLock { $0.subscribers.count } }

    private func broadcast(_ text: String) {
        let subscribers = state.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(text) }
    }

    /// Ends every live channel (at shutdown), so the HTTP server can stop.
    public func finishSubscribers() {
        let subscribers = state.withLock { state in
            defer { state.subscribers.removeAll() }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.finish() }
    }

    static func milliseconds() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }
}

// MARK: - Changing things

extension DashboardHub {
    private func entry(_ id: String) throws(DashboardError) -> Entry {
        guard let entry = state.withLock({ $0.entries[id] }) else { throw .notFound("no link \"\(id)\"") }
        return entry
    }

    private func runningForwarder(_ id: String) throws(DashboardError) -> Forwarder {
        guard let forwarder = try entry(id).handle.forwarder else { throw .conflict("link \"\(id)\" is not running") }
        return forwarder
    }

    /// Starts a link the page asked for, on the process's event loop group. A device that
    /// cannot be opened is an error at once (400 with the command line's message).
    public func startLink(_ request: LinkRequest) async throws(DashboardError) -> LinkView {
        let configuration = try request.configuration()
        let handle = LinkHandle(configuration: configuration)
        let id = register(handle, preferredID: Self.linkID(forDevice: configuration.devicePath), origin: .dashboard)
        let forwarder = Forwarder(configuration: configuration, logger: makeLogger(self, id), eventLoopGroup: eventLoopGroup)
        handle.forwarder = forwarder
        let task = Task<(any Error)?, Never> {
            do {
                try await forwarder.run()
                return nil
            } catch {
                handle.failure = "\(error)"
                return error
            }
        }
        let listeningPort: Int?
        do {
            listeningPort = try await forwarder.waitUntilStarted()
        } catch {
            // `run()`'s own error says why (the device is missing, busy, not a tty).
            task.cancel()
            let reason = await task.value ?? error
            unregister(id)
            throw .badRequest("\(reason)")
        }
        state.withLock { $0.entries[id]?.task = task }
        forwarder.logger.notice("\(configuration.startLine(listeningPort: listeningPort)) (started from the dashboard)")
        await sample()
        guard let view = link(id) else { throw DashboardError(500, "the link stopped at once") }
        return view
    }

    /// Stops a link the page started, and forgets it.
    public func stopLink(_ id: String) async throws(DashboardError) {
        let entry = try entry(id)
        guard entry.origin == .dashboard, let task = entry.task else {
            throw .conflict("link \"\(id)\" was started from the \(entry.origin == .config ? "config file" : "command line"); stop it there")
        }
        task.cancel()
        _ = await task.value
        unregister(id)
        record(link: id, level: .notice, kind: "log", message: "link \(id) stopped from the dashboard")
        await sample()
    }

    public func addForward(to id: String, kind: String, spec: String) async throws(DashboardError) -> [ForwardView] {
        let forward = try LinkRequest.forward(kind: kind, spec: spec)
        let forwarder = try runningForwarder(id)
        var configuration = await forwarder.currentConfiguration()
        if configuration.forwards.contains(forward) { throw .conflict("\(forward) is there already") }
        if let clash = configuration.forwards.first(where: { $0.listen == forward.listen && Self.listensHere($0) == Self.listensHere(forward) }) {
            throw .conflict("\(clash) listens on \(forward.listen) already")
        }
        configuration.forwards.append(forward)
        guard await forwarder.update(forwardsAndRules: configuration) else { throw .conflict("link \"\(id)\" is not running") }
        await sample()
        return configuration.forwards.map(ForwardView.init)
    }

    public func removeForward(from id: String, kind: String, spec: String) async throws(DashboardError) -> [ForwardView] {
        let forwarder = try runningForwarder(id)
        var configuration = await forwarder.currentConfiguration()
        let parsed = try? LinkRequest.forward(kind: kind, spec: spec)
        guard let index = configuration.forwards.firstIndex(where: { forward in
            forward == parsed || (forward.kindAndSpec.kind == kind.uppercased() && forward.kindAndSpec.spec == spec)
        }) else { throw .notFound("link \"\(id)\" has no forward -\(kind) \(spec)") }
        configuration.forwards.remove(at: index)
        guard await forwarder.update(forwardsAndRules: configuration) else { throw .conflict("link \"\(id)\" is not running") }
        await sample()
        return configuration.forwards.map(ForwardView.init)
    }

    public func resetStream(of id: String, stream: Int) async throws(DashboardError) {
        let forwarder = try runningForwarder(id)
        guard let streamID = UInt16(exactly: stream),
              await forwarder.resetStream(streamID, reason: "reset from the dashboard") else {
            throw .notFound("link \"\(id)\" has no stream \(stream)")
        }
        await sample()
    }

    private static func listensHere(_ forward: Forward) -> Bool {
        if case .remote = forward { return false }
        return true
    }

    /// Stops every link the page started (at shutdown).
    public func stopDashboardLinks() async {
        let tasks = state.withLock { state in state.entries.values.filter { $0.origin == .dashboard }.compactMap(\.task) }
        for task in tasks { task.cancel() }
        for task in tasks { _ = await task.value }
    }
}

/// One link's series in the Prometheus registry.
struct LinkMetrics {
    let lineOut: Metrics.Counter
    let lineIn: Metrics.Counter
    let payloadOut: Metrics.Counter
    let payloadIn: Metrics.Counter
    let retransmissions: Metrics.Counter
    let crcErrors: Metrics.Counter
    let unauthenticatedFrames: Metrics.Counter
    let connections: Metrics.Counter
    let streams: Metrics.Gauge
    let up: Metrics.Gauge
    let rtt: Metrics.Recorder

    init(link: String, factory: PrometheusMetricsFactory) {
        lineOut = Metrics.Counter(label: "socket2ser_line_bytes_total", dimensions: [("link", link), ("direction", "out")], factory: factory)
        lineIn = Metrics.Counter(label: "socket2ser_line_bytes_total", dimensions: [("link", link), ("direction", "in")], factory: factory)
        payloadOut = Metrics.Counter(label: "socket2ser_payload_bytes_total", dimensions: [("link", link), ("direction", "out")],
                             factory: factory)
        payloadIn = Metrics.Counter(label: "socket2ser_payload_bytes_total", dimensions: [("link", link), ("direction", "in")],
                            factory: factory)
        retransmissions = Metrics.Counter(label: "socket2ser_retransmissions_total", dimensions: [("link", link)], factory: factory)
        crcErrors = Metrics.Counter(label: "socket2ser_crc_errors_total", dimensions: [("link", link)], factory: factory)
        unauthenticatedFrames = Metrics.Counter(label: "socket2ser_unauthenticated_frames_total", dimensions: [("link", link)],
                                                factory: factory)
        connections = Metrics.Counter(label: "socket2ser_connections_total", dimensions: [("link", link)], factory: factory)
        streams = Metrics.Gauge(label: "socket2ser_streams", dimensions: [("link", link)], factory: factory)
        up = Metrics.Gauge(label: "socket2ser_link_up", dimensions: [("link", link)], factory: factory)
        rtt = Metrics.Recorder(label: "socket2ser_rtt_seconds", dimensions: [("link", link)], aggregate: true, factory: factory)
    }

    /// Adds what changed since `previous` (all of it after a restart, when counters began again).
    func record(_ status: ForwarderStatus, previous: ForwarderStatus?) {
        func delta(_ new: Int, _ old: Int?) -> Int64 {
            guard let old, new >= old else { return Int64(new) }
            return Int64(new - old)
        }
        lineOut.increment(by: delta(status.lineBytesSent, previous?.lineBytesSent))
        lineIn.increment(by: delta(status.lineBytesReceived, previous?.lineBytesReceived))
        payloadOut.increment(by: delta(status.payloadBytesSent, previous?.payloadBytesSent))
        payloadIn.increment(by: delta(status.payloadBytesReceived, previous?.payloadBytesReceived))
        retransmissions.increment(by: delta(status.retransmissions, previous?.retransmissions))
        crcErrors.increment(by: delta(status.crcErrors, previous?.crcErrors))
        unauthenticatedFrames.increment(by: delta(status.statistics.unauthenticatedFrames,
                                                  previous?.statistics.unauthenticatedFrames))
        connections.increment(by: delta(status.connectionsTotal, previous?.connectionsTotal))
        streams.record(status.streamsOpen)
        up.record(status.linkState == .up ? 1 : 0)
        if status.rttMilliseconds > 0 { rtt.record(status.rttMilliseconds / 1000) }
    }
}

enum JSON {
    static func text(_ value: some Encodable) -> String? {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return nil }
        return String(decoding: data, as: UTF8.self)
    }
}
