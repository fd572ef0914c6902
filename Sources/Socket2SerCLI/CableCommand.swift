import ArgumentParser

/// `socket2ser cable`: two pseudo-terminals joined like a null-modem cable. (Stub.)
struct CableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cable", abstract: "Run a virtual serial cable.")
    func run() async throws {}
}
