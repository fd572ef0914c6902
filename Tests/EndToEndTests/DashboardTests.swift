#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit
import Testing

/// The dashboard (issue 10) with the real executable, the real cable and real sockets: its
/// security, its view of a live link, the changes it makes, the start of a link from the API,
/// the config file's `ui:`, the demo, and the page itself in headless Chromium.
@Suite("Dashboard", .serialized, .timeLimit(.minutes(3)), .tags(.timing))
struct DashboardTests {
    /// Where a process's dashboard is: parsed from "dashboard at http://127.0.0.1:PORT/#token=T".
    struct Endpoint: Sendable {
        var port: Int
        var token: String
        var url: String
        var bearer: [String: String] { ["Authorization": "Bearer \(token)"] }
        var json: [String: String] { bearer.merging(["Content-Type": "application/json"]) { a, _ in a } }

        static func from(_ process: ChildProcess, stdout: Bool = false) throws -> Endpoint {
            let marker = "dashboard at http://"
            if stdout {
                _ = try process.waitForOutput("the dashboard's URL") { $0.contains(marker) && $0.contains("token=") }
            } else {
                try process.waitForError(containing: marker)
            }
            let text = stdout ? process.output.text : process.errors.text
            guard let line = text.split(separator: "\n").first(where: { $0.contains(marker) }),
                  let start = line.range(of: "http://") else { throw E2EFailure("no dashboard URL in: \(text)") }
            let url = String(line[start.lowerBound...].split(separator: " ")[0])
            let afterHost = url.dropFirst("http://".count)
            guard let colon = afterHost.lastIndex(of: ":"),
                  let port = Int(afterHost[afterHost.index(after: colon)...].prefix { $0.isNumber }),
                  let tokenRange = url.range(of: "#token=") else { throw E2EFailure("cannot read \(url)") }
            return Endpoint(port: port, token: String(url[tokenRange.upperBound...]), url: url)
        }

        func get(_ path: String, headers: [String: String] = [:]) throws -> HTTPTestClient.Reply {
            try HTTPTestClient.request("GET", port: port, path: path, headers: headers)
        }

        func send(_ method: String, _ path: String, _ body: String? = nil) throws -> HTTPTestClient.Reply {
            try HTTPTestClient.request(method, port: port, path: path, headers: json, body: body)
        }

        func links() throws -> [[String: Any]] {
            (try get("/api/overview").json() as? [String: Any])?["links"] as? [[String: Any]] ?? []
        }

        func link(_ id: String) throws -> [String: Any]? { try links().first { $0["id"] as? String == id } }

        func waitForLink(_ id: String, state: String, timeout: Duration = .seconds(15)) throws -> [String: Any] {
            var found: [String: Any]?
            try waitUntil("link \(id) to be \(state)", timeout: timeout) {
                found = try link(id)
                return found?["state"] as? String == state
            }
            return found!
        }
    }

