import Glibc
import CSerialShim

/// A pseudo-terminal pair for tests: the slave is a real tty device with a path under /dev/pts,
/// so `SerialPort.open` goes through exactly the code it runs for /dev/ttyUSB0, and the master
/// plays the far end of the cable.
final class PseudoTerminal {
    struct Failure: Error, CustomStringConvertible {
        let operation: String
        let errno: CInt
        var description: String { "\(operation): \(String(cString: strerror(errno)))" }
    }

    /// The far end. Closing it hangs up the slave, like unplugging a USB adapter.
    private(set) var master: CInt
    /// Our own descriptor for the slave, kept open so the line stays up even before the port opens.
    let slave: CInt
    /// e.g. /dev/pts/7
    let path: String

    init() throws {
        var master: CInt = -1
        var slave: CInt = -1
        var name = [CChar](repeating: 0, count: 128)
        guard sfs_openpty(&master, &slave, &name, name.count) == 0 else {
            throw Failure(operation: "sfs_openpty", errno: errno)
        }
        self.master = master
        self.slave = slave
        self.path = decodeCString(name)
    }

    /// Simulates the other end vanishing.
    func closeMaster() {
        if master >= 0 { _ = close(master) }
        master = -1
    }

    /// Whether the slave keeps `controlFlags` (within `mask`) when they are set with plain
    /// termios calls. Tells the tests what the kernel's pty driver does, independent of SerialPort.
    func keeps(controlFlags: tcflag_t, mask: tcflag_t) throws -> Bool {
        var tio = termios()
        guard tcgetattr(slave, &tio) == 0 else { throw Failure(operation: "tcgetattr", errno: errno) }
        tio.c_cflag = (tio.c_cflag & ~mask) | controlFlags
        _ = tcsetattr(slave, TCSANOW, &tio)  // glibc may report EINVAL for dropped bits; read back anyway
        var applied = termios()
        guard tcgetattr(slave, &applied) == 0 else { throw Failure(operation: "tcgetattr", errno: errno) }
        return applied.c_cflag & mask == controlFlags
    }

    deinit {
        closeMaster()
        _ = close(slave)
    }
}

/// Waits for `events` on `fd` until `deadline`; true if they (or an error/hangup) arrived.
/// Tests synchronise on this rather than sleeping, so they are fast and not timing-dependent.
func waitFor(_ events: Int16, on fd: CInt, until deadline: ContinuousClock.Instant) -> Bool {
    while true {
        let remaining = deadline - ContinuousClock.now
        guard remaining > .zero else { return false }
        let milliseconds = remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000
        var pfd = pollfd(fd: fd, events: events, revents: 0)
        let ready = poll(&pfd, 1, CInt(max(1, milliseconds)))
        if ready > 0 { return true }
        if ready < 0 && errno != EINTR { return false }
    }
}

/// Reads until `count` bytes arrived or `timeout` passed; returns what arrived.
func readBytes(from fd: CInt, count: Int, timeout: Duration = .seconds(5)) -> [UInt8] {
    let deadline = ContinuousClock.now + timeout
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 4096)
    while result.count < count {
        guard waitFor(Int16(POLLIN), on: fd, until: deadline) else { break }
        let wanted = min(buffer.count, count - result.count)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, wanted) }
        if n > 0 {
            result += buffer[0..<n]
        } else if n == 0 || (errno != EAGAIN && errno != EINTR) {
            break
        }
    }
    return result
}

/// Writes all of `bytes` to a possibly non-blocking descriptor; false on error or timeout.
func writeAll(_ bytes: [UInt8], to fd: CInt, timeout: Duration = .seconds(5)) -> Bool {
    let deadline = ContinuousClock.now + timeout
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, bytes.count - offset) }
        if n > 0 {
            offset += n
        } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
            guard waitFor(Int16(POLLOUT), on: fd, until: deadline) else { return false }
        } else {
            return false
        }
    }
    return true
}

/// A regular file in /tmp that is removed when the value is dropped.
final class TemporaryFile {
    let path: String

    init() throws {
        var template = Array("/tmp/serialport-test-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw PseudoTerminal.Failure(operation: "mkstemp", errno: errno) }
        _ = close(fd)
        path = decodeCString(template)
    }

    deinit { _ = unlink(path) }
}

/// The text of a NUL-terminated C buffer filled in by a C call.
private func decodeCString(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
