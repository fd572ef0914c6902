import Glibc
import Testing
import CSerialShim
@testable import SerialPort

@Suite("SerialPort on pseudo-terminals")
struct SerialPortTests {
    // MARK: Opening and settings

    @Test("standard and non-standard rates are applied", arguments: [115_200, 9600, 4_000_000, 250_000, 12345, 31250])
    func baudRates(rate: Int) throws {
        let pty = try PseudoTerminal()
        let port = try SerialPort.open(path: pty.path, settings: SerialSettings(baudRate: rate))
        // On Linux a pty keeps whatever rate it is given (there is no hardware to round it),
        // so the read-back is exact for both the Bxxx and the BOTHER paths.
        #expect(sfs_get_baud(port.fileDescriptor) == rate)
        #expect(port.currentBaudRate() == rate)
        #expect(port.path == pty.path)
        #expect(port.settings.baudRate == rate)
    }

    @Test("only rates with a B constant take the classic path")
    func standardSpeedTable() {
        #expect(SerialPort.standardSpeedConstant(for: 115_200) == speed_t(B115200))
        #expect(SerialPort.standardSpeedConstant(for: 50) == speed_t(B50))
        #expect(SerialPort.standardSpeedConstant(for: 4_000_000) == speed_t(B4000000))
        #expect(SerialPort.standardSpeedConstant(for: 250_000) == nil)
        #expect(SerialPort.standardSpeedConstant(for: 12345) == nil)
    }

    /// Current Linux ptys force CS8 and clear PARENB (keeping CSTOPB and CRTSCTS), so what a
    /// pty can do is probed first with plain termios calls, then `SerialPort` must agree: apply
    /// and verify what the pty keeps, refuse what it would silently drop, and leave out parity
    /// on 8 data bits, which a pty cannot have.
    @Test("character format and flow control reach the tty, or are refused if the tty drops them", arguments: [
        "115200,8N1", "115200,8N2", "115200,8N1,rtscts", "12345,8N2,rtscts",
        "9600,7E2", "250000,8O1", "300,5O2", "12345,6E1", "115200,7N1", "115200,8E1",
    ])
    func characterFormat(spec: String) throws {
        let settings = try SerialSettings.parse(spec)
        // A pty has no parity bit to carry: with 8 data bits, parity is moot there, so the port
        // opens without it (the legacy wire asks for 8E1) instead of being refused.
        var line = settings
        if settings.dataBits == 8 { line.parity = .none }
        let expected = SerialPort.expectedControlFlags(line)
        let ptyKeepsFormat = try PseudoTerminal().keeps(controlFlags: expected, mask: SerialPort.formatFlagsMask)

        let pty = try PseudoTerminal()
        guard ptyKeepsFormat else {
            do {
                _ = try SerialPort.open(path: pty.path, settings: settings)
                Issue.record("\(spec) was accepted although the pty drops it")
            } catch let error as SerialPortError {
                guard case .unsupportedSettings(pty.path, settings, _) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
            }
            return
        }

        let port = try SerialPort.open(path: pty.path, settings: settings)
        // Read through our own slave descriptor: same tty, so this is what the kernel holds.
        var tio = termios()
        #expect(tcgetattr(pty.slave, &tio) == 0)
        let size = tio.c_cflag & tcflag_t(CSIZE)
        let expectedSize = [5: CS5, 6: CS6, 7: CS7, 8: CS8][settings.dataBits].map { tcflag_t($0) }
        #expect(size == expectedSize)
        #expect((tio.c_cflag & tcflag_t(PARENB) != 0) == (line.parity != .none))
        #expect((tio.c_cflag & tcflag_t(CSTOPB) != 0) == (settings.stopBits == 2))
        #expect((tio.c_cflag & tcflag_t(CRTSCTS) != 0) == (settings.flowControl == .rtsCts))
        #expect(tio.c_cflag & tcflag_t(CLOCAL) != 0)
        #expect(tio.c_cflag & tcflag_t(CREAD) != 0)
        #expect(port.currentBaudRate() == settings.baudRate)
    }

    @Test("this kernel's ptys keep 8N2 and RTS/CTS, so the common settings work on a virtual cable")
    func ptyCapabilities() throws {
        let pty = try PseudoTerminal()
        let flags = tcflag_t(CS8) | tcflag_t(CSTOPB) | tcflag_t(CRTSCTS)
        #expect(try pty.keeps(controlFlags: flags, mask: SerialPort.formatFlagsMask))
    }

