#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Forwarding

/// The root command: `socket2ser S|C|cable|demo|bench …`.
///
/// The subcommand names `S` and `C` are socket2ser.py's positional mode, so the original's command
/// lines work unchanged. The root has its own entry point (`runMain`) instead of ArgumentParser's
/// `main()` because a mistyped flag should cost the user one line, not a page of usage, and
/// because errors from the runtime (a missing device, say) are not usage errors and deserve a
/// different exit code.
public struct Socket2Ser: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "socket2ser",
        abstract: "Carry many TCP connections over one serial line.",
        discussion: """
            Start one end on each computer, in either order:
              socket2ser S -port 22 -com /dev/ttyUSB0      (next to the service)
              socket2ser C -port 2222 -com /dev/ttyUSB0    (next to the users)
            then connect to 127.0.0.1:2222 as many times as you like.
            """,
        version: Socket2Ser.version,
        subcommands: [ServerCommand.self, ClientCommand.self, LinkCommand.self, RunCommand.self, ConnectCommand.self,
                      PortsCommand.self, CheckCommand.self, UICommand.self, KeygenCommand.self,
                      CableCommand.self, DemoCommand.self, BenchCommand.self])

    public init() {}

    /// The release, as `--version` prints it and the dashboard shows it.
    public static let version = "0.10.0"

    /// Kept so `await Socket2Ser.main()` still starts the tool with the friendly error handling.
    public static func main() async {
        await runMain()
    }
}

// MARK: - Entry point

extension Socket2Ser {
    /// Exit status for a command line that could not be understood; the same as Python's argparse,
    /// so scripts written for socket2ser.py see the codes they are used to.
    public static let usageErrorExitCode: Int32 = 2
    /// Exit status for a failure while running, e.g. the serial device cannot be opened.
    public static let runtimeErrorExitCode: Int32 = 1

    /// Parses the process arguments, runs the chosen command and exits.
    ///
    /// - Help (`--help`, `help S`) goes to standard output with status 0.
    /// - A usage error prints one line, `socket2ser: error: <message> (see '... --help')`, status 2.
    /// - An error thrown while running prints `socket2ser: <its description>`, with status 1.
    public static func runMain(arguments: [String] = Array(CommandLine.arguments.dropFirst())) async -> Never {
        switch prepare(arguments) {
        case .finish(let outcome):
            finish(outcome)
        case .run(let command):
            finish(await outcome(ofRunning: command))
        }
    }

    /// Runs a parsed command. `--help` and `help S` arrive here too, as ArgumentParser's built-in
    /// help command, whose `run()` throws the help text as a clean exit.
    static func outcome(ofRunning command: any ParsableCommand) async -> Outcome {
        do {
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                var command = command
                try command.run()
            }
            return Outcome(exitCode: 0)
        } catch {
            return outcome(forRunError: error)
        }
    }

    /// What the process prints and how it exits; separate from printing so tests can check it.
    struct Outcome: Equatable {
        var standardOutput = ""
        var standardError = ""
        var exitCode: Int32
    }

    /// The result of reading a command line: a command to run, or something to report right away.
    enum Preparation {
        case run(any ParsableCommand)
        case finish(Outcome)
    }

    /// Reads `arguments` without running anything.
    static func prepare(_ arguments: [String]) -> Preparation {
        do {
            return .run(try parseCommand(arguments))
        } catch {
            return .finish(outcome(forParseError: error, arguments: arguments))
        }
    }

    static func outcome(forParseError error: Error, arguments: [String]) -> Outcome {
        let code = exitCode(for: error)
        if code.isSuccess {
            // --help and friends: the full text, as the user asked for it.
            return Outcome(standardOutput: fullMessage(for: error) + "\n", exitCode: 0)
        }
        let text = firstMeaningfulLine(of: message(for: error))
        guard !text.isEmpty else { return Outcome(exitCode: usageErrorExitCode) }
        return Outcome(standardError: "socket2ser: error: \(text) (\(helpHint(for: arguments)))\n",
                       exitCode: usageErrorExitCode)
    }

    static func outcome(forRunError error: Error) -> Outcome {
        if let exit = error as? ExitCode {
            // A subcommand that has already explained itself and only sets the status.
            return Outcome(exitCode: exit.rawValue)
        }
        if exitCode(for: error).isSuccess {
            return Outcome(standardOutput: fullMessage(for: error) + "\n", exitCode: 0)
        }
        // The runtime's errors describe themselves in one line ("cannot open /dev/ttyUSB0: no such
        // device"); newlines are folded anyway so a multi-line description cannot spill a page.
        let lines = String(describing: error).split(whereSeparator: \.isNewline)
            .map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
        return Outcome(standardError: "socket2ser: \(lines.joined(separator: "; "))\n",
                       exitCode: runtimeErrorExitCode)
    }

    /// Points at the help of the subcommand the user was typing, when there is one.
    static func helpHint(for arguments: [String]) -> String {
        let normalised = reorderedForMode(normaliseAttachedValues(arguments)).first ?? arguments
        if let first = normalised.first, let command = subcommand(named: first) {
            return "see 'socket2ser \(command._commandName) --help'"
        }
        return "see 'socket2ser --help'"
    }

    /// ArgumentParser's message for an error can carry extra lines (a usage synopsis, a list of
    /// suggestions); the first non-empty one is the message itself.
    static func firstMeaningfulLine(of message: String) -> String {
        var line = message.split(whereSeparator: \.isNewline)
            .map { $0.trimmingWhitespace() }.first { !$0.isEmpty } ?? ""
        if line.hasPrefix("Error: ") { line.removeFirst("Error: ".count) }
        // ArgumentParser capitalises ("Missing value for ..."); the tool's own messages do not,
        // and one line reads better in one style.
        return line.prefix(1).lowercased() + line.dropFirst()
    }

    private static func finish(_ outcome: Outcome) -> Never {
        if !outcome.standardOutput.isEmpty {
            print(outcome.standardOutput, terminator: "")
            fflush(nil)  // `print` buffers; `exit` would flush too, but say so explicitly.
        }
        if !outcome.standardError.isEmpty { StandardError.write(outcome.standardError) }
        #if canImport(Glibc)
        Glibc.exit(outcome.exitCode)
        #else
        Darwin.exit(outcome.exitCode)
        #endif
    }
}

