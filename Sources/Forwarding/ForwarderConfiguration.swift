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
    /// S only: how long to wait for the target to accept a connection.
    public var connectTimeoutSeconds: Double
    /// The line has no rate of its own (a CPU-bound virtual cable): the core is told the line
    /// rate is unknown (`lineBytesPerSecond` 0), so it neither sizes timeouts by serialisation
    /// time nor expects the writer to pace itself, and only the kernel's buffers hold writes back.
    public var unpaced: Bool
    /// How often a line of link statistics is logged at debug level, when something changed.
    public var statisticsLogIntervalSeconds: Double

    public init(role: Role, devicePath: String, serial: SerialSettings = SerialSettings(), maxStreams: Int = 4096,
                verbosity: Int = 0, gracePeriodSeconds: Double = 30, connectTimeoutSeconds: Double = 5,
                unpaced: Bool = false, statisticsLogIntervalSeconds: Double = 5) {
        self.role = role
        self.devicePath = devicePath
        self.serial = serial
        self.maxStreams = maxStreams
        self.verbosity = verbosity
        self.gracePeriodSeconds = gracePeriodSeconds
        self.connectTimeoutSeconds = connectTimeoutSeconds
        self.unpaced = unpaced
        self.statisticsLogIntervalSeconds = statisticsLogIntervalSeconds
    }
}
