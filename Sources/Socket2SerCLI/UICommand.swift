import ArgumentParser
import Dashboard
import Forwarding
import Logging

/// `socket2ser ui`: the dashboard alone. Links are started (and stopped) from the browser, as
/// the original GUI's "Run as Server" / "Run as Client" buttons did.
struct UICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ui",
        abstract: "Serve the dashboard with no link; pick a port and start links from the browser.",
        discussion: """
            Prints the URL to open, with the access token every change needs:
              socket2ser ui 8080
              socket2ser ui 0.0.0.0:8080 --ui-token-file ~/.socket2ser/token   (reachable from elsewhere)
            docs/api.md describes the page's JSON API.
            """)

    @Argument(help: ArgumentHelp("Where to listen: [ADDR:]PORT, loopback unless an address is given (default 0: any free port).",
                                 valueName: "[addr:]port"),
              transform: DashboardAddress.parse)
    var address = DashboardAddress(host: "127.0.0.1", port: 0)

    @Option(name: .customLong("ui-token-file"),
            help: ArgumentHelp("The access token, from a file only you can read (needed for a non-loopback address).",
                               valueName: "file"))
    var uiTokenFile: String?

    @Option(name: [.customShort("d"), .customLong("debug")],
            help: ArgumentHelp("Verbosity of the links started from the page (as for S and C).", valueName: "level"),
            transform: ArgumentValues.debugLevel)
    var debug: Int = 0

    func run() async throws {
        let session = try await DashboardSession.start(DashboardOptions(address: address, tokenFile: uiTokenFile),
                                                       verbosity: debug)
        let logger = Logger(label: "socket2ser") { StderrLogHandler(label: $0, logLevel: session.terminalLevel) }
        let stopper = RunStopper()
        let signals = await ShutdownSignals.install(logger: logger) { _ in stopper.stop() }
        defer { signals.stop() }
        logger.notice("dashboard serving with no link; start one from the page")
        await stopper.wait()
        await session.stop()
        logger.info("stopped")
    }
}
