import Testing
@testable import Socket2SerCLI

/// Bad input costs the user one line that names the problem, a pointer to the help, and exit 2.
/// These tests go through `Socket2Ser.prepare`, which is exactly what the executable runs before
/// printing, so they check the text the user will see without starting a process.
@Suite("Error reporting")
struct ErrorReportingTests {
    /// The outcome of a command line that must be refused, with its stderr split into lines.
    private func refusal(_ arguments: [String], sourceLocation: SourceLocation = #_sourceLocation)
        throws -> (error: String, hint: String)
    {
        guard case .finish(let outcome) = Socket2Ser.prepare(arguments) else {
            Issue.record("\(arguments) was accepted", sourceLocation: sourceLocation)
            throw Refused.accepted
        }
        #expect(outcome.exitCode == Socket2Ser.usageErrorExitCode, sourceLocation: sourceLocation)
        #expect(outcome.standardOutput.isEmpty, sourceLocation: sourceLocation)
        let lines = outcome.standardError.split(separator: "\n", omittingEmptySubsequences: false)
        // One line and the final newline: the error, ending with the help hint in parentheses.
        try #require(lines.count == 2 && lines[1].isEmpty, "stderr was: \(outcome.standardError)",
                     sourceLocation: sourceLocation)
        let line = String(lines[0])
        #expect(line.hasPrefix("socket2ser: error: "), sourceLocation: sourceLocation)
        let hintStart = try #require(line.range(of: " (see 'socket2ser", options: .backwards), sourceLocation: sourceLocation)
        #expect(line.hasSuffix(")"), sourceLocation: sourceLocation)
        let error = String(line[..<hintStart.lowerBound])
        let hint = String(line[line.index(after: hintStart.lowerBound)...].dropFirst().dropLast())
        return (error, hint)
    }

    private enum Refused: Error { case accepted }

    @Test("A compression mode that does not exist")
    func badCompression() throws {
        let (error, _) = try refusal(["S", "-port", "22", "-com", "/dev/x", "--compress", "gzip"])
        #expect(error.contains("compression is auto, off or always"), "\(error)")
    }

    @Test("Unknown flag")
    func unknownFlag() throws {
        let (error, hint) = try refusal(["S", "-port", "22", "-com", "/dev/x", "--colour"])
        #expect(error.contains("unknown option '--colour' for S"))
        #expect(hint == "see 'socket2ser S --help'")
    }

    @Test("Missing -com")
    func missingDevice() throws {
        let (error, _) = try refusal(["S", "-port", "22"])
        #expect(error.contains("missing expected argument '-com <device>'"))
    }

    @Test("Missing -port")
    func missingPort() throws {
        let (error, _) = try refusal(["C", "-com", "/dev/x"])
        #expect(error.contains("-port <port>"))
    }

    @Test("Bad port numbers", arguments: ["0", "70000", "abc", "65536", "22.5"])
    func badPort(port: String) throws {
        let (error, _) = try refusal(["C", "-port", port, "-com", "/dev/x"])
        #expect(error.contains("'\(port)'"))
        #expect(error.contains("-port"))
        #expect(error.contains("1 to 65535"))
    }

    @Test("Bad baud rates", arguments: ["49", "20000001", "fast", "-"])
    func badBaud(baud: String) throws {
        let (error, _) = try refusal(["S", "-port", "22", "-com", "/dev/x", "-baudrate", baud])
        #expect(error.contains("baud"))
    }

    @Test("Bad serial specs", arguments: ["115200,9N1", "115200,8Q1", "8N1", "115200;8N1", "10,8N1"])
    func badSerialSpec(spec: String) throws {
        let (error, _) = try refusal(["S", "-port", "22", "-com", "/dev/x", "--serial", spec])
        #expect(error.contains("--serial"))
        #expect(error.contains("'\(spec)'"))
    }

