#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Testing
import TestKit

/// Forwards both ways with the real executable over the virtual cable (issue 9): `-L`, `-R` and
/// `--allow` on `link` ends and on the original's S and C, with traffic in all of them at once.
@Suite("Forwards", .serialized, .timeLimit(.minutes(3)), .tags(.timing))
struct ForwardsTests {
    static let fastBaud = 2_000_000

    /// Two processes on the two ends of a fresh cable. Blocking.
    private final class Ends: @unchecked Sendable {
        let cable: ChildProcess
        let a: ChildProcess
        let b: ChildProcess

        init(a: [String], b: [String]) throws {
            let (cable, pathA, pathB) = try e2eStartCable(baud: ForwardsTests.fastBaud)
            self.cable = cable
            let rate = ["--baudrate", "\(ForwardsTests.fastBaud)"]
            self.a = try ChildProcess("A", a.map { $0 == "PATH" ? pathA : $0 } + rate)
            self.b = try ChildProcess("B", b.map { $0 == "PATH" ? pathB : $0 } + rate)
            try self.a.waitForError(containing: "link up: peer found")
            try self.b.waitForError(containing: "link up: peer found")
        }

        func stop() -> [ChildProcess.StopReport] { ChildProcess.terminate([a, b]) + ChildProcess.terminate([cable]) }
        func kill() { for child in [a, b, cable] { child.forceKill() } }
        var logs: String { "--- A:\n\(a.errors.text.suffix(3000))\n--- B:\n\(b.errors.text.suffix(3000))" }
    }

    /// Waits until `port` accepts connections (a forward's listener is up). Blocking.
    private static func waitForListener(_ port: Int, _ what: String) throws {
        try waitUntil(what, timeout: .seconds(10)) { E2EClient.accepts(port: port) }
    }

    @Test("link ↔ link: -L from A to beside B, -R from A exposing beside A, -D at B to beside A, all at once, byte for byte")
    func bothWaysAtOnce() async throws {
        let besideB = try E2ETarget(.echo)
        defer { besideB.stop() }
        let download = Payload.bytes(400_000, seed: 81)
        let besideA = try E2ETarget(.exchange(download: download))
        defer { besideA.stop() }
        let socksTarget = try E2ETarget(.echo)
        defer { socksTarget.stop() }
        let localPort = try freeLoopbackPort()
        let remotePort = try freeLoopbackPort()
        let socksPort = try freeLoopbackPort()
        let socksData = Payload.bytes(200_000, seed: 84)
        let socksResult = E2EBox<E2EReadResult>()
        let (echo, exchange, uploadAtA, logs) = try await e2eOffload { () -> (E2EReadResult, E2EReadResult, [UInt8], String) in
            let ends = try Ends(
                a: ["link", "-com", "PATH", "-L", "\(localPort):127.0.0.1:\(besideB.port)",
                    "-R", "127.0.0.1:\(remotePort):127.0.0.1:\(besideA.port)", "--allow", "localhost:\(socksTarget.port)"],
                b: ["link", "-com", "PATH", "--allow", "127.0.0.1:\(besideB.port)", "-D", "\(socksPort)",
                    "--allow-listen", "127.0.0.1:\(remotePort)"])
            defer { ends.kill() }
            try Self.waitForListener(localPort, "A's -L listener")
            try ends.a.waitForError(containing: "the far end listens on 127.0.0.1:\(remotePort)")
            try Self.waitForListener(remotePort, "B's listener for A's -R")
            try Self.waitForListener(socksPort, "B's SOCKS listener")
            let upload = Payload.bytes(300_000, seed: 82)
            let echoData = Payload.bytes(300_000, seed: 83)
            let exchange = E2EBackground("-R transfer") { () -> E2EReadResult in
                let client = try E2EClient.connect(port: remotePort)
                defer { client.close() }
                return client.sendWhileReadingToEnd(upload, timeout: 30)
            }
            let socks = E2EBackground("-D transfer") { () -> Void in
                let (reply, client) = try E2ESOCKS.connect(port: socksPort,
                                                           request: E2ESOCKS.request(host: "localhost", port: socksTarget.port))
                defer { client.close() }
                guard reply == 0 else { throw E2EFailure("SOCKS reply \(String(describing: reply))") }
                socksResult.value = client.sendWhileReadingToEnd(socksData, timeout: 30)
            }
            let client = try E2EClient.connect(port: localPort)
            defer { client.close() }
            let echo = client.sendWhileReadingToEnd(echoData, timeout: 30)
            let exchanged = try exchange.value(timeout: .seconds(35))
            try socks.value(timeout: .seconds(35))
            try waitUntil("A's target to get the whole upload", timeout: .seconds(10)) {
                besideA.uploads.contains { $0.count == upload.count }
            }
            let uploadAtA = besideA.uploads.first { $0.count == upload.count } ?? []
            let reports = ends.stop()
            guard reports.allSatisfy(\.isClean) else { throw E2EFailure("\(reports)\n\(ends.logs)") }
            return (echo, exchanged, uploadAtA, ends.logs)
        }
        #expect(echo.end == .endOfFile)
        #expect(e2eDifference(echo.bytes, Payload.bytes(300_000, seed: 83)) == nil, "-L: \(logs)")
        #expect(exchange.end == .endOfFile)
        #expect(e2eDifference(exchange.bytes, download) == nil, "-R download: \(logs)")
        #expect(e2eDifference(uploadAtA, Payload.bytes(300_000, seed: 82)) == nil, "-R upload")
        let socks = try #require(socksResult.value)
        #expect(socks.end == .endOfFile)
        #expect(e2eDifference(socks.bytes, socksData) == nil, "-D: \(logs)")
    }

