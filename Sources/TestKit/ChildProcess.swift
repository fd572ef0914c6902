#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A child process of a test or of the bench (`socket2ser cable`, `S`, `C`, `run`, …): started at
/// once, its output collected in memory or its stderr written to a log file, its end recorded
/// (when, how, with what status) as soon as it happens.
///
/// Every wait here is for a condition, with a timeout, and blocks: call it from a thread of its
/// own, not from Swift's cooperative pool.
public final class ChildProcess: @unchecked Sendable {
    // @unchecked: `exitRecord` is guarded by `exited`; everything else is set in init.
    // Started with `Spawn` (posix_spawn), not Foundation's `Process` (see there why).

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// How the process ended.
    public struct Exit: Sendable, CustomStringConvertible {
        public var at: ContinuousClock.Instant
        public var reason: Process.TerminationReason
        /// The exit status, or the number of the signal that ended it.
        public var status: Int32

        public var isCleanExitZero: Bool { reason == .exit && status == 0 }
        /// The exit status, or the signal's number negated.
        public var code: Int32 { reason == .exit ? status : -status }
        public var description: String {
            reason == .exit ? "exit status \(status)" : "killed by signal \(status)"
        }
    }

    /// Where stdout and stderr go.
    public enum Output: Sendable {
        /// Both collected in memory as they arrive (`output`, `errors`).
        case collected
        /// stderr written to a file created (or emptied) at `path`; stdout collected in memory
        /// when `collectingOutput` (to read a readiness line from), otherwise discarded.
        case logFile(path: String, collectingOutput: Bool)
        /// stdout to `descriptor` (a file, a terminal; the caller keeps and closes it), stderr
        /// collected in memory.
        case standardOutput(to: Int32)
    }

    /// How a process ended when asked to by `terminate`.
    public struct StopReport: Sendable, CustomStringConvertible {
        public var name: String
        /// It had ended before SIGTERM was sent.
        public var alreadyExited: Bool
        /// From SIGTERM to its end.
        public var elapsed: Duration
        public var exit: Exit?
        /// It did not end within the grace after SIGTERM, so it was sent SIGKILL.
        public var timedOut = false

        /// Ended by SIGTERM within the grace, with status 0.
        public var isClean: Bool { !alreadyExited && !timedOut && exit?.isCleanExitZero == true }
        /// The exit status, or the signal's number negated; -SIGKILL when it had to be killed.
        public var code: Int32 { timedOut ? -SIGKILL : exit?.code ?? -SIGKILL }

        public var description: String {
            if alreadyExited { return "\(name) had already ended (\(exit.map { "\($0)" } ?? "?"))" }
            if timedOut { return "\(name) did not exit within the limit after SIGTERM; killed" }
            return "\(name) exited \(elapsed.millisecondsText) after SIGTERM with \(exit.map { "\($0)" } ?? "?")"
        }
    }

    public let name: String
    public let arguments: [String]
    public let startedAt: ContinuousClock.Instant
    /// stdout as it arrives; empty and ended when it is not collected.
    public let output: PipeCollector
    /// stderr as it arrives; empty and ended when it goes to a log file.
    public let errors: PipeCollector
    /// The file stderr goes to, with `.logFile`.
    public let logPath: String?

    public let pid: pid_t
    private let outputCollected: Bool
    private let registry: ChildProcessRegistry?
    private let exited = NSCondition()
    private var exitRecord: Exit?
    /// Reaped: from then on its pid may belong to another process, so no signal may go to it.
    private var reaped = false

