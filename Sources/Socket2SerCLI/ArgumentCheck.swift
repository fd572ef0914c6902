import ArgumentParser
import Foundation

/// Reads a subcommand's arguments against the options it declares, before ArgumentParser does,
/// so that a mistake is named as the user made it.
///
/// ArgumentParser alone reports the symptom, not the cause, for the original's single-dash long
/// options: `-prot 8080` becomes "missing expected argument '-port'", `-baud 9600` is read as the
/// short flags `-b -a -u -d` ("the value '9600' is invalid for '-d'"), and `--grace -1` takes
/// `-1` for an option ("missing value for '--grace'"). This check:
///
/// - names an unknown option as unknown, with a "did you mean" only when one is close;
/// - says when an option belongs to another mode (`--bind` is C's, not S's);
/// - lets an option's value start with a dash (`--grace -1`, so that the value's own check
///   explains the range), by handing it to ArgumentParser as `--grace=-1`.
///
/// The option table comes from ArgumentParser's own description of each command
/// (`_dumpHelp()`), so it cannot drift from the declarations.
enum ArgumentCheck {
    /// One option or flag, with every spelling that selects it (dashes included).
    struct Option: Equatable {
        var names: [String]
        var takesValue: Bool
        /// The spelling used when the value must be attached with `=`: the first long name.
        var attachableName: String? { names.first { $0.hasPrefix("--") } ?? names.first { $0.count > 2 } }
    }

    /// Checks `arguments` (the subcommand's own, without its name) and returns them, rewritten
    /// where ArgumentParser needs a value attached.
    static func check(_ arguments: [String], for command: ParsableCommand.Type) throws -> [String] {
        let options = self.options(of: command)
        var byName: [String: Option] = [:]
        for option in options { for name in option.names { byName[name] = option } }

        var result: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            index += 1
            if argument == "--" {
                result += arguments[(index - 1)...]
                break
            }
            guard argument.hasPrefix("-"), argument.count > 1, !isNumber(argument) else {
                result.append(argument)
                continue
            }
            if let equals = argument.firstIndex(of: "="), argument.count > 2 {
                // `--name=value` or `-name=value`: the name must exist and take a value.
                let name = String(argument[..<equals])
                guard let option = byName[name] else { throw unknown(name, command: command, known: options) }
                guard option.takesValue else {
                    throw CommandLineError("'\(name)' takes no value (given '\(argument[argument.index(after: equals)...])')")
                }
                result.append(argument)
                continue
            }
            guard let option = byName[argument] else { throw unknown(argument, command: command, known: options) }
            result.append(argument)
            guard option.takesValue, index < arguments.count else { continue }
            let value = arguments[index]
            // A value that looks like an option is that option (`-port -com x`: -port has no
            // value), unless it is no known option at all: then it is this option's value.
            if value.hasPrefix("-"), value.count > 1, value != "--" {
                let valueName = value.split(separator: "=", maxSplits: 1).first.map(String.init) ?? value
                guard byName[valueName] == nil || isNumber(value) else { continue }
                if let attachable = option.attachableName {
                    result[result.count - 1] = "\(attachable)=\(value)"
                    index += 1
                }
                continue
            }
            result.append(value)
            index += 1
        }
        return result
    }

    /// The options and flags `command` declares (hidden ones too), plus help.
    static func options(of command: ParsableCommand.Type) -> [Option] {
        var options = [Option(names: ["-h", "--help"], takesValue: false)]
        guard let data = command._dumpHelp().data(using: .utf8),
              let info = try? JSONDecoder().decode(DumpedTool.self, from: data) else { return options }
        for argument in info.command.arguments ?? [] where argument.kind != "positional" {
            let names = (argument.names ?? []).map { name -> String in
                switch name.kind {
                case "short": return "-\(name.name)"
                case "longWithSingleDash": return "-\(name.name)"
                default: return "--\(name.name)"
                }
            }
            if names.contains("-h") || names.contains("--help") { continue }
            options.append(Option(names: names, takesValue: argument.kind == "option"))
        }
        return options
    }

    /// "unknown option '-prot'; did you mean '-port'?", or that the option belongs to another mode.
    static func unknown(_ name: String, command: ParsableCommand.Type, known: [Option]) -> CommandLineError {
        let mode = command._commandName
        if let closest = suggestion(for: name, among: known.flatMap(\.names)) {
            return CommandLineError("unknown option '\(name)' for \(mode); did you mean '\(closest)'?")
        }
        let owners = Socket2Ser.configuration.subcommands
            .filter { $0 != command && options(of: $0).contains { $0.names.contains(name) } }
            .map { $0._commandName }
        if !owners.isEmpty {
            return CommandLineError("'\(name)' is an option of \(owners.joined(separator: " and ")), not of \(mode)")
        }
        return CommandLineError("unknown option '\(name)' for \(mode)")
    }

    /// The known name closest to a mistyped one, if it is close: at most one edit for short
    /// names, two for longer ones, ignoring how many dashes were typed.
    static func suggestion(for name: String, among names: [String]) -> String? {
        let typed = Array(name.drop { $0 == "-" })
        guard typed.count >= 2 else { return nil }
        var best: (name: String, distance: Int)?
        for candidate in names {
            let bare = Array(candidate.drop { $0 == "-" })
            guard bare.count >= 2 else { continue }
            // Zero when only the dashes differ (`-grace` for `--grace`); a prefix counts as
            // one edit (`-baudr` for `-baudrate`).
            var distance = editDistance(typed, bare)
            if distance > 0 && (bare.starts(with: typed) || typed.starts(with: bare)) { distance = 1 }
            let limit = typed.count <= 4 ? 1 : 2
            guard distance <= limit else { continue }
            // Among equals prefer the spelling with the same number of dashes.
            let sameDashes = name.prefix(2) == candidate.prefix(2)
            if best == nil || distance < best!.distance
                || (distance == best!.distance && sameDashes && best!.name.prefix(2) != name.prefix(2)) {
                best = (candidate, distance)
            }
        }
        return best?.name
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and swaps of two
    /// neighbours ("prot" for "port" is one edit).
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                table[i][j] = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    table[i][j] = min(table[i][j], table[i - 2][j - 2] + 1)
                }
            }
        }
        return table[a.count][b.count]
    }

    /// "-1", "-0.5": a negative number, i.e. a value, never an option.
    static func isNumber(_ text: String) -> Bool {
        Double(text) != nil && text.dropFirst().first?.isNumber == true
    }

    // The part of ArgumentParser's JSON description this check reads.
    private struct DumpedTool: Decodable {
        var command: DumpedCommand
    }

    private struct DumpedCommand: Decodable {
        var arguments: [DumpedArgument]?
    }

    private struct DumpedArgument: Decodable {
        var kind: String
        var names: [DumpedName]?
    }

    private struct DumpedName: Decodable {
        var kind: String
        var name: String
    }
}
