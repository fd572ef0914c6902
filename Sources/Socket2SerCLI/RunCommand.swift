#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Dashboard
import Dispatch
import Forwarding
import Logging
import Synchronization

/// `socket2ser run --config FILE`: every line of a config file in one process (docs/config.md).
///
/// The lines are independent: each has its own event loop and its own forwarder, a line whose
/// device is missing or unplugged is retried on its own, and nothing one line does can stall
/// another. SIGHUP reads the file again: lines and forwards that were added, removed or changed
/// take effect, streams of what did not change are untouched, and a file with a mistake is
/// refused with its error while the running configuration stays in force.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Serve every serial line of a config file; SIGHUP reloads it.",
        discussion: """
            The file is YAML; docs/config.md describes it, with an example and a systemd unit.
              socket2ser run --config /etc/socket2ser.yaml --check    (validate only)
              socket2ser run --config /etc/socket2ser.yaml
            """)

    @Option(name: .customLong("config"), help: ArgumentHelp("The YAML config file.", valueName: "file"))
    var config: String

    @Flag(name: .customLong("check"), help: "Validate the file and exit: 0 if it is good.")
    var check = false

    @Option(name: .customLong("ui"),
            help: ArgumentHelp("Serve the dashboard on [ADDR:]PORT (overrides the file's 'ui').", valueName: "[addr:]port"),
            transform: DashboardAddress.parse)
    var ui: DashboardAddress?

    @Option(name: .customLong("ui-token-file"),
            help: ArgumentHelp("The dashboard's access token, from a file only you can read.", valueName: "file"))
    var uiTokenFile: String?

    func run() async throws {
        let file = try ConfigFile.load(path: config)
        if check {
            let summary = file.lines.map { line in
                // The mode only: the key stays in its file.
                let protection = line.configuration.protection.map { ", protect \($0.mode)" } ?? ""
                return "\(line.name) (\(line.configuration.devicePath), \(line.configuration.forwards.count) forward(s)\(protection))"
            }
            print("\(config): OK: \(file.lines.count) line(s): \(summary.joined(separator: ", "))")
            return
        }
        let level = StderrLogHandler.logLevel(forVerbosity: file.lines.map(\.configuration.verbosity).max() ?? 0)
        let logger = Logger(label: "socket2ser") { StderrLogHandler(label: $0, logLevel: level) }
        var dashboardOptions = file.dashboard
        if let ui { dashboardOptions = DashboardOptions(address: ui, tokenFile: uiTokenFile ?? file.dashboard?.tokenFile) }
        let verbosity = file.lines.map(\.configuration.verbosity).max() ?? 0
        let dashboard = try await dashboardOptions.asyncMap { try await DashboardSession.start($0, verbosity: verbosity) }
        let supervisor = LineSupervisor(logger: logger, dashboard: dashboard)
        let stopper = RunStopper()
        let signals = await ShutdownSignals.install(logger: logger) { _ in stopper.stop() }
        defer { signals.stop() }
        let path = config
        let reloads = await ReloadSignal.install { Task { await supervisor.reload(path: path) } }
        defer { reloads.stop() }

        for line in file.lines { supervisor.start(line) }
        logger.notice("serving \(file.lines.count) line(s) from \(config); SIGHUP reloads it")
        await stopper.wait()
        await supervisor.stopAll()
        await dashboard?.stop()
        logger.info("stopped")
    }
}

/// The running lines, each a task that keeps a `Forwarder` going.
final class LineSupervisor: Sendable {
    private struct Running {
        var line: ConfigFile.Line
        var task: Task<Void, Never>
        /// The forwarder the line's task runs right now (a new one after every failed start).
        var current: LinkHandle
    }

    private let logger: Logger
    /// Where the lines are shown, and whose event loop group they run on; nil without --ui.
    private let dashboard: DashboardSession?
    private let lines = Mutex<[String: Running]>([:])
    /// One reload at a time; a SIGHUP during one makes it run once more when it is done, so
    /// the last version of the file is always the one in force.
    private let reloading = Mutex<(busy: Bool, again: Bool)>((false, false))

    init(logger: Logger, dashboard: DashboardSession? = nil) {
        self.logger = logger
        self.dashboard = dashboard
    }

    /// How long a line whose device cannot be opened waits before trying again.
    static let retryDelay = Duration.seconds(2)

