import ArgumentParser

/// The root command. (Stub: the full command line is being written.)
public struct Socket2Ser: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "socket2ser",
        abstract: "Carry many TCP connections over one serial line.",
        subcommands: [CableCommand.self])
    public init() {}
}
