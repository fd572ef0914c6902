import CSerialShim
import Foundation
import Testing
import TestKit
@testable import Socket2SerCLI

/// The real executable, run as a subprocess: exit codes and exactly what reaches stderr.
///
/// Every wait has a timeout and waits for an event (process exit, end of a pipe, a line on
/// stderr), never for a fixed time. Serialized because a child spawned while another test's pipes
/// are open can inherit their write ends, and then those pipes do not reach end of file until
/// the unrelated child exits.
@Suite("Executable", .serialized)
struct ExecutableTests {
    @Test("Unknown flag: one error line naming the problem and the help, exit 2")
    func unknownFlag() throws {
        let result = try Socket2SerProcess.run(["S", "-port", "22", "-com", "/dev/null", "--frobnicate"])
        #expect(result.exitCode == 2)
        #expect(result.errorLines.count == 1, "\(result.standardError)")
        #expect(result.errorLines.first?.hasPrefix("socket2ser: error: unknown option '--frobnicate' for S") == true)
        #expect(result.standardOutput.isEmpty)
    }

    @Test("Bad port: one error line naming the problem and the help, exit 2", arguments: ["0", "70000", "abc"])
    func badPort(port: String) throws {
        let result = try Socket2SerProcess.run(["C", "-port", port, "-com", "/dev/null"])
        #expect(result.exitCode == 2)
        #expect(result.errorLines.count == 1, "\(result.standardError)")
        #expect(result.errorLines.first?.contains("'\(port)'") == true)
    }

    @Test("Backdoor refused, exit 2")
    func backdoor() throws {
        let result = try Socket2SerProcess.run(["S", "-port", "22", "-com", "/dev/null", "-b"])
        #expect(result.exitCode == 2)
        #expect(result.errorLines.count == 1, "\(result.standardError)")
        #expect(result.errorLines.first?.hasPrefix("socket2ser: error: \(LinkOptions.backdoorRefusal)") == true)
    }

    @Test("Missing -com, exit 2")
    func missingDevice() throws {
        let result = try Socket2SerProcess.run(["S", "-ip", "127.0.0.1", "-port", "22"])
        #expect(result.exitCode == 2)
        #expect(result.errorLines.count == 1, "\(result.standardError)")
        #expect(result.errorLines.first?.contains("-com") == true)
    }

    @Test("Device errors at startup: one line naming the device, exit 1",
          arguments: [("/nonexistent/ttyUSB9", "no such device"), ("/dev/null", "not a serial device"),
                       ("/tmp", "not a serial device"), ("usb:dead:beef", "no device matches it; "),
                       ("serial=NO-SUCH-ADAPTER", "no device matches it; ")])
    func deviceErrors(path: String, expected: String) throws {
        let result = try Socket2SerProcess.run(["C", "-port", "1", "-com", path])
        #expect(result.exitCode == 1)
        #expect(result.errorLines.first?.hasPrefix("socket2ser: \(path): ") == true)
        #expect(result.errorLines.count == 1 && result.errorLines[0].contains(expected), "\(result.standardError)")
    }

    @Test("A device held by another socket2ser is reported busy, exit 1")
    func busyDevice() throws {
        let terminal = try PseudoTerminal()
        let holder = try Socket2SerProcess(["S", "-port", "9", "-com", terminal.devicePath, "-d", "1"])
        try holder.waitForStandardError(containing: "S: connecting streams to")
        let result = try Socket2SerProcess.run(["C", "-port", "1", "-com", terminal.devicePath])
        kill(holder.pid, SIGTERM)
        _ = try holder.waitForExit()
        #expect(result.exitCode == 1)
        #expect(result.errorLines.count == 1 && result.errorLines[0].contains("in use by another process"), "\(result.standardError)")
        withExtendedLifetime(terminal) {}
    }

    @Test("--help: full help on stdout, nothing on stderr, exit 0")
    func help() throws {
        let result = try Socket2SerProcess.run(["S", "--help"])
        #expect(result.exitCode == 0)
        #expect(result.standardError.isEmpty)
        #expect(result.standardOutput.contains("-port, --port <port>"))
        #expect(result.standardOutput.contains("-baudrate, --baudrate, --baud <baud>"))
    }

