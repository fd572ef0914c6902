import Glibc
import Foundation
import CSerialShim
// Mutex is Linux-safe here: this module only builds on Linux anyway (the shim needs termios2).
import Synchronization

/// An open, exclusively held, raw-mode serial device.
///
/// `open` does everything needed before bytes can flow: it claims the line so a second program
/// (or a second copy of this one) fails loudly instead of stealing half the bytes, switches the
/// tty to raw 8-bit-clean mode, and sets the rate and character format. The descriptor is left
/// non-blocking because its intended owner is an event loop (SwiftNIO's `NIOPipeBootstrap`);
/// hand it over with `takeFileDescriptor()`.
///
/// The class owns the descriptor until `close()` or `takeFileDescriptor()`; `deinit` closes it
/// if neither happened. Ownership changes are guarded by a lock, so the object is `Sendable`.
public final class SerialPort: Sendable {
    /// The descriptor number. Valid for I/O while this object owns it (see `isOpen`), and
    /// afterwards in the hands of whoever called `takeFileDescriptor()`.
    public let fileDescriptor: CInt
    /// The device path as given to `open`.
    public let path: String
    /// The settings that were applied.
    public let settings: SerialSettings

    /// The descriptor while this object still owns it; nil after `close` or `takeFileDescriptor`.
    private let ownedDescriptor: Mutex<CInt?>

    private init(fileDescriptor: CInt, path: String, settings: SerialSettings) {
        self.fileDescriptor = fileDescriptor
        self.path = path
        self.settings = settings
        self.ownedDescriptor = Mutex(fileDescriptor)
    }

    deinit {
        close()
    }

    /// Whether this object still owns (and will close) the descriptor.
    public var isOpen: Bool { ownedDescriptor.withLock { $0 != nil } }

    /// Where selectors look for devices: /sys and /dev, or the fixture trees that
    /// `SOCKET2SER_SYSFS_ROOT` and `SOCKET2SER_DEV_ROOT` name (the tests' stand-in for a USB
    /// adapter that is unplugged and comes back under another name).
    public static var deviceRoots: (sys: String, dev: String) {
        let environment = ProcessInfo.processInfo.environment
        return (environment["SOCKET2SER_SYSFS_ROOT"] ?? "/sys", environment["SOCKET2SER_DEV_ROOT"] ?? "/dev")
    }

    /// Opens the device `-com` names: a path, or a selector resolved against the devices sysfs
    /// lists now (`DeviceSelector`), so a device that came back under another name is found.
    public static func open(device: String, settings: SerialSettings, sysRoot: String = deviceRoots.sys,
                            devRoot: String = deviceRoots.dev) throws -> SerialPort {
        let selector: DeviceSelector
        do {
            selector = try DeviceSelector(parsing: device)
        } catch {
            throw SerialPortError.unresolved(selector: device, reason: error.description)
        }
        if case .path(let path) = selector { return try open(path: path, settings: settings) }
        // Only devices whose node is there now: a name sysfs still lists while its node is gone
        // (an adapter being pulled) is not one to open.
        let devices = SerialDeviceList.list(sysRoot: sysRoot, devRoot: devRoot, procRoot: "/nonexistent")
            .filter { access($0.path, F_OK) == 0 }
        do {
            return try open(path: try selector.resolve(in: devices), settings: settings)
        } catch let error as DeviceSelector.Failure {
            throw SerialPortError.unresolved(selector: device, reason: error.description)
        }
    }

    /// Opens `path`, locks it against other users and applies `settings`.
    ///
    /// - Throws: `SerialPortError`, whose description is one line naming the path and the cause.
    public static func open(path: String, settings: SerialSettings) throws -> SerialPort {
        do {
            try settings.validate()
        } catch {
            throw SerialPortError.unsupportedSettings(path: path, settings: settings, reason: error.reason)
        }

        // O_NONBLOCK also keeps open() from waiting for carrier detect on a line without CLOCAL;
        // O_NOCTTY keeps the device from becoming our controlling terminal (where a hangup would
        // send us SIGHUP).
        var fd: CInt
        repeat {
            fd = Glibc.open(path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK)
        } while fd < 0 && errno == EINTR
        guard fd >= 0 else { throw SerialPortError.fromOpen(path: path, errno: errno) }

        do {
            try claimAndConfigure(fd: fd, path: path, settings: settings)
        } catch {
            _ = Glibc.close(fd)
            throw error
        }
        return SerialPort(fileDescriptor: fd, path: path, settings: settings)
    }

