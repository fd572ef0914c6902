import ArgumentParser
import Forwarding
import LinkCore
import SerialPort

/// The device and the line's rate and format, in the original's spelling: every command that
/// opens a device takes these.
struct DeviceOptions: ParsableArguments {
    @Option(name: [.customLong("com", withSingleDash: true), .customLong("com")],
            help: ArgumentHelp("Serial device: a path (/dev/ttyUSB0, /dev/serial/by-id/...), or the adapter by what it is: usb:VID:PID, usb:VID:PID:SERIAL, serial=SERIAL (socket2ser ports shows each one's).", valueName: "device"),
            transform: ArgumentValues.devicePath)
    var com: String

    @Option(name: [.customLong("baudrate", withSingleDash: true), .customLong("baudrate"), .customLong("baud")],
            help: ArgumentHelp("Baud rate, any value from 50 to 20000000 (default 115200).", valueName: "baud"),
            transform: ArgumentValues.baudRate)
    var baudRate: Int?

    @Option(name: .customLong("serial"),
            help: ArgumentHelp("Baud rate and character format in one, e.g. 115200,8N1.", valueName: "spec"),
            transform: SerialSpec.init)
    var serial: SerialSpec?
}

/// Options shared by both ends of the link: the serial device and line, stream limits and logging.
///
/// The original's flags (`-com`, `-baudrate`, `-d`, `-b`) are spelled exactly as socket2ser.py
/// spelled them, single dash included, so existing scripts keep working; each also has the
/// conventional double-dash form.
struct LinkOptions: ParsableArguments {
    /// -com, -baudrate and --serial, shared with `check`.
    @OptionGroup var device: DeviceOptions
    var com: String { device.com }
    var baudRate: Int? { device.baudRate }
    var serial: SerialSpec? { device.serial }

    @Option(name: .customLong("data-bits"),
            help: ArgumentHelp("Data bits per character: 5, 6, 7 or 8 (default 8).", valueName: "bits"),
            transform: ArgumentValues.dataBits)
    var dataBits: Int?

    @Option(name: .customLong("parity"),
            help: ArgumentHelp("Parity: none, even or odd (default none).", valueName: "parity"),
            transform: ArgumentValues.parity)
    var parity: SerialSettings.Parity?

    @Option(name: .customLong("stop-bits"),
            help: ArgumentHelp("Stop bits: 1 or 2 (default 1).", valueName: "bits"),
            transform: ArgumentValues.stopBits)
    var stopBits: Int?

    @Option(name: .customLong("flow"),
            help: ArgumentHelp("Flow control: none or rtscts (default none).", valueName: "mode"),
            transform: ArgumentValues.flowControl)
    var flow: SerialSettings.FlowControl = .none

    @Option(name: .customLong("max-streams"),
            help: ArgumentHelp("Most TCP connections carried at once, 1 to 32767 (default 4096).", valueName: "n"),
            transform: ArgumentValues.maxStreams)
    var maxStreams: Int = 4096

    @Option(name: .customLong("grace"),
            help: ArgumentHelp("Seconds streams survive a silent or missing line before they are reset (default 30).",
                               valueName: "seconds"),
            transform: ArgumentValues.gracePeriod)
    var grace: Double = 30

    @Option(name: .customLong("link-wait"),
            help: ArgumentHelp("""
                Seconds a new connection waits for the link when there is no peer, before it is \
                reset (default 10; at most the grace period).
                """, valueName: "seconds"),
            transform: ArgumentValues.linkWait)
    var linkWait: Double = 10

    @Option(name: [.customShort("d"), .customLong("debug")],
            help: ArgumentHelp("Verbosity: 0 status and warnings (default), 1 each connection, 2 link statistics, 3 hex trace of every byte on the line and the sockets, 4 each frame decoded as well.",
                               valueName: "level"),
            transform: ArgumentValues.debugLevel)
    var debug: Int = 0

    @Flag(name: .customLong("unpaced"),
          help: "Do not pace to the baud rate (for a CPU-bound virtual cable; never needed on a real UART).")
    var unpaced = false

    @Option(name: .customLong("compress"),
            help: ArgumentHelp("""
                auto (default): compress data that shrinks (text, logs, JSON) on lines up to 4 Mbit/s, \
                where the line is the bottleneck; off: never, and ask the peer not to; always: on any line.
                """, valueName: "auto|off|always"),
            transform: ArgumentValues.compression)
    var compress: CompressionMode = .auto

    @Option(name: .customLong("key-file"),
            help: ArgumentHelp("""
                Protect the link with the pre-shared key in this file (socket2ser keygen makes one; \
                readable by its owner only); the other end needs the same file.
                """, valueName: "file"))
    var keyFile: String?

    @Option(name: .customLong("protect"),
            help: ArgumentHelp("""
                With --key-file: encrypt (default) seals every frame; authenticate only signs them, \
                the traffic stays readable (as amateur radio rules require). Both ends must agree.
                """, valueName: "encrypt|authenticate"),
            transform: ArgumentValues.protectionMode)
    var protect: LinkProtection.Mode?

    @Option(name: .customLong("wire"),
            help: ArgumentHelp("""
                socket2ser (default), or legacy: speak the original socket2ser.py's protocol, to pair \
                with an end that still runs it (S or C only; even parity unless --parity says otherwise; \
                no checksum, flow control or protection: see docs/legacy-protocol.md).
                """, valueName: "socket2ser|legacy"),
            transform: ArgumentValues.wire)
    var wire: WireMode = .socket2ser