    /// Starts S on a pseudo-terminal (a real tty, so a real runtime can open it too), waits for
    /// the readiness line that is logged once the signal handlers are in place, then sends the
    /// signal: the forwarder must be cancelled and the process must exit 0.
    @Test("SIGINT and SIGTERM stop the forwarder cleanly, exit 0", arguments: [SIGINT, SIGTERM])
    func signalStopsCleanly(signal: Int32) throws {
        let terminal = try PseudoTerminal()
        let process = try Socket2SerProcess(["S", "-port", "9", "-com", terminal.devicePath, "-d", "1"])
        try process.waitForStandardError(containing: "S: connecting streams to")
        kill(process.pid, signal)
        let result = try process.waitForExit()
        #expect(result.exitCode == 0, "\(result.standardError)")
        #expect(process.end == .exited(0))
        #expect(!result.standardError.contains("error"), "\(result.standardError)")
        withExtendedLifetime(terminal) {}
    }

    /// The exact line a user sees for each mistake a new user was seen to make (issue 8).
    @Test("Each reported mistake gets one line that names it",
          arguments: [
            (["C", "-prot", "8080", "-com", "/dev/ttyUSB0"],
             "socket2ser: error: unknown option '-prot' for C; did you mean '-port'? (see 'socket2ser C --help')"),
            (["S", "-port", "22", "-com", "/dev/ttyUSB0", "-baud", "9600"],
             "socket2ser: error: unknown option '-baud' for S; did you mean '--baud'? (see 'socket2ser S --help')"),
            (["S", "-port", "22", "-com", "/dev/ttyUSB0", "--grace", "-1"],
             "socket2ser: error: the value '-1' is invalid for '--grace <seconds>': the grace period is a number of seconds from 0 to 86400 (see 'socket2ser S --help')"),
            (["S", "--bind", "0.0.0.0", "-port", "22", "-com", "/dev/ttyUSB0"],
             "socket2ser: error: '--bind' is an option of C, not of S (see 'socket2ser S --help')"),
            (["C", "-port", "2222", "-com", "/dev/ttyUSB0", "--colour"],
             "socket2ser: error: unknown option '--colour' for C (see 'socket2ser C --help')"),
            (["C", "-port", "2222", "-com", "/dev/ttyUSB0", "--unpaced=yes"],
             "socket2ser: error: '--unpaced' takes no value (given 'yes') (see 'socket2ser C --help')"),
            (["C", "-port", "2222", "-com", "/dev/ttyUSB0", "--link-wait", "-5"],
             "socket2ser: error: the value '-5' is invalid for '--link-wait <seconds>': the link wait is a number of seconds from 0 to 86400 (see 'socket2ser C --help')"),
            (["C", "-port", "-com", "/dev/ttyUSB0"],
             "socket2ser: error: missing value for '-port <port>' (see 'socket2ser C --help')"),
            (["connect", "localhost"],
             "socket2ser: error: the value 'localhost' is invalid for '<host:port>': give HOST:PORT, e.g. 127.0.0.1:2222 (or [::1]:2222, or a port alone) (see 'socket2ser connect --help')"),
          ])
    func exactErrorLines(arguments: [String], expected: String) throws {
        let result = try Socket2SerProcess.run(arguments)
        #expect(result.exitCode == 2)
        #expect(result.errorLines == [Substring(expected)], "\(result.standardError)")
        #expect(result.standardOutput.isEmpty)
    }

