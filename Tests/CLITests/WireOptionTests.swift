import Forwarding
import SerialPort
import Testing
@testable import Socket2SerCLI

/// `--wire legacy` and the config file's `wire:`: parsed and checked only; the legacy wire itself
/// runs against the real original in LegacyEndToEndTests.
@Suite("The --wire option")
struct WireOptionTests {
    @Test("--wire legacy on S and C: the legacy wire, 8E1 unless the parity is given")
    func legacyOnSAndC() throws {
        let server = try Socket2Ser.configuration(for: ["S", "-port", "22", "-com", "/dev/ttyS1", "--wire", "legacy"])
        #expect(server.wire == .legacy && server.serial.parity == .even)
        let client = try Socket2Ser.configuration(for: ["C", "-port", "2222", "-com", "/dev/ttyUSB0", "--wire", "legacy",
                                                        "--parity", "none"])
        #expect(client.wire == .legacy && client.serial.parity == .none)
        let spelled = try Socket2Ser.configuration(for: ["C", "-port", "2222", "-com", "/dev/ttyUSB0", "--wire", "legacy",
                                                         "--serial", "9600,8N1"])
        #expect(spelled.serial.parity == .none)
        let ours = try Socket2Ser.configuration(for: ["S", "-port", "22", "-com", "/dev/ttyS1"])
        #expect(ours.wire == .socket2ser && ours.serial.parity == .none)
    }

    @Test("What the legacy wire cannot carry is refused with one line", arguments: [
        (["link", "-com", "/dev/x", "--wire", "legacy"], "link needs the socket2ser wire"),
        (["C", "-port", "1", "-com", "/dev/x", "--wire", "legacy", "-L", "2:localhost:3"], "-L, -R and -D need the socket2ser wire"),
        (["S", "-port", "1", "-com", "/dev/x", "--wire", "legacy", "-D", "1080"], "-L, -R and -D need the socket2ser wire"),
        (["S", "-port", "1", "-com", "/dev/x", "--wire", "legacy", "--key-file", "k"], "the legacy wire cannot protect the line"),
        (["S", "-port", "1", "-com", "/dev/x", "--wire", "serial"], "the wire is socket2ser or legacy"),
    ])
    func refusals(arguments: [String], expected: String) {
        guard case .finish(let outcome) = Socket2Ser.prepare(arguments) else {
            Issue.record("\(arguments) was accepted")
            return
        }
        #expect(outcome.exitCode == Socket2Ser.usageErrorExitCode)
        let lines = outcome.standardError.split(separator: "\n")
        #expect(lines.count == 1 && lines[0].contains(expected), "\(outcome.standardError)")
    }

    @Test("wire: legacy in a config file, with the same checks")
    func configFile() throws {
        let file = try ConfigFile.parse("""
            lines:
              old-board:
                device: /dev/ttyUSB0
                listen: 2222
                wire: legacy
            """, path: "f.yaml")
        #expect(file.lines[0].configuration.wire == .legacy && file.lines[0].configuration.serial.parity == .even)
        #expect {
            _ = try ConfigFile.parse("""
                lines:
                  old-board:
                    device: /dev/ttyUSB0
                    listen: 2222
                    local: 8080:localhost:80
                    wire: legacy
                """, path: "f.yaml")
        } throws: { error in
            "\(error)" == "f.yaml:6: line 'old-board': 'wire: legacy' carries only C's listen to S's target; local, remote and dynamic need the socket2ser wire on both ends"
        }
    }
}