    /// Starts `executable arguments` (the built `socket2ser` by default, see
    /// `Socket2SerExecutable`). `input`, if given, is its standard input (then its end); without
    /// it stdin is /dev/null. A `registry` holds the process until it ends, so that all can be
    /// killed at once.
    /// `environment` adds to (or replaces entries of) this process's environment.
    public init(_ name: String, _ arguments: [String], executable: URL? = nil, input: [UInt8]? = nil,
                output: Output = .collected, registry: ChildProcessRegistry? = nil,
                environment: [String: String] = [:]) throws {
        self.name = name
        self.arguments = arguments
        self.registry = registry
        let executablePath = try (executable ?? Socket2SerExecutable.url()).path
        // Descriptors for the child; ours are closed once it has its own copies.
        var forChild: [Int32] = []
        defer { forChild.forEach { _ = close($0) } }
        var inputFD: Int32?
        if let input {
            // A file rather than a pipe: the child reads it at its own pace, and then its end.
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("child-input-\(UUID().uuidString)").path
            guard FileManager.default.createFile(atPath: path, contents: Data(input)) else {
                throw Failure("\(name): cannot write \(path)")
            }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            unlink(path)  // open already; nothing to clean up later
            guard fd >= 0 else { throw Failure("\(name): cannot open \(path)") }
            forChild.append(fd)
            inputFD = fd
        }
        var collectors: [(PipeCollector, Int32, String)] = []
        func collected(_ stream: String) throws -> (PipeCollector, Int32) {
            let (read, write) = try Spawn.pipe()
            forChild.append(write)
            let collector = PipeCollector()
            collectors.append((collector, read, "\(name) \(stream)"))
            return (collector, write)
        }
        let errorsFD: Int32
        var givenOutput: Int32?
        switch output {
        case .collected, .standardOutput:
            logPath = nil
            if case .standardOutput(let descriptor) = output { givenOutput = descriptor }
            outputCollected = givenOutput == nil
            let (collector, fd) = try collected("stderr")
            errors = collector
            errorsFD = fd
        case let .logFile(path, collectingOutput):
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw Failure("\(name): cannot create \(path)") }
            forChild.append(fd)
            logPath = path
            outputCollected = collectingOutput
            errors = .ended()
            errorsFD = fd
        }
        var outputFD = givenOutput
        if outputCollected {
            let (collector, fd) = try collected("stdout")
            self.output = collector
            outputFD = fd
        } else {
            self.output = .ended()
        }

