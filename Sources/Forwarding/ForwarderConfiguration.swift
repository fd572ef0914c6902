import SerialPort

/// Everything one end of the forwarder needs to run.
public struct ForwarderConfiguration: Sendable {
    public enum Role: Sendable, Equatable {
        /// "S": sits next to the service; every stream from the peer is connected to this target
        /// (or, when the peer names one, to that target if `allowedTargets` permits it).
        case server(targetHost: String, targetPort: Int)
        /// "C": listens on `bindHost:port`; every accepted connection becomes a stream.
        case client(bindHost: String, port: Int)
    }

    public var role: Role
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
    /// How often a line of link statistics is logged at debug level, when something changed.
    public var statisticsLogIntervalSeconds: Double

    public init(role: Role, devicePath: String, serial: SerialSettings = SerialSettings(), maxStreams: Int = 4096,
                verbosity: Int = 0, gracePeriodSeconds: Double = 30, linkWaitSeconds: Double = 10,
                connectTimeoutSeconds: Double = 5, unpaced: Bool = false, statisticsLogIntervalSeconds: Double = 5) {
        self.role = role
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
    public func startLine(listeningPort: Int?) -> String {
        switch role {
        case .client(let host, let port):
            let shown = host.contains(":") ? "[\(host)]" : host
            return "C: listening on \(shown):\(listeningPort ?? port), forwarding over \(devicePath) at \(lineDescription)"
        case .server(let host, let port):
            let shown = host.contains(":") ? "[\(host)]" : host
            return "S: connecting streams to \(shown):\(port), over \(devicePath) at \(lineDescription)"
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
