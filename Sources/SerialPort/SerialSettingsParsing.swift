/// Why a serial-settings string (or a hand-built `SerialSettings`) was rejected.
///
/// Every case carries the text the user typed so the message can quote it back: a user who wrote
/// `115200,9N1` in a config file should see exactly that string next to the reason.
public enum SerialSettingsError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Nothing but whitespace or separators.
    case empty(spec: String)
    /// The baud-rate field is not a whole decimal number.
    case invalidBaudRate(spec: String, field: String)
    /// The baud rate is a number outside `SerialSettings.baudRateRange`.
    case baudRateOutOfRange(spec: String, baudRate: Int)
    /// The character-format field does not have the shape `<data bits><parity><stop bits>`.
    case invalidFormat(spec: String, field: String)
    /// Data bits outside 5...8.
    case invalidDataBits(spec: String, field: String)
    /// Parity letter other than N, E or O (mark and space parity are not supported).
    case invalidParity(spec: String, field: String)
    /// Stop bits other than 1 or 2 (1.5 is not supported).
    case invalidStopBits(spec: String, field: String)
    /// A field that is neither a format nor a flow-control keyword, or one given twice.
    case unexpectedField(spec: String, field: String)

    /// The text that was rejected.
    public var spec: String {
        switch self {
        case .empty(let spec), .invalidBaudRate(let spec, _), .baudRateOutOfRange(let spec, _),
             .invalidFormat(let spec, _), .invalidDataBits(let spec, _), .invalidParity(let spec, _),
             .invalidStopBits(let spec, _), .unexpectedField(let spec, _):
            return spec
        }
    }

    /// Only the reason, without the quoted spec.
    public var reason: String {
        let range = SerialSettings.baudRateRange
        switch self {
        case .empty:
            return "expected BAUD[,FORMAT][,rtscts], e.g. 115200,8N1"
        case .invalidBaudRate(_, let field):
            return "baud rate \"\(field)\" is not a whole number"
        case .baudRateOutOfRange:
            return "baud rate must be \(range.lowerBound) to \(range.upperBound)"
        case .invalidFormat(_, let field):
            return "format \"\(field)\" must be data bits, parity and stop bits, e.g. 8N1"
        case .invalidDataBits:
            return "data bits must be 5 to 8"
        case .invalidParity:
            return "parity must be N, E or O"
        case .invalidStopBits:
            return "stop bits must be 1 or 2"
        case .unexpectedField(_, let field):
            return "unexpected \"\(field)\"; expected BAUD[,FORMAT][,rtscts], e.g. 115200,8N1"
        }
    }

    public var description: String { "invalid serial settings \"\(spec)\": \(reason)" }
}

extension SerialSettings {
    /// Baud rates accepted by `parse` and `validate`. The floor is the slowest rate any UART
    /// driver offers; the ceiling is above the fastest USB adapters (12 Mbaud FTDI parts) so a
    /// typo like an extra zero is still caught rather than handed to the driver.
    public static let baudRateRange: ClosedRange<Int> = 50...20_000_000

    /// Parses the command-line form `BAUD[,FORMAT][,rtscts]`.
    ///
    /// Examples: `115200` (8N1, no flow control), `9600,7E2`, `250000,8O1`, `115200,8N1,rtscts`.
    /// FORMAT is data bits (5-8), parity letter (N/E/O, either case) and stop bits (1 or 2).
    /// Whitespace may stand in for a comma, so the output of `description`
    /// (`115200,8N1 rtscts`) parses back to the same value.
    public static func parse(_ spec: String) throws(SerialSettingsError) -> SerialSettings {
        let fields = spec.split(whereSeparator: { $0 == "," || $0.isWhitespace }).map(String.init)
        guard let baudField = fields.first else { throw .empty(spec: spec) }

        // Only plain ASCII digits: `Int("+9600")` would succeed, and so would other oddities a
        // user never meant as a rate.
        guard baudField.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw .invalidBaudRate(spec: spec, field: baudField)
        }
        // All digits but too long for Int is simply far out of range.
        let baudRate = Int(baudField) ?? Int.max
        guard baudRateRange.contains(baudRate) else {
            throw .baudRateOutOfRange(spec: spec, baudRate: baudRate)
        }

        var settings = SerialSettings(baudRate: baudRate)
        var sawFlowControl = false
        for (index, field) in fields.enumerated().dropFirst() {
            if field.lowercased() == "rtscts", !sawFlowControl {
                settings.flowControl = .rtsCts
                sawFlowControl = true
            } else if index == 1, field.first?.isNumber == true {
                // The format must directly follow the rate, as in every terminal program; this
                // also rejects a second format.
                try parseFormat(field, spec: spec, into: &settings)
            } else {
                throw .unexpectedField(spec: spec, field: field)
            }
        }
        return settings
    }

    /// Splits `8N1` into its three parts. Each part gets its own error so the message names
    /// exactly what is wrong ("data bits must be 5 to 8" for `9N1`).
    private static func parseFormat(_ field: String, spec: String,
                                     into settings: inout SerialSettings) throws(SerialSettingsError) {
        guard let parityIndex = field.firstIndex(where: { !$0.isNumber }) else {
            throw .invalidFormat(spec: spec, field: field)
        }
        let dataText = field[..<parityIndex]
        let parityLetter = field[parityIndex]
        let stopText = field[field.index(after: parityIndex)...]
        guard !dataText.isEmpty, !stopText.isEmpty, parityLetter.isLetter else {
            throw .invalidFormat(spec: spec, field: field)
        }

        guard let dataBits = Int(dataText), (5...8).contains(dataBits) else {
            throw .invalidDataBits(spec: spec, field: field)
        }
        switch parityLetter {
        case "N", "n": settings.parity = .none
        case "E", "e": settings.parity = .even
        case "O", "o": settings.parity = .odd
        default: throw .invalidParity(spec: spec, field: field)
        }
        guard stopText.allSatisfy({ $0.isASCII && $0.isNumber }), let stopBits = Int(stopText),
              stopBits == 1 || stopBits == 2 else {
            throw .invalidStopBits(spec: spec, field: field)
        }
        settings.dataBits = dataBits
        settings.stopBits = stopBits
    }

    /// Checks a value built in code (not parsed) before it reaches the driver, with the same
    /// messages `parse` gives. `SerialPort.open` calls this so a bad value fails with a clear
    /// reason instead of whatever the driver happens to do with, say, 9 data bits.
    public func validate() throws(SerialSettingsError) {
        let spec = description
        guard Self.baudRateRange.contains(baudRate) else {
            throw .baudRateOutOfRange(spec: spec, baudRate: baudRate)
        }
        guard (5...8).contains(dataBits) else { throw .invalidDataBits(spec: spec, field: String(dataBits)) }
        guard stopBits == 1 || stopBits == 2 else { throw .invalidStopBits(spec: spec, field: String(stopBits)) }
    }
}
