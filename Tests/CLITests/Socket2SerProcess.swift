import Dispatch
import Foundation

/// Runs the built `socket2ser` executable as a real subprocess.
///
/// Finding the executable: SwiftPM puts every product of a build, the test bundle included, in one
/// products directory (e.g. `.build/x86_64-unknown-linux-gnu/debug`). So the executable is looked
/// up next to the test bundle that is running now, which guarantees it comes from the same build
/// and configuration as these tests, whatever `--scratch-path` or `-c release` was used. (Searching
/// upward from `#filePath` for `.build/debug` would find a stale or differently configured binary;
/// `CommandLine.arguments[0]` is the `xctest` runner on macOS.) On Linux the test bundle is itself
/// the running executable; on macOS it is a loaded `.xctest` bundle. `SOCKET2SER_EXECUTABLE`
/// overrides the search, e.g. to test an installed copy.
struct Socket2SerProcess {
    struct Result {
        var exitCode: Int32
        var standardOutput: String
        var standardError: String

        /// Non-empty lines of standard error.
        var errorLines: [Substring] { standardError.split(separator: "\n") }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func executableURL() throws -> URL {
        let fileManager = FileManager.default
        if let override = ProcessInfo.processInfo.environment["SOCKET2SER_EXECUTABLE"] {
            return URL(fileURLWithPath: override)
        }
        var directories: [URL] = []
        for bundle in [Bundle.main] + Bundle.allBundles where bundle.bundleURL.pathExtension == "xctest" {
            directories.append(bundle.bundleURL.deletingLastPathComponent())
        }
        if let running = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            directories.append(running.deletingLastPathComponent())
        }
        for directory in directories {
            let candidate = directory.appendingPathComponent("socket2ser")
            if fileManager.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        throw Failure(description: "socket2ser not found next to the test bundle (looked in "
            + directories.map(\.path).joined(separator: ", ") + "); set SOCKET2SER_EXECUTABLE")
    }

    let process = Process()
    private let output = Collector()
    private let errors = Collector()
    private let exited = DispatchSemaphore(value: 0)

    init(_ arguments: [String]) throws {
        process.executableURL = try Self.executableURL()
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let outputPipe = Pipe()
        let errorPipe = Pipe()
        process.standardOutput = outputPipe
        process.standardError = errorPipe
        // Drained as data arrives, so a chatty child can never block on a full pipe.
        output.drain(outputPipe.fileHandleForReading)
        errors.drain(errorPipe.fileHandleForReading)
        let exited = exited
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
    }

    /// Runs `socket2ser` with `arguments` to completion.
    static func run(_ arguments: [String], timeout: Double = 30) throws -> Result {
        try Socket2SerProcess(arguments).waitForExit(timeout: timeout)
    }

    /// Waits until standard error contains `text`, e.g. a readiness line.
    func waitForStandardError(containing text: String, timeout: Double = 30) throws {
        guard errors.wait(until: { $0.contains(text) }, timeout: timeout) else {
            process.terminate()
            throw Failure(description: "no '\(text)' on stderr within \(timeout) s; got: \(errors.text)")
        }
    }

    /// Waits for the process to end and for both pipes to reach end of file; kills it on timeout.
    func waitForExit(timeout: Double = 30) throws -> Result {
        guard exited.wait(timeout: .now() + timeout) == .success else {
            process.terminate()
            kill(process.processIdentifier, SIGKILL)
            throw Failure(description: "socket2ser did not exit within \(timeout) s; stderr: \(errors.text)")
        }
        guard output.waitForEnd(timeout: timeout), errors.waitForEnd(timeout: timeout) else {
            throw Failure(description: "socket2ser exited but its output did not end")
        }
        return Result(exitCode: process.terminationStatus, standardOutput: output.text, standardError: errors.text)
    }
}

/// Accumulates what a pipe delivers and lets a test wait for content or for end of file.
private final class Collector: @unchecked Sendable {
    // @unchecked: every stored property is guarded by `condition`.
    private let condition = NSCondition()
    private var data = Data()
    private var ended = false

    var text: String {
        condition.lock()
        defer { condition.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    /// Reads on a thread of its own with plain blocking reads until end of file, which is
    /// simpler and more dependable than `readabilityHandler` for noticing the end of the pipe.
    func drain(_ handle: FileHandle) {
        let thread = Thread { [self] in
            while true {
                let chunk = handle.availableData
                condition.lock()
                if chunk.isEmpty { ended = true } else { data.append(chunk) }
                condition.broadcast()
                condition.unlock()
                if chunk.isEmpty { return }
            }
        }
        thread.start()
    }

    /// Waits until `predicate` holds for the text so far; false if it does not before the timeout
    /// or before the pipe ends without it.
    func wait(until predicate: (String) -> Bool, timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if predicate(String(decoding: data, as: UTF8.self)) { return true }
            if ended { return false }
            if !condition.wait(until: deadline) { return predicate(String(decoding: data, as: UTF8.self)) }
        }
    }

    func waitForEnd(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while !ended {
            if !condition.wait(until: deadline) { return ended }
        }
        return true
    }
}