    @Option(name: .customLong("ui"),
            help: ArgumentHelp("Serve the dashboard on [ADDR:]PORT (loopback unless an address is given; 0: any free port).",
                               valueName: "[addr:]port"),
            transform: DashboardAddress.parse)
    var ui: DashboardAddress?

    @Option(name: .customLong("ui-token-file"),
            help: ArgumentHelp("The dashboard's access token, from a file only you can read (needed for a non-loopback --ui).",
                               valueName: "file"))
    var uiTokenFile: String?

    /// The dashboard to start with this end, if any.
    var dashboard: DashboardOptions? { ui.map { DashboardOptions(address: $0, tokenFile: uiTokenFile) } }

    /// Accepted only so that it can be refused with a reason: the original opened a remote debug
    /// shell, which on a serial link anyone can plug into is a security hole. Hidden from help so
    /// the help lists only what works.
    @Flag(name: [.customShort("b"), .customLong("backdoor")], help: .hidden)
    var backdoor = false

    /// The one-line refusal printed for `-b/--backdoor`.
    static let backdoorRefusal =
        "--backdoor is not supported: a remote debug shell on a serial link is a security hole; use -d 3 for a hex trace of the line"

    func validate() throws {
        if backdoor { throw CommandLineError(Self.backdoorRefusal) }
        if uiTokenFile != nil && ui == nil { throw CommandLineError("--ui-token-file needs --ui") }
        if protect != nil && keyFile == nil { throw CommandLineError(ArgumentValues.protectWithoutKey) }
        if wire == .legacy && keyFile != nil {
            throw CommandLineError("--key-file needs the socket2ser wire: the legacy wire cannot protect the line")
        }
        _ = try serialSettings()
    }
}

extension LinkOptions {
    /// What every end takes from these options beyond the device and line: compression, the key,
    /// the wire.
    func apply(to configuration: inout ForwarderConfiguration) throws {
        configuration.compression = compress
        configuration.protection = try protection()
        configuration.wire = wire
    }

    /// `--wire legacy` carries C's one forward to S's one target, as the original did; anything
    /// more needs our wire on both ends. One line says so before anything starts.
    static func checkLegacy(_ wire: WireMode, form: String, extraForwards: Bool) throws {
        guard wire == .legacy else { return }
        guard form != "link" else {
            throw CommandLineError("--wire legacy works with S and C, as the original had them; link needs the socket2ser wire")
        }
        if extraForwards {
            throw CommandLineError("""
                --wire legacy carries only C's -port to S's -ip/-port; -L, -R and -D need the socket2ser wire on both ends
                """)
        }
    }

    /// The key and mode of `--key-file` and `--protect`, read from the file; nil without one.
    /// Read when the end starts, not while parsing, so a refusal is a run-time error naming the
    /// file ("socket2ser: key file link.key is readable by others …", exit 1).
    func protection() throws -> LinkProtection? {
        do {
            return try KeyFile.protection(keyFile: keyFile, mode: protect)
        } catch {
            throw CommandLineError(error.description)
        }
    }

    /// Combines `--serial` with the separate line flags.
    ///
    /// Giving both is allowed when they agree (a script may spell the rate twice); when they
    /// disagree there is no obviously right answer, so the user is asked to pick one instead of
    /// one silently winning.
    func serialSettings() throws -> SerialSettings {
        var settings = serial?.settings ?? SerialSettings()

        func merge<Value: Equatable>(_ value: Value?, into keyPath: WritableKeyPath<SerialSettings, Value>,
                                     flag: String, isInSpec: Bool) throws {
            guard let value else { return }
            if let serial, isInSpec, settings[keyPath: keyPath] != value {
                throw CommandLineError("\(flag) disagrees with --serial \(serial.text); give each line setting once")
            }
            settings[keyPath: keyPath] = value
        }
        let format = serial?.specifiesFormat ?? false
        try merge(baudRate, into: \.baudRate, flag: "baud rate \(baudRate ?? 0)", isInSpec: true)
        try merge(dataBits, into: \.dataBits, flag: "--data-bits \(dataBits ?? 0)", isInSpec: format)
        try merge(parity, into: \.parity, flag: "--parity \(parity.map(Self.name(for:)) ?? "")", isInSpec: format)
        try merge(stopBits, into: \.stopBits, flag: "--stop-bits \(stopBits ?? 0)", isInSpec: format)
        // The original always opens its port 8E1; the legacy wire does too unless told otherwise.
        if wire == .legacy && parity == nil && !format { settings.parity = .even }
        settings.flowControl = flow
        return settings
    }

    private static func name(for parity: SerialSettings.Parity) -> String {
        switch parity {
        case .none: return "none"
        case .even: return "even"
        case .odd: return "odd"
        }
    }
}

/// The value of `--serial`, kept with its text so a conflict can quote what the user typed, and
/// with a note of whether it named a character format (`115200` alone leaves `--data-bits` free).
struct SerialSpec: Sendable, Equatable {
    let text: String
    let settings: SerialSettings
    let specifiesFormat: Bool

    init(_ text: String) throws {
        self.text = text
        self.settings = try parseSerialSpec(text)
        self.specifiesFormat = text.contains(",")
    }
}
