import LinkCore
import Forwarding
import SerialPort
import Testing
@testable import Socket2SerCLI

/// The command line as socket2ser.py users type it, and the conventional spellings beside it.
/// Everything here parses only: nothing is opened, bound or run.
@Suite("Parsing")
struct ParsingTests {
    @Test("The original's S form, single-dash flags as written")
    func originalServerForm() throws {
        let configuration = try Socket2Ser.configuration(
            for: ["S", "-ip", "10.0.0.5", "-port", "22", "-com", "/dev/ttyUSB0", "-baudrate", "57600", "-d", "2"])
        #expect(configuration.role == .server(targetHost: "10.0.0.5", targetPort: 22))
        #expect(configuration.devicePath == "/dev/ttyUSB0")
        #expect(configuration.serial.baudRate == 57_600)
        #expect(configuration.verbosity == 2)
    }

    @Test("The original's C form listens on loopback")
    func originalClientForm() throws {
        let configuration = try Socket2Ser.configuration(for: ["C", "-port", "2222", "-com", "/dev/ttyS0"])
        #expect(configuration.role == .client(bindHost: "127.0.0.1", port: 2222))
        #expect(configuration.devicePath == "/dev/ttyS0")
    }

    @Test("Defaults: localhost target, 115200 8N1, 4096 streams, 30 s grace, 5 s connect timeout, quiet")
    func defaults() throws {
        let configuration = try Socket2Ser.configuration(for: ["S", "-port", "22", "-com", "/dev/ttyUSB0"])
        #expect(configuration.role == .server(targetHost: "localhost", targetPort: 22))
        #expect(configuration.serial == SerialSettings(baudRate: 115_200, dataBits: 8, parity: .none, stopBits: 1,
                                                       flowControl: .none))
        #expect(configuration.maxStreams == 4096)
        #expect(configuration.gracePeriodSeconds == 30)
        #expect(configuration.connectTimeoutSeconds == 5)
        #expect(configuration.verbosity == 0)
    }

    @Test("Double-dash spellings and --baud")
    func doubleDashForms() throws {
        let server = try Socket2Ser.configuration(
            for: ["S", "--ip", "db.local", "--port", "5432", "--com", "/dev/ttyACM0", "--baudrate", "230400",
                  "--debug", "3"])
        #expect(server.role == .server(targetHost: "db.local", targetPort: 5432))
        #expect(server.devicePath == "/dev/ttyACM0")
        #expect(server.serial.baudRate == 230_400)
        #expect(server.verbosity == 3)

        let client = try Socket2Ser.configuration(for: ["C", "--port", "80", "--com", "/dev/ttyS1", "--baud", "9600"])
        #expect(client.serial.baudRate == 9600)
    }

    @Test("Lowercase mode aliases", arguments: [("s", true), ("c", false)])
    func lowercaseModes(mode: String, isServer: Bool) throws {
        let command = try Socket2Ser.parseCommand([mode, "-port", "22", "-com", "/dev/ttyUSB0"])
        #expect((command is ServerCommand) == isServer)
        #expect((command is ClientCommand) == !isServer)
    }

    @Test("The mode may come after the options, as in socket2ser.py's usage line")
    func modeAtTheEnd() throws {
        let configuration = try Socket2Ser.configuration(for: ["-port", "22", "-com", "/dev/ttyUSB0", "-d", "1", "S"])
        #expect(configuration.role == .server(targetHost: "localhost", targetPort: 22))
        #expect(configuration.verbosity == 1)
    }

    @Test("A device literally named S is not mistaken for the mode")
    func modeLetterAsAValue() throws {
        let configuration = try Socket2Ser.configuration(for: ["-com", "S", "-port", "22", "C"])
        #expect(configuration.role == .client(bindHost: "127.0.0.1", port: 22))
        #expect(configuration.devicePath == "S")
    }

    @Test("-d3 is read as -d 3, as argparse does")
    func attachedDebugLevel() throws {
        let configuration = try Socket2Ser.configuration(for: ["S", "-port", "22", "-com", "/dev/x", "-d3"])
        #expect(configuration.verbosity == 3)
    }

    @Test("--bind, --connect-timeout, --max-streams, --grace, --flow")
    func newOptions() throws {
        let client = try Socket2Ser.configuration(
            for: ["C", "-port", "2222", "-com", "/dev/x", "--bind", "0.0.0.0", "--max-streams", "32767", "--grace",
                  "0", "--flow", "rtscts"])
        #expect(client.role == .client(bindHost: "0.0.0.0", port: 2222))
        #expect(client.maxStreams == 32_767)
        #expect(client.gracePeriodSeconds == 0)
        #expect(client.serial.flowControl == .rtsCts)

        let server = try Socket2Ser.configuration(
            for: ["S", "-port", "22", "-com", "/dev/x", "--connect-timeout", "1.5", "--max-streams", "1"])
        #expect(server.connectTimeoutSeconds == 1.5)
        #expect(server.maxStreams == 1)
    }

    @Test("--serial sets rate and format in one")
    func serialSpec() throws {
        let configuration = try Socket2Ser.configuration(for: ["S", "-port", "22", "-com", "/dev/x", "--serial",
                                                               "9600,7e2"])
        #expect(configuration.serial == SerialSettings(baudRate: 9600, dataBits: 7, parity: .even, stopBits: 2))
    }

    @Test("Separate line flags, and agreeing with --serial is fine")
    func separateLineFlags() throws {
        let separate = try Socket2Ser.configuration(
            for: ["S", "-port", "22", "-com", "/dev/x", "--baud", "1000000", "--data-bits", "5", "--parity", "odd",
                  "--stop-bits", "2"])
        #expect(separate.serial == SerialSettings(baudRate: 1_000_000, dataBits: 5, parity: .odd, stopBits: 2))

        let agreeing = try Socket2Ser.configuration(
            for: ["S", "-port", "22", "-com", "/dev/x", "--serial", "115200,8N1", "-baudrate", "115200",
                  "--parity", "none"])
        #expect(agreeing.serial == SerialSettings())

        // A spec with only a rate leaves the character format to the separate flags.
        let rateOnly = try Socket2Ser.configuration(
            for: ["S", "-port", "22", "-com", "/dev/x", "--serial", "19200", "--data-bits", "7"])
        #expect(rateOnly.serial == SerialSettings(baudRate: 19_200, dataBits: 7))
    }

    @Test("Any baud rate in 50...20000000", arguments: [50, 74_880, 250_000, 3_000_000, 20_000_000])
    func unusualBaudRates(rate: Int) throws {
        let configuration = try Socket2Ser.configuration(for: ["S", "-port", "22", "-com", "/dev/x", "-baudrate",
                                                               "\(rate)"])
        #expect(configuration.serial.baudRate == rate)
    }

    @Test("parseSerialSpec accepts the usual shorthand and rejects the rest")
    func serialSpecParser() throws {
        #expect(try parseSerialSpec("115200") == SerialSettings())
        #expect(try parseSerialSpec("57600,8o1") == SerialSettings(baudRate: 57_600, parity: .odd))
        for bad in ["", "fast", "115200,", "115200,9N1", "115200,8X1", "115200,8N3", "115200,8N1,x", "49,8N1",
                    "20000001"] {
            #expect(throws: CommandLineError.self, "\(bad)") { try parseSerialSpec(bad) }
        }
    }

    @Test("-d levels map to log levels 0 notice, 1 info, 2 debug, 3 trace")
    func logLevels() {
        #expect(StderrLogHandler.logLevel(forVerbosity: 0) == .notice)
        #expect(StderrLogHandler.logLevel(forVerbosity: 1) == .info)
        #expect(StderrLogHandler.logLevel(forVerbosity: 2) == .debug)
        #expect(StderrLogHandler.logLevel(forVerbosity: 3) == .trace)
    }

    @Test("S, C, link, run, connect, ports, check, ui, keygen, cable, demo and bench are all registered")
    func subcommands() {
        // Names only: the other commands' options belong to their owners and may change.
        let names = Socket2Ser.configuration.subcommands.map { $0.configuration.commandName }
        #expect(names == ["S", "C", "link", "run", "connect", "ports", "check", "ui", "keygen", "cable", "demo", "bench"])
    }

    @Test("--link-wait: default 10 s, never longer than the grace period")
    func linkWait() throws {
        let base = ["C", "-port", "2222", "-com", "/dev/ttyUSB0"]
        #expect(try Socket2Ser.configuration(for: base).effectiveLinkWaitSeconds == 10)
        #expect(try Socket2Ser.configuration(for: base + ["--link-wait", "3"]).effectiveLinkWaitSeconds == 3)
        #expect(try Socket2Ser.configuration(for: base + ["--grace", "2"]).effectiveLinkWaitSeconds == 2)
        #expect(try Socket2Ser.configuration(for: base + ["--link-wait", "0"]).effectiveLinkWaitSeconds == 0)
    }

    @Test("The start line says what the end does")
    func startLines() throws {
        let client = try Socket2Ser.configuration(for: ["C", "-port", "2222", "-com", "/dev/ttyUSB0"])
        #expect(client.startLine(listeningPort: 2222)
                == "C: listening on 127.0.0.1:2222, forwarding over /dev/ttyUSB0 at 115200 8N1")
        let server = try Socket2Ser.configuration(for: ["S", "-port", "22", "-com", "/dev/ttyS1", "--serial", "9600,7E2",
                                                        "--flow", "rtscts"])
        #expect(server.startLine(listeningPort: nil)
                == "S: connecting streams to localhost:22, over /dev/ttyS1 at 9600 7E2 with RTS/CTS")
        let v6 = try Socket2Ser.configuration(for: ["C", "-port", "80", "-com", "/dev/x", "--bind", "::1", "--unpaced"])
        #expect(v6.startLine(listeningPort: 80) == "C: listening on [::1]:80, forwarding over /dev/x at 115200 8N1 (unpaced)")
    }

    @Test("The README's forwards parse as written")
    func readmeForwards() throws {
        let board = try Socket2Ser.configuration(for: [
            "link", "-com", "/dev/ttyS1", "-baudrate", "921600", "--allow", "localhost:22", "--allow", "localhost:80",
            "--allow", "192.168.7.0/24:*"])
        #expect(board.form == .link && board.forwards.isEmpty)
        #expect(board.allowRules.map(\.description) == ["localhost:22", "localhost:80", "192.168.7.0/24:*"])
        #expect(board.targetPolicy.verdict(for: Endpoint(host: "192.168.7.20", port: 80)) == .allowed)
        let laptop = try Socket2Ser.configuration(for: [
            "link", "-com", "/dev/ttyUSB0", "-baudrate", "921600", "-L", "2222:localhost:22", "-L", "8080:localhost:80",
            "-D", "1080", "-R", "9000:localhost:8000"])
        #expect(laptop.forwards.map(\.description) == [
            "-L 127.0.0.1:2222:localhost:22", "-L 127.0.0.1:8080:localhost:80", "-R 127.0.0.1:9000:localhost:8000",
            "-D 127.0.0.1:1080"])
        // -R's target is one this end will connect to; nothing else is.
        #expect(laptop.targetPolicy.verdict(for: Endpoint(host: "localhost", port: 8000)) == .allowed)
        #expect(laptop.targetPolicy.verdict(for: Endpoint(host: "localhost", port: 22)) == .denied)
    }

    @Test("--allow-listen says where the far end's -R may make this end listen; nowhere without it, loopback only without --gateway-ports")
    func allowListen() throws {
        let none = try Socket2Ser.configuration(for: ["link", "-com", "/dev/x"])
        #expect(!none.allowsPeerListener(on: Endpoint(host: "127.0.0.1", port: 9000)))
        let board = try Socket2Ser.configuration(for: [
            "link", "-com", "/dev/x", "--allow-listen", "127.0.0.1:9000", "--allow-listen", "*:9100", "--allow-listen", "[::1]:*"])
        #expect(board.listenRules.map(\.description) == ["127.0.0.1:9000", "*:9100", "[::1]:*"])
        #expect(board.allowsPeerListener(on: Endpoint(host: "127.0.0.1", port: 9000)))
        #expect(!board.allowsPeerListener(on: Endpoint(host: "127.0.0.1", port: 9001)))
        #expect(!board.allowsPeerListener(on: Endpoint(host: "127.0.0.1", port: 0)), "any port needs a rule with *")
        #expect(board.allowsPeerListener(on: Endpoint(host: "::1", port: 0)))
        #expect(board.allowsPeerListener(on: Endpoint(host: "localhost", port: 9100)))
        // Names match as written: a rule for 127.0.0.1 does not allow "localhost".
        #expect(!board.allowsPeerListener(on: Endpoint(host: "localhost", port: 9000)))
        #expect(!board.allowsPeerListener(on: Endpoint(host: "0.0.0.0", port: 9100)), "not loopback: needs --gateway-ports")
        let gateway = try Socket2Ser.configuration(for: ["link", "-com", "/dev/x", "--allow-listen", "any", "--gateway-ports"])
        #expect(gateway.allowsPeerListener(on: Endpoint(host: "0.0.0.0", port: 9100)))
    }

    @Test("S and C take forwards too, and keep their own meaning")
    func originalFormsWithForwards() throws {
        let server = try Socket2Ser.configuration(for: ["S", "-ip", "db", "-port", "5432", "-com", "/dev/x", "--allow", "*:443"])
        #expect(server.defaultTarget == Endpoint(host: "db", port: 5432))
        #expect(server.targetPolicy.verdict(for: Endpoint(host: "db", port: 5432)) == .allowed)
        #expect(server.targetPolicy.verdict(for: Endpoint(host: "example.org", port: 443)) == .allowed)
        let client = try Socket2Ser.configuration(for: ["C", "-port", "2222", "-com", "/dev/x", "-L", "[::1]:8080:board:80"])
        #expect(client.forwards.map(\.description) == ["-L 127.0.0.1:2222:(the far end's default target)",
                                                       "-L [::1]:8080:board:80"])
    }

    @Test("Bad forwards are refused with the flag and the form",
          arguments: [(["-L", "2222:localhost"], "-L takes [bind_address:]port:host:hostport"),
                      (["-R", "x:y:z"], "-R takes"), (["-D", "1:2:3"], "-D takes"),
                      (["--allow", "10.0.0.0/40:22"], "is not a network"), (["--socks-timeout", "0"], "SOCKS timeout"),
                      (["--allow-listen", "9000"], "an --allow rule is host:port")])
    func badForwards(arguments: [String], expected: String) {
        guard case .finish(let outcome) = Socket2Ser.prepare(["link", "-com", "/dev/x"] + arguments) else {
            Issue.record("\(arguments) was accepted")
            return
        }
        #expect(outcome.exitCode == 2)
        #expect(outcome.standardError.contains(expected), "\(outcome.standardError)")
        #expect(outcome.standardError.contains(arguments[0]), "\(outcome.standardError)")
    }

    @Test("docs/examples/socket2ser.yaml is a valid config, read as docs/config.md says")
    func exampleConfig() throws {
        let path = #filePath.replacingOccurrences(of: "Tests/CLITests/ParsingTests.swift",
                                                  with: "docs/examples/socket2ser.yaml")
        let file = try ConfigFile.load(path: path)
        #expect(file.lines.map(\.name) == ["board1", "plc", "radio"])
        let board = file.lines[0].configuration
        #expect(board.form == .link && board.serial.baudRate == 921_600)
        #expect(board.forwards.map(\.description) == [
            "-L 127.0.0.1:2222:localhost:22", "-L 127.0.0.1:8080:localhost:80", "-R 127.0.0.1:3142:localhost:3142",
            "-D 127.0.0.1:1080"])
        let plc = file.lines[1].configuration
        #expect(plc.form == .server && plc.defaultTarget == Endpoint(host: "10.0.0.5", port: 502))
        #expect(plc.serial.parity == .even && plc.gracePeriodSeconds == 60)
        let radio = file.lines[2].configuration
        #expect(radio.form == .client && radio.role == .client(bindHost: "127.0.0.1", port: 5760))
        #expect(radio.linkWaitSeconds == 30)
    }

    @Test("allow-listen in a config file: one rule or a list, checked as --allow-listen is")
    func configAllowListen() throws {
        let file = try ConfigFile.parse("""
            lines:
              a:
                device: /dev/x
                allow-listen: [127.0.0.1:9000, "*:9100"]
              b:
                device: /dev/y
                allow-listen: 127.0.0.1:*
            """, path: "f.yaml")
        #expect(file.lines[0].configuration.listenRules.map(\.description) == ["127.0.0.1:9000", "*:9100"])
        #expect(file.lines[1].configuration.allowsPeerListener(on: Endpoint(host: "127.0.0.1", port: 0)))
        #expect(throws: ConfigError.self) { try ConfigFile.parse("lines:\n  a:\n    device: /dev/x\n    allow-listen: 9000\n", path: "f.yaml") }
    }

    @Test("Config mistakes are one located line each", arguments: [
        ("lines:\n  a:\n    device: /dev/x\n    bauds: 1\n", "f.yaml:4: line 'a': unknown key 'bauds' (did you mean 'baud'?)"),
        ("lines:\n  a:\n    device: /dev/x\n    baud: fast\n", "f.yaml:4: line 'a': 'baud': a baud rate is a whole number from 50 to 20000000"),
        ("lines:\n  a:\n    baud: 9600\n", "f.yaml:3: line 'a': no 'device' (the serial device, e.g. /dev/ttyUSB0)"),
        ("lines:\n  a: {device: /dev/x}\n  b: {device: /dev/x}\n", "f.yaml:3: line 'b' uses /dev/x, as line 'a' does"),
        ("line:\n  a: {device: /dev/x}\n", "f.yaml:1: unknown key 'line' (did you mean 'lines'?)"),
        ("lines:\n  a:\n    device: /dev/x\n    allow: [ok:22, bad]\n", "f.yaml:4: line 'a': 'allow': 'bad': an --allow rule is"),
        ("lines:\n  a:\n    device: /dev/x\n    socks-username: me\n", "f.yaml:4: line 'a': give both 'socks-username' and 'socks-password-file', or neither"),
        ("lines: [\n", "f.yaml:2: not valid YAML"),
        ("", "f.yaml: expected a mapping with the key 'lines'"),
    ])
    func configErrors(text: String, expected: String) {
        #expect(throws: ConfigError.self) { try ConfigFile.parse(text, path: "f.yaml") }
        do {
            _ = try ConfigFile.parse(text, path: "f.yaml")
        } catch {
            #expect(error.description.hasPrefix(expected), "\(error)")
            #expect(!error.description.contains("\n"))
        }
    }
}

