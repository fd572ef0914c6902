import ArgumentParser

/// `socket2ser bench`: will measure throughput and latency over a virtual cable. A stub until
/// that is written, registered now so the command tree is final and the help already lists it.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure throughput over a virtual cable (not yet available).")

    func run() async throws {
        StandardError.write("bench: not yet available\n")
        throw ExitCode.failure
    }
}
