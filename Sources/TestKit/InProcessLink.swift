import Forwarding
import Logging
import NIOCore
import SerialPort
import VirtualCable

/// A paced `VirtualCable` and both ends on it in this process: `S` on end A connecting every
/// stream to 127.0.0.1:`targetPort`, `C` on end B listening on 127.0.0.1:`clientPort` (0: any).
/// The demo's rig, and the in-process tests' paced one. The cable runs once this returns; the
/// forwarders run when their `run()` is called, and the caller stops the cable after them.
public struct InProcessLink: Sendable {
    public let cable: VirtualCable
    public let server: Forwarder
    public let client: Forwarder

    /// `adjust` may change either end's configuration (it is told which) before it is made.
    public init(baud: Int, targetPort: Int, clientPort: Int = 0, verbosity: Int = 0,
                adjust: (inout ForwarderConfiguration, _ isServer: Bool) -> Void = { _, _ in },
                eventLoopGroup: (any EventLoopGroup)? = nil, logger: (_ end: String) -> Logger) throws {
        let cable = try VirtualCable(configuration: CableConfiguration(baud: baud))
        cable.start()
        let serial = SerialSettings(baudRate: baud)
        var serverConfiguration = ForwarderConfiguration(
            role: .server(targetHost: "127.0.0.1", targetPort: targetPort), devicePath: cable.pathA,
            serial: serial, verbosity: verbosity)
        adjust(&serverConfiguration, true)
        var clientConfiguration = ForwarderConfiguration(
            role: .client(bindHost: "127.0.0.1", port: clientPort), devicePath: cable.pathB,
            serial: serial, verbosity: verbosity)
        adjust(&clientConfiguration, false)
        self.cable = cable
        server = Forwarder(configuration: serverConfiguration, logger: logger("S"), eventLoopGroup: eventLoopGroup)
        client = Forwarder(configuration: clientConfiguration, logger: logger("C"), eventLoopGroup: eventLoopGroup)
    }
}
