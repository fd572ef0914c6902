#if canImport(Glibc)
import Glibc
#endif
import Foundation
import TestKit
import Testing

/// The real executable at both ends of the virtual cable, with key files from `socket2ser keygen`.
@Suite("Protection end to end", .serialized)
struct ProtectionEndToEndTests {
    /// A fresh key file from `socket2ser keygen -o`, in a folder of its own.
    static func keyFile(_ name: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("s2s-keys-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent(name).path
        let run = try e2eRunTool(try Socket2SerExecutable.url().path, ["keygen", "-o", path])
        guard run.status == 0 else { throw E2EFailure("keygen failed: \(run.errors)") }
        return path
    }

    @Test("the same key at both ends: a 200 KB echo arrives intact through bit errors on the line, encrypted or authenticated",
          arguments: ["encrypt", "authenticate"])
    func sameKey(mode: String) async throws {
        let key = try Self.keyFile("link.key")
        let target = try E2ETarget(.echo)
        defer { target.stop() }
        let data = Payload.bytes(200_000, seed: 71)
        let options = ["-d", "1", "--key-file", key, "--protect", mode]
        try await withE2ERig(targetPort: target.port, baud: 921_600, cableOptions: ["--ber", "0.00001"], seed: 9,
                             serverOptions: options, clientOptions: options) { rig in
            let port = rig.port
            let result = try await e2eOffload {
                let client = try E2EClient.connect(port: port)
                defer { client.close() }
                return client.sendWhileReadingToEnd(data, timeout: 30)
            }
            #expect(result.end == .endOfFile)
            #expect(e2eDifference(result.bytes, data) == nil, "\(e2eDifference(result.bytes, data) ?? "")")
            for end in [rig.server, rig.client] {
                #expect(end.errors.text.contains(mode == "encrypt" ? ", encrypted (the peer proved the key)"
                                                                  : ", authenticated, not encrypted"))
                #expect(!end.errors.text.contains(try String(contentsOfFile: key, encoding: .utf8).split(separator: "\n")[1]))
            }
        }
    }

    @Test("different keys, or a key at one end only: each end says so in one line, and nothing reaches the target",
          arguments: [("one", "other"), ("one", nil), (nil, "one")] as [(String?, String?)])
    func mismatch(server: String?, client: String?) async throws {
        let keys = ["one": try Self.keyFile("one.key"), "other": try Self.keyFile("other.key")]
        let target = try E2ETarget(.echo)
        defer { target.stop() }
        let cable = try CableProcess(["--baud", "115200"])
        let s = try cable.startServer(targetPort: target.port, baud: 115_200, server.map { ["--key-file", keys[$0]!] } ?? [])
        let port = try freeLoopbackPort()
        let c = try cable.startClient(port: port, baud: 115_200, client.map { ["--key-file", keys[$0]!] } ?? [])
        defer { for p in [s, c, cable.process] { p.forceKill() } }
        let (serverLine, clientLine) = switch (server, client) {
        case (.some, .some): ("the peer uses a different key", "the peer uses a different key")
        case (.some, nil): ("the peer has no key", "the peer uses a key and this end has none")
        default: ("the peer uses a key and this end has none", "the peer has no key")
        }
        try await e2eOffload {
            try s.waitForError(containing: serverLine, timeout: .seconds(10))
            try c.waitForError(containing: clientLine, timeout: .seconds(10))
            try waitUntil("C to accept connections", timeout: .seconds(10)) { E2EClient.accepts(port: port) }
        }
        let result = try await e2eOffload {
            let client = try E2EClient.connect(port: port)
            defer { client.close() }
            try client.send(Array("secret request".utf8))
            return client.readToEnd(timeout: 3)
        }
        #expect(result.bytes.isEmpty)
        #expect(target.accepted == 0)
        for (end, line) in [(s, serverLine), (c, clientLine)] {
            let text = end.errors.text
            #expect(text.components(separatedBy: line).count - 1 == 1, "\(end.name) stderr:\n\(text)")
            #expect(!text.contains("link up"), "\(end.name) stderr:\n\(text)")
        }
    }
}