    @Test("Separate line flags that contradict --serial")
    func contradictorySerial() throws {
        let (error, _) = try refusal(["S", "-port", "22", "-com", "/dev/x", "--serial", "9600,8N1", "--baud", "115200"])
        #expect(error.contains("disagrees with --serial 9600,8N1"))
        let (parity, _) = try refusal(["S", "-port", "22", "-com", "/dev/x", "--serial", "9600,8N1", "--parity", "even"])
        #expect(parity.contains("--parity even"))
    }

    @Test("Bad separate line settings",
          arguments: [["--data-bits", "9"], ["--parity", "mark"], ["--stop-bits", "1.5"], ["--flow", "xonxoff"]])
    func badLineSettings(flag: [String]) throws {
        let (error, _) = try refusal(["S", "-port", "22", "-com", "/dev/x"] + flag)
        #expect(error.contains(flag[0]))
    }

    @Test("Bad -d levels", arguments: ["5", "-1", "x", "10"])
    func badDebugLevel(level: String) throws {
        let (error, _) = try refusal(["S", "-port", "22", "-com", "/dev/x", "-d", level])
        #expect(error.contains("-d") || error.contains("--debug"))
    }

    @Test("Out-of-range limits and times",
          arguments: [["--max-streams", "0"], ["--max-streams", "32768"], ["--grace", "-1"], ["--grace", "nan"],
                      ["--connect-timeout", "0"]])
    func badLimits(flag: [String]) throws {
        let (error, _) = try refusal(["S", "-port", "22", "-com", "/dev/x"] + flag)
        #expect(error.contains(flag[0]))
    }

    @Test("--backdoor is refused with the reason", arguments: ["-b", "--backdoor"])
    func backdoor(flag: String) throws {
        let (error, _) = try refusal(["S", "-port", "22", "-com", "/dev/x", flag])
        #expect(error == "socket2ser: error: " + LinkOptions.backdoorRefusal)
        #expect(error.contains("security"))
    }

    @Test("-ip on C is explained rather than silently ignored")
    func ipOnClient() throws {
        let (error, hint) = try refusal(["C", "-ip", "10.0.0.1", "-port", "22", "-com", "/dev/x"])
        #expect(error.contains("--bind 10.0.0.1"))
        #expect(hint == "see 'socket2ser C --help'")
    }

    @Test("--bind on S is unknown")
    func bindOnServer() throws {
        let (error, _) = try refusal(["S", "--bind", "0.0.0.0", "-port", "22", "-com", "/dev/x"])
        #expect(error.contains("--bind"))
    }

    @Test("No mode at all")
    func missingMode() throws {
        let (bare, hint) = try refusal([])
        #expect(bare.contains("missing mode"))
        #expect(hint == "see 'socket2ser --help'")
        let (optionsOnly, _) = try refusal(["-port", "22", "-com", "/dev/x"])
        #expect(optionsOnly.contains("missing mode"))
        let (unknown, _) = try refusal(["X", "-port", "22"])
        #expect(unknown.contains("unknown mode 'X'"))
    }

    @Test("A trailing mode with a bad option reports the option, not the mode")
    func trailingModeWithError() throws {
        let (error, hint) = try refusal(["-port", "0", "-com", "/dev/x", "S"])
        #expect(error.contains("-port"))
        #expect(hint == "see 'socket2ser S --help'")
    }

    @Test("--help prints the full help on stdout and exits 0",
          arguments: [["--help"], ["S", "--help"], ["help", "C"], ["-port", "22", "C", "-h"]])
    func help(arguments: [String]) async throws {
        let outcome: Socket2Ser.Outcome
        switch Socket2Ser.prepare(arguments) {
        case .finish(let reported):
            outcome = reported
        case .run(let command):
            // ArgumentParser answers --help with its own help command; anything else would start
            // a forwarder, which this test must not do.
            try #require(!(command is ServerCommand) && !(command is ClientCommand))
            outcome = await Socket2Ser.outcome(ofRunning: command)
        }
        #expect(outcome.exitCode == 0)
        #expect(outcome.standardError.isEmpty)
        #expect(outcome.standardOutput.contains("USAGE:"))
        #expect(outcome.standardOutput.split(separator: "\n").count > 5)
    }