    @Test("settings map to the right c_cflag bits", arguments: [
        ("115200,8N1", tcflag_t(CS8)),
        ("9600,7E2", tcflag_t(CS7) | tcflag_t(PARENB) | tcflag_t(CSTOPB)),
        ("250000,8O1", tcflag_t(CS8) | tcflag_t(PARENB) | tcflag_t(PARODD)),
        ("300,5O2", tcflag_t(CS5) | tcflag_t(PARENB) | tcflag_t(PARODD) | tcflag_t(CSTOPB)),
        ("12345,6E1,rtscts", tcflag_t(CS6) | tcflag_t(PARENB) | tcflag_t(CRTSCTS)),
    ])
    func controlFlags(spec: String, flags: tcflag_t) throws {
        let settings = try SerialSettings.parse(spec)
        #expect(SerialPort.expectedControlFlags(settings) == flags)
        #expect(flags & ~SerialPort.formatFlagsMask == 0)
    }

    @Test("raw mode undoes a cooked line discipline")
    func rawMode() throws {
        let pty = try PseudoTerminal()
        try cook(pty.slave)

        let port = try SerialPort.open(path: pty.path, settings: SerialSettings())
        var tio = termios()
        #expect(tcgetattr(port.fileDescriptor, &tio) == 0)
        let lflagsOff = tcflag_t(ICANON) | tcflag_t(ECHO) | tcflag_t(ECHONL) | tcflag_t(ISIG) | tcflag_t(IEXTEN)
        let iflagsOff = tcflag_t(ICRNL) | tcflag_t(INLCR) | tcflag_t(IGNCR) | tcflag_t(IXON) | tcflag_t(IXOFF)
            | tcflag_t(IXANY) | tcflag_t(ISTRIP) | tcflag_t(BRKINT) | tcflag_t(PARMRK)
        #expect(tio.c_lflag & lflagsOff == 0)
        #expect(tio.c_iflag & iflagsOff == 0)
        #expect(tio.c_oflag & tcflag_t(OPOST) == 0)
        let (vmin, vtime) = withUnsafeBytes(of: tio.c_cc) { ($0[Int(VMIN)], $0[Int(VTIME)]) }
        #expect(vmin == 1)
        #expect(vtime == 0)
    }

    @Test("the descriptor is non-blocking and close-on-exec")
    func descriptorFlags() throws {
        let pty = try PseudoTerminal()
        let port = try SerialPort.open(path: pty.path, settings: SerialSettings())
        #expect(fcntl(port.fileDescriptor, F_GETFL) & O_NONBLOCK != 0)
        #expect(fcntl(port.fileDescriptor, F_GETFD) & FD_CLOEXEC != 0)
    }

    // MARK: Data

    @Test("every byte value passes unchanged in both directions")
    func bytesFlowBothWays() throws {
        let pty = try PseudoTerminal()
        // Start from a cooked tty so CR/LF translation, XON/XOFF or echo would show up here.
        try cook(pty.slave)
        let port = try SerialPort.open(path: pty.path, settings: SerialSettings(baudRate: 250_000))
        let allBytes = (0...255).map { UInt8($0) } + Array("\r\n\u{11}\u{13}\u{03}\u{04}".utf8)

        #expect(writeAll(allBytes, to: port.fileDescriptor))
        #expect(readBytes(from: pty.master, count: allBytes.count) == allBytes)

        #expect(writeAll(allBytes, to: pty.master))
        #expect(readBytes(from: port.fileDescriptor, count: allBytes.count) == allBytes)
    }

    @Test("input that arrived before open is discarded")
    func staleInputIsFlushed() throws {
        let pty = try PseudoTerminal()
        let stale = Array("boot messages from before we owned the line".utf8)
        #expect(writeAll(stale, to: pty.master))
        // Wait until the stale bytes have really reached the slave's input queue.
        #expect(waitFor(Int16(POLLIN), on: pty.slave, until: .now + .seconds(5)))

        let port = try SerialPort.open(path: pty.path, settings: SerialSettings())
        #expect(sfs_input_queue(port.fileDescriptor) == 0)
        let fresh = Array("fresh".utf8)
        #expect(writeAll(fresh, to: pty.master))
        #expect(readBytes(from: port.fileDescriptor, count: fresh.count) == fresh)
    }