/// What a reload may apply to a running line, and what needs a restart.
@Suite("Reload scope")
struct ReloadScopeTests {
    @Test("forwards, rules and SOCKS settings are taken live; line settings need a restart")
    func scope() throws {
        let base = try Socket2Ser.configuration(for: ["link", "-com", "/dev/x", "-L", "2222:localhost:22"])
        var forwards = base
        forwards.forwards = [try ForwardSpec.dynamic("1080")]
        forwards.allowRules = [.any]
        forwards.socksHandshakeTimeoutSeconds = 3
        forwards.listenRules = [.any]
        #expect(base.differsOnlyInForwardsAndRules(from: forwards))
        var serial = base
        serial.serial.baudRate = 9600
        #expect(!base.differsOnlyInForwardsAndRules(from: serial))
        var device = base
        device.devicePath = "/dev/y"
        #expect(!base.differsOnlyInForwardsAndRules(from: device))
    }
}

@Suite("Parsing: compression")
struct CompressionParsingTests {
    @Test("--compress: auto by default, off and always on S, C and link")
    func compressOption() throws {
        #expect(try Socket2Ser.configuration(for: ["S", "-port", "22", "-com", "/dev/x"]).compression == .auto)
        for (role, extra) in [("S", ["-port", "22"]), ("C", ["-port", "22"]), ("link", [])] {
            for mode in CompressionMode.allCases {
                let configuration = try Socket2Ser.configuration(for: [role, "-com", "/dev/x"] + extra
                                                                  + ["--compress", mode.rawValue])
                #expect(configuration.compression == mode, "\(role) --compress \(mode)")
            }
        }
    }
}

extension CompressionParsingTests {
    @Test("compress: in the config file, per line; a bad value names its line")
    func configKey() throws {
        let text = """
            lines:
              radio:
                device: /dev/ttyUSB0
                target: 127.0.0.1:22
                compress: off
              plain:
                device: /dev/ttyUSB1
                target: 127.0.0.1:22

            """
        let file = try ConfigFile.parse(text, path: "f.yaml")
        #expect(file.lines.map(\.configuration.compression) == [.off, .auto])
        do {
            _ = try ConfigFile.parse(text.replacingOccurrences(of: "compress: off", with: "compress: lz4"), path: "f.yaml")
            Issue.record("compress: lz4 was taken")
        } catch {
            #expect(error.description == "f.yaml:5: line 'radio': 'compress': compression is auto, off or always")
        }
    }
}
