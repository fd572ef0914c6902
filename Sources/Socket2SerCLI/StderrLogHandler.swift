#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Forwarding
import Logging

/// Writes one line per log event to standard error:
/// `2025-01-31T12:00:00.123Z socket2ser info: message key=value`.
///
/// The tool's own handler rather than swift-log's `StreamLogHandler` so the format stays stable for
/// people grepping traces, and so the level comes straight from `-d` without bootstrapping the
/// process-wide `LoggingSystem` (which may happen only once and would get in the way of tests).
struct StderrLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, logLevel: Logger.Level) {
        self.label = label
        self.logLevel = logLevel
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// The swift-log level each `-d` verbosity enables: 0 → notice (what the end does, the link
    /// going up and down, warnings and errors), 1 → info (each connection), 2 → debug (link
    /// statistics), 3 → trace (a hex dump of every byte on the line and the sockets), 4 → trace
    /// with each frame decoded as well (the runtime reads the level from its configuration).
    static func logLevel(forVerbosity verbosity: Int) -> Logger.Level {
        switch verbosity {
        case ...0: return .notice
        case 1: return .info
        case 2: return .debug
        default: return .trace
        }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }

        var line = "\(Self.timestamp()) \(label) \(event.level): \(event.message)"
        // The event kind is for the dashboard's log; the line itself already says it.
        merged[Forwarding.ActivityKind.metadataKey] = nil
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            // Quoted when it contains a space, so `key=value` pairs stay unambiguous for grep and awk.
            let text = "\(value)"
            line += text.contains(" ") ? " \(key)=\"\(text)\"" : " \(key)=\(text)"
        }
        if let error = event.error {
            line += " error=\(String(describing: error))"
        }
        line += "\n"
        StandardError.write(line)
    }

    /// UTC, millisecond resolution: enough to line up a frame trace from both ends of the cable.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let millis = Int(now.tv_nsec) / 1_000_000
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
            + "T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))"
            + ".\(pad(Int32(millis), 3))Z"
    }
}

/// Direct writes to file descriptor 2.
///
/// Used instead of `print` to stderr through `FileHandle` so a line goes out in a single `write(2)`:
/// lines from concurrent loggers then do not interleave (a write to a pipe is atomic up to
/// PIPE_BUF), and nothing is left in a buffer when the process calls `exit`.
enum StandardError {
    static func write(_ text: String) {
        var text = text
        text.withUTF8 { bytes in
            guard var next = bytes.baseAddress else { return }
            var remaining = bytes.count
            while remaining > 0 {
                let written = systemWrite(2, next, remaining)
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                next += written
                remaining -= written
            }
        }
    }

    private static func systemWrite(_ fd: Int32, _ buffer: UnsafePointer<UInt8>, _ count: Int) -> Int {
        #if canImport(Glibc)
        return Glibc.write(fd, buffer, count)
        #else
        return Darwin.write(fd, buffer, count)
        #endif
    }
}
