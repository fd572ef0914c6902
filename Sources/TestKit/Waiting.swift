#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A condition did not hold within its time.
public struct WaitTimedOut: Error, CustomStringConvertible {
    public let description: String
}

/// Polls `condition` every `interval` until it holds; throws `WaitTimedOut` after `timeout`.
/// Waiting for a condition, never for a fixed time. Blocking: call it from a thread of its own,
/// not from Swift's cooperative pool.
public func waitUntil(_ what: String, timeout: Duration, interval: Duration = .milliseconds(10),
                      _ condition: () throws -> Bool) throws {
    let deadline = ContinuousClock.now + timeout
    while try !condition() {
        guard ContinuousClock.now < deadline else { throw WaitTimedOut(description: "timed out after \(timeout) waiting for \(what)") }
        Thread.sleep(forTimeInterval: interval.inSeconds)
    }
}

/// `waitUntil` for async conditions (an actor's state, say): polls every 10 ms without blocking
/// a thread.
public func waitUntil(_ what: String, timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw WaitTimedOut(description: "timed out after \(timeout) waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(10))
    }
}

/// A lock-protected value, for results that several threads fill in.
public final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    public init(_ value: Value) { self.value = value }

    public func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    public var current: Value { withLock { $0 } }
}

extension Duration {
    /// Seconds as a Double, for arithmetic, deadlines and messages.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// e.g. "412 ms".
    public var millisecondsText: String { "\(Int((inSeconds * 1000).rounded())) ms" }
}
