import Forwarding
import LinkCore
import SerialPort

/// A command-line value or combination that cannot be used, explained in one line.
///
/// The text is what the user reads after `socket2ser: error: `, so it names the problem and the
/// accepted range rather than echoing internals. ArgumentParser prints it through
/// `CustomStringConvertible` when a `transform` closure throws it, prefixed with the flag and value
/// ("The value '0' is invalid for '-port <port>': …"), which keeps every complaint on one line.
struct CommandLineError: Error, CustomStringConvertible, Equatable {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Parsers for the values of individual flags.
///
/// Each one is used as an ArgumentParser `transform`, so a bad value is rejected while parsing, with
/// the flag's name in the message, before anything is opened or bound.
enum ArgumentValues {
    /// Every rate a UART can plausibly be programmed to. The lower bound is the slowest classic
    /// teleprinter rate in `termios`; the upper bound is above the fastest USB adapters (FTDI
    /// FT4232H tops out at 12 Mbaud). Anything in between is allowed because `termios2` with
    /// `BOTHER` sets arbitrary rates.
    static let baudRates = SerialSettings.baudRateRange
    static let baudRateMessage = "a baud rate is a whole number from \(baudRates.lowerBound) to \(baudRates.upperBound)"

    /// TCP ports a connection can use; port 0 means "any port" to `bind` and is never a useful target.
    static let ports = 1...65_535

    /// Streams carried at once. The original was limited to 253; this rewrite accepts up to 32,767
    /// (the project's ceiling, the largest positive 16-bit value) so a configuration that would not
    /// fit a stream identifier is refused here instead of failing at run time.
    static let maxStreams = 1...32_767

    /// Verbosity of `-d`: 0 status and warnings, 1 connections, 2 link statistics, 3 hex trace of
    /// line bytes, 4 each frame decoded as well.
    static let debugLevels = 0...4

    static func port(_ text: String) throws -> Int {
        guard let value = Int(text), ports.contains(value) else {
            throw CommandLineError("a port is a number from 1 to 65535")
        }
        return value
    }

    static func baudRate(_ text: String) throws -> Int {
        guard let value = Int(text), baudRates.contains(value) else {
            throw CommandLineError(baudRateMessage)
        }
        return value
    }

    static func debugLevel(_ text: String) throws -> Int {
        guard let value = Int(text), debugLevels.contains(value) else {
            throw CommandLineError("the debug level is 0, 1, 2, 3 or 4")
        }
        return value
    }

    static func compression(_ text: String) throws -> CompressionMode {
        guard let mode = CompressionMode(rawValue: text) else {
            throw CommandLineError("compression is auto, off or always")
        }
        return mode
    }

    static func wire(_ text: String) throws -> WireMode {
        guard let mode = WireMode(rawValue: text) else {
            throw CommandLineError("the wire is socket2ser or legacy (the original socket2ser.py's protocol)")
        }
        return mode
    }

    static func maxStreams(_ text: String) throws -> Int {
        guard let value = Int(text), maxStreams.contains(value) else {
            throw CommandLineError("the stream limit is a number from 1 to 32767")
        }
        return value
    }

    static func dataBits(_ text: String) throws -> Int {
        guard let value = Int(text), (5...8).contains(value) else {
            throw CommandLineError("data bits are 5, 6, 7 or 8")
        }
        return value
    }

    static func stopBits(_ text: String) throws -> Int {
        guard let value = Int(text), value == 1 || value == 2 else {
            throw CommandLineError("stop bits are 1 or 2")
        }
        return value
    }

    static func parity(_ text: String) throws -> SerialSettings.Parity {
        switch text.lowercased() {
        case "none", "n": return .none
        case "even", "e": return .even
        case "odd", "o": return .odd
        default: throw CommandLineError("parity is none, even or odd")
        }
    }

    static func flowControl(_ text: String) throws -> SerialSettings.FlowControl {
        switch text.lowercased() {
        case "none": return .none
        case "rtscts", "rts/cts", "hardware": return .rtsCts
        default: throw CommandLineError("flow control is none or rtscts")
        }
    }

    /// Grace period in seconds. Zero is allowed (reset streams as soon as the line goes quiet);
    /// a day is a generous ceiling that still catches a value typed in milliseconds by mistake.
    static func gracePeriod(_ text: String) throws -> Double {
        guard let value = Double(text), value.isFinite, (0...86_400).contains(value) else {
            throw CommandLineError("the grace period is a number of seconds from 0 to 86400")
        }
        return value
    }

    /// Seconds a connection waits for the link; like the grace period, which caps it at run time.
    static func linkWait(_ text: String) throws -> Double {
        guard let value = Double(text), value.isFinite, (0...86_400).contains(value) else {
            throw CommandLineError("the link wait is a number of seconds from 0 to 86400")
        }
        return value
    }

    /// Connect timeout in seconds; it must be positive, or no connection could ever succeed.
    static func connectTimeout(_ text: String) throws -> Double {
        guard let value = Double(text), value.isFinite, value > 0, value <= 3_600 else {
            throw CommandLineError("the connect timeout is a number of seconds above 0 and at most 3600")
        }
        return value
    }

    /// A host name or address: anything non-empty without whitespace. Resolution happens at run
    /// time, where the resolver's own error is the clearest explanation.
    static func host(_ text: String) throws -> String {
        guard !text.isEmpty, !text.contains(where: \.isWhitespace) else {
            throw CommandLineError("a host is a name or an address such as 127.0.0.1")
        }
        return text
    }

    /// A path, a /dev/serial/by-id name, or a selector (usb:VID:PID[:SERIAL], serial=SERIAL),
    /// checked for form here and resolved when the device is opened.
    static func devicePath(_ text: String) throws -> String {
        guard !text.isEmpty else {
            throw CommandLineError("name the serial device, e.g. /dev/ttyUSB0 or usb:0403:6001")
        }
        do {
            _ = try DeviceSelector(parsing: text)
        } catch {
            throw CommandLineError(error.description)
        }
        return text
    }
}

/// Parses a `--serial` spec (or the config's `serial:`): a baud rate, optionally the character
/// format and `rtscts`, e.g. `115200`, `115200,8N1`, `9600,7e2`, `115200,8N1,rtscts`. The one
/// parser is `SerialSettings.parse`; this only words its error for the command line, and refuses
/// an empty field (`115200,`), which is a typo rather than a shorthand.
func parseSerialSpec(_ spec: String) throws -> SerialSettings {
    let usage = "a serial spec is BAUD[,FORMAT][,rtscts] such as 115200,8N1 (data bits 5-8, parity N/E/O, stop bits 1/2)"
    guard !spec.split(separator: ",", omittingEmptySubsequences: false).contains(where: { $0.isEmpty }) else {
        throw CommandLineError(usage)
    }
    do {
        return try SerialSettings.parse(spec)
    } catch .baudRateOutOfRange {
        throw CommandLineError(ArgumentValues.baudRateMessage)
    } catch {
        throw CommandLineError("\(usage): \(error.reason)")
    }
}