        startedAt = .now
        do {
            pid = try Spawn.start(executablePath, arguments, environment: environment,
                                  input: inputFD, output: outputFD, errors: errorsFD)
        } catch {
            collectors.forEach { _ = close($0.1) }
            throw Failure("\(name): \(error)")
        }
        // Drained as data arrives, so a chatty child can never block on a full pipe.
        for (collector, fd, threadName) in collectors {
            collector.drain(FileHandle(fileDescriptor: fd, closeOnDealloc: true), name: threadName)
        }
        registry?.add(self)
        let pid = pid
        let (output, errors) = (self.output, self.errors)
        let reaper = Thread { [weak self] in
            let ending = Spawn.waitForEnd(of: pid)
            let at = ContinuousClock.now
            self?.markReaped()
            // Its end is recorded once its output is all in (or after 5 s, should a child of its
            // own hold the pipes), so that whoever waited for the end reads the whole output.
            _ = output.waitForEnd(timeout: 5)
            _ = errors.waitForEnd(timeout: 5)
            self?.ended(ending, at: at)
        }
        reaper.name = "\(name) reaper"
        reaper.start()
    }

    private func ended(_ ending: Spawn.Ending, at: ContinuousClock.Instant) {
        let record: Exit
        switch ending {
        case .exited(let status): record = Exit(at: at, reason: .exit, status: status)
        case .signalled(let number): record = Exit(at: at, reason: .uncaughtSignal, status: number)
        }
        exited.lock()
        exitRecord = record
        exited.broadcast()
        exited.unlock()
        registry?.remove(self)
    }

    deinit {
        forceKill()
    }

    public var isRunning: Bool { exit == nil }
    /// How it ended; nil while it runs.
    public var exit: Exit? {
        exited.lock()
        defer { exited.unlock() }
        return exitRecord
    }

    private func markReaped() {
        exited.lock()
        reaped = true
        exited.unlock()
    }

    /// Sends `number` unless the process has ended; whether it was sent.
    @discardableResult
    public func signal(_ number: Int32) -> Bool {
        exited.lock()
        defer { exited.unlock() }
        guard !reaped else { return false }
        kill(pid, number)
        return true
    }

    /// SIGKILL if still running. Synchronous, so it can run from `defer` and `deinit`.
    public func forceKill() {
        signal(SIGKILL)
    }

    /// Waits up to `timeout` for the process to end; nil if it has not.
    @discardableResult
    public func waitForExit(timeout: Duration) -> Exit? {
        let deadline = Date(timeIntervalSinceNow: timeout.inSeconds)
        exited.lock()
        defer { exited.unlock() }
        while exitRecord == nil, exited.wait(until: deadline) {}
        return exitRecord
    }

    /// Waits until `predicate` holds for all of stdout so far, and returns that text.
    @discardableResult
    public func waitForOutput(_ what: String, timeout: Duration = .seconds(10),
                              until predicate: (String) -> Bool) throws -> String {
        guard outputCollected else { throw Failure("\(name): stdout is not collected, so cannot wait for \(what)") }
        return try wait(for: what, timeout: timeout) { predicate(output.text) ? output.text : nil }
    }

    /// Waits for a line of stdout matching `predicate` and returns it.
    @discardableResult
    public func waitForOutputLine(_ what: String, timeout: Duration = .seconds(10),
                                  where predicate: (Substring) -> Bool) throws -> Substring {
        guard outputCollected else { throw Failure("\(name): stdout is not collected, so cannot wait for \(what)") }
        return try wait(for: what, timeout: timeout) { output.text.split(separator: "\n").first(where: predicate) }
    }

    /// Waits until stderr has contained `text` at least `count` times.
    public func waitForError(containing text: String, count: Int = 1, timeout: Duration = .seconds(10)) throws {
        if let logPath { throw Failure("\(name): stderr goes to \(logPath), so cannot wait for '\(text)' on it") }
        try wait(for: "'\(text)' on stderr", timeout: timeout) {
            errors.text.components(separatedBy: text).count - 1 >= count ? () : nil
        }
    }

    /// Polls `found` until it gives a value; fails when the process ends first or at the timeout,
    /// with the tails of its output.
    private func wait<T>(for what: String, timeout: Duration, _ found: () -> T?) throws -> T {
        var result: T?
        do {
            try waitUntil("\(name): \(what)", timeout: timeout) {
                result = found()
                if result == nil, let exit { throw Failure("\(name) ended (\(exit)) before \(what)") }
                return result != nil
            }
        } catch {
            let stdout = outputCollected ? "stdout: \(output.text.suffix(500))" : "stdout not collected"
            let stderr = logPath.map { "stderr in \($0)" } ?? "stderr: \(errors.text.suffix(1500))"
            throw Failure("\(error); \(stdout); \(stderr)")
        }
        return result!
    }

    /// SIGTERM to every process still running at once, then waits until `grace` has passed since
    /// for each to end; one that has not is sent SIGKILL (and given 5 s more to go).
    @discardableResult
    public static func terminate(_ children: [ChildProcess], grace: Duration = .seconds(2)) -> [StopReport] {
        let sent = ContinuousClock.now
        let running = children.map { $0.signal(SIGTERM) }
        return zip(children, running).map { child, wasRunning in
            guard wasRunning else {
                return StopReport(name: child.name, alreadyExited: true, elapsed: .zero, exit: child.exit)
            }
            let remaining = grace - (ContinuousClock.now - sent)
            if let exit = child.waitForExit(timeout: max(remaining, .zero)) {
                return StopReport(name: child.name, alreadyExited: false, elapsed: exit.at - sent, exit: exit)
            }
            child.forceKill()
            let exit = child.waitForExit(timeout: .seconds(5))
            return StopReport(name: child.name, alreadyExited: false, elapsed: ContinuousClock.now - sent,
                              exit: exit, timedOut: true)
        }
    }

    /// `terminate` of this process alone.
    @discardableResult
    public func terminate(grace: Duration = .seconds(2)) -> StopReport {
        Self.terminate([self], grace: grace)[0]
    }
}