    @Test("outputQueueBytes reports a count while open and nil after close")
    func outputQueue() throws {
        let pty = try PseudoTerminal()
        let port = try SerialPort.open(path: pty.path, settings: SerialSettings())
        let queued = try #require(port.outputQueueBytes())
        #expect(queued >= 0)
        port.close()
        #expect(port.outputQueueBytes() == nil)
        #expect(port.currentBaudRate() == nil)
    }

    @Test("a vanished far end is reported as device gone")
    func deviceGone() throws {
        let pty = try PseudoTerminal()
        let port = try SerialPort.open(path: pty.path, settings: SerialSettings())
        pty.closeMaster()

        let n = write(port.fileDescriptor, "x", 1)
        let code = errno
        #expect(n == -1)
        #expect(SerialPort.isDeviceGone(errno: code), "errno \(code)")
        // A hung-up tty reads as end of file, not as an error.
        var byte: UInt8 = 0
        #expect(read(port.fileDescriptor, &byte, 1) == 0)
        #expect(SerialPort.isDeviceGone(errno: ENXIO))
        #expect(SerialPort.isDeviceGone(errno: ENODEV))
        #expect(!SerialPort.isDeviceGone(errno: EAGAIN))
        #expect(!SerialPort.isDeviceGone(errno: EINTR))
    }

    // MARK: Exclusive use and ownership

