#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Testing
@testable import VirtualCable

/// Opens one end of the cable the way a user of the device would: read-write, not as the
/// controlling terminal, non-blocking so the test's poll loop is in charge of waiting.
func openEnd(_ path: String) throws -> Int32 {
    let fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK)
    if fd < 0 { throw TestFailure("open \(path): \(String(cString: strerror(errno)))") }
    return fd
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A started cable with both ends opened; everything is closed and stopped afterwards.
func withCable<T>(
    _ configuration: CableConfiguration,
    _ body: (_ cable: VirtualCable, _ a: Int32, _ b: Int32) throws -> T
) throws -> T {
    let cable = try VirtualCable(configuration: configuration)
    defer { cable.stop() }
    let a = try openEnd(cable.pathA)
    defer { close(a) }
    let b = try openEnd(cable.pathB)
    defer { close(b) }
    cable.start()
    return try body(cable, a, b)
}

/// Reproducible test data (not the cable's generator, so a bug there cannot hide in the data).
func testBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SplitMix64(seed: seed)
    return (0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
}

func monotonicSeconds() -> Double {
    Double(monotonicNanoseconds()) / 1e9
}

/// What an exchange saw: the bytes read from each descriptor, when the first and last of them
/// arrived, and how long the whole exchange took.
struct ExchangeResult {
    var received: [Int32: [UInt8]] = [:]
    var firstArrival: [Int32: Double] = [:]
    var lastArrival: [Int32: Double] = [:]
    var started = 0.0
    var elapsed = 0.0
    /// Bytes each writer managed to hand to its pty.
    var written: [Int32: Int] = [:]
    /// How many reads each reader needed (each hand-over of the cable is at least one).
    var reads: [Int32: Int] = [:]

    subscript(fd: Int32) -> [UInt8] { received[fd] ?? [] }
}

/// Writes `sends` (descriptor → bytes) and reads from `readers` in one poll loop, until
/// `done` says so or `timeout` seconds pass. Waiting is done only by poll(2): it wakes on data
/// or room, or every 10 ms to re-check `done` (which may look at the cable's counters).
func exchange(
    sends: [(fd: Int32, bytes: [UInt8])] = [],
    readers: [Int32],
    timeout: Double = 10,
    done: (ExchangeResult) -> Bool
) -> ExchangeResult {
    var result = ExchangeResult()
    var offsets = [Int32: Int]()
    for send in sends { offsets[send.fd] = 0 }
    let payload = Dictionary(sends.map { ($0.fd, $0.bytes) }, uniquingKeysWith: +)
    for fd in readers { result.received[fd] = [] }
    result.started = monotonicSeconds()
    let deadline = result.started + timeout
    var buffer = [UInt8](repeating: 0, count: 65536)

    while !done(result) && monotonicSeconds() < deadline {
        var events = [Int32: Int16]()
        for (fd, offset) in offsets where offset < payload[fd]!.count { events[fd, default: 0] |= Int16(POLLOUT) }
        for fd in readers { events[fd, default: 0] |= Int16(POLLIN) }
        var fds = events.map { pollfd(fd: $0.key, events: $0.value, revents: 0) }
        _ = poll(&fds, nfds_t(fds.count), 10)
        let now = monotonicSeconds()
        for entry in fds {
            if entry.revents & Int16(POLLOUT) != 0, let offset = offsets[entry.fd] {
                let bytes = payload[entry.fd]!
                let n = bytes[offset...].withUnsafeBytes { write(entry.fd, $0.baseAddress, $0.count) }
                if n > 0 { offsets[entry.fd] = offset + n }
            }
            if entry.revents & Int16(POLLIN) != 0 {
                let n = read(entry.fd, &buffer, buffer.count)
                if n > 0 {
                    result.received[entry.fd]!.append(contentsOf: buffer[0..<n])
                    result.reads[entry.fd, default: 0] += 1
                    if result.firstArrival[entry.fd] == nil { result.firstArrival[entry.fd] = now }
                    result.lastArrival[entry.fd] = now
                }
            }
        }
        result.written = offsets
    }
    result.written = offsets
    result.elapsed = monotonicSeconds() - result.started
    return result
}

/// Whether `needle` can be obtained from `haystack` by deleting elements. Greedy matching is
/// exact for this question.
func isSubsequence(_ needle: [UInt8], of haystack: [UInt8]) -> Bool {
    var i = 0
    for byte in haystack where i < needle.count && needle[i] == byte { i += 1 }
    return i == needle.count
}

/// Number of differing bits between two equally long byte arrays.
func bitDifferences(_ x: [UInt8], _ y: [UInt8]) -> Int {
    zip(x, y).reduce(0) { $0 + ($1.0 ^ $1.1).nonzeroBitCount }
}
