import Testing
import SerialPort

@Suite("SerialSettings.parse")
struct SerialSettingsParsingTests {
    @Test("accepted forms", arguments: [
        ("115200,8N1", SerialSettings(baudRate: 115_200, dataBits: 8, parity: .none, stopBits: 1)),
        ("9600,7E2", SerialSettings(baudRate: 9600, dataBits: 7, parity: .even, stopBits: 2)),
        ("250000,8O1", SerialSettings(baudRate: 250_000, dataBits: 8, parity: .odd, stopBits: 1)),
        ("115200", SerialSettings(baudRate: 115_200)),
        ("300,5n2", SerialSettings(baudRate: 300, dataBits: 5, parity: .none, stopBits: 2)),
        ("50,6e1", SerialSettings(baudRate: 50, dataBits: 6, parity: .even, stopBits: 1)),
        ("20000000,8o2", SerialSettings(baudRate: 20_000_000, dataBits: 8, parity: .odd, stopBits: 2)),
        ("  57600 , 8N1 ", SerialSettings(baudRate: 57600)),
        ("115200,8N1,rtscts", SerialSettings(baudRate: 115_200, flowControl: .rtsCts)),
        ("115200,RTSCTS", SerialSettings(baudRate: 115_200, flowControl: .rtsCts)),
    ])
    func accepted(spec: String, expected: SerialSettings) throws {
        #expect(try SerialSettings.parse(spec) == expected)
    }

    @Test("description parses back to the same value", arguments: [
        SerialSettings(),
        SerialSettings(baudRate: 9600, dataBits: 7, parity: .even, stopBits: 2),
        SerialSettings(baudRate: 12345, dataBits: 5, parity: .odd, stopBits: 1, flowControl: .rtsCts),
    ])
    func roundTrip(settings: SerialSettings) throws {
        #expect(try SerialSettings.parse(settings.description) == settings)
    }

    @Test("rejected forms name the bad part", arguments: [
        ("", "expected BAUD[,FORMAT][,rtscts]"),
        (" , ", "expected BAUD[,FORMAT][,rtscts]"),
        ("fast", "baud rate \"fast\" is not a whole number"),
        ("+9600", "is not a whole number"),
        ("-9600", "is not a whole number"),
        ("115200.5", "is not a whole number"),
        ("49", "baud rate must be 50 to 20000000"),
        ("0,8N1", "baud rate must be 50 to 20000000"),
        ("20000001", "baud rate must be 50 to 20000000"),
        ("99999999999999999999999", "baud rate must be 50 to 20000000"),
        ("115200,9N1", "data bits must be 5 to 8"),
        ("115200,4N1", "data bits must be 5 to 8"),
        ("115200,10N1", "data bits must be 5 to 8"),
        ("115200,8X1", "parity must be N, E or O"),
        ("115200,8M1", "parity must be N, E or O"),
        ("115200,8N3", "stop bits must be 1 or 2"),
        ("115200,8N0", "stop bits must be 1 or 2"),
        ("115200,8N1.5", "stop bits must be 1 or 2"),
        ("115200,8N", "format \"8N\" must be"),
        ("115200,81", "format \"81\" must be"),
        ("115200,N81", "unexpected \"N81\""),
        ("115200,8N1,8N1", "unexpected \"8N1\""),
        ("115200,rtscts,rtscts", "unexpected \"rtscts\""),
        ("115200,rtscts,8N1", "unexpected \"8N1\""),
        ("115200,8N1,xonxoff", "unexpected \"xonxoff\""),
    ])
    func rejected(spec: String, reason: String) {
        do {
            let settings = try SerialSettings.parse(spec)
            Issue.record("\"\(spec)\" parsed as \(settings)")
        } catch {
            let message = error.description
            #expect(message.hasPrefix("invalid serial settings \"\(spec)\": "), "\(message)")
            #expect(message.contains(reason), "\(message)")
            #expect(!message.contains("\n"))
            #expect(error.spec == spec)
        }
    }

    @Test("the example message from the CLI help")
    func exampleMessage() {
        #expect(throws: SerialSettingsError.invalidDataBits(spec: "115200,9N1", field: "9N1")) {
            try SerialSettings.parse("115200,9N1")
        }
        let error = SerialSettingsError.invalidDataBits(spec: "115200,9N1", field: "9N1")
        #expect(error.description == "invalid serial settings \"115200,9N1\": data bits must be 5 to 8")
    }

    @Test("validate catches values built in code")
    func validate() throws {
        try SerialSettings().validate()
        try SerialSettings(baudRate: 12345, dataBits: 5, parity: .odd, stopBits: 2).validate()
        #expect(throws: SerialSettingsError.self) { try SerialSettings(baudRate: 10).validate() }
        #expect(throws: SerialSettingsError.self) { try SerialSettings(dataBits: 9).validate() }
        #expect(throws: SerialSettingsError.self) { try SerialSettings(stopBits: 0).validate() }
    }

    @Test("bytes per second follows the character format")
    func bytesPerSecond() throws {
        #expect(try SerialSettings.parse("115200,8N1").bytesPerSecond == 11_520)
        #expect(try SerialSettings.parse("9600,7E2").bytesPerSecond == 872)
    }
}
