import ArgumentParser

/// `socket2ser demo`: will show the whole path (two forwarders over a virtual cable) in one
/// process. A stub until that is written, registered now so the command tree is final and the
/// help already lists it.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run both ends over a virtual cable in one process (not yet available).")

    func run() async throws {
        StandardError.write("demo: not yet available\n")
        throw ExitCode.failure
    }
}
