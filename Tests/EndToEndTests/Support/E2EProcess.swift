#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

// Support for ProcessEndToEndTests: the real `socket2ser` executable run as subprocesses.
// Every name here starts with `E2E` so it cannot collide with the helpers of the in-process tests
// that share this module.

struct E2EFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs blocking work (socket reads, process waits, thread joins) on a thread of its own.
///
/// Everything that waits or measures time in these tests runs this way, not on Swift's
/// cooperative pool: other suites in the same `swift test` keep that pool's two threads busy with
/// long synchronous sweeps, and a wait or a timestamp taken there can be late by tens of seconds.
func e2eOffload<T: Sendable>(_ name: String = "e2e worker", _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
        let thread = Thread {
            continuation.resume(with: Result { try body() })
        }
        thread.name = name
        thread.start()
    }
}

/// One `socket2ser` subprocess with its stdout and stderr collected as they arrive.
final class E2EChild: @unchecked Sendable {
    // @unchecked: `exit` is guarded by `lock`; everything else is set in init.
    struct Exit: Sendable, CustomStringConvertible {
        var at: ContinuousClock.Instant
        var reason: Process.TerminationReason
        var status: Int32

        var isCleanExitZero: Bool { reason == .exit && status == 0 }
        var description: String {
            reason == .exit ? "exit status \(status)" : "killed by signal \(status)"
        }
    }

    let name: String
    let arguments: [String]
    let startedAt: ContinuousClock.Instant
    let output = PipeCollector()
    let errors = PipeCollector()
    private let process = Process()
    /// The child's standard input when `input` was given: a file, held open for the child's
    /// lifetime (a file rather than a pipe, so no handle of ours is closed behind our back).
    private var inputFile: FileHandle?
    private let lock = NSLock()
    private var exitRecord: Exit?

    /// Starts `socket2ser arguments`; `input`, if given, is its standard input (then its end).
    init(_ name: String, _ arguments: [String], input: [UInt8]? = nil) throws {
        self.name = name
        self.arguments = arguments
        process.executableURL = try Socket2SerExecutable.url()
        process.arguments = arguments
        if let input {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-input-\(UUID().uuidString)").path
            guard FileManager.default.createFile(atPath: path, contents: Data(input)),
                  let file = FileHandle(forReadingAtPath: path) else { throw E2EFailure("cannot write \(path)") }
            unlink(path)  // open already; nothing to clean up later
            inputFile = file
            process.standardInput = file
        } else {
            process.standardInput = FileHandle.nullDevice
        }
        let outputPipe = Pipe()
        let errorPipe = Pipe()
        process.standardOutput = outputPipe
        process.standardError = errorPipe
        output.drain(outputPipe.fileHandleForReading, name: "\(name) stdout")
        errors.drain(errorPipe.fileHandleForReading, name: "\(name) stderr")
        startedAt = .now
        process.terminationHandler = { [weak self] process in
            guard let self else { return }
            let record = Exit(at: .now, reason: process.terminationReason, status: process.terminationStatus)
            self.lock.withLock { self.exitRecord = record }
        }
        try process.run()
    }

    deinit {
        forceKill()
    }

    var pid: Int32 { process.processIdentifier }
    var exit: Exit? { lock.withLock { exitRecord } }

    func signal(_ number: Int32) {
        if exit == nil { kill(pid, number) }
    }

    /// SIGKILL if still running. Synchronous, so it can run from `defer` and `deinit`.
    func forceKill() {
        if exit == nil, process.isRunning { kill(pid, SIGKILL) }
    }

    /// Waits up to `timeout` for the process to end. Blocking.
    func waitForExit(timeout: Duration) -> Exit? {
        try? waitUntil("\(name) to exit", timeout: timeout) { exit != nil }
        return exit
    }

    /// Waits for a line of stdout matching `predicate` and returns it. Blocking.
    @discardableResult
    func waitForOutputLine(_ what: String, timeout: Duration = .seconds(10),
                           where predicate: (Substring) -> Bool) throws -> Substring {
        var found: Substring?
        do {
            try waitUntil("\(name): \(what)", timeout: timeout) {
                found = output.text.split(separator: "\n").first(where: predicate)
                if found == nil, let exit { throw E2EFailure("\(name) ended (\(exit)) before \(what)") }
                return found != nil
            }
        } catch {
            throw E2EFailure("\(error); stdout: \(output.text.suffix(500)) stderr: \(errors.text.suffix(1500))")
        }
        return found!
    }

