import Dispatch
import Foundation
import TestKit

/// Runs the built `socket2ser` executable (found by `Socket2SerExecutable`) as a real subprocess.
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

    let process = Process()
    /// Nil when standard output goes where the caller said (a file, a terminal).
    private let output: PipeCollector?
    private let errors = PipeCollector()
    private let exited = DispatchSemaphore(value: 0)

    /// `standardOutput`: where the child's standard output goes instead of a pipe read here.
    init(_ arguments: [String], standardOutput: FileHandle? = nil) throws {
        process.executableURL = try Socket2SerExecutable.url()
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        let errorPipe = Pipe()
        process.standardError = errorPipe
        // Drained as data arrives, so a chatty child can never block on a full pipe.
        if let standardOutput {
            process.standardOutput = standardOutput
            output = nil
        } else {
            let outputPipe = Pipe()
            process.standardOutput = outputPipe
            let collector = PipeCollector()
            collector.drain(outputPipe.fileHandleForReading)
            output = collector
        }
        errors.drain(errorPipe.fileHandleForReading)
        let exited = exited
        process.terminationHandler = { _ in exited.signal() }
        try process.run()
    }

    /// Runs `socket2ser` with `arguments` to completion.
    static func run(_ arguments: [String], standardOutput: FileHandle? = nil, timeout: Double = 30) throws -> Result {
        try Socket2SerProcess(arguments, standardOutput: standardOutput).waitForExit(timeout: timeout)
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
        guard output?.waitForEnd(timeout: timeout) ?? true, errors.waitForEnd(timeout: timeout) else {
            throw Failure(description: "socket2ser exited but its output did not end")
        }
        return Result(exitCode: process.terminationStatus, standardOutput: output?.text ?? "", standardError: errors.text)
    }
}