// MARK: - Parsing

extension Socket2Ser {
    /// The mode letters of the original, and their lowercase aliases.
    static let modeNames: Set<String> = ["S", "C", "s", "c"]

    /// Parses a command line into the command it names, accepting the original's habits:
    ///
    /// - the mode anywhere on the line (`-port 22 -com COM3 S`, as socket2ser.py's usage line shows
    ///   it), by moving it to the front where ArgumentParser expects a subcommand;
    /// - `-d3` for `-d 3`, which argparse allows.
    ///
    /// Throws the error to report; `--help` also arrives as an error whose exit code is success.
    public static func parseCommand(_ arguments: [String]) throws -> any ParsableCommand {
        let arguments = normaliseAttachedValues(arguments)
        let command: any ParsableCommand
        do {
            command = try parseChecked(arguments)
        } catch where !exitCode(for: error).isSuccess {
            // Not understood as written. If the user put the mode after the options, try it first.
            let candidates = reorderedForMode(arguments)
            guard !candidates.isEmpty else { throw missingModeError(for: arguments) ?? error }
            var firstFailure: Error?
            for candidate in candidates {
                do {
                    return try parseChecked(candidate)
                } catch where exitCode(for: error).isSuccess {
                    throw error
                } catch {
                    if firstFailure == nil { firstFailure = error }
                }
            }
            throw firstFailure ?? error
        }
        if command is Socket2Ser {
            // Nothing but the program name: there is no default mode to guess.
            throw missingModeError(for: arguments) ?? CommandLineError("missing mode")
        }
        return command
    }

    /// ArgumentParser's parse, after `ArgumentCheck` has read a subcommand's options, so that an
    /// unknown or misplaced option is named as such.
    static func parseChecked(_ arguments: [String]) throws -> any ParsableCommand {
        guard let first = arguments.first, let command = subcommand(named: first) else {
            return try parseAsRoot(arguments)
        }
        return try parseAsRoot([first] + ArgumentCheck.check(Array(arguments.dropFirst()), for: command))
    }

    /// Parses an `S` or `C` command line into the configuration it would run with.
    public static func configuration(for arguments: [String]) throws -> ForwarderConfiguration {
        let command = try parseCommand(arguments)
        switch command {
        case let server as ServerCommand: return try server.makeConfiguration()
        case let client as ClientCommand: return try client.makeConfiguration()
        case let link as LinkCommand: return try link.makeConfiguration()
        default: throw CommandLineError("'\(type(of: command)._commandName)' does not run a forwarder")
        }
    }

    /// Splits `-d3` into `-d 3`; ArgumentParser would read it as the short flags `-d` and `-3`.
    static func normaliseAttachedValues(_ arguments: [String]) -> [String] {
        var result: [String] = []
        for (index, argument) in arguments.enumerated() {
            if argument == "--" {
                result += arguments[index...]
                break
            }
            if argument.hasPrefix("-d"), argument.count > 2, argument.dropFirst(2).allSatisfy(\.isNumber) {
                result += ["-d", String(argument.dropFirst(2))]
            } else {
                result.append(argument)
            }
        }
        return result
    }

    /// Command lines with one mode token moved to the front, most plausible first.
    ///
    /// Empty when the line already starts with a subcommand (nothing to move). The last mode token
    /// is tried first, as argparse reads a trailing positional; earlier ones cover the rare device
    /// or host literally named `S` or `C` that is really an option's value.
    static func reorderedForMode(_ arguments: [String]) -> [[String]] {
        if let first = arguments.first, subcommand(named: first) != nil { return [] }
        let end = arguments.firstIndex(of: "--") ?? arguments.endIndex
        return arguments[..<end].indices.reversed()
            .filter { modeNames.contains(arguments[$0]) }
            .map { index in
                var moved = arguments
                let mode = moved.remove(at: index)
                return [mode] + moved
            }
    }

    /// A clearer message than "unknown option '-port'" when the mode was left out entirely.
    private static func missingModeError(for arguments: [String]) -> CommandLineError? {
        guard let first = arguments.first else {
            return CommandLineError("missing mode: S (connect streams to a TCP target) or C (listen for TCP connections)")
        }
        if subcommand(named: first) != nil || first == "help" { return nil }
        if first.hasPrefix("-") {
            return CommandLineError("missing mode: S or C must be given, e.g. socket2ser S -port 22 -com /dev/ttyUSB0")
        }
        return CommandLineError("unknown mode '\(first)': expected S, C, link, run, connect, ports, ui, keygen, cable, demo or bench")
    }

    static func subcommand(named name: String) -> ParsableCommand.Type? {
        configuration.subcommands.first {
            $0.configuration.commandName == name || $0.configuration.aliases.contains(name)
        }
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
