import LinkCore
import SerialPort

/// Which protocol the line speaks (docs/protocol.md, or docs/legacy-protocol.md).
public enum WireMode: String, Sendable, Equatable, CaseIterable {
    case socket2ser
    /// The original socket2ser.py's frames, to pair with an end that still runs it.
    case legacy
}

/// Everything one end of the forwarder needs to run.
///
/// An end is a list of forwards and a target policy: it listens where its `-L` and `-D`
/// forwards say, asks the far end to listen for its `-R` forwards, and connects the streams the
/// far end opens only to targets its policy allows (its default target, its own `-R` targets,
/// its `--allow` rules). The original's S and C are two shorthands for such ends.
public struct ForwarderConfiguration: Sendable, Equatable {
    /// The original's two forms, kept so their command lines work as written.
    public enum Role: Sendable, Equatable {
        /// "S": sits next to the service; its default target is `targetHost:targetPort`.
        case server(targetHost: String, targetPort: Int)
        /// "C": listens on `bindHost:port`; every accepted connection becomes a stream to the far
        /// end's default target (`-L bindHost:port` to it).
        case client(bindHost: String, port: Int)
    }

    /// Which form started this end: how it names itself, and which ID half it prefers (§3.4).
    public enum Form: String, Sendable, Equatable {
        case server = "S"
        case client = "C"
        case link = "link"
    }

    public var form: Form
    /// Where this end listens (-L, -D, C's -port) and what it asks the far end to listen for (-R).
    public var forwards: [Forward]
    /// S's `-ip:-port`: where a stream goes whose OPEN names no target.
    public var defaultTarget: Endpoint?
    /// `--allow`: further targets the far end may ask this end to connect to.
    public var allowRules: [AllowRule]
    /// Listen on other than a loopback address when the far end asks (-R with a bind address).
    public var gatewayPorts: Bool
    /// `--allow-listen`: where the far end's -R may make this end listen (bind address and
    /// port, as `--allow` rules). Empty: nowhere, so a peer cannot open a port here unasked.
    public var listenRules: [AllowRule] = []
    /// What a SOCKS5 client of a -D listener must give (RFC 1929); nil: no authentication.
    public var socksCredentials: SOCKS5Negotiation.Credentials? = nil
    /// A SOCKS5 client that has not named its target by then is dropped.
    public var socksHandshakeTimeoutSeconds: Double = 10
    /// Path of the serial device, e.g. /dev/ttyUSB0.
    public var devicePath: String
    public var serial: SerialSettings
    public var maxStreams: Int
    /// 0 warnings and errors; 1 connections; 2 link events; 3 hex trace of frames.
    public var verbosity: Int
    /// How long streams survive a silent or missing line before they are reset.
    public var gracePeriodSeconds: Double
    /// How long a connection accepted while the link is not up waits for it before it is reset
    /// (never longer than the grace period; see `effectiveLinkWaitSeconds`).
    public var linkWaitSeconds: Double
    /// S only: how long to wait for the target to accept a connection.
    public var connectTimeoutSeconds: Double
    /// The line has no rate of its own (a CPU-bound virtual cable): the core is told the line
    /// rate is unknown (`lineBytesPerSecond` 0), so it neither sizes timeouts by serialisation
    /// time nor expects the writer to pace itself, and only the kernel's buffers hold writes back.
    public var unpaced: Bool
    /// Whether this end compresses stream data, and accepts compressed data (docs/protocol.md §5.7).
    public var compression: CompressionMode = .auto
    /// The pre-shared key and mode (docs/protocol.md §11); nil for none.
    public var protection: LinkProtection?
    /// The protocol on the line: ours, or the original socket2ser.py's (`--wire legacy`).
    public var wire: WireMode = .socket2ser
    /// How often a line of link statistics is logged at debug level, when something changed.
    public var statisticsLogIntervalSeconds: Double

    public init(form: Form, forwards: [Forward] = [], defaultTarget: Endpoint? = nil, allowRules: [AllowRule] = [],
                gatewayPorts: Bool = false, devicePath: String, serial: SerialSettings = SerialSettings(),
                maxStreams: Int = 4096, verbosity: Int = 0, gracePeriodSeconds: Double = 30,
                linkWaitSeconds: Double = 10, connectTimeoutSeconds: Double = 5, unpaced: Bool = false,
                statisticsLogIntervalSeconds: Double = 5) {
        self.form = form
        self.forwards = forwards
        self.defaultTarget = defaultTarget
        self.allowRules = allowRules
        self.gatewayPorts = gatewayPorts
        self.devicePath = devicePath
        self.serial = serial
        self.maxStreams = maxStreams
        self.verbosity = verbosity
        self.gracePeriodSeconds = gracePeriodSeconds
        self.linkWaitSeconds = linkWaitSeconds
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.unpaced = unpaced
        self.statisticsLogIntervalSeconds = statisticsLogIntervalSeconds
    }
}

