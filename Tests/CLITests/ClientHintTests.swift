#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Testing
@testable import Socket2SerCLI

/// The demo's hint names a client this machine has: nc, else socat, else the built-in one.
@Suite("Client hint")
struct ClientHintTests {
    /// A folder holding executable files with these names, to stand in for PATH.
    private func searchPath(with names: [String]) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hint-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        for name in names {
            let path = directory.appendingPathComponent(name).path
            #expect(FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\n".utf8),
                                                   attributes: [.posixPermissions: 0o755]))
        }
        return directory.path
    }

    @Test("nc when it is installed, with the built-in client as the alternative")
    func netcat() throws {
        let hint = ClientHint.hint(port: 4000, searchPath: try searchPath(with: ["nc", "socat"]), executable: "socket2ser")
        #expect(hint == ClientHint.Hint(primary: "nc 127.0.0.1 4000", alternative: "socket2ser connect 127.0.0.1:4000"))
    }

    @Test("socat when nc is missing")
    func socat() throws {
        let hint = ClientHint.hint(port: 4000, searchPath: try searchPath(with: ["socat"]), executable: "socket2ser")
        #expect(hint.primary == "socat - TCP:127.0.0.1:4000")
    }

    @Test("The built-in client on a bare system, spelled as this executable can be run")
    func bare() throws {
        let hint = ClientHint.hint(port: 4000, searchPath: try searchPath(with: []), executable: ".build/debug/socket2ser")
        #expect(hint == ClientHint.Hint(primary: ".build/debug/socket2ser connect 127.0.0.1:4000", alternative: nil))
        // A file that is there but not executable does not count.
        let directory = try searchPath(with: [])
        _ = FileManager.default.createFile(atPath: directory + "/nc", contents: Data(), attributes: [.posixPermissions: 0o644])
        #expect(ClientHint.hint(port: 1, searchPath: directory, executable: "x").alternative == nil)
    }

    @Test("connect's endpoint forms", arguments: [
        ("127.0.0.1:2222", "127.0.0.1", 2222), ("[::1]:80", "::1", 80), ("localhost:8080", "localhost", 8080),
        ("2222", "127.0.0.1", 2222),
    ])
    func endpoints(text: String, host: String, port: Int) throws {
        #expect(try ConnectCommand.endpoint(text) == ConnectCommand.Endpoint(host: host, port: port))
    }

    @Test("Bad endpoints are refused", arguments: ["", "host", "::1:80", "[::1]80", ":80", "host:0", "host:70000"])
    func badEndpoints(text: String) {
        #expect(throws: CommandLineError.self) { try ConnectCommand.endpoint(text) }
    }
}
