import Foundation

/// Accumulates what a pipe delivers and lets a test wait for content or for end of file.
///
/// The pipe is read on a thread of its own with plain blocking reads until end of file, which is
/// simpler and more dependable than `readabilityHandler` for noticing the end of the pipe, and a
/// chatty child can never block on a full pipe.
public final class PipeCollector: @unchecked Sendable {
    // @unchecked: `data` and `ended` are guarded by `condition`.
    private let condition = NSCondition()
    private var data = Data()
    private var ended = false

    public init() {}

    /// The collector of a stream that is not collected: empty, and ended already.
    static func ended() -> PipeCollector {
        let collector = PipeCollector()
        collector.ended = true
        return collector
    }

    public var text: String {
        condition.lock()
        defer { condition.unlock() }
        return String(decoding: data, as: UTF8.self)
    }

    /// Everything so far, as bytes.
    public var bytes: Data {
        condition.lock()
        defer { condition.unlock() }
        return data
    }

    public var hasEnded: Bool {
        condition.lock()
        defer { condition.unlock() }
        return ended
    }

    public func drain(_ handle: FileHandle, name: String = "pipe reader") {
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
        thread.name = name
        thread.start()
    }

    /// Waits until `predicate` holds for the text so far; false if it does not before the timeout
    /// or before the pipe ends without it.
    public func wait(until predicate: (String) -> Bool, timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if predicate(String(decoding: data, as: UTF8.self)) { return true }
            if ended { return false }
            if !condition.wait(until: deadline) { return predicate(String(decoding: data, as: UTF8.self)) }
        }
    }

    /// Waits for end of file; false if it does not come before the timeout.
    public func waitForEnd(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while !ended {
            if !condition.wait(until: deadline) { return ended }
        }
        return true
    }
}
