#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Dashboard
import Forwarding
import LinkCore
import Logging
import NIOCore
import NIOPosix
import SerialPort
import Synchronization
import TestKit
import VirtualCable

/// `socket2ser demo`: the whole path in one process, for a first look without hardware.
///
/// A `VirtualCable` paced like a UART joins two `Forwarder`s: S, whose target is a small echo
/// service on 127.0.0.1, and C, listening on 127.0.0.1. The user is told which port to connect
/// to, and one line of counters (streams, bytes each way, retransmissions, CRC errors, RTT, link
/// state) is refreshed every second: in place with `\r` on a terminal, one line per second when
/// stdout is a pipe or a file. SIGINT/SIGTERM (or the end of `--seconds`) cancels the forwarders,
/// which shut down within two seconds, and the command exits 0.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run both ends over a virtual cable in one process, with an echo service behind S.",
        discussion: """
            Starts a virtual cable, S (connected to a built-in echo service) and C (listening on \
            127.0.0.1), prints the port to connect to and then live counters once a second. \
            Try 'socket2ser connect 127.0.0.1:PORT' (or nc) in another terminal and type a few \
            lines. Ctrl-C stops.
            """)

    @Option(name: [.customLong("baud"), .customLong("baudrate")],
            help: ArgumentHelp("Line rate of the virtual cable (default 115200).", valueName: "baud"),
            transform: ArgumentValues.baudRate)
    var baud: Int = 115_200

    @Option(name: [.customLong("port"), .customLong("port", withSingleDash: true)],
            help: ArgumentHelp("Port C listens on, on 127.0.0.1 (default 0: any free port).", valueName: "port"),
            transform: DemoCommand.listeningPort)
    var port: Int = 0

    @Option(name: .customLong("seconds"),
            help: ArgumentHelp("Stop by itself after this many seconds (default: run until interrupted).",
                               valueName: "seconds"),
            transform: DemoCommand.duration)
    var seconds: Double?

    @Option(name: [.customShort("d"), .customLong("debug")],
            help: ArgumentHelp("Verbosity on stderr: 0 status and warnings (default), 1 connections, 2 link statistics, 3 hex trace of line and socket bytes, 4 each frame decoded too.",
                               valueName: "level"),
            transform: ArgumentValues.debugLevel)
    var debug: Int = 0

    @Option(name: .customLong("ui"),
            help: ArgumentHelp("Where the dashboard listens: [ADDR:]PORT (default 127.0.0.1:0, any free port).",
                               valueName: "[addr:]port"),
            transform: DashboardAddress.parse)
    var ui = DashboardAddress(host: "127.0.0.1", port: 0)

    @Flag(name: .customLong("no-ui"), help: "Do not serve the dashboard.")
    var noUI = false

    @Option(name: .customLong("key-file"),
            help: ArgumentHelp("Protect the link with the pre-shared key in this file, as both ends' --key-file (socket2ser keygen makes one).",
                               valueName: "file"))
    var keyFile: String?

    @Option(name: .customLong("protect"),
            help: ArgumentHelp("With --key-file: encrypt (default) or authenticate (signed, readable).",
                               valueName: "encrypt|authenticate"),
            transform: ArgumentValues.protectionMode)
    var protect: LinkProtection.Mode?

    func validate() throws {
        if protect != nil && keyFile == nil { throw CommandLineError(ArgumentValues.protectWithoutKey) }
    }

    /// Like `ArgumentValues.port`, but 0 (let the system choose) is the useful default here.
    static func listeningPort(_ text: String) throws -> Int {
        guard let value = Int(text), (0...65_535).contains(value) else {
            throw CommandLineError("a port is a number from 0 (any free port) to 65535")
        }
        return value
    }

    static func duration(_ text: String) throws -> Double {
        guard let value = Double(text), value.isFinite, value > 0, value <= 86_400 else {
            throw CommandLineError("the run time is a number of seconds above 0 and at most 86400")
        }
        return value
    }

    func run() async throws {
        let level = StderrLogHandler.logLevel(forVerbosity: debug)
        let logger = Logger(label: "socket2ser") { StderrLogHandler(label: $0, logLevel: level) }
        // Before anything starts: a key file that cannot be used is the whole answer.
        let protection: LinkProtection?
        do {
            protection = try KeyFile.protection(keyFile: keyFile, mode: protect)
        } catch {
            throw CommandLineError(error.description)
        }

        let dashboardSession = noUI ? nil : try await DashboardSession.start(DashboardOptions(address: ui), verbosity: debug,
                                                                     announce: false)
        let echo = try TCPService.echo(name: "demo echo")
        let link: InProcessLink
        do {
            link = try InProcessLink(baud: baud, targetPort: echo.port, clientPort: port, verbosity: debug,
                                     adjust: { configuration, _ in configuration.protection = protection },
                                     eventLoopGroup: dashboardSession?.group) { end in
                guard let session = dashboardSession else { return logger.labelled(end) }
                return session.logger(link: end).labelled(end)
            }
        } catch let error as VirtualCableError {
            echo.stop()
            await dashboardSession?.stop()
            StandardError.write("socket2ser demo: \(error)\n")
            throw ExitCode.failure
        }
        defer { link.cable.stop() }
        let server = link.server
        let client = link.client
        for (end, forwarder) in [("S", server), ("C", client)] {
            let handle = LinkHandle(configuration: forwarder.configuration)
            handle.forwarder = forwarder
            _ = dashboardSession?.show(handle, id: end, origin: .commandLine)
        }
        let dashboardLine = dashboardSession?.announcement

        // The handlers are armed before anything is printed, so whoever reads the hint may stop
        // the demo at once and still get a clean shutdown.
        let stopper = SessionStopper()
        let signals = await ShutdownSignals.install(logger: logger) { _ in stopper.stop() }
        defer { signals.stop() }
        let baud = self.baud
        let seconds = self.seconds
        let session = Task {
            try await Self.runSession(server: server, client: client, baud: baud, seconds: seconds,
                                      dashboard: dashboardLine)
        }
        stopper.attach(session)

        let outcome: Result<Void, Error>
        do {
            try await withTaskCancellationHandler {
                try await session.value
            } onCancel: {
                session.cancel()
            }
            outcome = .success(())
        } catch is CancellationError where session.isCancelled {
            outcome = .success(())  // Stopped by a signal: the normal way to end.
        } catch {
            outcome = .failure(error)
        }
        echo.stop()
        await dashboardSession?.stop()
        logger.info("stopped")
        try outcome.get()
    }

    /// Runs both forwarders and the dashboard until one of them ends (the dashboard ends when
    /// `seconds` have passed, or when the session is cancelled), then stops the rest and rethrows
    /// the first failure, preferring a forwarder's error (it says why) to anything else.
    private static func runSession(server: Forwarder, client: Forwarder, baud: Int, seconds: Double?,
                                   dashboard dashboardLine: String?) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.run() }
            group.addTask { try await client.run() }
            group.addTask {
                await dashboard(server: server, client: client, baud: baud, seconds: seconds, url: dashboardLine)
            }
            var failure: Error?
            do {
                try await group.next()
            } catch {
                failure = error
            }
            group.cancelAll()
            while true {
                do {
                    guard try await group.next() != nil else { break }
                } catch {
                    if failure == nil || failure is CancellationError { failure = error }
                }
            }
            if let failure { throw failure }
        }
    }

    /// Announces the port, then refreshes the counters once a second until cancelled or until
    /// `seconds` have passed. Returns at once if C never listens (its own task reports why).
    private static func dashboard(server: Forwarder, client: Forwarder, baud: Int, seconds: Double?, url: String?) async {
        guard let port = try? await client.waitUntilListening() else { return }
        let started = ContinuousClock.now
        let deadline = seconds.map { started + .nanoseconds(Int64($0 * 1e9)) }
        let terminal = isatty(STDOUT_FILENO) == 1
        let hint = ClientHint.hint(port: port)
        let alternative = hint.alternative.map { "or:  \($0)\n" } ?? ""
        let browser = url.map { "open the \($0)\n" } ?? ""
        StandardOutput.write("""
            socket2ser demo: virtual cable at \(baud) baud, C listening on 127.0.0.1:\(port); try:  \(hint.primary)
            \(alternative)\(browser)(S connects every stream to a built-in echo service; Ctrl-C stops)

            """)

        var next = started
        var wroteInPlace = false
        while !Task.isCancelled {
            next += .seconds(1)
            var wake = next
            if let deadline, deadline < wake { wake = deadline }
            do {
                try await Task.sleep(until: wake, clock: .continuous)
            } catch {
                break  // cancelled
            }
            let line = counters(server: await server.status(), client: await client.status())
            if terminal {
                // Erase the rest of the previous line in case the new one is shorter.
                StandardOutput.write("\r\(line)\u{1B}[K")
                wroteInPlace = true
            } else {
                StandardOutput.write(line + "\n")
            }
            if let deadline, ContinuousClock.now >= deadline { break }
        }
        if wroteInPlace { StandardOutput.write("\n") }
    }

    /// One line of counters, e.g.
    /// `streams 2 | C→S 1.2 KB | S→C 1.2 KB | retransmits 0 | CRC errors 0 | RTT 14 ms | link up`.
    static func counters(server: ForwarderStatus, client: ForwarderStatus) -> String {
        let state = server.linkState == client.linkState
            ? "\(client.linkState)" : "C \(client.linkState), S \(server.linkState)"
        let rtt = client.rttMilliseconds > 0 ? client.rttMilliseconds : server.rttMilliseconds
        return "streams \(client.streamsOpen)"
            + " | C→S \(byteCount(client.payloadBytesSent))"
            + " | S→C \(byteCount(client.payloadBytesReceived))"
            + " | retransmits \(client.retransmissions + server.retransmissions)"
            + " | CRC errors \(client.crcErrors + server.crcErrors)"
            + " | RTT \(Int(rtt.rounded())) ms"
            + " | link \(state)"
    }

    /// `512 B`, `12.3 KB`, `4.5 MB` (powers of 1000, one decimal).
    static func byteCount(_ bytes: Int) -> String {
        if bytes < 1_000 { return "\(bytes) B" }
        let units = ["KB", "MB", "GB", "TB"]
        var value = Double(bytes) / 1_000
        var unit = 0
        while value >= 1_000 && unit < units.count - 1 {
            value /= 1_000
            unit += 1
        }
        let tenths = Int((value * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[unit])"
    }
}

/// Cancels the session task when a signal arrives, including one that arrives before the task
/// has been created.
private final class SessionStopper: Sendable {
    private struct State {
        var task: Task<Void, Error>?
        var stopRequested = false
    }

    private let state = Mutex(State())

    func attach(_ task: Task<Void, Error>) {
        let stop = state.withLock { state in
            state.task = task
            return state.stopRequested
        }
        if stop { task.cancel() }
    }

    func stop() {
        let task = state.withLock { state in
            state.stopRequested = true
            return state.task
        }
        task?.cancel()
    }
}

extension Logger {
    /// The same handler, with the end's name in the metadata so the two ends' lines can be told apart.
    fileprivate func labelled(_ end: String) -> Logger {
        var logger = self
        logger[metadataKey: "end"] = "\(end)"
        return logger
    }
}

/// Standard output, flushed at once so a pipe reader (a test, `tee`) sees each line as soon as it
/// is printed and `\r` updates reach a terminal immediately.
private enum StandardOutput {
    static func write(_ text: String) {
        print(text, terminator: "")
        fflush(nil)
    }
}