    /// Closes the descriptor if this object still owns it. Safe to call more than once, and a
    /// no-op after `takeFileDescriptor()`. Releases the `flock` and the TIOCEXCL claim.
    public func close() {
        guard let fd = ownedDescriptor.withLock({ owned -> CInt? in
            defer { owned = nil }
            return owned
        }) else { return }
        Self.releaseExclusiveUse(fileDescriptor: fd)
        // Not retried on EINTR: Linux releases the descriptor even then, and a retry could close
        // a descriptor another thread has just been given.
        _ = Glibc.close(fd)
    }

    /// Clears TIOCEXCL on `fd`. The flag belongs to the tty, not to our descriptor, so it
    /// survives our close while anyone else still has the device open, and then every later
    /// non-root open fails with EBUSY. That is the normal situation for a pty whose creator
    /// keeps its own slave descriptor (as `VirtualCable` does): without this, the next run of
    /// the program on that pty would be told the device is busy. `close()` calls it; an owner
    /// that got the descriptor from `takeFileDescriptor()` should call it before closing.
    /// The `flock` needs no such care: it dies with the open file description.
    public static func releaseExclusiveUse(fileDescriptor fd: CInt) {
        _ = ioctl(fd, UInt(TIOCNXCL), 0)
    }

    /// Gives the descriptor to another owner (e.g. `NIOPipeBootstrap.takingOwnershipOfDescriptor`),
    /// after which `close()` and `deinit` leave it alone. The exclusive claim stays with the
    /// descriptor; the new owner should call `releaseExclusiveUse(fileDescriptor:)` just before
    /// closing it (see there for why).
    ///
    /// Calling it after `close()` or a previous `takeFileDescriptor()` is a programming error:
    /// there would be no descriptor left to hand over.
    public func takeFileDescriptor() -> CInt {
        let fd = ownedDescriptor.withLock { owned -> CInt? in
            defer { owned = nil }
            return owned
        }
        guard let fd else {
            preconditionFailure("SerialPort(\(path)): takeFileDescriptor() after close() or a previous take")
        }
        return fd
    }

    /// Bytes written but not yet sent down the wire (TIOCOUTQ), or nil if the driver cannot say
    /// or the descriptor is closed. Useful to keep the kernel buffer short so urgent frames are
    /// not stuck behind seconds of bulk data at low baud rates.
    public func outputQueueBytes() -> Int? {
        ownedDescriptor.withLock { owned -> Int? in owned.flatMap(Self.outputQueue(fd:)) }
    }

    /// The output rate the driver reports, which may differ slightly from the requested one when
    /// the hardware can only approximate it. Nil if it cannot be read or the descriptor is closed.
    public func currentBaudRate() -> Int? {
        ownedDescriptor.withLock { owned -> Int? in
            guard let fd = owned else { return nil }
            let rate = sfs_get_baud(fd)
            return rate >= 0 ? Int(rate) : nil
        }
    }

    /// True for the errno values a read or write on an open serial descriptor returns once the
    /// device itself has disappeared: EIO (USB adapter unplugged, or a pty whose master closed),
    /// ENXIO and ENODEV. Such a descriptor never recovers; close it and reopen the path later.
    /// Note that after such a hang-up Linux makes `read` return 0 (end of file) rather than an
    /// error, so a reader must treat EOF on a serial descriptor the same way.
    public static func isDeviceGone(errno: CInt) -> Bool {
        errno == EIO || errno == ENXIO || errno == ENODEV
    }
}

// MARK: - Configuration

extension SerialPort {
    /// The largest relative difference between requested and reported baud rate we accept.
    /// UART receivers tolerate a few percent of clock error in total; if the driver alone is
    /// this far off, the link would produce garbage, so failing early is kinder.
    static let baudRateTolerance = 0.03