/// The child processes still running that were started with this registry, so that an
/// interrupted program (the bench, on Ctrl-C) can kill them all and leave nothing behind.
public final class ChildProcessRegistry: Sendable {
    private let children = Locked<[ObjectIdentifier: ChildProcess]>([:])

    public init() {}

    func add(_ child: ChildProcess) {
        children.withLock { $0[ObjectIdentifier(child)] = child }
    }

    func remove(_ child: ChildProcess) {
        _ = children.withLock { $0.removeValue(forKey: ObjectIdentifier(child)) }
    }

    /// SIGKILL to every child still running.
    public func killAll() {
        for child in children.current.values { child.forceKill() }
    }
}

// MARK: - The virtual cable as a child

/// A running `socket2ser cable` and the paths of its two ends.
public struct CableProcess: Sendable {
    public let process: ChildProcess
    public let pathA: String
    public let pathB: String
    /// The executable the cable runs, and its ends too.
    public let executable: URL?
    public let registry: ChildProcessRegistry?

    /// Starts `socket2ser cable ARGUMENTS` (which needs its stdout collected) and waits until it
    /// has named both ends; a cable that does not within `timeout` is stopped and the error
    /// thrown. The one way the tests and the bench start a cable.
    public init(_ arguments: [String], executable: URL? = nil, output: ChildProcess.Output = .collected,
                registry: ChildProcessRegistry? = nil, timeout: Duration = .seconds(10)) throws {
        let process = try ChildProcess("cable", ["cable"] + arguments, executable: executable, output: output,
                                       registry: registry)
        do {
            let text = try process.waitForOutput("the paths of ends A and B", timeout: timeout) { text in
                let lines = text.split(separator: "\n")
                return lines.contains { $0.hasPrefix("A ") } && lines.contains { $0.hasPrefix("B ") }
            }
            let lines = text.split(separator: "\n")
            self.process = process
            self.executable = executable
            self.registry = registry
            pathA = String(lines.first { $0.hasPrefix("A ") }!.dropFirst(2))
            pathB = String(lines.first { $0.hasPrefix("B ") }!.dropFirst(2))
        } catch {
            process.terminate()
            throw error
        }
    }
}

extension CableProcess {
    /// The rig's `S`: on end A, connecting every stream to 127.0.0.1:`targetPort`, at `baud`.
    /// `environment` adds to (or replaces entries of) this process's environment, as for `ChildProcess`.
    public func startServer(targetPort: Int, baud: Int, _ extra: [String] = [],
                            output: ChildProcess.Output = .collected,
                            environment: [String: String] = [:]) throws -> ChildProcess {
        try ChildProcess("S", ["S", "-ip", "127.0.0.1", "-port", "\(targetPort)", "-com", pathA, "--baudrate", "\(baud)"] + extra,
                         executable: executable, output: output, registry: registry, environment: environment)
    }

    /// The rig's `C`: on end B, listening on 127.0.0.1:`port`, at `baud`.
    /// `environment` as for `startServer`.
    public func startClient(port: Int, baud: Int, _ extra: [String] = [],
                            output: ChildProcess.Output = .collected,
                            environment: [String: String] = [:]) throws -> ChildProcess {
        try ChildProcess("C", ["C", "-port", "\(port)", "-com", pathB, "--baudrate", "\(baud)"] + extra,
                         executable: executable, output: output, registry: registry, environment: environment)
    }

    /// SIGTERM to the ends at once (each may spend up to a second draining its resets onto the
    /// line), then to the cable; SIGKILL to any that outlives `grace`.
    public func stop(ends: [ChildProcess], grace: Duration = .seconds(2)) -> [ChildProcess.StopReport] {
        ChildProcess.terminate(ends, grace: grace) + [process.terminate(grace: grace)]
    }
}
