#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CProcessShim
import Foundation

/// Starting and reaping child processes, for `ChildProcess`, the CLI tests and the bench.
///
/// Not Foundation's `Process`: on Linux its spawn lists /proc/self/fd and copies every entry's
/// whole 256-byte name field, past the end of the directory buffer. A test process that held
/// 2,000 sockets while a test started a child crashed in that copy (CI, stop 19). Here the child
/// closes every descriptor from 3 up (closefrom) and nothing is listed.
public enum Spawn {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// How a child ended.
    public enum Ending: Sendable, Equatable {
        case exited(Int32)
        case signalled(Int32)
    }

    /// Starts `executable` (a path; no PATH search) with `arguments`. `input`, `output` and
    /// `errors` become its standard streams (nil: /dev/null); the caller keeps and closes its own
    /// copies. `environment` adds to (or replaces entries of) this process's environment.
    public static func start(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                             input: Int32? = nil, output: Int32? = nil, errors: Int32? = nil) throws -> pid_t {
        let merged = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let argv = ([executable] + arguments).map { strdup($0) }
        let envp = merged.map { strdup("\($0.key)=\($0.value)") }
        defer { (argv + envp).forEach { free($0) } }
        var pid: pid_t = 0
        let rc = (argv + [nil]).withUnsafeBufferPointer { argvPointer in
            (envp + [nil]).withUnsafeBufferPointer { envpPointer in
                sfs_spawn(executable, argvPointer.baseAddress, envpPointer.baseAddress,
                          input ?? -1, output ?? -1, errors ?? -1, &pid)
            }
        }
        guard rc == 0 else { throw Failure("cannot start \(executable): \(String(cString: strerror(rc)))") }
        return pid
    }

    /// A pipe whose two ends are close-on-exec: (read, write).
    public static func pipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard sfs_pipe_cloexec(&fds) == 0 else { throw Failure("pipe: \(String(cString: strerror(errno)))") }
        return (fds[0], fds[1])
    }

    /// Blocks until `pid` ends, and reaps it.
    public static func waitForEnd(of pid: pid_t) -> Ending {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return .signalled(SIGKILL) }  // not our child any more: cannot tell
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import as functions.
        if status & 0x7F == 0 { return .exited((status >> 8) & 0xFF) }
        return .signalled(status & 0x7F)
    }

    /// Runs `executable arguments` to its end with no input, collecting what it writes to stdout
    /// and to stderr (each pipe read on a thread of its own, so neither can fill up and stall it).
    /// Blocking.
    public static func run(_ executable: String, _ arguments: [String]) throws -> (ending: Ending, output: [UInt8], errors: String) {
        let out = try pipe()
        let err = try pipe()
        let pid: pid_t
        do {
            pid = try start(executable, arguments, output: out.write, errors: err.write)
        } catch {
            [out.read, out.write, err.read, err.write].forEach { _ = close($0) }
            throw error
        }
        close(out.write)
        close(err.write)
        let output = PipeCollector()
        let errors = PipeCollector()
        output.drain(FileHandle(fileDescriptor: out.read, closeOnDealloc: true), name: "stdout of \(executable)")
        errors.drain(FileHandle(fileDescriptor: err.read, closeOnDealloc: true), name: "stderr of \(executable)")
        let ending = waitForEnd(of: pid)
        // The child is gone; its pipes end once any child of its own that kept them has gone too.
        _ = output.waitForEnd(timeout: 10)
        _ = errors.waitForEnd(timeout: 10)
        return (ending, Array(output.bytes), errors.text)
    }
}
