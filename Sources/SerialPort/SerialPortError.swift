import Glibc

/// Why a serial device could not be opened or configured.
///
/// Every `description` is a single line that starts with the device path, because it is shown
/// as-is to the person at the terminal and usually points at something they must fix outside
/// this program (plug the adapter in, join a group, quit minicom).
public enum SerialPortError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The path does not exist, or the node exists but its hardware is gone (ENOENT, ENXIO, ENODEV).
    case noSuchDevice(path: String)
    /// EACCES or EPERM: on most distributions serial devices belong to the `dialout` group.
    case permissionDenied(path: String)
    /// Another process holds the device: its `flock` (taken by every `SerialPort`) or TIOCEXCL
    /// made our open fail with EWOULDBLOCK or EBUSY.
    case busy(path: String)
    /// The path opened but is not a terminal (a regular file, /dev/null, a directory), so it
    /// cannot be a serial line and termios calls would fail or be meaningless.
    case notATerminal(path: String)
    /// The settings are invalid, or the driver refused them or silently applied different ones.
    case unsupportedSettings(path: String, settings: SerialSettings, reason: String)
    /// Any other failure of a system call, with its errno.
    case system(path: String, operation: String, errno: CInt)
    /// A selector (`usb:VID:PID`, `serial=...`) matched no device, or more than one.
    case unresolved(selector: String, reason: String)

    /// The device path the error is about.
    public var path: String {
        switch self {
        case .noSuchDevice(let path), .permissionDenied(let path), .busy(let path), .notATerminal(let path),
             .unsupportedSettings(let path, _, _), .system(let path, _, _), .unresolved(let path, _):
            return path
        }
    }

    public var description: String {
        switch self {
        case .noSuchDevice(let path):
            return "\(path): no such device (is the adapter plugged in?)"
        case .permissionDenied(let path):
            return "\(path): permission denied (add your user to the dialout group, then log in again)"
        case .busy(let path):
            return "\(path): device is in use by another process"
        case .notATerminal(let path):
            return "\(path): not a serial device (not a terminal)"
        case .unsupportedSettings(let path, let settings, let reason):
            return "\(path): settings \(settings) not supported: \(reason)"
        case .system(let path, let operation, let errno):
            return "\(path): \(operation) failed: \(SerialPortError.message(for: errno)) (errno \(errno))"
        case .unresolved(let selector, let reason):
            return "\(selector): \(reason)"
        }
    }

    /// `strerror` text; `strerror` itself is not thread-safe, so copy the result immediately.
    static func message(for errno: CInt) -> String {
        guard let text = strerror(errno) else { return "unknown error" }
        return String(cString: text)
    }

    /// Maps the errno of a failed `open(2)` to the case a user can act on.
    static func fromOpen(path: String, errno: CInt) -> SerialPortError {
        switch errno {
        case ENOENT, ENXIO, ENODEV: return .noSuchDevice(path: path)
        case EACCES, EPERM: return .permissionDenied(path: path)
        case EBUSY: return .busy(path: path)
        case EISDIR: return .notATerminal(path: path)
        default: return .system(path: path, operation: "open", errno: errno)
        }
    }
}
