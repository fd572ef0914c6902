import LinkCore
import Logging
import NIOCore
import NIOPosix
import SerialPort
import Synchronization

/// One end of the forwarder: the serial line, the protocol core and every TCP connection on
/// one event loop.
///
/// `run()` opens the device (failing at once if it is missing, busy, forbidden or not a tty),
/// then forwards until its task is cancelled, and shuts down cleanly within two seconds:
/// every stream is reset (the peer is told), and the device and all sockets are closed.
/// `status()` and `waitUntilListening()` may be called from any task meanwhile.
public final class Forwarder: Sendable {
    public let configuration: ForwarderConfiguration
    public let logger: Logger

    private struct Shared {
        var running = false
        var runtime: LinkRuntime?
        var lastStatus = ForwarderStatus()
        /// Set once `run()` has opened the device and (C) bound its listener: the port, or nil for S.
        var startResult: Result<Int?, ForwarderError>?
        var startWaiters: [CheckedContinuation<Int?, Error>] = []
    }

    private let shared = Mutex(Shared())
    /// The group whose loop this end runs on; nil: a one-thread group of its own per run.
    private let eventLoopGroup: (any EventLoopGroup)?

    /// - Parameter eventLoopGroup: a group to run on, shared with others (the dashboard's HTTP
    ///   server, other lines); it is not shut down. By default each run has a thread of its own.
    public init(configuration: ForwarderConfiguration, logger: Logger, eventLoopGroup: (any EventLoopGroup)? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup
    }

    /// Runs until the surrounding task is cancelled, then shuts down within 2 s.
    ///
    /// - Throws: `SerialPortError` if the device cannot be opened at startup (its description is
    ///   one line, fit for the terminal); `ForwarderError` if it cannot be attached or the C end
    ///   cannot listen. Once running, a device that disappears is waited for, not an error.
    public func run() async throws {
        try shared.withLock { state in
            guard !state.running else { throw ForwarderError.alreadyRunning }
            state.running = true
        }
        do {
            try await runOnce()
        } catch let error as ForwarderError {
            finishListening(.failure(error))
            throw error
        } catch {
            finishListening(.failure(.stopped))
            throw error
        }
        finishListening(.failure(.stopped))
    }

    /// A known adapter habit found when the device opened: a warning when the user must act.
    static func report(_ finding: AdapterQuirks.Finding?, logger: Logger) {
        guard let finding else { return }
        if finding.needsAction { logger.warning("\(finding.message)") } else { logger.notice("\(finding.message)") }
    }

    private func runOnce() async throws {
        raiseOpenFileLimit()
        let port = try SerialPort.open(device: configuration.devicePath, settings: configuration.serial)
        Self.report(AdapterQuirks.checkLatencyTimer(device: port.path), logger: logger)
        let ownGroup = eventLoopGroup == nil ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil
        let loop = (eventLoopGroup ?? ownGroup!).next()
        let runtime = LinkRuntime(configuration: configuration, logger: logger, loop: loop)
        let fd = port.takeFileDescriptor()

        let listeningPort: Int?
        do {
            listeningPort = try await loop.flatSubmit { runtime.start(serialFD: fd) }.get()
        } catch {
            _ = try? await loop.flatSubmit { runtime.shutdown(flushTime: .zero) }.get()
            try? await ownGroup?.shutdownGracefully()
            throw error
        }
        shared.withLock { $0.runtime = runtime }
        finishListening(.success(listeningPort))

        await Self.waitForCancellation()

        let started = ContinuousClock.now
        let final = try? await loop.flatSubmit {
            runtime.shutdown().map { runtime.snapshot() }
        }.get()
        shared.withLock { state in
            state.runtime = nil
            if var final {
                final.linkState = .stopped
                final.deviceOpen = false
                state.lastStatus = final
            } else {
                state.lastStatus.linkState = .stopped
            }
        }
        try? await ownGroup?.shutdownGracefully()
        let elapsed = ContinuousClock.now - started
        logger.debug("shut down in \(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000) ms")
    }

    /// Suspends until the current task is cancelled.
    private static func waitForCancellation() async {
        let (stream, continuation) = AsyncStream<Never>.makeStream()
        await withTaskCancellationHandler {
            for await _ in stream {}
        } onCancel: {
            continuation.finish()
        }
    }

