#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Known habits of serial adapters that cost the link, found in sysfs when a device is opened,
/// each with what was done or the fix.
public enum AdapterQuirks {
    public struct Finding: Sendable, Equatable {
        /// Whether the user must act (a warning) or it was dealt with (a notice).
        public var needsAction: Bool
        public var message: String
    }

    /// FTDI chips (ftdi_sio) hold received bytes up to `latency_timer` ms (16 by default) before
    /// sending a short USB packet, so every small read (an acknowledgement, a keystroke) waits
    /// that long. It is set to 1 ms when this process may write it; otherwise the fix is given.
    public static func checkLatencyTimer(device path: String, sysRoot: String = "/sys") -> Finding? {
        guard let name = ttyName(of: path) else { return nil }
        let file = "\(sysRoot)/class/tty/\(name)/device/latency_timer"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8),
              let value = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), value > 1 else { return nil }
        if (try? "1".write(toFile: file, atomically: false, encoding: .utf8)) != nil,
           (try? String(contentsOfFile: file, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == "1" {
            return Finding(needsAction: false, message: """
                \(path): FTDI latency_timer was \(value) ms (each small read waited up to \(value) ms); set to 1 ms
                """)
        }
        return Finding(needsAction: true, message: """
            \(path): FTDI latency_timer is \(value) ms, so each small read waits up to \(value) ms; \
            set it to 1 as root (echo 1 > \(file)) or with a udev rule (ATTR{latency_timer}="1")
            """)
    }

    /// The name under /sys/class/tty of the device `path` leads to (ttyUSB0 for
    /// /dev/serial/by-id/usb-FTDI_...); nil for a pty or a path that does not exist.
    static func ttyName(of path: String) -> String? {
        guard let real = realpath(path, nil) else { return nil }
        defer { free(real) }
        let resolved = String(cString: real)
        guard !resolved.contains("/pts/") else { return nil }
        return (resolved as NSString).lastPathComponent
    }
}
