#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Forwarding
import Dashboard
import Logging

/// Runs a `Forwarder` in the foreground until it fails or the user stops it.
///
/// `Forwarder.run()` returns when its task is cancelled, so stopping is a matter of turning
/// SIGINT/SIGTERM into `Task.cancel()`. That way the runtime shuts down in order (streams reset,
/// device closed) instead of the process dying mid-write, and `socket2ser` exits 0.
enum ForwarderLauncher {
    static func run(_ configuration: ForwarderConfiguration, dashboard: DashboardOptions? = nil) async throws {
        let level = StderrLogHandler.logLevel(forVerbosity: configuration.verbosity)
        var logger = Logger(label: "socket2ser") { StderrLogHandler(label: $0, logLevel: level) }
        // With --ui the dashboard comes first (a port it cannot have is a startup error), and the
        // end runs on its event loop group.
        let session = try await dashboard.asyncMap { try await DashboardSession.start($0, verbosity: configuration.verbosity) }
        let handle = LinkHandle(configuration: configuration)
        if let session {
            let id = session.show(handle, id: DashboardHub.linkID(forDevice: configuration.devicePath), origin: .commandLine)
            logger = session.logger(link: id)
        }
        let forwarder = Forwarder(configuration: configuration, logger: logger, eventLoopGroup: session?.group)
        handle.forwarder = forwarder

        let task = Task { try await forwarder.run() }
        let signals = await ShutdownSignals.install(logger: logger) { _ in task.cancel() }
        defer { signals.stop() }
        // Logged once the device is open, the listener bound and the signal handlers installed: a
        // supervisor (or a test) that waits for this line knows the end is serving, and that
        // SIGTERM will now shut it down cleanly instead of killing the process. If starting
        // failed, `task.value` below throws the reason.
        if let port = try? await forwarder.waitUntilStarted() ?? 0 {
            logger.notice("\(configuration.startLine(listeningPort: port == 0 ? nil : port))")
        }

        do {
            try await withTaskCancellationHandler {
                try await task.value
            } onCancel: {
                task.cancel()
            }
        } catch is CancellationError where task.isCancelled {
            // Cancelled by a signal (or by our caller): that is the normal way to stop.
        } catch {
            await session?.stop()
            throw error
        }
        await session?.stop()
        logger.info("stopped")
    }
}

/// Turns SIGINT and SIGTERM into a cancellation request, and a second signal into an immediate exit.
///
/// The signals are first set to `SIG_IGN` so their default action (terminate) no longer applies;
/// a dispatch signal source still reports them, which is Dispatch's documented pattern and, unlike
/// a C signal handler, lets ordinary Swift code run in response. The second signal is an escape
/// hatch for a shutdown that hangs: the user presses Ctrl-C again and gets the shell back (exit
/// 130, as a shell reports a process ended by SIGINT).
final class ShutdownSignals: @unchecked Sendable {
    // @unchecked: `sources` is written only in `install` (before the object is shared) and in
    // `stop()` (on `queue`), and `received` only on `queue`, which is serial.
    private let queue = DispatchQueue(label: "socket2ser.signals")
    private var sources: [DispatchSourceSignal] = []
    private var received = 0

    private static let watched: [Int32] = [SIGINT, SIGTERM]

    private init() {}

    /// Starts watching, and returns only once every signal source is armed.
    ///
    /// `resume()` alone is not enough: a source is registered asynchronously, and a signal that
    /// arrives in between meets `SIG_IGN` and is lost. The registration handlers fire when the
    /// sources are in place, so after this returns a signal is guaranteed to be seen, and the
    /// start line logged after it is a truthful readiness marker.
    static func install(logger: Logger, onFirstSignal cancel: @escaping @Sendable (Int32) -> Void) async
        -> ShutdownSignals
    {
        let signals = ShutdownSignals()
        let armed = DispatchGroup()
        for number in watched {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: signals.queue)
            source.setEventHandler { [weak signals] in
                guard let signals else { return }
                signals.received += 1
                if signals.received == 1 {
                    logger.notice("\(name(of: number)) received: shutting down (repeat to force)")
                    cancel(number)
                } else {
                    StandardError.write("socket2ser: interrupted again, exiting without a clean shutdown\n")
                    _exit(130)
                }
            }
            armed.enter()
            source.setRegistrationHandler { armed.leave() }
            source.resume()
            signals.sources.append(source)
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            armed.notify(queue: signals.queue) { continuation.resume() }
        }
        return signals
    }

    private static func name(of signal: Int32) -> String {
        signal == SIGINT ? "SIGINT" : signal == SIGTERM ? "SIGTERM" : "signal \(signal)"
    }

    /// Stops watching and gives the signals back their default action.
    func stop() {
        queue.sync {
            for source in sources { source.cancel() }
            sources.removeAll()
        }
        for number in Self.watched { signal(number, SIG_DFL) }
    }
}
