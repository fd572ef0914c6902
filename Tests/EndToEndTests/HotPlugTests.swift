#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TestKit
import Testing

/// An adapter pulled and plugged back in, renamed, with the real executables: the virtual cable
/// hangs end B up for 3 s, removes its by-id-style link, then brings it back as a new pty and
/// moves the link there; C, opened by the link, follows it and the transfer finishes intact.
@Suite("Hot-plug", .serialized, .timeLimit(.minutes(2)), .tags(.timing))
struct HotPlugTests {
    @Test("a 60 KB upload through a 3 s unplug that renames the device: intact, and said so")
    func unplugAndRename() async throws {
        let size = 60_000
        let upload = Payload.bytes(size, seed: 161)
        let sink = try E2ETarget(.sink(expected: size))
        defer { sink.stop() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("by-id-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let link = folder + "/usb-FTDI_FT232R_USB_UART_A9XYZ123-if00-port0"

        let (answer, renamed, logs) = try await e2eOffload { () -> (E2EReadResult, Bool, String) in
            let cable = try CableProcess(["--baud", "115200", "--link-b", link, "--unplug", "2:3"])
            let server = try cable.startServer(targetPort: sink.port, baud: 115_200, ["-d", "1"])
            let port = try freeLoopbackPort()
            let client = try ChildProcess("C", ["C", "-port", "\(port)", "-com", link, "--baudrate", "115200", "-d", "1"])
            defer { ChildProcess.terminate([client, server]); cable.process.terminate() }
            try client.waitForError(containing: "link up: peer found")
            let connection = try E2EClient.connect(port: port)
            defer { connection.close() }
            try connection.send(upload)
            let answer = connection.readToEnd(timeout: 40, limit: "GOT \(size)\n".utf8.count)
            try client.waitForError(containing: "nothing was lost", timeout: .seconds(5))
            let now = (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) ?? ""
            return (answer, now != cable.pathB && now.hasPrefix("/dev/pts/"), "C: \(client.errors.text)\nS: \(server.errors.text)")
        }
        #expect(String(decoding: answer.bytes, as: UTF8.self) == "GOT \(size)\n", "\(logs)")
        #expect(e2eDifference(sink.uploads.first ?? [], upload) == nil, "\(logs)")
        #expect(renamed, "the link did not move to a new pty: \(logs)")
        #expect(logs.contains("is gone (the line hung up)"), "\(logs)")
        #expect(logs.contains("is back after 3."), "\(logs)")
    }

    /// The same pull, now of an adapter found by what it is: a fixture sysfs tree says that
    /// ttyUSB7 and ttyUSB8 are the FT232R with serial A9XYZ123; the cable's end B is ttyUSB7
    /// before the pull and ttyUSB8 after it. C, started with -com serial=A9XYZ123, finds it again.
    @Test("-com serial=A9XYZ123 follows the adapter from ttyUSB7 to ttyUSB8 through a 3 s unplug")
    func selectorFollowsIdentity() async throws {
        let size = 60_000
        let upload = Payload.bytes(size, seed: 162)
        let sink = try E2ETarget(.sink(expected: size))
        defer { sink.stop() }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sysfs-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.fixture(root: root, names: ["ttyUSB7", "ttyUSB8"], serial: "A9XYZ123")

        let (answer, logs) = try await e2eOffload { () -> (E2EReadResult, String) in
            let cable = try CableProcess(["--baud", "115200", "--link-b", root + "/dev/ttyUSB7",
                                          "--replug-link-b", root + "/dev/ttyUSB8", "--unplug", "2:3"])
            let server = try cable.startServer(targetPort: sink.port, baud: 115_200, ["-d", "1"])
            let port = try freeLoopbackPort()
            let client = try ChildProcess("C", ["C", "-port", "\(port)", "-com", "serial=A9XYZ123", "--baudrate", "115200", "-d", "1"],
                                          environment: ["SOCKET2SER_SYSFS_ROOT": root + "/sys", "SOCKET2SER_DEV_ROOT": root + "/dev"])
            defer { ChildProcess.terminate([client, server]); cable.process.terminate() }
            try client.waitForError(containing: "link up: peer found")
            let connection = try E2EClient.connect(port: port)
            defer { connection.close() }
            try connection.send(upload)
            let answer = connection.readToEnd(timeout: 40, limit: "GOT \(size)\n".utf8.count)
            try client.waitForError(containing: "nothing was lost", timeout: .seconds(5))
            let moved = FileManager.default.fileExists(atPath: root + "/dev/ttyUSB8")
                && !FileManager.default.fileExists(atPath: root + "/dev/ttyUSB7")
            return (answer, "moved: \(moved)\nC: \(client.errors.text)\nS: \(server.errors.text)")
        }
        #expect(String(decoding: answer.bytes, as: UTF8.self) == "GOT \(size)\n", "\(logs)")
        #expect(e2eDifference(sink.uploads.first ?? [], upload) == nil, "\(logs)")
        #expect(logs.hasPrefix("moved: true"), "\(logs)")
        #expect(logs.contains("serial device serial=A9XYZ123 is back after 3."), "\(logs)")
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
