import Logging

/// One end of the forwarder: the serial line, the protocol core and every TCP connection on
/// one event loop. (Stub: the runtime is being written.)
public final class Forwarder: Sendable {
    public let configuration: ForwarderConfiguration
    public let logger: Logger

    public init(configuration: ForwarderConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs until the surrounding task is cancelled, then shuts down within 2 s.
    public func run() async throws {
        while !Task.isCancelled { try await Task.sleep(for: .seconds(1)) }
    }
}
