#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch
import Foundation
import TestKit

/// Runs the built `socket2ser` executable (found by `Socket2SerExecutable`) as a real subprocess,
/// started with TestKit's `Spawn`.
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

    let pid: pid_t
    /// Nil when standard output goes where the caller said (a file, a terminal).
    private let output: PipeCollector?
    private let errors = PipeCollector()
    private let ending: Locked<Spawn.Ending?>
    private let exited = DispatchSemaphore(value: 0)

    /// `standardOutput`: where the child's standard output goes instead of a pipe read here.
    init(_ arguments: [String], standardOutput: FileHandle? = nil) throws {
        let errorPipe = try Spawn.pipe()
        var outputPipe: (read: Int32, write: Int32)?
        if standardOutput == nil { outputPipe = try Spawn.pipe() }
        defer {
            close(errorPipe.write)
            if let outputPipe { close(outputPipe.write) }
        }
        do {
            pid = try Spawn.start(try Socket2SerExecutable.url().path, arguments,
                                  output: standardOutput?.fileDescriptor ?? outputPipe?.write, errors: errorPipe.write)
        } catch {
            close(errorPipe.read)
            if let outputPipe { close(outputPipe.read) }
            throw error
        }
        // Drained as data arrives, so a chatty child can never block on a full pipe.
        if let outputPipe {
            let collector = PipeCollector()
            collector.drain(FileHandle(fileDescriptor: outputPipe.read, closeOnDealloc: true))
            output = collector
        } else {
            output = nil
        }
        errors.drain(FileHandle(fileDescriptor: errorPipe.read, closeOnDealloc: true))
        let ending = Locked<Spawn.Ending?>(nil)
        self.ending = ending
        let exited = exited
        let pid = pid
        Thread {
            let end = Spawn.waitForEnd(of: pid)
            ending.withLock { $0 = end }
            exited.signal()
        }.start()
    }

    /// Runs `socket2ser` with `arguments` to completion.
    static func run(_ arguments: [String], standardOutput: FileHandle? = nil, timeout: Double = 30) throws -> Result {
        try Socket2SerProcess(arguments, standardOutput: standardOutput).waitForExit(timeout: timeout)
    }

    /// How it ended, once it has; nil while it runs.
    var end: Spawn.Ending? { ending.current }

    /// Waits until standard error contains `text`, e.g. a readiness line.
    func waitForStandardError(containing text: String, timeout: Double = 30) throws {
        guard errors.wait(until: { $0.contains(text) }, timeout: timeout) else {
            kill(pid, SIGKILL)
            throw Failure(description: "no '\(text)' on stderr within \(timeout) s; got: \(errors.text)")
        }
    }

    /// Waits for the process to end and for both pipes to reach end of file; kills it on timeout.
    /// A process ended by a signal has exit code 128 + the signal's number, as a shell says.
    func waitForExit(timeout: Double = 30) throws -> Result {
        guard exited.wait(timeout: .now() + timeout) == .success else {
            kill(pid, SIGKILL)
            throw Failure(description: "socket2ser did not exit within \(timeout) s; stderr: \(errors.text)")
        }
        exited.signal()  // later callers do not block
        guard output?.waitForEnd(timeout: timeout) ?? true, errors.waitForEnd(timeout: timeout) else {
            throw Failure(description: "socket2ser exited but its output did not end")
        }
        let code: Int32
        switch end {
        case .exited(let status): code = status
        case .signalled(let number): code = 128 + number
        case nil: code = -1
        }
        return Result(exitCode: code, standardOutput: output?.text ?? "", standardError: errors.text)
    }
}