    /// Takes new forwards and rules while running (a reload); see `LinkRuntime.apply`. The
    /// line's own settings (device, serial format, limits) must be unchanged: a line whose
    /// settings change is restarted instead. Returns false if this forwarder is not running.
    @discardableResult
    public func update(forwardsAndRules new: ForwarderConfiguration) async -> Bool {
        guard let runtime = shared.withLock({ $0.runtime }) else { return false }
        return (try? await runtime.loop.submit { runtime.apply(new) }.get()) != nil
    }

    /// A snapshot of the link and the connections, taken on the event loop.
    public func status() async -> ForwarderStatus {
        let (runtime, last) = shared.withLock { ($0.runtime, $0.lastStatus) }
        guard let runtime else { return last }
        do {
            return try await runtime.loop.submit { runtime.snapshot() }.get()
        } catch {
            return shared.withLock { $0.lastStatus }
        }
    }

    /// The status, every stream and the configuration in force, taken in one visit to the event
    /// loop, so all three belong to the same instant (the dashboard's sample). When the end is
    /// not running: its last status, no streams, and the configuration it was made with.
    public func detailedStatus() async -> (status: ForwarderStatus, streams: [StreamStatus],
                                           configuration: ForwarderConfiguration) {
        guard let runtime = shared.withLock({ $0.runtime }),
              let taken = try? await runtime.loop.submit({ (runtime.snapshot(), runtime.streamSnapshots(), runtime.configuration) }).get()
        else { return (shared.withLock { $0.lastStatus }, [], configuration) }
        return taken
    }

    /// Resets one stream and its connection, as an abort: the client and the peer see a reset.
    /// Returns false if there is no such stream (or the end is not running).
    public func resetStream(_ id: UInt16, reason: String) async -> Bool {
        guard let runtime = shared.withLock({ $0.runtime }) else { return false }
        return (try? await runtime.loop.submit { runtime.resetStream(StreamID(id), reason: reason) }.get()) ?? false
    }

    /// The forwards and rules in force now (after any `update(forwardsAndRules:)`).
    public func currentConfiguration() async -> ForwarderConfiguration {
        guard let runtime = shared.withLock({ $0.runtime }) else { return configuration }
        return (try? await runtime.loop.submit { runtime.configuration }.get()) ?? configuration
    }

    /// The C end's actual listening port (the one the system chose, when 0 was configured).
    /// Waits until `run()` has bound it.
    ///
    /// - Throws: `ForwarderError.notListening` for an S end, or the reason `run()` failed or
    ///   ended before it listened.
    public func waitUntilListening() async throws -> Int {
        guard !configuration.localListeners.isEmpty else { throw ForwarderError.notListening }
        guard let port = try await waitUntilStarted() else { throw ForwarderError.notListening }
        return port
    }

    /// Waits until `run()` has opened the device and, for a C end, bound its listener; returns
    /// the listening port (C) or nil (S).
    ///
    /// - Throws: the reason `run()` failed or ended before it got that far.
    public func waitUntilStarted() async throws -> Int? {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Int?, ForwarderError>? = shared.withLock { state in
                if let started = state.startResult { return started }
                state.startWaiters.append(continuation)
                return nil
            }
            if let ready { continuation.resume(with: ready.mapError { $0 as Error }) }
        }
    }

    private func finishListening(_ result: Result<Int?, ForwarderError>) {
        let (waiters, outcome) = shared.withLock { state -> ([CheckedContinuation<Int?, Error>], Result<Int?, ForwarderError>) in
            if state.startResult == nil { state.startResult = result }
            let waiters = state.startWaiters
            state.startWaiters = []
            return (waiters, state.startResult!)
        }
        for waiter in waiters { waiter.resume(with: outcome.mapError { $0 as Error }) }
    }
}

/// Why a forwarder could not start, or what a caller asked of one that cannot be answered.
public enum ForwarderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The C end could not bind its listening socket.
    case cannotListen(host: String, port: Int, reason: String)
    /// The device opened but the event loop could not take it over.
    case cannotAttachDevice(path: String, reason: String)
    /// `waitUntilListening()` on an S end.
    case notListening
    /// `run()` ended (or failed) before the C end listened.
    case stopped
    /// `run()` was called twice on the same forwarder.
    case alreadyRunning

    public var description: String {
        switch self {
        case .cannotListen(let host, let port, let reason):
            return "cannot listen on \(host):\(port): \(reason)"
        case .cannotAttachDevice(let path, let reason):
            return "\(path): cannot attach the device to the event loop: \(reason)"
        case .notListening:
            return "this end has no listener of its own"
        case .stopped:
            return "the forwarder stopped before it was listening"
        case .alreadyRunning:
            return "the forwarder is already running"
        }
    }
}
