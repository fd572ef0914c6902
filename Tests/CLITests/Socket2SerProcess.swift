#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

/// Runs the built `socket2ser` executable (found by `Socket2SerExecutable`) as a real subprocess:
/// TestKit's `ChildProcess`, with what the CLI tests ask of it.
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

    let child: ChildProcess
    var pid: pid_t { child.pid }

    /// `standardOutput`: where the child's standard output goes instead of a pipe read here.
    init(_ arguments: [String], standardOutput: FileHandle? = nil) throws {
        child = try ChildProcess("socket2ser", arguments,
                                 output: standardOutput.map { .standardOutput(to: $0.fileDescriptor) } ?? .collected)
    }

    /// Runs `socket2ser` with `arguments` to completion.
    static func run(_ arguments: [String], standardOutput: FileHandle? = nil, timeout: Double = 30) throws -> Result {
        try Socket2SerProcess(arguments, standardOutput: standardOutput).waitForExit(timeout: timeout)
    }

    /// How it ended, once it has; nil while it runs.
    var end: Spawn.Ending? {
        child.exit.map { $0.reason == .exit ? .exited($0.status) : .signalled($0.status) }
    }

    /// Waits until standard error contains `text`, e.g. a readiness line.
    func waitForStandardError(containing text: String, timeout: Double = 30) throws {
        guard child.errors.wait(until: { $0.contains(text) }, timeout: timeout) else {
            child.forceKill()
            throw Failure(description: "no '\(text)' on stderr within \(timeout) s; got: \(child.errors.text)")
        }
    }

    /// Waits for the process to end (and its output with it); kills it on timeout. A process
    /// ended by a signal has exit code 128 + the signal's number, as a shell says.
    func waitForExit(timeout: Double = 30) throws -> Result {
        guard let exit = child.waitForExit(timeout: .nanoseconds(Int64(timeout * 1e9))) else {
            child.forceKill()
            throw Failure(description: "socket2ser did not exit within \(timeout) s; stderr: \(child.errors.text)")
        }
        let code = exit.reason == .exit ? exit.status : 128 + exit.status
        return Result(exitCode: code, standardOutput: child.output.text, standardError: child.errors.text)
    }
}
