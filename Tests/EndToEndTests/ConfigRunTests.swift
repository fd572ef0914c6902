#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit
import Testing

/// `socket2ser run --config FILE` with the real executable (issue 9): several lines in one
/// process, independent of each other, and SIGHUP reloading forwards under a running transfer.
@Suite("Config file", .serialized, .timeLimit(.minutes(3)), .tags(.timing))
struct ConfigRunTests {
    /// A config file in a fresh temporary folder.
    private final class ConfigFileOnDisk: @unchecked Sendable {
        let path: String

        init(_ text: String) throws {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("socket2ser-config-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            path = folder.appendingPathComponent("socket2ser.yaml").path
            try write(text)
        }

        func write(_ text: String) throws {
            // Replaced in one step, as an editor saving the file would.
            let temporary = path + ".new"
            try text.write(toFile: temporary, atomically: false, encoding: .utf8)
            guard rename(temporary, path) == 0 else { throw E2EFailure("cannot replace \(path)") }
        }
    }

    @Test("Two lines in one process: one is unplugged, the other's transfer goes on intact")
    func independentLines() async throws {
        let first = try E2ETarget(.echo)
        defer { first.stop() }
        let second = try E2ETarget(.echo)
        defer { second.stop() }
        let port1 = try freeLoopbackPort()
        let port2 = try freeLoopbackPort()
        let data = Payload.bytes(200_000, seed: 101)  // 4 s each way at 500 kbaud
        let (result, elapsed, log) = try await e2eOffload { () -> (E2EReadResult, Duration, String) in
            // Line one's ends are named by links the cable removes when it stops, as a USB
            // adapter's node goes away when it is unplugged. (A bare /dev/pts/N would be handed
            // to the next pseudo-terminal anyone opens, and the line would reopen that.)
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("unplug-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let a1 = folder + "/one-a"
            let b1 = folder + "/one-b"
            let (cable1, _, _) = try e2eStartCable(baud: 2_000_000, options: ["--link-a", a1, "--link-b", b1])
            defer { cable1.forceKill() }
            let (cable2, a2, b2) = try e2eStartCable(baud: 500_000)
            defer { cable2.forceKill() }
            let file = try ConfigFileOnDisk("""
                lines:
                  one:
                    device: \(a1)
                    baud: 2000000
                    local: 127.0.0.1:\(port1):127.0.0.1:\(first.port)
                  two:
                    device: \(a2)
                    baud: 500000
                    local: [127.0.0.1:\(port2):127.0.0.1:\(second.port)]
                """)
            let run = try ChildProcess("run", ["run", "--config", file.path])
            defer { run.forceKill() }
            let peer1 = try ChildProcess("peer1", ["link", "-com", b1, "--baudrate", "2000000", "--allow", "127.0.0.1:\(first.port)"])
            defer { peer1.forceKill() }
            let peer2 = try ChildProcess("peer2", ["link", "-com", b2, "--baudrate", "500000", "--allow", "127.0.0.1:\(second.port)"])
            defer { peer2.forceKill() }
            try run.waitForError(containing: "link up: peer found on \(a1)")
            try run.waitForError(containing: "link up: peer found on \(a2)")
            guard try e2eExchange(port: port1, Array("one".utf8), timeout: 5).bytes == Array("one".utf8) else {
                throw E2EFailure("line one does not work")
            }
            let started = ContinuousClock.now
            let transfer = E2EBackground("line two transfer") { () -> E2EReadResult in
                let client = try E2EClient.connect(port: port2)
                defer { client.close() }
                return client.sendWhileReadingToEnd(data, timeout: 30)
            }
            // Line one's cable is pulled out while line two carries its transfer.
            try waitUntil("line two's transfer to be under way", timeout: .seconds(5)) { second.accepted > 0 }
            cable1.signal(SIGTERM)
            try run.waitForError(containing: "serial device \(a1) is gone")
            let result = try transfer.value(timeout: .seconds(35))
            let elapsed = ContinuousClock.now - started
            let reports = ChildProcess.terminate([run, peer2])
            guard reports[0].isClean else { throw E2EFailure("\(reports)\n\(run.errors.text)") }
            return (result, elapsed, run.errors.text)
        }
        #expect(result.end == .endOfFile)
        #expect(e2eDifference(result.bytes, data) == nil, "\(e2eDifference(result.bytes, data) ?? "")")
        #expect(elapsed < .seconds(15), "line two took \(elapsed.millisecondsText)")
        // Each line's messages say which line they are about.
        #expect(log.split(separator: "\n").contains { $0.contains("is gone") && $0.contains("line=one") }, "\(log)")
        print("config: line two moved 200 KB each way in \(elapsed.millisecondsText) while line one was unplugged")
    }

    @Test("SOCKS5 with a username and password from the config: curl with them fetches, without them or with a wrong one it cannot")
    func socksCredentials() async throws {
        let page = Array("<html><body>behind the board</body></html>\n".utf8)
        let web = try E2ETarget(.http(body: page))
        defer { web.stop() }
        let socksPort = try freeLoopbackPort()
        let password = "s3cret-\(UUID().uuidString.prefix(8))"
        struct Outcome: Sendable {
            var withCredentials: (status: Int32, output: [UInt8])
            var withoutCredentials: Int32
            var wrongPassword: (method: UInt8?, status: UInt8?)
            var noMethod: (method: UInt8?, status: UInt8?)
            var log: String
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let (cable, a, b) = try e2eStartCable(baud: 2_000_000)
            defer { cable.forceKill() }
            let file = try ConfigFileOnDisk("")
            let secret = (file.path as NSString).deletingLastPathComponent + "/socks.password"
            try (password + "\n").write(toFile: secret, atomically: false, encoding: .utf8)
            chmod(secret, 0o600)
            try file.write("""
                lines:
                  board:
                    device: \(a)
                    baud: 2000000
                    dynamic: \(socksPort)
                    socks-username: tester
                    socks-password-file: \(secret)
                """)
            let run = try ChildProcess("run", ["run", "--config", file.path])
            defer { run.forceKill() }
            let peer = try ChildProcess("peer", ["link", "-com", b, "--baudrate", "2000000", "--allow", "localhost:\(web.port)"])
            defer { peer.forceKill() }
            try run.waitForError(containing: "link up: peer found on \(a)")
            try waitUntil("the SOCKS listener", timeout: .seconds(10)) { E2EClient.accepts(port: socksPort) }
            let url = "http://localhost:\(web.port)/"
            let good = try e2eRunTool("curl", ["--silent", "--show-error", "--max-time", "20",
                                               "--proxy", "socks5h://tester:\(password)@127.0.0.1:\(socksPort)", url])
            let none = try e2eRunTool("curl", ["--silent", "--max-time", "20", "--proxy", "socks5h://127.0.0.1:\(socksPort)", url])
            let wrong = try E2ESOCKS.authenticate(port: socksPort, username: "tester", password: "not-it")
            wrong.client.close()
            let noMethod = try E2ESOCKS.connect(port: socksPort, request: E2ESOCKS.request(host: "localhost", port: web.port))
            noMethod.client.close()
            let noMethodReply = noMethod.reply
            let reports = ChildProcess.terminate([run, peer])
            guard reports.allSatisfy(\.isClean) else { throw E2EFailure("\(reports)\n\(run.errors.text)") }
            return Outcome(withCredentials: (good.status, good.output), withoutCredentials: none.status,
                           wrongPassword: (wrong.method, wrong.status), noMethod: (nil, noMethodReply),
                           log: run.errors.text + peer.errors.text)
        }
        #expect(outcome.withCredentials.status == 0, "\(outcome.log)")
        #expect(outcome.withCredentials.output == page)
        #expect(outcome.withoutCredentials != 0, "a client without credentials must not get through")
        #expect(outcome.wrongPassword.method == 2 && outcome.wrongPassword.status != nil && outcome.wrongPassword.status != 0)
        #expect(outcome.noMethod.status == nil, "no reply to a client that offers no acceptable method")
        #expect(outcome.log.contains("wrong username or password"), "\(outcome.log)")
        #expect(!outcome.log.contains(password), "the password must never reach a log")
    }

    @Test("SIGHUP adds and removes a forward while a transfer on another completes intact; a bad file is refused")
    func reload() async throws {
        let bulk = try E2ETarget(.echo)
        defer { bulk.stop() }
        let extra = try E2ETarget(.echo)
        defer { extra.stop() }
        let bulkPort = try freeLoopbackPort()
        let extraPort = try freeLoopbackPort()
        let data = Payload.bytes(250_000, seed: 102)  // 5 s each way at 500 kbaud
        struct Outcome: Sendable {
            var transfer: E2EReadResult
            var extraEcho: [UInt8]
            var afterBadReload: [UInt8]
            var log: String
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let (cable, a, b) = try e2eStartCable(baud: 500_000)
            defer { cable.forceKill() }
            func config(withExtra: Bool) -> String {
                """
                lines:
                  board:
                    device: \(a)
                    baud: 500000
                    local:
                      - 127.0.0.1:\(bulkPort):127.0.0.1:\(bulk.port)
                \(withExtra ? "      - 127.0.0.1:\(extraPort):127.0.0.1:\(extra.port)" : "")
                """
            }
            let file = try ConfigFileOnDisk(config(withExtra: false))
            let run = try ChildProcess("run", ["run", "--config", file.path])
            defer { run.forceKill() }
            let peer = try ChildProcess("peer", ["link", "-com", b, "--baudrate", "500000",
                                                 "--allow", "127.0.0.1:\(bulk.port)", "--allow", "127.0.0.1:\(extra.port)"])
            defer { peer.forceKill() }
            try run.waitForError(containing: "link up: peer found on \(a)")
            let transfer = E2EBackground("bulk transfer") { () -> E2EReadResult in
                let client = try E2EClient.connect(port: bulkPort)
                defer { client.close() }
                return client.sendWhileReadingToEnd(data, timeout: 40)
            }
            try waitUntil("the bulk transfer to be under way", timeout: .seconds(5)) { bulk.accepted > 0 }

            try file.write(config(withExtra: true))
            run.signal(SIGHUP)
            try run.waitForError(containing: "reloaded \(file.path): ~board (forwards)")
            try waitUntil("the added forward to listen", timeout: .seconds(5)) { E2EClient.accepts(port: extraPort) }
            let extraEcho = try e2eExchange(port: extraPort, Array("added".utf8), timeout: 10).bytes

            try file.write("lines:\n  board:\n    device: \(a)\n    bauds: 1\n")
            run.signal(SIGHUP)
            try run.waitForError(containing: "reload refused:")
            let afterBadReload = try e2eExchange(port: extraPort, Array("still".utf8), timeout: 10).bytes

            try file.write(config(withExtra: false))
            run.signal(SIGHUP)
            try run.waitForError(containing: "reloaded \(file.path): ~board (forwards)", count: 2)
            try waitUntil("the removed forward to stop listening", timeout: .seconds(5)) { !E2EClient.accepts(port: extraPort) }

            let result = try transfer.value(timeout: .seconds(45))
            let reports = ChildProcess.terminate([run, peer])
            guard reports[0].isClean else { throw E2EFailure("\(reports)\n\(run.errors.text)") }
            return Outcome(transfer: result, extraEcho: extraEcho, afterBadReload: afterBadReload,
                           log: run.errors.text)
        }
        #expect(outcome.transfer.end == .endOfFile)
        #expect(e2eDifference(outcome.transfer.bytes, data) == nil, "\(e2eDifference(outcome.transfer.bytes, data) ?? "")")
        #expect(outcome.extraEcho == Array("added".utf8))
        #expect(outcome.afterBadReload == Array("still".utf8), "the old configuration stayed in force")
        let refused = outcome.log.split(separator: "\n").first { $0.contains("reload refused:") } ?? ""
        #expect(refused.contains(":4: line 'board': unknown key 'bauds' (did you mean 'baud'?); the running configuration stays in force"),
                "\(refused)")
        // The transfer's stream was never reset by the reloads.
        #expect(!outcome.log.contains("reset"), "\(outcome.log)")
    }
}
