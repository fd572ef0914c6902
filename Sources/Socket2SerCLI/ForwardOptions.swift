import ArgumentParser
import Forwarding

/// `-L`, `-R`, `-D`, `--allow`, `--allow-listen` and `--gateway-ports`: OpenSSH's forwards, on any end.
///
/// Each spec is read while parsing, so a bad one is refused with the flag's name before anything
/// is opened. Who may connect where is decided by the end that makes the TCP connection: its own
/// default target and -R targets, and what its --allow rules name; nothing else. Where the far
/// end's -R may make it listen is decided by this end too: its --allow-listen rules; nowhere else.
struct ForwardOptions: ParsableArguments {
    @Option(name: .customShort("L"), parsing: .singleValue,
            help: ArgumentHelp("Listen here on [bind:]port; the far end connects each connection to host:hostport (repeatable).",
                               valueName: "[bind:]port:host:hostport"),
            transform: ForwardOptions.local)
    var local: [Forward] = []

    @Option(name: .customShort("R"), parsing: .singleValue,
            help: ArgumentHelp("""
                The far end listens on [bind:]port (where its --allow-listen allows it); this end connects each \
                connection to host:hostport (repeatable).
                """, valueName: "[bind:]port:host:hostport"),
            transform: ForwardOptions.remote)
    var remote: [Forward] = []

    @Option(name: .customShort("D"), parsing: .singleValue,
            help: ArgumentHelp("A SOCKS5 proxy here on [bind:]port; the far end connects to each target (repeatable).",
                               valueName: "[bind:]port"),
            transform: ForwardOptions.dynamic)
    var dynamic: [Forward] = []

    @Option(name: .customLong("allow"), parsing: .singleValue,
            help: ArgumentHelp("""
                A target the far end may ask this end to connect to: host:port, host:*, *:port, a network \
                such as 10.0.0.0/8:22, or any (repeatable; default: only this end's own targets).
                """, valueName: "rule"),
            transform: ForwardOptions.rule)
    var allow: [AllowRule] = []

    @Option(name: .customLong("socks-timeout"),
            help: ArgumentHelp("Seconds a SOCKS client of -D has to name its target before it is dropped (default 10).",
                               valueName: "seconds"),
            transform: ForwardOptions.socksTimeout)
    var socksTimeout: Double = 10

    @Flag(name: .customLong("gateway-ports"),
          help: "Listen on other than loopback addresses when the far end's -R asks for them.")
    var gatewayPorts = false

    @Option(name: .customLong("allow-listen"), parsing: .singleValue,
            help: ArgumentHelp("""
                Where the far end's -R may make this end listen: address:port, address:* (any port), \
                *:port, or any (repeatable; default: nowhere). A non-loopback address also needs --gateway-ports.
                """, valueName: "rule"),
            transform: ForwardOptions.rule)
    var allowListen: [AllowRule] = []

    /// Every forward, in the order -L, -R, -D.
    var forwards: [Forward] { local + remote + dynamic }

    static func local(_ text: String) throws -> Forward {
        do { return try ForwardSpec.local(text) } catch { throw CommandLineError(error.description) }
    }

    static func remote(_ text: String) throws -> Forward {
        do { return try ForwardSpec.remote(text) } catch { throw CommandLineError(error.description) }
    }

    static func dynamic(_ text: String) throws -> Forward {
        do { return try ForwardSpec.dynamic(text) } catch { throw CommandLineError(error.description) }
    }

    static func socksTimeout(_ text: String) throws -> Double {
        guard let value = Double(text), value.isFinite, value > 0, value <= 3_600 else {
            throw CommandLineError("the SOCKS timeout is a number of seconds above 0 and at most 3600")
        }
        return value
    }

    /// Puts these options into a configuration.
    func apply(to configuration: inout ForwarderConfiguration) {
        configuration.socksHandshakeTimeoutSeconds = socksTimeout
        configuration.listenRules = allowListen
    }

    static func rule(_ text: String) throws -> AllowRule {
        do { return try AllowRule.parse(text) } catch { throw CommandLineError(error.description) }
    }
}

/// `socket2ser link`: an end with no original form, only forwards, as both ends of OpenSSH's
/// `-L/-R/-D` would be. Two `link` ends talk to each other (the handshake gives them different
/// halves of the stream-ID space), and so do a `link` end and an S or C of this version.
struct LinkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "link",
        abstract: "Carry forwards in both directions over the serial line (-L, -R, -D, as in OpenSSH).",
        discussion: """
            Both ends may declare any mix of forwards. For example, on the laptop:
              socket2ser link -com /dev/ttyUSB0 -L 2222:localhost:22 -L 8080:localhost:80
            and on the board, allowing exactly those two targets:
              socket2ser link -com /dev/ttyS1 --allow localhost:22 --allow localhost:80
            The end that makes a TCP connection decides where it may connect: its -R targets and \
            its --allow rules, nothing else.
            """)

    @OptionGroup var forwardOptions: ForwardOptions
    @OptionGroup var link: LinkOptions

    func makeConfiguration() throws -> ForwarderConfiguration {
        var configuration = ForwarderConfiguration(
            form: .link, forwards: forwardOptions.forwards, allowRules: forwardOptions.allow,
            gatewayPorts: forwardOptions.gatewayPorts, devicePath: link.com, serial: try link.serialSettings(),
            maxStreams: link.maxStreams, verbosity: link.debug, gracePeriodSeconds: link.grace,
            linkWaitSeconds: link.linkWait, unpaced: link.unpaced)
        forwardOptions.apply(to: &configuration)
        try link.apply(to: &configuration)
        return configuration
    }

    func validate() throws {
        try LinkOptions.checkLegacy(link.wire, form: "link", extraForwards: false)
    }

    func run() async throws {
        try await ForwarderLauncher.run(try makeConfiguration(), dashboard: link.dashboard)
    }
}