    /// A folder for XDG_RUNTIME_DIR, so a generated token is written there and not in $HOME.
    static func runtimeFolder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dashboard-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        return folder
    }

    /// An echo target, a folder for XDG_RUNTIME_DIR and a cable at 115200: what most tests here start with.
    static func echoRuntimeAndCable() throws -> (E2ETarget, String, CableProcess) {
        let echo = try E2ETarget(.echo)
        do {
            return (echo, try runtimeFolder(), try CableProcess(["--baud", "115200"]))
        } catch {
            echo.stop()
            throw error
        }
    }

    @Test("Security: Host and Origin checks, the token for every change (kept in a 0600 file), CSP, JSON errors without internals, non-loopback needs a configured token")
    func security() async throws {
        try await e2eOffload {
            let runtime = try Self.runtimeFolder()
            let ui = try ChildProcess("ui", ["ui", "0"], environment: ["XDG_RUNTIME_DIR": runtime])
            defer { ui.forceKill() }
            let dashboard = try Endpoint.from(ui)

            // The token: 256 bits, in a file only the user can read.
            let tokenPath = runtime + "/socket2ser/ui-token"
            var info = stat()
            #expect(stat(tokenPath, &info) == 0 && info.st_mode & 0o777 == 0o600, "mode \(String(info.st_mode & 0o777, radix: 8))")
            let stored = try String(contentsOfFile: tokenPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(stored == dashboard.token && dashboard.token.count == 64)
            #expect(ui.errors.text.contains("the token is also in \(tokenPath)"))

            // The page and its files, with the headers that keep it to itself.
            for (path, type) in [("/", "text/html"), ("/app.js", "text/javascript"), ("/app.css", "text/css")] {
                let reply = try dashboard.get(path)
                #expect(reply.status == 200 && reply.headers["content-type"]?.hasPrefix(type) == true, "\(path): \(reply.status)")
                #expect(reply.headers["content-security-policy"]?.contains("default-src 'none'") == true)
                #expect(reply.headers["x-content-type-options"] == "nosniff")
            }
            let page = try dashboard.get("/").text
            #expect(!page.contains("http://") && !page.contains("https://"), "the page loads nothing from elsewhere")

            // Reads need no token on loopback; a foreign Host (DNS rebinding) is refused.
            #expect(try dashboard.get("/api/overview").status == 200)
            let rebound = try dashboard.get("/api/overview", headers: ["Host": "attacker.example:\(dashboard.port)"])
            #expect(rebound.status == 403 && rebound.text.contains("\"error\""), "\(rebound.status) \(rebound.text)")
            #expect(try dashboard.get("/", headers: ["Host": "attacker.example"]).status == 403)
            #expect(try dashboard.get("/api/overview", headers: ["Host": "localhost:\(dashboard.port)"]).status == 200)

            // Every change needs the token, and a cross-site request is refused even with it.
            let body = #"{"role": "S", "device": "/dev/null-nope", "target": "127.0.0.1:9"}"#
            let anonymous = try HTTPTestClient.request("POST", port: dashboard.port, path: "/api/links",
                                                       headers: ["Content-Type": "application/json"], body: body)
            #expect(anonymous.status == 401 && anonymous.text.contains("token"), "\(anonymous.status) \(anonymous.text)")
            let wrong = try HTTPTestClient.request("POST", port: dashboard.port, path: "/api/links",
                                                   headers: ["Content-Type": "application/json",
                                                             "Authorization": "Bearer " + String(repeating: "0", count: 64)],
                                                   body: body)
            #expect(wrong.status == 401)
            var crossSite = dashboard.json
            crossSite["Origin"] = "http://attacker.example"
            let forged = try HTTPTestClient.request("POST", port: dashboard.port, path: "/api/links", headers: crossSite, body: body)
            #expect(forged.status == 403, "\(forged.status) \(forged.text)")
            var plain = dashboard.bearer
            plain["Content-Type"] = "text/plain"
            #expect(try HTTPTestClient.request("POST", port: dashboard.port, path: "/api/links", headers: plain, body: body).status == 415)

            // Mistakes are one line of JSON, with no internals.
            let missing = try dashboard.send("POST", "/api/links", body)
            #expect(missing.status == 400 && missing.text.contains("/dev/null-nope"), "\(missing.text)")
            let junk = try dashboard.send("POST", "/api/links", "{not json")
            #expect(junk.status == 400 && junk.text.contains("not the JSON"), "\(junk.text)")
            let typo = try dashboard.send("POST", "/api/links", #"{"role": "X", "device": "/dev/ttyS0"}"#)
            #expect(typo.status == 400 && typo.text.contains("S or C"), "\(typo.text)")
            let nowhere = try dashboard.get("/api/nothing-here")
            let nowhereBody = try nowhere.json() as? [String: Any]
            #expect(nowhere.status == 404 && nowhereBody?["error"] is String)
            for reply in [missing, junk, typo, nowhere] {
                #expect(!reply.text.contains(".swift") && !reply.text.contains("Error("), "\(reply.text)")
            }
            #expect(try dashboard.get("/metrics").headers["content-type"]?.hasPrefix("text/plain") == true)
            #expect(ui.terminate().isClean)
            // The token is on the terminal once, in the announcement, and in no log line: not in
            // the refusals above, which all saw it or a wrong one.
            #expect(ui.errors.text.components(separatedBy: dashboard.token).count - 1 == 1, "\(ui.errors.text)")

            // Another address than loopback needs a token the user configured, from a private file.
            let open = try ChildProcess("ui", ["ui", "0.0.0.0:0"], environment: ["XDG_RUNTIME_DIR": runtime])
            let refused = open.waitForExit(timeout: .seconds(10))
            #expect(refused?.code == 1, "\(open.errors.text)")
            // Its stderr may still be on its way through the pipe when the exit is seen.
            _ = open.errors.waitForEnd(timeout: 5)
            #expect(open.errors.text.contains("not loopback") && open.errors.text.contains("--ui-token-file"), "\(open.errors.text)")
            let tokenFile = runtime + "/my-token"
            try "a-token-the-user-chose-0123456789\n".write(toFile: tokenFile, atomically: false, encoding: .utf8)
            chmod(tokenFile, 0o644)
            let lax = try ChildProcess("ui", ["ui", "0.0.0.0:0", "--ui-token-file", tokenFile])
            #expect(lax.waitForExit(timeout: .seconds(10))?.code == 1)
            _ = lax.errors.waitForEnd(timeout: 5)
            #expect(lax.errors.text.contains("readable by others"), "\(lax.errors.text)")
            chmod(tokenFile, 0o600)
            let shared = try ChildProcess("ui", ["ui", "0.0.0.0:0", "--ui-token-file", tokenFile])
            defer { shared.forceKill() }
            let remote = try Endpoint.from(shared)
            #expect(remote.token == "a-token-the-user-chose-0123456789")
            // There, reads need the token too (the page's own files excepted: it must load to read it).
            #expect(try remote.get("/api/overview").status == 401)
            #expect(try remote.get("/").status == 200)
            let overview = try remote.get("/api/overview", headers: remote.bearer)
            let overviewBody = try overview.json() as? [String: Any]
            #expect(overview.status == 200 && overviewBody?["readsNeedToken"] as? Bool == true)
            #expect(shared.terminate().isClean)
        }
    }

    @Test("A live link: state, counters and streams; reset a stream; add and remove a forward; events on the live channel; /metrics")
    func liveLink() async throws {
        try await e2eOffload {
            let (echo, runtime, cable) = try Self.echoRuntimeAndCable()
            defer { echo.stop() }
            defer { cable.process.forceKill() }
            let server = try ChildProcess("S", ["S", "-ip", "127.0.0.1", "-port", "\(echo.port)", "-com", cable.pathA,
                                                "--ui", "0"], environment: ["XDG_RUNTIME_DIR": runtime + "/s"])
            defer { server.forceKill() }
            let serverDashboard = try Endpoint.from(server)
            let port = try freeLoopbackPort()
            let client = try ChildProcess("C", ["C", "-port", "\(port)", "-com", cable.pathB, "--ui", "0", "-d", "1"],
                                          environment: ["XDG_RUNTIME_DIR": runtime])
            defer { client.forceKill() }
            let dashboard = try Endpoint.from(client)
            let id = "pts" + (cable.pathB.split(separator: "/").last.map(String.init) ?? "")
            let up = try dashboard.waitForLink(id, state: "up")
            #expect(up["role"] as? String == "C" && up["device"] as? String == cable.pathB && up["origin"] as? String == "command-line")
            #expect(up["lineRate"] as? Int == 11_520 && up["canStop"] as? Bool == false)
            #expect((up["forwards"] as? [[String: Any]])?.first?["spec"] as? String == "127.0.0.1:\(port)")

            // The live channel: a snapshot at once, then the events as they happen.
            let live = try HTTPTestClient.Stream.open(port: dashboard.port, path: "/api/live")
            defer { live.close() }
            try live.read(until: "a snapshot") { $0.contains("event: snapshot") && $0.contains("\"id\":\"\(id)\"") }
            #expect(live.text.contains("text/event-stream"))

            // A stream: it shows with its forward, client and bytes, then a reset from the API ends it.
            let user = try E2EClient.connect(port: port)
            defer { user.close() }
            try user.send(Array("hello".utf8))
            #expect(user.readToEnd(timeout: 5, limit: 5).bytes == Array("hello".utf8))
            var stream: [String: Any] = [:]
            try waitUntil("the stream in the list", timeout: .seconds(10)) {
                let streams = try dashboard.get("/api/links/\(id)/streams").json() as? [[String: Any]] ?? []
                stream = streams.first ?? [:]
                return stream["bytesOut"] as? Int == 5 && stream["bytesIn"] as? Int == 5 && stream["state"] as? String == "open"
            }
            #expect((stream["forward"] as? String)?.hasPrefix("-L 127.0.0.1:\(port)") == true, "\(stream)")
            #expect((stream["client"] as? String)?.hasPrefix("127.0.0.1:") == true && stream["target"] as? String == "(default)")
            let streamID = try #require(stream["id"] as? Int)
            #expect(try dashboard.send("POST", "/api/links/\(id)/streams/\(streamID)/reset").status == 204)
            let cut = user.readToEnd(timeout: 5)
            #expect(cut.end != .timedOut, "the client saw its connection end")
            try live.read(until: "the stream's close on the live channel") {
                $0.contains("event: log") && $0.contains("\"kind\":\"stream-closed\"") && $0.contains("reset from the dashboard")
            }
            #expect(try dashboard.send("POST", "/api/links/\(id)/streams/\(streamID)/reset").status == 404)
            let events = try dashboard.get("/api/events").json() as? [[String: Any]] ?? []
            let kinds = Set(events.compactMap { $0["kind"] as? String })
            #expect(kinds.isSuperset(of: ["link-up", "stream-opened", "stream-closed"]), "\(kinds)")

            // A forward, with the command line's rules, live: it carries a connection, then goes.
            let extra = try freeLoopbackPort()
            let bad = try dashboard.send("POST", "/api/links/\(id)/forwards", #"{"kind": "L", "spec": "nonsense"}"#)
            #expect(bad.status == 400 && bad.text.contains("-L takes [bind_address:]port:host:hostport"), "\(bad.text)")
            let added = try dashboard.send("POST", "/api/links/\(id)/forwards",
                                           #"{"kind": "L", "spec": "\#(extra):127.0.0.1:\#(echo.port)"}"#)
            #expect(added.status == 201 && added.text.contains("127.0.0.1:\(extra):127.0.0.1:\(echo.port)"), "\(added.text)")
            try waitUntil("the new forward to listen", timeout: .seconds(5)) { E2EClient.accepts(port: extra) }
            #expect(try e2eExchange(port: extra, Array("via the page".utf8), timeout: 5).bytes == Array("via the page".utf8))
            let twice = try dashboard.send("POST", "/api/links/\(id)/forwards",
                                           #"{"kind": "L", "spec": "\#(extra):127.0.0.1:\#(echo.port)"}"#)
            #expect(twice.status == 409)
            let spec = "127.0.0.1:\(extra):127.0.0.1:\(echo.port)"
            let removed = try dashboard.send("DELETE", "/api/links/\(id)/forwards?kind=L&spec=\(spec)")
            #expect(removed.status == 200 && !removed.text.contains(":\(extra):"), "\(removed.text)")
            try waitUntil("the removed forward to stop listening", timeout: .seconds(5)) { !E2EClient.accepts(port: extra) }
            #expect(try dashboard.send("DELETE", "/api/links/\(id)").status == 409, "a command-line link is stopped there")

            // A target the far end does not allow: S's log (and its dashboard) says it refused,
            // C's says the stream was refused by the peer.
            let forbidden = try freeLoopbackPort()
            #expect(try dashboard.send("POST", "/api/links/\(id)/forwards", #"{"kind": "L", "spec": "\#(forbidden):127.0.0.1:1"}"#).status == 201)
            try waitUntil("the forbidden forward to listen", timeout: .seconds(5)) { E2EClient.accepts(port: forbidden) }
            let refusedClient = try E2EClient.connect(port: forbidden)
            #expect(refusedClient.readToEnd(timeout: 10).bytes.isEmpty)
            refusedClient.close()
            try waitUntil("S's event log to show the refusal", timeout: .seconds(10)) {
                let events = try serverDashboard.get("/api/events").json() as? [[String: Any]] ?? []
                return events.contains { $0["kind"] as? String == "refused" && ($0["message"] as? String)?.contains("127.0.0.1:1") == true }
            }
            try waitUntil("C's event log to show the refused stream", timeout: .seconds(10)) {
                let events = try dashboard.get("/api/events").json() as? [[String: Any]] ?? []
                return events.contains { $0["kind"] as? String == "stream-closed" && ($0["message"] as? String)?.contains("refused by the peer") == true }
            }

            // Prometheus: the names the issue gives, with the link as a label.
            let metrics = try dashboard.get("/metrics").text
            let lineOut = metrics.split(separator: "\n").first { $0.hasPrefix("socket2ser_line_bytes_total{link=\"\(id)\",direction=\"out\"}") }
            #expect(lineOut.flatMap { Double($0.split(separator: " ").last ?? "") }.map { $0 > 0 } == true, "\(metrics)")
            for name in ["socket2ser_retransmissions_total{link=\"\(id)\"}", "socket2ser_streams{link=\"\(id)\"}",
                         "socket2ser_rtt_seconds_bucket{link=\"\(id)\"", "socket2ser_crc_errors_total{link=\"\(id)\"}",
                         "socket2ser_unauthenticated_frames_total{link=\"\(id)\"}"] {
                #expect(metrics.contains(name), "\(name) missing")
            }
            let history = try dashboard.get("/api/links/\(id)/history").json() as? [[String: Any]] ?? []
            #expect(!history.isEmpty && history.last?["utilisationOut"] is Double)
            #expect(client.terminate().isClean, "\(client.errors.text.suffix(2000))")
            #expect(server.terminate().isClean)
        }
    }

    @Test("A keyed link: the key is nowhere in a -d 3 trace, the dashboard's JSON, its events or /metrics (issue 12)")
    func keyNeverShown() async throws {
        let keyPath = try ProtectionEndToEndTests.keyFile("shown.key")
        let key = try String(contentsOfFile: keyPath, encoding: .utf8).split(separator: "\n").last.map(String.init) ?? ""
        #expect(key.count == 64)
        try await e2eOffload {
            let (echo, runtime, cable) = try Self.echoRuntimeAndCable()
            defer { echo.stop() }
            defer { cable.process.forceKill() }
            let server = try ChildProcess("S", ["S", "-ip", "127.0.0.1", "-port", "\(echo.port)", "-com", cable.pathA,
                                                "--key-file", keyPath, "-d", "3"])
            defer { server.forceKill() }
            let port = try freeLoopbackPort()
            let client = try ChildProcess("C", ["C", "-port", "\(port)", "-com", cable.pathB, "--ui", "0", "-d", "3",
                                                "--key-file", keyPath, "--protect", "encrypt"],
                                          environment: ["XDG_RUNTIME_DIR": runtime])
            defer { client.forceKill() }
            let dashboard = try Endpoint.from(client)
            let id = "pts" + (cable.pathB.split(separator: "/").last.map(String.init) ?? "")
            _ = try dashboard.waitForLink(id, state: "up")
            #expect(try e2eExchange(port: port, Array("hello".utf8), timeout: 10).bytes == Array("hello".utf8))
            var shown: [(String, String)] = []
            for path in ["/api/overview", "/api/links", "/api/links/\(id)", "/api/links/\(id)/streams",
                         "/api/links/\(id)/history", "/api/events", "/metrics"] {
                let reply = try dashboard.get(path, headers: dashboard.bearer)
                #expect(reply.status == 200, "\(path): \(reply.status)")
                shown.append((path, reply.text))
            }
            for end in [server, client] { _ = end.terminate() }
            shown += [("S's stderr", server.errors.text), ("C's stderr", client.errors.text),
                      ("S's stdout", server.output.text), ("C's stdout", client.output.text)]
            #expect(server.errors.text.contains("encrypted (the peer proved the key)"))
            // The whole key, either case, or any 16 digits of it in a row.
            let pieces = stride(from: 0, through: 48, by: 8).map { String(key.dropFirst($0).prefix(16)) }
            for (place, text) in shown {
                let lower = text.lowercased()
                for piece in pieces { #expect(!lower.contains(piece.lowercased()), "\(place) shows part of the key") }
            }
        }
    }

    @Test("socket2ser ui alone: a link started and stopped through the API, on a real pty; a missing or busy device is a clear 400")
    func startFromTheAPI() async throws {
        try await e2eOffload {
            let (echo, runtime, cable) = try Self.echoRuntimeAndCable()
            defer { echo.stop() }
            defer { cable.process.forceKill() }
            let ui = try ChildProcess("ui", ["ui", "0"], environment: ["XDG_RUNTIME_DIR": runtime])
            defer { ui.forceKill() }
            let dashboard = try Endpoint.from(ui)
            let ports = try dashboard.get("/api/ports").json() as? [[String: Any]] ?? []
            #expect(ports.contains { $0["path"] as? String == cable.pathA && $0["kind"] as? String == "virtual-cable" }, "\(ports)")

            let request = #"{"role": "S", "device": "\#(cable.pathA)", "baud": 115200, "format": "8N1", "target": "127.0.0.1:\#(echo.port)"}"#
            let started = try dashboard.send("POST", "/api/links", request)
            #expect(started.status == 201, "\(started.text)")
            let view = try started.json() as? [String: Any] ?? [:]
            let id = try #require(view["id"] as? String)
            #expect(view["origin"] as? String == "dashboard" && view["canStop"] as? Bool == true && view["role"] as? String == "S")
            let busy = try dashboard.send("POST", "/api/links", request)
            #expect(busy.status == 400 && busy.text.contains(cable.pathA), "\(busy.text)")

            let port = try freeLoopbackPort()
            let client = try cable.startClient(port: port, baud: 115_200)
            defer { client.forceKill() }
            _ = try dashboard.waitForLink(id, state: "up")
            try waitUntil("C to accept", timeout: .seconds(10)) { E2EClient.accepts(port: port) }
            #expect(try e2eExchange(port: port, Array("started in the browser".utf8), timeout: 5).bytes
                    == Array("started in the browser".utf8))

            #expect(try dashboard.send("DELETE", "/api/links/\(id)").status == 204)
            #expect(try dashboard.links().isEmpty)
            // The device is free again: the same request starts it once more.
            let again = try dashboard.send("POST", "/api/links", request)
            #expect(again.status == 201, "\(again.text)")
            #expect(ui.terminate().isClean, "\(ui.errors.text.suffix(2000))")
            #expect(ui.errors.text.contains("started from the dashboard"))
        }
    }

    @Test("The config file's ui: shows each line by its name; a bad ui: is a one-line error")
    func configFile() async throws {
        try await e2eOffload {
            let runtime = try Self.runtimeFolder()
            let (cable, a, _) = try e2eStartCable(baud: 115_200)
            defer { cable.forceKill() }
            let path = runtime + "/socket2ser.yaml"
            try "ui: nonsense\nlines:\n  board:\n    device: \(a)\n    target: 127.0.0.1:9\n".write(toFile: path, atomically: false, encoding: .utf8)
            let check = try ChildProcess("check", ["run", "--config", path, "--check"])
            #expect(check.waitForExit(timeout: .seconds(10))?.code == 1)
            _ = check.errors.waitForEnd(timeout: 5)
            #expect(check.errors.text.contains("'ui'") && check.errors.text.split(separator: "\n").count == 1, "\(check.errors.text)")

            try "ui: 0\nlines:\n  board:\n    device: \(a)\n    target: 127.0.0.1:9\n".write(toFile: path, atomically: false, encoding: .utf8)
            let run = try ChildProcess("run", ["run", "--config", path], environment: ["XDG_RUNTIME_DIR": runtime])
            defer { run.forceKill() }
            let dashboard = try Endpoint.from(run)
            let board = try dashboard.waitForLink("board", state: "handshaking")
            #expect(board["origin"] as? String == "config" && board["device"] as? String == a)
            #expect(run.terminate().isClean, "\(run.errors.text)")
        }
    }

    @Test("The demo opens the dashboard and prints its URL next to the client hint; both ends are on it, up")
    func demo() async throws {
        try await e2eOffload {
            let runtime = try Self.runtimeFolder()
            let demo = try ChildProcess("demo", ["demo", "--seconds", "60"], environment: ["XDG_RUNTIME_DIR": runtime])
            defer { demo.forceKill() }
            let dashboard = try Endpoint.from(demo, stdout: true)
            _ = try dashboard.waitForLink("S", state: "up")
            _ = try dashboard.waitForLink("C", state: "up")
            #expect(demo.output.text.contains("try:"))
            #expect(demo.terminate().isClean)
        }
    }

    @Test("The page in headless Chromium: live link, chart, streams and reset, forwards, port picker, a link started and stopped from the form, the token (Tests/Browser/dashboard_check.py)")
    func browser() async throws {
        try await e2eOffload {
            let runtime = try Self.runtimeFolder()
            let demo = try ChildProcess("demo", ["demo", "--seconds", "170"], environment: ["XDG_RUNTIME_DIR": runtime])
            defer { demo.forceKill() }
            let dashboard = try Endpoint.from(demo, stdout: true)
            let hint = demo.output.text
            guard let portText = hint.range(of: "C listening on 127.0.0.1:").map({ hint[$0.upperBound...].prefix { $0.isNumber } }),
                  let echoPort = Int(portText) else { throw E2EFailure("no C port in \(hint)") }
            let (cable, a, _) = try e2eStartCable(baud: 115_200)
            defer { cable.forceKill() }
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().path
            let screenshots = root + "/.build/dashboard-screenshots"
            try FileManager.default.createDirectory(atPath: screenshots, withIntermediateDirectories: true)
            // The real Chromium through Selenium (.ci/run installs both): a page test, not an API one.
            let check = try ChildProcess("browser check", ["python3", root + "/Tests/Browser/dashboard_check.py",
                                                           "--url", dashboard.url, "--screenshots", screenshots,
                                                           "--echo-port", "\(echoPort)", "--device", a],
                                         executable: URL(fileURLWithPath: "/usr/bin/env"))
            defer { check.forceKill() }
            let exit = check.waitForExit(timeout: .seconds(150))
            _ = check.output.waitForEnd(timeout: 5)
            print(check.output.text)
            #expect(exit?.isCleanExitZero == true, "\(check.output.text)\n\(check.errors.text.suffix(3000))")
            #expect(check.output.text.components(separatedBy: "\nok: ").count - 1 >= 9, "\(check.output.text)")
            #expect(demo.terminate().isClean)
        }
    }
}
