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
}