    func start(_ line: ConfigFile.Line) {
        // Each line logs at its own `debug` level, so a reload that changes it takes effect
        // with the line's restart; the process's own lines use the highest level at start.
        let level = StderrLogHandler.logLevel(forVerbosity: line.configuration.verbosity)
        let configuration = line.configuration
        let current = LinkHandle(configuration: configuration)
        var lineLogger = Logger(label: logger.label) { StderrLogHandler(label: $0, logLevel: level) }
        if let dashboard {
            let id = dashboard.show(current, id: line.name, origin: .config)
            lineLogger = dashboard.logger(link: id, level: level)
        }
        lineLogger[metadataKey: "line"] = "\(line.name)"
        let group = dashboard?.group
        let task = Task { [lineLogger] in
            var failures = 0
            while !Task.isCancelled {
                let forwarder = Forwarder(configuration: configuration, logger: lineLogger, eventLoopGroup: group)
                current.forwarder = forwarder
                let announce = Task {
                    do {
                        let port = try await forwarder.waitUntilStarted()
                        current.failure = nil
                        lineLogger.notice("\(configuration.startLine(listeningPort: port))")
                    } catch {}  // `run()` reports why it did not start
                }
                do {
                    try await forwarder.run()
                    announce.cancel()
                    return  // cancelled: stopped or removed
                } catch {
                    announce.cancel()
                    if Task.isCancelled { return }
                    failures += 1
                    current.failure = "\(error)"
                    let message = "\(error); trying again every \(Int(Self.retryDelay.components.seconds)) s"
                    if failures == 1 { lineLogger.warning("\(message)") } else { lineLogger.debug("\(message)") }
                    try? await Task.sleep(for: Self.retryDelay)
                }
            }
        }
        lines.withLock { $0[line.name] = Running(line: line, task: task, current: current) }
    }

    func stop(_ name: String) async {
        guard let running = lines.withLock({ $0.removeValue(forKey: name) }) else { return }
        running.task.cancel()
        await running.task.value
        dashboard?.hub.unregister(name)
    }

    func stopAll() async {
        let names = lines.withLock { Array($0.keys) }
        await withTaskGroup(of: Void.self) { group in
            for name in names { group.addTask { await self.stop(name) } }
        }
    }

    /// Reads the file again and applies the difference; a bad file changes nothing.
    func reload(path: String) async {
        let first = reloading.withLock { state -> Bool in
            guard !state.busy else {
                state.again = true
                return false
            }
            state.busy = true
            return true
        }
        guard first else { return }
        while true {
            await reloadOnce(path: path)
            let again = reloading.withLock { state -> Bool in
                if state.again {
                    state.again = false
                    return true
                }
                state.busy = false
                return false
            }
            if !again { return }
        }
    }

    private func reloadOnce(path: String) async {
        let file: ConfigFile
        do {
            file = try ConfigFile.load(path: path)
        } catch {
            logger.error("reload refused: \(error); the running configuration stays in force")
            return
        }
        let running = lines.withLock { $0.mapValues { ($0.line, $0.current) } }
        var changes: [String] = []
        for name in running.keys where !file.lines.contains(where: { $0.name == name }) {
            await stop(name)
            changes.append("-\(name)")
        }
        for line in file.lines {
            guard let (old, current) = running[line.name] else {
                start(line)
                changes.append("+\(line.name)")
                continue
            }
            guard old != line else { continue }
            if old.configuration.differsOnlyInForwardsAndRules(from: line.configuration),
               let forwarder = current.forwarder, await forwarder.update(forwardsAndRules: line.configuration) {
                lines.withLock { $0[line.name]?.line = line }
                changes.append("~\(line.name) (forwards)")
            } else {
                await stop(line.name)
                start(line)
                changes.append("~\(line.name) (restarted)")
            }
        }
        logger.notice("reloaded \(path): \(changes.isEmpty ? "no change" : changes.joined(separator: ", "))")
    }
}

/// Waits for SIGINT/SIGTERM (through `ShutdownSignals`).
final class RunStopper: Sendable {
    private let state = Mutex<(stopped: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

    func stop() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            state.stopped = true
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    func wait() async {
        await withCheckedContinuation { continuation in
            let stopped = state.withLock { state -> Bool in
                if !state.stopped { state.waiter = continuation }
                return state.stopped
            }
            if stopped { continuation.resume() }
        }
    }
}

/// SIGHUP as a callback, armed before it returns (as `ShutdownSignals` arms SIGINT/SIGTERM).
final class ReloadSignal: @unchecked Sendable {
    // @unchecked: `source` is set once in `install` before the object is shared.
    private let queue = DispatchQueue(label: "socket2ser.reload")
    private var source: DispatchSourceSignal?

    static func install(onSignal reload: @escaping @Sendable () -> Void) async -> ReloadSignal {
        let signals = ReloadSignal()
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: signals.queue)
        source.setEventHandler { reload() }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            source.setRegistrationHandler { continuation.resume() }
            source.resume()
        }
        signals.source = source
        return signals
    }

    func stop() {
        source?.cancel()
        signal(SIGHUP, SIG_DFL)
    }
}