    @Test("A port in use: one plain line, exit 1")
    func portInUse() throws {
        let terminal = try PseudoTerminal()
        let busy = try BusyPort()
        defer { busy.release() }
        let port = busy.port
        let result = try Socket2SerProcess.run(["C", "-port", "\(port)", "-com", terminal.devicePath])
        #expect(result.exitCode == 1)
        #expect(result.errorLines == ["socket2ser: cannot listen on 127.0.0.1:\(port): address already in use"],
                "\(result.standardError)")
        withExtendedLifetime(terminal) {}
    }

    @Test("run --config: a bad file is one located line and exit 1; --check on a good one says OK, exit 0")
    func configFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let bad = folder.appendingPathComponent("bad.yaml").path
        try "lines:\n  board1:\n    device: /dev/ttyUSB0\n    parity: mark\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let refused = try Socket2SerProcess.run(["run", "--config", bad])
        #expect(refused.exitCode == 1)
        #expect(refused.errorLines == ["socket2ser: \(bad):4: line 'board1': 'parity': parity is none, even or odd"],
                "\(refused.standardError)")
        let good = folder.appendingPathComponent("good.yaml").path
        try "lines:\n  board1:\n    device: /dev/ttyUSB0\n    local: 2222:localhost:22\n".write(toFile: good, atomically: true, encoding: .utf8)
        let checked = try Socket2SerProcess.run(["run", "--config", good, "--check"])
        #expect(checked.exitCode == 0, "\(checked.standardError)")
        #expect(checked.standardOutput == "\(good): OK: 1 line(s): board1 (/dev/ttyUSB0, 1 forward(s))\n")
    }

    @Test("--help describes -d 3 as a hex trace, and bench --help names the release build")
    func helpTexts() throws {
        // Help is wrapped to the terminal's width: compare with the line breaks folded.
        func folded(_ text: String) -> String { text.split(whereSeparator: \.isWhitespace).joined(separator: " ") }
        let server = folded(try Socket2SerProcess.run(["S", "--help"]).standardOutput)
        #expect(server.contains("3 hex trace of every byte on the line and the sockets"), "\(server)")
        #expect(server.contains("--link-wait <seconds>"))
        let bench = folded(try Socket2SerProcess.run(["bench", "--help"]).standardOutput)
        // The same command as the README's install section.
        let readme = try String(contentsOfFile: #filePath.replacingOccurrences(of: "Tests/CLITests/ExecutableTests.swift",
                                                                                with: "README.md"), encoding: .utf8)
        #expect(readme.contains("`swift build -c release --static-swift-stdlib`"))
        #expect(bench.contains("swift build -c release --static-swift-stdlib .build/release/socket2ser bench"), "\(bench)")
        #expect(bench.contains("default: none"))
    }
}

/// A pseudo-terminal whose slave side stands in for a serial device, made by the project's own
/// C shim (`posix_openpt` and friends are not visible through Swift's Glibc module). Both sides
/// stay open for the lifetime of this object so the line is not hung up under the process tested.
final class PseudoTerminal {
    let master: Int32
    let slave: Int32
    let devicePath: String

    init() throws {
        var master: Int32 = -1
        var slave: Int32 = -1
        var name = [CChar](repeating: 0, count: 128)
        guard sfs_openpty(&master, &slave, &name, name.count) == 0 else {
            throw Socket2SerProcess.Failure(description: "cannot create a pseudo-terminal: errno \(errno)")
        }
        self.master = master
        self.slave = slave
        devicePath = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    deinit {
        close(slave)
        close(master)
    }
}

/// `socket2ser ports` with the real executable and a real cable.
@Suite("Ports", .serialized)
struct PortsCommandTests {
    struct Device: Decodable {
        var path: String
        var kind: String
        var cableProcess: Int32?
    }

    @Test("the ends of a running socket2ser cable are listed as virtual-cable, with the cable's pid; --json parses")
    func cableEndsAreMarked() throws {
        let cable = try CableProcess(["--baud", "9600"])
        defer { cable.process.terminate() }
        let ports = try ChildProcess("ports", ["ports", "--json"])
        let exit = try #require(ports.waitForExit(timeout: .seconds(10)))
        #expect(exit.isCleanExitZero, "\(ports.errors.text)")
        let devices = try JSONDecoder().decode([Device].self, from: Data(ports.output.text.utf8))
        for path in [cable.pathA, cable.pathB] {
            let device = try #require(devices.first { $0.path == path }, "\(path) not in \(devices.map(\.path))")
            #expect(device.kind == "virtual-cable")
            #expect(device.cableProcess == cable.process.pid)
        }
        let text = try ChildProcess("ports", ["ports"])
        _ = text.waitForExit(timeout: .seconds(10))
        #expect(text.output.text.contains("\(cable.pathA)  virtual-cable  (socket2ser cable, pid \(cable.process.pid))"))
    }
}
