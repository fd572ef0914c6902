#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TestKit
import Testing

/// An adapter pulled and plugged back in, renamed, with the real executables: the virtual cable
/// hangs end B up for 3 s, removes its link, then brings it back as a new pty and points a link
/// there; C follows it and the transfer finishes intact.
@Suite("Hot-plug", .serialized, .timeLimit(.minutes(2)), .tags(.timing))
struct HotPlugTests {
    struct Outcome {
        var answer: E2EReadResult
        var upload: [UInt8]
        var received: [UInt8]
        /// C's and S's stderr, after what `probe` said once the link was restored.
        var logs: String
    }

    /// A 60 KB upload from C to S's sink target while the cable (`cable` arguments, which unplug
    /// end B for 3 s from 2 s in) pulls C's device; C opens `device` with `environment`.
    /// `probe` runs once C says nothing was lost; its text starts the logs.
    static func uploadThroughUnplug(cable arguments: [String], device: String, environment: [String: String] = [:],
                                    seed: UInt64, probe: @escaping @Sendable (CableProcess) -> String) async throws -> Outcome {
        let size = 60_000
        let upload = Payload.bytes(size, seed: seed)
        let sink = try E2ETarget(.sink(expected: size))
        defer { sink.stop() }
        let (answer, logs) = try await e2eOffload { () -> (E2EReadResult, String) in
            let cable = try CableProcess(["--baud", "115200", "--unplug", "2:3"] + arguments)
            let server = try cable.startServer(targetPort: sink.port, baud: 115_200, ["-d", "1"])
            let port = try freeLoopbackPort()
            let client = try ChildProcess("C", ["C", "-port", "\(port)", "-com", device, "--baudrate", "115200", "-d", "1"],
                                          environment: environment)
            defer { ChildProcess.terminate([client, server]); cable.process.terminate() }
            try client.waitForError(containing: "link up: peer found")
            let connection = try E2EClient.connect(port: port)
            defer { connection.close() }
            try connection.send(upload)
            let answer = connection.readToEnd(timeout: 40, limit: "GOT \(size)\n".utf8.count)
            try client.waitForError(containing: "nothing was lost", timeout: .seconds(5))
            return (answer, "\(probe(cable))\nC: \(client.errors.text)\nS: \(server.errors.text)")
        }
        return Outcome(answer: answer, upload: upload, received: sink.uploads.first ?? [], logs: logs)
    }

    static func expectIntact(_ outcome: Outcome, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(String(decoding: outcome.answer.bytes, as: UTF8.self) == "GOT \(outcome.upload.count)\n", "\(outcome.logs)",
                sourceLocation: sourceLocation)
        #expect(e2eDifference(outcome.received, outcome.upload) == nil, "\(outcome.logs)", sourceLocation: sourceLocation)
    }

    @Test("a 60 KB upload through a 3 s unplug that renames the device, opened by its by-id-style link: intact, and said so")
    func unplugAndRename() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("by-id-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let link = folder + "/usb-FTDI_FT232R_USB_UART_A9XYZ123-if00-port0"
        let outcome = try await Self.uploadThroughUnplug(cable: ["--link-b", link], device: link, seed: 161) { cable in
            let now = (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) ?? ""
            return "renamed: \(now != cable.pathB && now.hasPrefix("/dev/pts/")) (\(cable.pathB), now \(now))"
        }
        Self.expectIntact(outcome)
        #expect(outcome.logs.hasPrefix("renamed: true"), "\(outcome.logs)")
        #expect(outcome.logs.contains("is gone (the line hung up)"), "\(outcome.logs)")
        #expect(outcome.logs.contains("is back after 3."), "\(outcome.logs)")
    }

    /// The same pull, now of an adapter found by what it is: a fixture sysfs tree says that
    /// ttyUSB7 and ttyUSB8 are the FT232R with serial A9XYZ123; the cable's end B is ttyUSB7
    /// before the pull and ttyUSB8 after it. C, started with -com serial=A9XYZ123, finds it again.
    @Test("-com serial=A9XYZ123 follows the adapter from ttyUSB7 to ttyUSB8 through a 3 s unplug")
    func selectorFollowsIdentity() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sysfs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.fixture(root: root, names: ["ttyUSB7", "ttyUSB8"], serial: "A9XYZ123")
        let outcome = try await Self.uploadThroughUnplug(
            cable: ["--link-b", root + "/dev/ttyUSB7", "--replug-link-b", root + "/dev/ttyUSB8"], device: "serial=A9XYZ123",
            environment: ["SOCKET2SER_SYSFS_ROOT": root + "/sys", "SOCKET2SER_DEV_ROOT": root + "/dev"], seed: 162) { _ in
            let manager = FileManager.default
            return "moved: \(manager.fileExists(atPath: root + "/dev/ttyUSB8") && !manager.fileExists(atPath: root + "/dev/ttyUSB7"))"
        }
        Self.expectIntact(outcome)
        #expect(outcome.logs.hasPrefix("moved: true"), "\(outcome.logs)")
        #expect(outcome.logs.contains("serial device serial=A9XYZ123 is back after 3."), "\(outcome.logs)")
    }

    /// sys/class/tty/NAME for each name, all one FTDI FT232R (0403:6001) with `serial`, as sysfs
    /// lays out a usb-serial port; dev/ is left for the cable's links.
    static func fixture(root: String, names: [String], serial: String) throws {
        let manager = FileManager.default
        let usb = "\(root)/sys/devices/pci0000:00/0000:00:14.0/usb1/1-3"
        try manager.createDirectory(atPath: usb, withIntermediateDirectories: true)
        for (name, value) in ["idVendor": "0403", "idProduct": "6001", "manufacturer": "FTDI",
                              "product": "FT232R USB UART", "serial": serial] {
            try (value + "\n").write(toFile: "\(usb)/\(name)", atomically: false, encoding: .utf8)
        }
        try manager.createDirectory(atPath: "\(root)/sys/class/tty", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: "\(root)/dev", withIntermediateDirectories: true)
        for name in names {
            let port = "\(usb)/1-3:1.0/\(name)"
            try manager.createDirectory(atPath: "\(port)/tty/\(name)", withIntermediateDirectories: true)
            try manager.createSymbolicLink(atPath: "\(port)/tty/\(name)/device", withDestinationPath: "../../../\(name)")
            try manager.createSymbolicLink(atPath: "\(root)/sys/class/tty/\(name)",
                                           withDestinationPath: "../../devices/pci0000:00/0000:00:14.0/usb1/1-3/1-3:1.0/\(name)/tty/\(name)")
        }
    }
}
