import CSerialShim
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Small wrappers around the POSIX calls the cable needs, kept in one place so the pump code
/// reads as the model it implements rather than as system-call plumbing.

/// Nanoseconds of the monotonic clock: immune to wall-clock jumps, which would otherwise
/// stall or burst the pacing.
func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// The C library's text for an errno value.
func errorText(_ code: Int32) -> String {
    String(cString: strerror(code))
}

/// The text of a NUL-terminated C buffer (or of the whole buffer if it has no NUL).
func stringFromCBuffer(_ buffer: [CChar]) -> String {
    let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
    return String(decoding: bytes, as: UTF8.self)
}

/// Puts a descriptor in non-blocking mode: the pump must never block in read or write, only in
/// poll, so that one direction's stall cannot hold up its own pacing or a stop request.
func setNonBlocking(_ fd: Int32) -> Bool {
    let flags = fcntl(fd, F_GETFL)
    return flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0
}

/// Outcome of a non-blocking read or write.
enum IOResult {
    /// This many bytes moved (> 0).
    case moved(Int)
    /// Nothing available right now (EAGAIN).
    case wouldBlock
    /// The descriptor is unusable for now (EIO from a pty master with no slave open, or EOF).
    case failed
}

func readSome(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) -> IOResult {
    while true {
        let n = read(fd, buffer.baseAddress, buffer.count)
        if n > 0 { return .moved(n) }
        if n == 0 { return .failed }
        if errno == EINTR { continue }
        return errno == EAGAIN || errno == EWOULDBLOCK ? .wouldBlock : .failed
    }
}

func writeSome(_ fd: Int32, from buffer: UnsafeRawBufferPointer) -> IOResult {
    while true {
        let n = write(fd, buffer.baseAddress, buffer.count)
        if n > 0 { return .moved(n) }
        if n == 0 { return .wouldBlock }
        if errno == EINTR { continue }
        return errno == EAGAIN || errno == EWOULDBLOCK ? .wouldBlock : .failed
    }
}

/// Waits on `fds` for at most `timeoutMilliseconds` (-1: forever), retrying on EINTR.
func pollDescriptors(_ fds: inout [pollfd], timeoutMilliseconds: Int32) {
    while true {
        let rc = fds.withUnsafeMutableBufferPointer {
            poll($0.baseAddress, nfds_t($0.count), timeoutMilliseconds)
        }
        if rc >= 0 || errno != EINTR { return }
    }
}

/// `poll` until `deadline` (monotonic nanoseconds) at the latest, to the microsecond rather than
/// the millisecond; nil waits without limit.
func pollDescriptors(_ fds: inout [pollfd], until deadline: UInt64?, now: UInt64) {
    let timeout: Int64 = deadline.map { $0 > now ? Int64($0 - now) : 0 } ?? -1
    while true {
        let rc = fds.withUnsafeMutableBufferPointer {
            sfs_poll_nanoseconds($0.baseAddress, UInt($0.count), timeout)
        }
        if rc >= 0 || errno != EINTR { return }
    }
}

/// Milliseconds to wait until `deadline`, rounded up so that we never wake before it is due,
/// and at least 1 so that a deadline already passed cannot make the loop spin.
func millisecondsUntil(_ deadline: UInt64, from now: UInt64, cap: Int32 = 1000) -> Int32 {
    guard deadline > now else { return 1 }
    let ms = (deadline - now + 999_999) / 1_000_000
    return Int32(min(max(ms, 1), UInt64(cap)))
}