extension ForwarderConfiguration {
    /// The original's S or C, as an end with a default target or one local forward.
    public init(role: Role, devicePath: String, serial: SerialSettings = SerialSettings(), maxStreams: Int = 4096,
                verbosity: Int = 0, gracePeriodSeconds: Double = 30, linkWaitSeconds: Double = 10,
                connectTimeoutSeconds: Double = 5, unpaced: Bool = false, statisticsLogIntervalSeconds: Double = 5) {
        let form: Form
        var forwards: [Forward] = []
        var defaultTarget: Endpoint?
        switch role {
        case .server(let host, let port):
            form = .server
            defaultTarget = Endpoint(host: host, port: port)
        case .client(let host, let port):
            form = .client
            forwards = [.local(listen: Endpoint(host: host, port: port), target: nil)]
        }
        self.init(form: form, forwards: forwards, defaultTarget: defaultTarget, devicePath: devicePath, serial: serial,
                  maxStreams: maxStreams, verbosity: verbosity, gracePeriodSeconds: gracePeriodSeconds,
                  linkWaitSeconds: linkWaitSeconds, connectTimeoutSeconds: connectTimeoutSeconds, unpaced: unpaced,
                  statisticsLogIntervalSeconds: statisticsLogIntervalSeconds)
    }

    /// The original's form this end amounts to, if any: S with its target, C with its port.
    public var role: Role? {
        switch form {
        case .server:
            return defaultTarget.map { .server(targetHost: $0.host, targetPort: $0.port) }
        case .client:
            guard case .local(let listen, nil)? = forwards.first else { return nil }
            return .client(bindHost: listen.host, port: listen.port)
        case .link:
            return nil
        }
    }

    /// Whether `other` differs from this configuration only in what `Forwarder.update` takes while
    /// running (`LinkRuntime.apply`): forwards, the target policy and the SOCKS settings. Kept
    /// here, beside the runtime that applies them, so the two cannot drift apart.
    public func differsOnlyInForwardsAndRules(from other: ForwarderConfiguration) -> Bool {
        var mine = self
        mine.forwards = other.forwards
        mine.allowRules = other.allowRules
        mine.gatewayPorts = other.gatewayPorts
        mine.listenRules = other.listenRules
        mine.defaultTarget = other.defaultTarget
        mine.socksCredentials = other.socksCredentials
        mine.socksHandshakeTimeoutSeconds = other.socksHandshakeTimeoutSeconds
        return mine == other
    }

    /// What this end connects to: its default target, its -R targets and its --allow rules.
    public var targetPolicy: TargetPolicy {
        var targets: Set<Endpoint> = []
        for forward in forwards { if case .remote(_, let target) = forward { targets.insert(target) } }
        return TargetPolicy(defaultTarget: defaultTarget, forwardTargets: targets, rules: allowRules)
    }

    /// Whether the far end may make this end listen on `address` (port 0: any port): a rule of
    /// `listenRules` allows the address as the peer named it (names match as written, nothing
    /// is resolved), and one that is not loopback also needs `gatewayPorts`.
    public func allowsPeerListener(on address: Endpoint) -> Bool {
        TargetPolicy(rules: listenRules).verdict(for: address) == .allowed
            && (gatewayPorts || Endpoint.isLoopback(host: address.host))
    }

    /// The forwards this end listens for itself (-L, -D, C's -port).
    public var localListeners: [Forward] {
        forwards.filter { if case .remote = $0 { return false } else { return true } }
    }

    /// The wait for the link a new connection gets: `linkWaitSeconds`, capped by the grace period,
    /// since a stream the link would drop after the grace period must not be promised longer.
    public var effectiveLinkWaitSeconds: Double { max(0, min(linkWaitSeconds, gracePeriodSeconds)) }

    /// "115200 8N1", "115200 8N1 with RTS/CTS", or "no pacing" for an unpaced virtual cable.
    public var lineDescription: String {
        var text = serial.description.replacingFirstComma()
        if serial.flowControl == .rtsCts { text = text.replacingSuffix(" rtscts", with: " with RTS/CTS") }
        return unpaced ? "\(text) (unpaced)" : text
    }

    /// The one line that says what this end does, logged once it is ready:
    /// `C: listening on 127.0.0.1:2222, forwarding over /dev/ttyUSB0 at 115200 8N1`.
    ///
    /// S names its default target, C the port it listens on; any further forward gets a line
    /// of its own once it is set up.
    public func startLine(listeningPort: Int?) -> String {
        switch form {
        case .client:
            if let first = localListeners.first {
                let listen = Endpoint(host: first.listen.host, port: listeningPort ?? first.listen.port)
                return "C: listening on \(listen), forwarding over \(devicePath) at \(lineDescription)"
            }
            return "C: forwarding over \(devicePath) at \(lineDescription)"
        case .server:
            let target = defaultTarget.map { "connecting streams to \($0), " } ?? ""
            return "S: \(target)over \(devicePath) at \(lineDescription)"
        case .link:
            let count = forwards.count
            return "link: \(count) forward(s), over \(devicePath) at \(lineDescription)"
        }
    }
}

extension String {
    fileprivate func replacingFirstComma() -> String {
        guard let comma = firstIndex(of: ",") else { return self }
        return self[..<comma] + " " + self[index(after: comma)...]
    }

    fileprivate func replacingSuffix(_ suffix: String, with replacement: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) + replacement : self
    }
}
