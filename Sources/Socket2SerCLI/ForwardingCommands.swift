import ArgumentParser
import Forwarding

/// `socket2ser S`: the end next to the service. Every stream the other end opens becomes a TCP
/// connection to `-ip`:`-port`.
///
/// The name is the original's positional mode letter, so `socket2ser S -port 22 -com /dev/ttyUSB0`
/// works exactly as it did with socket2ser.py.
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "S",
        abstract: "Serve: connect every stream from the serial line to a TCP target.",
        discussion: """
            Run this next to the service, e.g. an SSH server:
              socket2ser S -port 22 -com /dev/ttyUSB0
            """,
        aliases: ["s"])

    @Option(name: [.customLong("port", withSingleDash: true), .customLong("port")],
            help: ArgumentHelp("TCP port of the target every stream is connected to.", valueName: "port"),
            transform: ArgumentValues.port)
    var port: Int

    @Option(name: [.customLong("ip", withSingleDash: true), .customLong("ip")],
            help: ArgumentHelp("Host of the target (default localhost).", valueName: "host"),
            transform: ArgumentValues.host)
    var ip: String = "localhost"

    @Option(name: .customLong("connect-timeout"),
            help: ArgumentHelp("Seconds to wait for the target to accept a connection (default 5).", valueName: "seconds"),
            transform: ArgumentValues.connectTimeout)
    var connectTimeout: Double = 5

    @OptionGroup var forwardOptions: ForwardOptions
    @OptionGroup var link: LinkOptions

    func validate() throws {
        try LinkOptions.checkLegacy(link.wire, form: "S", extraForwards: !forwardOptions.forwards.isEmpty)
    }

    /// Everything the runtime needs, from the parsed flags. Fails only for a `--key-file` that
    /// cannot be used (it is read here, once the command line is known to be good).
    func makeConfiguration() throws -> ForwarderConfiguration {
        var configuration = ForwarderConfiguration(
            form: .server, forwards: forwardOptions.forwards, defaultTarget: Endpoint(host: ip, port: port),
            allowRules: forwardOptions.allow, gatewayPorts: forwardOptions.gatewayPorts,
            devicePath: link.com,
            serial: try link.serialSettings(),
            maxStreams: link.maxStreams,
            verbosity: link.debug,
            gracePeriodSeconds: link.grace,
            linkWaitSeconds: link.linkWait,
            connectTimeoutSeconds: connectTimeout,
            unpaced: link.unpaced)
        forwardOptions.apply(to: &configuration)
        try link.apply(to: &configuration)
        return configuration
    }

    func run() async throws {
        try await ForwarderLauncher.run(try makeConfiguration(), dashboard: link.dashboard)
    }
}

/// `socket2ser C`: the end next to the users. Listens on `--bind`:`-port`; every accepted
/// connection becomes a stream over the serial line.
struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "C",
        abstract: "Client: listen for TCP connections and carry each one over the serial line.",
        discussion: """
            Run this where the users are; then connect to 127.0.0.1:PORT:
              socket2ser C -port 2222 -com /dev/ttyUSB0
            """,
        aliases: ["c"])

    @Option(name: [.customLong("port", withSingleDash: true), .customLong("port")],
            help: ArgumentHelp("TCP port to listen on.", valueName: "port"),
            transform: ArgumentValues.port)
    var port: Int

    /// Loopback by default: a listener on every interface would let anyone on the network reach
    /// the service behind the cable.
    @Option(name: .customLong("bind"),
            help: ArgumentHelp("Address to listen on (default 127.0.0.1, this computer only).", valueName: "address"),
            transform: ArgumentValues.host)
    var bind: String = "127.0.0.1"

    /// Accepted only to explain that it does nothing here: scripts written for the original may
    /// pass `-ip` to both ends, and silently ignoring it would let someone believe C listens there.
    @Option(name: [.customLong("ip", withSingleDash: true), .customLong("ip")], help: .hidden)
    var ip: String?

    @OptionGroup var forwardOptions: ForwardOptions
    @OptionGroup var link: LinkOptions

    func validate() throws {
        if let ip {
            throw CommandLineError("-ip applies to S only; C listens on 127.0.0.1, use --bind \(ip) to listen there")
        }
        try LinkOptions.checkLegacy(link.wire, form: "C", extraForwards: !forwardOptions.forwards.isEmpty)
    }

    /// Everything the runtime needs, from the parsed flags.
    func makeConfiguration() throws -> ForwarderConfiguration {
        var configuration = ForwarderConfiguration(
            form: .client,
            forwards: [.local(listen: Endpoint(host: bind, port: port), target: nil)] + forwardOptions.forwards,
            allowRules: forwardOptions.allow, gatewayPorts: forwardOptions.gatewayPorts,
            devicePath: link.com,
            serial: try link.serialSettings(),
            maxStreams: link.maxStreams,
            verbosity: link.debug,
            gracePeriodSeconds: link.grace,
            linkWaitSeconds: link.linkWait,
            unpaced: link.unpaced)
        forwardOptions.apply(to: &configuration)
        try link.apply(to: &configuration)
        return configuration
    }

    func run() async throws {
        try await ForwarderLauncher.run(try makeConfiguration(), dashboard: link.dashboard)
    }
}