    /// Waits until stderr has contained `text` at least `count` times. Blocking.
    func waitForError(containing text: String, count: Int = 1, timeout: Duration = .seconds(10)) throws {
        do {
            try waitUntil("\(name): '\(text)' on stderr", timeout: timeout) {
                if errors.text.components(separatedBy: text).count - 1 >= count { return true }
                if let exit { throw E2EFailure("\(name) ended (\(exit)) before '\(text)'") }
                return false
            }
        } catch {
            throw E2EFailure("\(error); stderr: \(errors.text.suffix(1500))")
        }
    }

    /// Sends SIGTERM to every process at once, then waits up to `timeout` for each to end; one
    /// that does not is killed. Blocking.
    static func terminate(_ children: [E2EChild], timeout: Duration = .seconds(2)) -> [E2EStopReport] {
        let sent = ContinuousClock.now
        let running = children.map { child -> Bool in
            guard child.exit == nil else { return false }
            kill(child.pid, SIGTERM)
            return true
        }
        return zip(children, running).map { child, wasRunning in
            guard wasRunning else {
                return E2EStopReport(name: child.name, alreadyExited: true, elapsed: .zero, exit: child.exit)
            }
            let remaining = timeout - (ContinuousClock.now - sent)
            if let exit = child.waitForExit(timeout: max(remaining, .zero)) {
                return E2EStopReport(name: child.name, alreadyExited: false, elapsed: exit.at - sent, exit: exit)
            }
            child.forceKill()
            let exit = child.waitForExit(timeout: .seconds(5))
            return E2EStopReport(name: child.name, alreadyExited: false, elapsed: ContinuousClock.now - sent,
                                 exit: exit, timedOut: true)
        }
    }
}

/// How a process ended when asked to.
struct E2EStopReport: Sendable, CustomStringConvertible {
    var name: String
    var alreadyExited: Bool
    var elapsed: Duration
    var exit: E2EChild.Exit?
    var timedOut = false

    /// Ended by SIGTERM within the time allowed, with status 0.
    var isClean: Bool { !alreadyExited && !timedOut && exit?.isCleanExitZero == true }

    var description: String {
        if alreadyExited { return "\(name) had already ended (\(exit.map { "\($0)" } ?? "?"))" }
        if timedOut { return "\(name) did not exit within the limit after SIGTERM; killed" }
        return "\(name) exited \(elapsed.e2eMilliseconds) after SIGTERM with \(exit.map { "\($0)" } ?? "?")"
    }
}

extension Duration {
    /// Seconds as a Double, for arithmetic and messages.
    var e2eSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// e.g. "412 ms".
    var e2eMilliseconds: String { "\(Int((e2eSeconds * 1000).rounded())) ms" }
}

/// Work started on a thread of its own right away, whose result is collected later.
final class E2EBackground<T: Sendable>: @unchecked Sendable {
    // @unchecked: `result` is written once before `done` is signalled, and read only after.
    private var result: Result<T, Error>?
    private let done = DispatchSemaphore(value: 0)

    init(_ name: String, _ body: @escaping @Sendable () throws -> T) {
        let thread = Thread { [self] in
            result = Result { try body() }
            done.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Waits for the result. Blocking.
    func value(timeout: Duration) throws -> T {
        guard done.wait(timeout: .now() + .nanoseconds(Int(timeout.e2eSeconds * 1e9))) == .success else {
            throw E2EFailure("background work did not finish within \(timeout)")
        }
        done.signal()  // later callers do not block
        return try result!.get()
    }
}

/// A value handed from one closure to another; set once before it is read.
final class E2EBox<T: Sendable>: @unchecked Sendable {
    // @unchecked: guarded by `lock`.
    private let lock = NSLock()
    private var stored: T?

    var value: T? {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
}

/// Runs a real command-line tool (curl, ssh) found on PATH to its end, with no input; returns
/// its exit status, what it wrote to stdout and what it wrote to stderr. Blocking.
func e2eRunTool(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: [UInt8], errors: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    let output = Pipe()
    let errors = Pipe()
    process.standardOutput = output
    process.standardError = errors
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // stderr is read on its own thread, so neither pipe can fill up and stall the tool.
    let errorText = E2EBackground("\(tool) stderr") {
        String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    }
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, Array(data), (try? errorText.value(timeout: .seconds(10))) ?? "")
}