    @Test("A target the far end does not allow: the client is reset and the far end says how to allow it")
    func notAllowed() async throws {
        let besideB = try E2ETarget(.echo)
        defer { besideB.stop() }
        let localPort = try freeLoopbackPort()
        let (end, log) = try await e2eOffload { () -> (E2EEnd, String) in
            let ends = try Ends(a: ["link", "-com", "PATH", "-L", "\(localPort):127.0.0.1:\(besideB.port)"],
                                b: ["link", "-com", "PATH"])
            defer { ends.kill() }
            try Self.waitForListener(localPort, "A's -L listener")
            let result = try e2eExchange(port: localPort, Array("hello".utf8), timeout: 5)
            try ends.b.waitForError(containing: "which this end does not allow")
            _ = ends.stop()
            return (result.end, ends.b.errors.text)
        }
        #expect(end == .reset, "\(end)")
        #expect(log.contains("the peer asked for 127.0.0.1:\(besideB.port), which this end does not allow; refused "
                             + "(allow it with --allow 127.0.0.1:\(besideB.port))"), "\(log)")
        #expect(besideB.accepted == 0)
    }

    @Test("-R refused by the far end's policy (a port it does not allow, or not loopback), and -R onto a port in use: one line each, and the other forwards work")
    func remoteRefusals() async throws {
        let besideA = try E2ETarget(.echo)
        defer { besideA.stop() }
        // A port that is taken at B's side (the same machine here): held by this test.
        let busy = try BusyPort()
        defer { busy.release() }
        let busyPort = busy.port
        let goodPort = try freeLoopbackPort()
        let openPort = try freeLoopbackPort()
        let unlistedPort = try freeLoopbackPort()
        let (echo, logA, logB, unlistedListens) = try await e2eOffload { () -> (E2EReadResult, String, String, Bool) in
            let ends = try Ends(
                a: ["link", "-com", "PATH",
                    "-R", "0.0.0.0:\(openPort):127.0.0.1:\(besideA.port)",
                    "-R", "127.0.0.1:\(busyPort):127.0.0.1:\(besideA.port)",
                    "-R", "127.0.0.1:\(unlistedPort):127.0.0.1:\(besideA.port)",
                    "-R", "127.0.0.1:\(goodPort):127.0.0.1:\(besideA.port)"],
                b: ["link", "-com", "PATH", "--allow-listen", "*:\(openPort)", "--allow-listen", "127.0.0.1:\(busyPort)",
                    "--allow-listen", "127.0.0.1:\(goodPort)"])
            defer { ends.kill() }
            try ends.a.waitForError(containing: "the far end listens on 127.0.0.1:\(goodPort)")
            try ends.a.waitForError(containing: "refused by the far end", count: 3)
            let echo = try e2eExchange(port: goodPort, Array("still works".utf8), timeout: 5)
            let unlistedListens = E2EClient.accepts(port: unlistedPort)
            _ = ends.stop()
            return (echo, ends.a.errors.text, ends.b.errors.text, unlistedListens)
        }
        #expect(echo.bytes == Array("still works".utf8))
        #expect(!unlistedListens, "B listens where its --allow-listen rules do not say")
        let lines = logA.split(separator: "\n")
        #expect(lines.contains { $0.hasSuffix("-R 0.0.0.0:\(openPort):127.0.0.1:\(besideA.port): refused by the far end: "
                                              + "not allowed by the far end (it needs --allow-listen 0.0.0.0:\(openPort) "
                                              + "and --gateway-ports to listen on 0.0.0.0)") },
                "\(logA)")
        #expect(lines.contains { $0.hasSuffix("-R 127.0.0.1:\(unlistedPort):127.0.0.1:\(besideA.port): refused by the far end: "
                                              + "not allowed by the far end (it needs --allow-listen 127.0.0.1:\(unlistedPort))") },
                "\(logA)")
        #expect(logB.contains("the peer asked this end to listen on 127.0.0.1:\(unlistedPort) (-R), which this end does not allow; "
                              + "refused (allow it with --allow-listen 127.0.0.1:\(unlistedPort))"), "\(logB)")
        #expect(lines.contains { $0.hasSuffix("-R 127.0.0.1:\(busyPort):127.0.0.1:\(besideA.port): refused by the far end: "
                                              + "address already in use at the far end") }, "\(logA)")
    }

    @Test("The original S and C carry forwards too: C -port to S's target, plus -L to a target S allows")
    func originalFormsWithForwards() async throws {
        let first = try E2ETarget(.echo)
        defer { first.stop() }
        let second = try E2ETarget(.replyAfterEndOfInput)
        defer { second.stop() }
        let clientPort = try freeLoopbackPort()
        let extraPort = try freeLoopbackPort()
        let (viaPort, viaForward) = try await e2eOffload { () -> (E2EReadResult, E2EReadResult) in
            let ends = try Ends(
                a: ["S", "-ip", "127.0.0.1", "-port", "\(first.port)", "-com", "PATH", "--allow", "127.0.0.1:\(second.port)"],
                b: ["C", "-port", "\(clientPort)", "-com", "PATH", "-L", "\(extraPort):127.0.0.1:\(second.port)"])
            defer { ends.kill() }
            try Self.waitForListener(extraPort, "C's -L listener")
            let viaPort = try e2eExchange(port: clientPort, Array("to S's target".utf8), timeout: 5)
            let viaForward = try e2eExchange(port: extraPort, Array("to the allowed one".utf8), timeout: 5)
            let reports = ends.stop()
            guard reports.allSatisfy(\.isClean) else { throw E2EFailure("\(reports)\n\(ends.logs)") }
            return (viaPort, viaForward)
        }
        #expect(viaPort.bytes == Array("to S's target".utf8))
        #expect(viaForward.bytes == E2ETarget.replyAfterEndOfInput(to: Array("to the allowed one".utf8)))
    }

    // MARK: SOCKS5 (-D)

    @Test("SOCKS5: the real curl --socks5-hostname fetches a page from beside the far end")
    func curlThroughSOCKS() async throws {
        let page = Array("<html><body>a board's web page</body></html>\n".utf8) + Payload.bytes(50_000, seed: 91).map { 0x41 + $0 % 26 }
        let web = try E2ETarget(.http(body: page))
        defer { web.stop() }
        let socksPort = try freeLoopbackPort()
        let (output, status, errors) = try await e2eOffload { () -> ([UInt8], Int32, String) in
            let ends = try Ends(a: ["link", "-com", "PATH", "--allow", "localhost:\(web.port)"],
                                b: ["link", "-com", "PATH", "-D", "\(socksPort)"])
            defer { ends.kill() }
            try Self.waitForListener(socksPort, "B's SOCKS listener")
            let curl = try e2eRunTool("curl", ["--silent", "--show-error", "--max-time", "20",
                                               "--socks5-hostname", "127.0.0.1:\(socksPort)", "http://localhost:\(web.port)/index.html"])
            _ = ends.stop()
            return (curl.output, curl.status, curl.errors + ends.logs)
        }
        #expect(status == 0, "curl: \(errors)")
        #expect(output == page, "\(output.count) of \(page.count) B")
    }

    @Test("SOCKS5 by hand: a name, IPv6, a target not allowed (0x02), a closed port (0x05), BIND (0x07), SOCKS4, a stalled client")
    func socksByHand() async throws {
        let echo = try E2ETarget(.echo)
        defer { echo.stop() }
        let closedPort = try freeLoopbackPort()
        let socksPort = try freeLoopbackPort()
        struct Outcome: Sendable {
            var name: UInt8?
            var nameEcho: [UInt8]
            var ipv6: UInt8?
            var notAllowed: UInt8?
            var closed: UInt8?
            var bind: UInt8?
            var socks4: E2EEnd
            var stalled: E2EEnd
            var stalledAfter: Duration
            var log: String
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let ends = try Ends(
                a: ["link", "-com", "PATH", "--allow", "localhost:\(echo.port)", "--allow", "localhost:\(closedPort)",
                    "--allow", "[::1]:*"],
                b: ["link", "-com", "PATH", "-D", "\(socksPort)", "--socks-timeout", "1"])
            defer { ends.kill() }
            try Self.waitForListener(socksPort, "B's SOCKS listener")

            let (name, client) = try E2ESOCKS.connect(port: socksPort, request: E2ESOCKS.request(host: "localhost", port: echo.port))
            try client.send(Array("through socks".utf8))
            client.shutdownWrite()
            let nameEcho = client.readToEnd(timeout: 10).bytes
            client.close()
            // ::1 on a port nobody listens on: the address crosses the line intact and is tried.
            let loopback6 = [UInt8](repeating: 0, count: 15) + [1]
            let ipv6 = try E2ESOCKS.connect(port: socksPort, request: E2ESOCKS.request(ipv6: loopback6, port: closedPort)).reply
            let notAllowed = try E2ESOCKS.connect(port: socksPort, request: E2ESOCKS.request(host: "localhost", port: 9)).reply
            let closed = try E2ESOCKS.connect(port: socksPort, request: E2ESOCKS.request(host: "localhost", port: closedPort)).reply
            let bind = try E2ESOCKS.connect(port: socksPort, request: E2ESOCKS.request(host: "localhost", port: echo.port, command: 2)).reply
            let socks4Client = try E2EClient.connect(port: socksPort)
            try socks4Client.send([4, 1, 0, 80, 127, 0, 0, 1, 0])
            let socks4 = socks4Client.readToEnd(timeout: 5).end
            let stalledClient = try E2EClient.connect(port: socksPort)
            let started = ContinuousClock.now
            let stalled = stalledClient.readToEnd(timeout: 10)
            _ = ends.stop()
            return Outcome(name: name, nameEcho: nameEcho, ipv6: ipv6, notAllowed: notAllowed, closed: closed, bind: bind,
                           socks4: socks4, stalled: stalled.end, stalledAfter: stalled.endedAt - started, log: ends.logs)
        }
        #expect(outcome.name == 0, "\(outcome.log)")
        #expect(outcome.nameEcho == Array("through socks".utf8))
        #expect(outcome.ipv6 == 5 || outcome.ipv6 == 4, "IPv6 reply \(String(describing: outcome.ipv6))")
        #expect(outcome.notAllowed == 2)
        #expect(outcome.closed == 5)
        #expect(outcome.bind == 7)
        #expect(outcome.socks4.isClosed && outcome.socks4 != .timedOut)
        #expect(outcome.stalled.isClosed, "a client that never sends a request is dropped")
        #expect(outcome.stalledAfter >= .milliseconds(900) && outcome.stalledAfter < .seconds(4),
                "dropped after \(outcome.stalledAfter.millisecondsText)")
        #expect(outcome.log.contains("SOCKS client 127.0.0.1:"), "\(outcome.log)")
    }
}
