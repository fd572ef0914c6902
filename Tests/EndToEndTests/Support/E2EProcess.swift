#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

// Support for ProcessEndToEndTests: the real `socket2ser` executable run as subprocesses
// (each a TestKit `ChildProcess`). Every name here starts with `E2E` so it cannot collide with
// the helpers of the in-process tests that share this module.

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
        guard done.wait(timeout: .now() + .nanoseconds(Int(timeout.inSeconds * 1e9))) == .success else {
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
    let (ending, output, errors) = try Spawn.run("/usr/bin/env", [tool] + arguments)
    switch ending {
    case .exited(let status): return (status, output, errors)
    case .signalled(let number): return (128 + number, output, errors)
    }
}