    @Test("a second open of the same device is refused as busy")
    func busy() throws {
        let pty = try PseudoTerminal()
        let first = try SerialPort.open(path: pty.path, settings: SerialSettings())
        #expect(throws: SerialPortError.busy(path: pty.path)) {
            try SerialPort.open(path: pty.path, settings: SerialSettings())
        }
        first.close()
        // The claim ends with the descriptor.
        let second = try SerialPort.open(path: pty.path, settings: SerialSettings())
        #expect(second.isOpen)
    }

    /// TIOCGEXCL is `_IOR('T', 0x40, int)`, a macro Swift cannot import.
    private static let getExclusive: UInt = 0x8004_5440

    private func isExclusive(_ fd: CInt) -> Bool? {
        var flag: CInt = 0
        return ioctl(fd, Self.getExclusive, &flag) == 0 ? flag != 0 : nil
    }

    @Test("the tty is exclusive while open and not after close, even if others keep it open")
    func exclusiveFlag() throws {
        let pty = try PseudoTerminal()
        #expect(isExclusive(pty.slave) == false)
        let port = try SerialPort.open(path: pty.path, settings: SerialSettings())
        #expect(isExclusive(pty.slave) == true)
        port.close()
        // pty.slave is still open, so the tty lives on; the flag must not.
        #expect(isExclusive(pty.slave) == false)

        let taken = try SerialPort.open(path: pty.path, settings: SerialSettings()).takeFileDescriptor()
        #expect(isExclusive(pty.slave) == true)
        SerialPort.releaseExclusiveUse(fileDescriptor: taken)
        _ = close(taken)
        #expect(isExclusive(pty.slave) == false)
    }

    @Test("close is idempotent and deinit releases the device")
    func closeTwice() throws {
        let pty = try PseudoTerminal()
        do {
            let port = try SerialPort.open(path: pty.path, settings: SerialSettings())
            #expect(port.isOpen)
            port.close()
            port.close()
            #expect(!port.isOpen)
        }
        do {
            _ = try SerialPort.open(path: pty.path, settings: SerialSettings())
            // Dropped here without close(): deinit must release the lock.
        }
        let again = try SerialPort.open(path: pty.path, settings: SerialSettings())
        #expect(again.isOpen)
    }

    @Test("takeFileDescriptor hands over ownership together with the lock")
    func takeOwnership() throws {
        let pty = try PseudoTerminal()
        var port: SerialPort? = try SerialPort.open(path: pty.path, settings: SerialSettings())
        let fd = try #require(port).takeFileDescriptor()
        #expect(port?.isOpen == false)
        port?.close()
        port = nil

        // Still open and still holding the device after the SerialPort object is gone.
        #expect(fcntl(fd, F_GETFD) != -1)
        #expect(throws: SerialPortError.busy(path: pty.path)) {
            try SerialPort.open(path: pty.path, settings: SerialSettings())
        }
        let bytes = Array("owned elsewhere".utf8)
        #expect(writeAll(bytes, to: fd))
        #expect(readBytes(from: pty.master, count: bytes.count) == bytes)

        _ = close(fd)
        _ = try SerialPort.open(path: pty.path, settings: SerialSettings())
    }

    // MARK: Errors

    @Test("a missing path is reported as no such device")
    func missingDevice() {
        let path = "/dev/serialport-test-does-not-exist"
        #expect(throws: SerialPortError.noSuchDevice(path: path)) {
            try SerialPort.open(path: path, settings: SerialSettings())
        }
    }

    @Test("things that are not terminals are refused")
    func notATerminal() throws {
        let file = try TemporaryFile()
        for path in [file.path, "/dev/null", "/tmp"] {
            #expect(throws: SerialPortError.notATerminal(path: path)) {
                try SerialPort.open(path: path, settings: SerialSettings())
            }
        }
    }

    @Test("invalid settings are refused before the driver sees them")
    func invalidSettings() throws {
        let pty = try PseudoTerminal()
        let settings = SerialSettings(dataBits: 9)
        do {
            _ = try SerialPort.open(path: pty.path, settings: settings)
            Issue.record("9 data bits were accepted")
        } catch let error as SerialPortError {
            guard case .unsupportedSettings(let path, let rejected, let reason) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(path == pty.path)
            #expect(rejected == settings)
            #expect(reason == "data bits must be 5 to 8")
        }
    }

    @Test("every message is one line that starts with the path", arguments: [
        SerialPortError.noSuchDevice(path: "/dev/ttyUSB0"),
        .permissionDenied(path: "/dev/ttyUSB0"),
        .busy(path: "/dev/ttyUSB0"),
        .notATerminal(path: "/dev/ttyUSB0"),
        .unsupportedSettings(path: "/dev/ttyUSB0", settings: SerialSettings(baudRate: 12345),
                             reason: "Invalid argument"),
        .system(path: "/dev/ttyUSB0", operation: "tcflush", errno: EIO),
    ])
    func messages(error: SerialPortError) {
        #expect(error.description.hasPrefix("/dev/ttyUSB0: "))
        #expect(!error.description.contains("\n"))
        #expect(error.path == "/dev/ttyUSB0")
    }

    @Test("messages say what to do")
    func messageContent() {
        #expect(SerialPortError.noSuchDevice(path: "/dev/ttyUSB0").description.hasPrefix("/dev/ttyUSB0: no such device"))
        #expect(SerialPortError.permissionDenied(path: "/dev/ttyS0").description.contains("dialout"))
        #expect(SerialPortError.busy(path: "/dev/ttyS0").description.contains("is in use by another process"))
        #expect(SerialPortError.system(path: "/dev/ttyS0", operation: "tcflush", errno: EIO).description
            == "/dev/ttyS0: tcflush failed: Input/output error (errno 5)")
        #expect(SerialPortError.fromOpen(path: "p", errno: EACCES) == .permissionDenied(path: "p"))
        #expect(SerialPortError.fromOpen(path: "p", errno: EPERM) == .permissionDenied(path: "p"))
        #expect(SerialPortError.fromOpen(path: "p", errno: EBUSY) == .busy(path: "p"))
        #expect(SerialPortError.fromOpen(path: "p", errno: ENXIO) == .noSuchDevice(path: "p"))
        #expect(SerialPortError.fromOpen(path: "p", errno: ELOOP) == .system(path: "p", operation: "open", errno: ELOOP))
    }
}

/// Puts a tty into the line discipline a fresh terminal has (canonical, echo, CR/LF mapping,
/// XON/XOFF), so a test can prove `SerialPort.open` really switches all of that off.
private func cook(_ fd: CInt) throws {
    var tio = termios()
    guard tcgetattr(fd, &tio) == 0 else { throw PseudoTerminal.Failure(operation: "tcgetattr", errno: errno) }
    tio.c_iflag |= tcflag_t(ICRNL) | tcflag_t(IXON) | tcflag_t(IXOFF) | tcflag_t(BRKINT)
    tio.c_oflag |= tcflag_t(OPOST) | tcflag_t(ONLCR)
    tio.c_lflag |= tcflag_t(ICANON) | tcflag_t(ECHO) | tcflag_t(ISIG) | tcflag_t(IEXTEN)
    guard tcsetattr(fd, TCSANOW, &tio) == 0 else { throw PseudoTerminal.Failure(operation: "tcsetattr", errno: errno) }
}