    /// Everything between a successful `open(2)` and a usable port. Throws `SerialPortError`;
    /// the caller closes `fd` on failure.
    private static func claimAndConfigure(fd: CInt, path: String, settings: SerialSettings) throws {
        guard isatty(fd) == 1 else { throw SerialPortError.notATerminal(path: path) }

        // flock first: TIOCEXCL does not stop root, but a second flock on the same device
        // conflicts for everyone, including another open file description in this process.
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            if code == EINTR { continue }
            if code == EWOULDBLOCK { throw SerialPortError.busy(path: path) }
            throw SerialPortError.system(path: path, operation: "flock", errno: code)
        }
        // TIOCEXCL additionally stops programs that do not use flock (non-root ones get EBUSY).
        if sfs_set_exclusive(fd) != 0 {
            throw SerialPortError.system(path: path, operation: "TIOCEXCL", errno: errno)
        }

        try applyTermios(fd: fd, path: path, settings: settings)

        // Whatever arrived before we took the line (boot messages, a previous session's tail)
        // is not ours and would only look like a corrupt frame.
        if tcflush(fd, TCIFLUSH) != 0 {
            throw SerialPortError.system(path: path, operation: "tcflush", errno: errno)
        }
    }

    private static func applyTermios(fd: CInt, path: String, settings: SerialSettings) throws {
        func unsupported(_ reason: String) -> SerialPortError {
            .unsupportedSettings(path: path, settings: settings, reason: reason)
        }

        var tio = termios()
        guard tcgetattr(fd, &tio) == 0 else {
            throw SerialPortError.system(path: path, operation: "tcgetattr", errno: errno)
        }
        // Raw: no line editing, echo, signals, CR/LF translation or output processing; the link
        // carries binary frames. cfmakeraw leaves software flow control on input (IXOFF) and
        // IXANY alone, and either would eat or inject XON/XOFF bytes.
        cfmakeraw(&tio)
        tio.c_iflag &= ~tcflag_t(IXOFF | IXANY)
        // CLOCAL: ignore modem control lines, so a cable without DCD still works and a dropped
        // DCD does not hang up the line. CREAD: enable the receiver.
        tio.c_cflag |= tcflag_t(CLOCAL | CREAD)
        tio.c_cflag &= ~(formatFlagsMask | tcflag_t(CMSPAR))
        // A pseudo-terminal has no UART, so no parity bit to send: with 8 data bits, parity is
        // moot there rather than refused (the legacy wire asks for 8E1, as the original did, and
        // its tests run over the virtual cable's ptys). The kernel refuses PARENB on a pty.
        var line = settings
        if settings.dataBits == 8 && isPseudoTerminal(fd) { line.parity = .none }
        tio.c_cflag |= expectedControlFlags(line)
        // Parity is only generated and checked in hardware; bytes with parity errors are not
        // dropped (no INPCK) because the link's CRC already rejects damaged frames as a whole.

        // Block-for-one-byte semantics for anyone who clears O_NONBLOCK; harmless otherwise.
        withUnsafeMutableBytes(of: &tio.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }

        let standardSpeed = standardSpeedConstant(for: settings.baudRate)
        if let speed = standardSpeed {
            guard cfsetispeed(&tio, speed) == 0, cfsetospeed(&tio, speed) == 0 else {
                throw unsupported(SerialPortError.message(for: errno))
            }
        }
        guard tcsetattr(fd, TCSANOW, &tio) == 0 else {
            throw unsupported("the driver refused them (\(SerialPortError.message(for: errno)))")
        }
        if standardSpeed == nil {
            // Rates without a B-constant (250000 for many microcontrollers, odd crystal-derived
            // ones) need termios2 with BOTHER, which only the C shim can reach.
            guard sfs_set_custom_baud(fd, UInt32(settings.baudRate)) == 0 else {
                throw unsupported(SerialPortError.message(for: errno))
            }
        }

        // tcsetattr succeeds if *any* change was applied, and drivers silently drop what the
        // hardware cannot do (e.g. 5 data bits, CMSPAR, RTS/CTS). Read back and compare.
        // Pseudo-terminals on current Linux force CS8 and clear PARENB, so over a pty only
        // 8N1/8N2 (with or without RTS/CTS) get this far; glibc sometimes notices and makes
        // tcsetattr fail with EINVAL above instead.
        var applied = termios()
        guard tcgetattr(fd, &applied) == 0 else {
            throw SerialPortError.system(path: path, operation: "tcgetattr", errno: errno)
        }
        if applied.c_cflag & formatFlagsMask != expectedControlFlags(line) {
            throw unsupported("the driver did not accept this character format or flow control")
        }
        let reported = sfs_get_baud(fd)
        if reported > 0 {
            let wanted = Double(settings.baudRate)
            if abs(Double(reported) - wanted) / wanted > baudRateTolerance {
                throw unsupported("the device runs at \(reported) baud instead")
            }
        }
    }

    /// A new pseudo-terminal pair, its slave already raw: what the virtual cable is made of.
    /// Returns nil, with errno set, when the system has none to give.
    public static func openPseudoTerminal() -> (master: CInt, slave: CInt, path: String)? {
        var master: CInt = -1
        var slave: CInt = -1
        var name = [CChar](repeating: 0, count: 128)
        guard sfs_openpty(&master, &slave, &name, name.count) == 0 else { return nil }
        return (master, slave, String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    /// Hangs up the tty `fd` belongs to, for every descriptor open on it (each then reads end of
    /// file), as pulling a USB adapter does. False if the system refused.
    @discardableResult
    public static func hangUp(fileDescriptor fd: CInt) -> Bool { sfs_hangup(fd) == 0 }

    /// True for a Unix 98 pseudo-terminal (character device majors 136-143): it has no UART,
    /// so no parity bit, and its TIOCOUTQ is always 0.
    public static func isPseudoTerminal(_ fd: CInt) -> Bool {
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFCHR else { return false }
        let device = UInt64(info.st_rdev)
        let major = ((device >> 8) & 0xFFF) | ((device >> 32) & ~UInt64(0xFFF))
        return (136...143).contains(major)
    }

    /// Bytes in the tty's output queue (TIOCOUTQ) of an open descriptor, nil if the driver cannot
    /// say. A pseudo-terminal always reports 0, which is why the forwarder also models the queue.
    public static func outputQueue(fd: CInt) -> Int? {
        let count = sfs_output_queue(fd)
        return count >= 0 ? Int(count) : nil
    }

    /// All c_cflag bits that `SerialSettings` controls apart from the rate.
    static let formatFlagsMask: tcflag_t =
        tcflag_t(CSIZE) | tcflag_t(PARENB) | tcflag_t(PARODD) | tcflag_t(CSTOPB) | tcflag_t(CRTSCTS)

    /// The CSIZE/PARENB/PARODD/CSTOPB/CRTSCTS bits that represent `settings`.
    static func expectedControlFlags(_ settings: SerialSettings) -> tcflag_t {
        var flags: tcflag_t
        switch settings.dataBits {
        case 5: flags = tcflag_t(CS5)
        case 6: flags = tcflag_t(CS6)
        case 7: flags = tcflag_t(CS7)
        default: flags = tcflag_t(CS8)
        }
        switch settings.parity {
        case .none: break
        case .even: flags |= tcflag_t(PARENB)
        case .odd: flags |= tcflag_t(PARENB) | tcflag_t(PARODD)
        }
        if settings.stopBits == 2 { flags |= tcflag_t(CSTOPB) }
        if settings.flowControl == .rtsCts { flags |= tcflag_t(CRTSCTS) }
        return flags
    }

    /// The `Bxxx` constant for rates the classic termios interface can express, so common rates
    /// go through the path every driver supports; nil means "needs BOTHER".
    static func standardSpeedConstant(for baudRate: Int) -> speed_t? {
        let constant: CInt
        switch baudRate {
        case 50: constant = B50
        case 75: constant = B75
        case 110: constant = B110
        case 134: constant = B134
        case 150: constant = B150
        case 200: constant = B200
        case 300: constant = B300
        case 600: constant = B600
        case 1200: constant = B1200
        case 1800: constant = B1800
        case 2400: constant = B2400
        case 4800: constant = B4800
        case 9600: constant = B9600
        case 19200: constant = B19200
        case 38400: constant = B38400
        case 57600: constant = B57600
        case 115_200: constant = B115200
        case 230_400: constant = B230400
        case 460_800: constant = B460800
        case 500_000: constant = B500000
        case 576_000: constant = B576000
        case 921_600: constant = B921600
        case 1_000_000: constant = B1000000
        case 1_152_000: constant = B1152000
        case 1_500_000: constant = B1500000
        case 2_000_000: constant = B2000000
        case 2_500_000: constant = B2500000
        case 3_000_000: constant = B3000000
        case 3_500_000: constant = B3500000
        case 4_000_000: constant = B4000000
        default: return nil
        }
        return speed_t(constant)
    }
}