    @Test("Runtime errors print their description after 'socket2ser: ' and exit 1")
    func runtimeError() {
        struct DeviceMissing: Error, CustomStringConvertible {
            var description: String { "cannot open /dev/ttyUSB9: no such file or directory" }
        }
        let outcome = Socket2Ser.outcome(forRunError: DeviceMissing())
        #expect(outcome == Socket2Ser.Outcome(
            standardError: "socket2ser: cannot open /dev/ttyUSB9: no such file or directory\n", exitCode: 1))

        struct Chatty: Error, CustomStringConvertible {
            var description: String { "first\n  second\n" }
        }
        #expect(Socket2Ser.outcome(forRunError: Chatty()).standardError == "socket2ser: first; second\n")
    }

    @Test("The first meaningful line of a multi-line message")
    func firstLine() {
        #expect(Socket2Ser.firstMeaningfulLine(of: "\n  Error: Missing value\nUsage: x\n") == "missing value")
    }

    // MARK: ArgumentCheck

    @Test("A close misspelling gets a suggestion; a far one does not",
          arguments: [("-prot", "-port"), ("-baud", "--baud"), ("-baudrat", "-baudrate"), ("--gracee", "--grace"),
                      ("--max-stream", "--max-streams"), ("-grace", "--grace"), ("--conect-timeout", "--connect-timeout")])
    func suggestions(typed: String, expected: String) {
        let names = ArgumentCheck.options(of: ServerCommand.self).flatMap(\.names)
        #expect(ArgumentCheck.suggestion(for: typed, among: names) == expected)
    }

    @Test("No suggestion for an option that is nothing like any other", arguments: ["--colour", "-xyz", "--frobnicate"])
    func noSuggestion(typed: String) {
        let names = ArgumentCheck.options(of: ServerCommand.self).flatMap(\.names)
        #expect(ArgumentCheck.suggestion(for: typed, among: names) == nil)
    }

    @Test("The option table comes from the declarations, hidden options included")
    func optionTable() {
        let options = ArgumentCheck.options(of: ServerCommand.self)
        #expect(options.contains { $0.names == ["-port", "--port"] && $0.takesValue })
        #expect(options.contains { $0.names.contains("-b") && !$0.takesValue })  // refused with a reason
        #expect(options.contains { $0.names.contains("--unpaced") && !$0.takesValue })
        #expect(!options.contains { $0.names.contains("--bind") })
    }

    @Test("A value that starts with a dash is handed over attached, so its own check explains it")
    func negativeValues() throws {
        #expect(try ArgumentCheck.check(["--grace", "-1", "-port", "22"], for: ServerCommand.self)
                == ["--grace=-1", "-port", "22"])
        #expect(try ArgumentCheck.check(["-d", "-2"], for: ServerCommand.self) == ["--debug=-2"])
        // A value that is a known option is that option: -port has no value here.
        #expect(try ArgumentCheck.check(["-port", "-com", "/dev/x"], for: ServerCommand.self)
                == ["-port", "-com", "/dev/x"])
        // After `--` nothing is read as an option.
        #expect(try ArgumentCheck.check(["--", "-whatever"], for: ConnectCommand.self) == ["--", "-whatever"])
    }

    @Test("The original's command lines are still accepted exactly as written",
          arguments: [["S", "-ip", "localhost", "-port", "22", "-com", "/dev/ttyUSB0", "-baudrate", "115200"],
                      ["-port", "22", "-com", "COM3", "S"], ["C", "-port", "2222", "-com", "/dev/ttyUSB0", "-d3"],
                      ["S", "-port=22", "-com", "/dev/ttyUSB0", "--grace=5"]])
    func originalLines(arguments: [String]) throws {
        guard case .run = Socket2Ser.prepare(arguments) else {
            Issue.record("\(arguments) was refused")
            return
        }
    }
}
