#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit
import Testing

/// What a new user meets, with the real executable over the virtual cable (issue 8):
///
/// - a stream that ends for any reason but both sides' FIN ends its TCP connection with a reset,
///   never a clean end of file that would pass for a complete reply;
/// - a connection made while there is no peer waits a bounded time, then is reset with a line
///   that says why;
/// - at the default level each end says what it does and what the link does, and nothing per
///   connection.
@Suite("First contact", .serialized, .timeLimit(.minutes(3)), .tags(.timing))
struct FirstContactTests {
    static let fastBaud = 2_000_000

    // MARK: Resets on every abnormal end

    /// A download in progress when `stop` ends one of the processes: its client must see a reset.
    private func downloadCutOff(by stop: @escaping @Sendable (E2ERig) -> ChildProcess) async throws
        -> (rest: E2EReadResult, total: Int, targetResets: Int)
    {
        let download = Payload.bytes(3_000_000, seed: 71)  // 15 s of line time at 2 Mbaud
        let target = try E2ETarget(.exchange(download: download))
        defer { target.stop() }
        return try await e2eOffload {
            let rig = try E2ERig.start(targetPort: target.port, baud: Self.fastBaud)
            defer { rig.forceKill() }
            let client = try E2EClient.connect(port: rig.port)
            defer { client.close() }
            try client.send(Array("get".utf8))
            let first = client.readToEnd(timeout: 10, limit: 100_000)
            guard first.bytes.count == 100_000 else { throw E2EFailure("the download did not start: \(first.end)") }
            let stopped = stop(rig)
            stopped.signal(SIGTERM)
            let rest = client.readToEnd(timeout: 10)
            guard let exit = stopped.waitForExit(timeout: .seconds(5)) else { throw E2EFailure("\(stopped.name) did not stop") }
            guard exit.isCleanExitZero else { throw E2EFailure("\(stopped.name): \(exit)\n\(rig.logs)") }
            // The target's end of the stream, at S, is cut off too.
            try? waitUntil("the target to see its connection reset", timeout: .seconds(5)) { target.resets > 0 }
            return (rest, first.bytes.count + rest.bytes.count, target.resets)
        }
    }

    @Test("C stopped while a download runs: the client sees a reset, not a clean end")
    func clientStopped() async throws {
        let (rest, total, targetResets) = try await downloadCutOff { $0.client }
        #expect(rest.end == .reset, "\(rest.end) after \(total) B")
        #expect(total < 3_000_000)
        #expect(targetResets >= 1, "the target's connection at S was not reset")
        print("C stopped: the client saw '\(rest.end)' after \(total) of 3000000 B")
    }

    @Test("S stopped while a download runs: the client sees a reset, not a clean end")
    func serverStopped() async throws {
        let (rest, total, targetResets) = try await downloadCutOff { $0.server }
        #expect(rest.end == .reset, "\(rest.end) after \(total) B")
        #expect(total < 3_000_000)
        #expect(targetResets >= 1, "the target's connection at S was not reset")
    }

    @Test("The grace period runs out with a connection open: its client sees a reset")
    func graceExpiry() async throws {
        let target = try E2ETarget(.echo)
        defer { target.stop() }
        let (held, client, elapsed) = try await e2eOffload { () -> (E2EReadResult, String, Duration) in
            let rig = try E2ERig.start(targetPort: target.port, baud: Self.fastBaud,
                                       clientOptions: ["-d", "0", "--grace", "4"])
            defer { rig.forceKill() }
            let connection = try E2EClient.connect(port: rig.port)
            defer { connection.close() }
            try connection.send(Array("ping".utf8))
            guard connection.readToEnd(timeout: 5, limit: 4).bytes == Array("ping".utf8) else {
                throw E2EFailure("no echo before S died")
            }
            _ = try rig.killServer()  // no goodbye: C hears nothing more
            let killed = ContinuousClock.now
            let held = connection.readToEnd(timeout: 15)
            try rig.client.waitForError(containing: "link lost")
            return (held, rig.client.errors.text, held.endedAt - killed)
        }
        #expect(held.end == .reset, "\(held.end)")
        #expect(elapsed > .seconds(3) && elapsed < .seconds(8), "reset \(elapsed.millisecondsText) after S died")
        #expect(client.contains("link down: nothing heard from the peer"), "\(client)")
        #expect(client.contains("link lost: the peer on "), "\(client)")
        print("grace expiry: the held connection was reset \(elapsed.millisecondsText) after S died (grace 4 s)")
    }

    @Test("A peer that breaks the protocol on a stream: that stream's client sees a reset")
    func protocolViolation() async throws {
        let (end, log, peerEvents) = try await e2eOffload { () -> (E2EEnd, String, [String]) in
            let (cable, pathA, pathB) = try e2eStartCable(baud: Self.fastBaud)
            defer { cable.forceKill() }
            // The peer believes C's initial window is 1 MiB; C gave 64 KiB. Sending 300 KB to a
            // client that does not read exceeds the real credit.
            let peer = try E2EFakePeer(path: pathA, usesOddStreamIDs: false, baud: Self.fastBaud,
                                       sendOnAccept: Payload.bytes(300_000, seed: 72),
                                       rewriteIncoming: E2EFakePeer.inflatingInitialWindow(to: 1 << 20))
            defer { peer.stop() }
            let port = try freeLoopbackPort()
            let client = try ChildProcess("C", ["C", "-port", "\(port)", "-com", pathB, "--baudrate", "\(Self.fastBaud)"])
            defer { client.forceKill() }
            try client.waitForError(containing: "link up: peer found")
            let connection = try E2EClient.connect(port: port, receiveBuffer: 4_096)
            defer { connection.close() }
            try waitUntil("C to reset the stream", timeout: .seconds(10)) {
                peer.events.contains { if case .streamReset = $0 { return true } else { return false } }
            }
            let result = connection.readToEnd(timeout: 10)
            _ = ChildProcess.terminate([client])
            return (result.end, client.errors.text, peer.events.map { "\($0)" })
        }
        #expect(end == .reset, "\(end)")
        #expect(peerEvents.contains { $0.contains("streamReset") && $0.contains("credit exceeded") }, "\(peerEvents)")
        #expect(log.contains("warning: stream #1 (127.0.0.1:") && log.contains("the peer broke the protocol (credit exceeded)"),
                "\(log)")
        print("protocol violation: the client saw '\(end)'; C logged: \(log.split(separator: "\n").filter { $0.contains("warning") })")
    }

    // MARK: A bounded wait when there is no peer

    @Test("No peer: a connection waits --link-wait seconds, is reset, and one line says why")
    func noPeer() async throws {
        let target = try E2ETarget(.echo)
        defer { target.stop() }
        let outcome = try await e2eOffload { () -> (E2EReadResult, Duration, String, String, Int) in
            let (cable, pathA, pathB) = try e2eStartCable(baud: Self.fastBaud)
            defer { cable.forceKill() }
            let port = try freeLoopbackPort()
            let client = try ChildProcess("C", ["C", "-port", "\(port)", "-com", pathB, "--baudrate", "\(Self.fastBaud)",
                                                "--link-wait", "1"])
            defer { client.forceKill() }
            try client.waitForError(containing: "C: listening on")
            let started = ContinuousClock.now
            let waiting = try E2EClient.connect(port: port)
            defer { waiting.close() }
            try waiting.send(Array("anyone there?".utf8))
            let result = waiting.readToEnd(timeout: 10)
            let waited = result.endedAt - started
            try client.waitForError(containing: "no peer on")

            // The peer arrives later: the abandoned stream never reaches it (no OPEN, no RESET),
            // and a new connection works.
            let server = try ChildProcess("S", ["S", "-ip", "127.0.0.1", "-port", "\(target.port)", "-com", pathA,
                                                "--baudrate", "\(Self.fastBaud)", "-d", "1"])
            defer { server.forceKill() }
            try client.waitForError(containing: "link up: peer found")
            let echo = try e2eExchange(port: port, Array("now?".utf8), timeout: 5)
            guard echo.bytes == Array("now?".utf8) else { throw E2EFailure("no echo once S is up: \(echo.end)") }
            let reports = ChildProcess.terminate([client, server])
            guard reports.allSatisfy(\.isClean) else { throw E2EFailure("\(reports)") }
            return (result, waited, client.errors.text, server.errors.text, target.accepted)
        }
        let (result, waited, clientLog, serverLog, accepted) = outcome
        #expect(result.end == .reset, "\(result.end)")
        #expect(waited >= .seconds(1) && waited < .seconds(4), "reset after \(waited.millisecondsText)")
        let line = clientLog.split(separator: "\n").first { $0.contains("no peer on") } ?? ""
        #expect(line.contains(" warning: no peer on /dev/"), "\(clientLog)")
        #expect(line.contains(" since ") && line.contains(" UTC: reset 1 connection(s) that waited 1 s for the link"),
                "\(line)")
        #expect(accepted == 1, "the target saw \(accepted) connections: the abandoned stream reached S")
        #expect(serverLog.components(separatedBy: ": connected to 127.0.0.1:").count == 2, "\(serverLog)")
        #expect(!serverLog.contains("protocol violation"), "\(serverLog)")
        print("no peer: reset after \(waited.millisecondsText): \(line)")
    }

    @Test("A connection made before the peer starts, its request already sent, is carried once the link is up")
    func connectionBeforeThePeer() async throws {
        let target = try E2ETarget(.echo)
        defer { target.stop() }
        let result = try await e2eOffload { () -> E2EReadResult in
            let (cable, pathA, pathB) = try e2eStartCable(baud: Self.fastBaud)
            defer { cable.forceKill() }
            let port = try freeLoopbackPort()
            let client = try ChildProcess("C", ["C", "-port", "\(port)", "-com", pathB, "--baudrate", "\(Self.fastBaud)"])
            defer { client.forceKill() }
            try client.waitForError(containing: "C: listening on")
            let early = try E2EClient.connect(port: port)
            defer { early.close() }
            try early.send(Array("sent before S existed".utf8))
            early.shutdownWrite()
            let server = try ChildProcess("S", ["S", "-ip", "127.0.0.1", "-port", "\(target.port)", "-com", pathA,
                                                "--baudrate", "\(Self.fastBaud)"])
            defer { server.forceKill() }
            let result = early.readToEnd(timeout: 10)
            _ = ChildProcess.terminate([client, server])
            return result
        }
        #expect(result.end == .endOfFile, "\(result.end)")
        #expect(result.bytes == Array("sent before S existed".utf8))
    }

    @Test("Both ends started as C: the link comes up, and a connection is refused with a line that names the mistake")
    func sameRoleOnBothEnds() async throws {
        let (end, log) = try await e2eOffload { () -> (E2EEnd, String) in
            let (cable, pathA, pathB) = try e2eStartCable(baud: Self.fastBaud)
            defer { cable.forceKill() }
            let port = try freeLoopbackPort()
            let first = try ChildProcess("C1", ["C", "-port", "\(port)", "-com", pathA, "--baudrate", "\(Self.fastBaud)",
                                                "--link-wait", "1"])
            defer { first.forceKill() }
            let second = try ChildProcess("C2", ["C", "-port", "\(try freeLoopbackPort())", "-com", pathB,
                                                 "--baudrate", "\(Self.fastBaud)"])
            defer { second.forceKill() }
            // The ID halves are negotiated (docs/protocol.md §3.4), so the link itself works.
            try first.waitForError(containing: "link up: peer found")
            try second.waitForError(containing: "link up: peer found")
            let connection = try E2EClient.connect(port: port)
            defer { connection.close() }
            let result = connection.readToEnd(timeout: 10)
            try second.waitForError(containing: "to this end's default target, but this end has none")
            _ = ChildProcess.terminate([first, second])
            return (result.end, first.errors.text + second.errors.text)
        }
        #expect(end == .reset, "\(end)")
        #expect(log.contains("the peer refused it (target not allowed); the client is reset"), "\(log)")
        #expect(log.contains("but this end has none (start it as S -ip HOST -port PORT, or name the target in the far end's -L); refused"),
                "\(log)")
    }

    // MARK: What the default level says

    @Test("At -d 0: the start line, link up with its RTT, down, restored; nothing per connection")
    func statusLines() async throws {
        let target = try E2ETarget(.echo)
        defer { target.stop() }
        let (clientLog, serverLog, rig) = try await e2eOffload { () -> (String, String, E2ERig) in
            let rig = try E2ERig.start(targetPort: target.port, baud: Self.fastBaud,
                                       cableOptions: ["--outage", "1.5:4"],
                                       serverOptions: ["-d", "0"], clientOptions: ["-d", "0"])
            defer { rig.forceKill() }
            let echo = try e2eExchange(port: rig.port, Array("hello".utf8), timeout: 15)
            guard echo.bytes == Array("hello".utf8) else { throw E2EFailure("no echo: \(echo.end)") }
            try rig.client.waitForError(containing: "link restored", timeout: .seconds(15))
            try rig.server.waitForError(containing: "link restored", timeout: .seconds(15))
            let reports = rig.shutdown()
            guard reports.allSatisfy(\.isClean) else { throw E2EFailure("\(reports)") }
            return (rig.client.errors.text, rig.server.errors.text, rig)
        }
        let client = clientLog.split(separator: "\n").map(String.init)
        let server = serverLog.split(separator: "\n").map(String.init)
        let baud = Self.fastBaud
        #expect(client.first?.hasSuffix(
            " notice: C: listening on 127.0.0.1:\(rig.port), forwarding over \(rig.pathB) at \(baud) 8N1") == true,
            "\(clientLog)")
        #expect(server.first?.hasSuffix(
            " notice: S: connecting streams to 127.0.0.1:\(target.port), over \(rig.pathA) at \(baud) 8N1") == true,
            "\(serverLog)")
        for (name, log) in [("C", client), ("S", server)] {
            let path = name == "C" ? rig.pathB : rig.pathA
            let up = log.first { $0.contains("link up: peer found on \(path), RTT ") }
            #expect(up?.hasSuffix(" ms") == true, "\(name): \(log)")
            #expect(log.contains { $0.contains(" warning: link down: nothing heard from the peer on \(path)") }, "\(name): \(log)")
            #expect(log.contains { $0.contains(" notice: link restored after ") && $0.contains("nothing was lost") },
                    "\(name): \(log)")
            // Nothing per connection at the default level.
            #expect(!log.contains { $0.contains("stream ") || $0.contains("connection from") }, "\(name): \(log)")
        }
        print("-d 0, C:\n  " + client.joined(separator: "\n  "))
    }

    @Test("A refused target: one plain line at S (no library internals), and C's client is reset")
    func refusedTargetLogLine() async throws {
        let closedPort = try freeLoopbackPort()
        let (end, log) = try await e2eOffload { () -> (E2EEnd, String) in
            let rig = try E2ERig.start(targetPort: closedPort, baud: Self.fastBaud,
                                       serverOptions: ["-d", "0"], clientOptions: ["-d", "0"])
            defer { rig.forceKill() }
            let client = try E2EClient.connect(port: rig.port)
            defer { client.close() }
            try client.send(Array("hello?".utf8))
            let result = client.readToEnd(timeout: 5)
            try rig.server.waitForError(containing: "failed: connection refused")
            _ = rig.shutdown()
            return (result.end, rig.server.errors.text)
        }
        #expect(end == .reset, "\(end)")
        let line = log.split(separator: "\n").first { $0.contains("failed: connection refused") } ?? ""
        #expect(line.contains(" warning: stream #"), "\(line)")
        #expect(line.hasSuffix(": connect to 127.0.0.1:\(closedPort) failed: connection refused; the peer's client is reset"),
                "\(line)")
        #expect(!log.contains("SingleConnectionFailure") && !log.contains("errno"), "\(log)")
    }

    // MARK: The built-in client

    @Test("socket2ser connect: standard input to the port and back, exit 0 after a clean end")
    func connectEchoes() async throws {
        let target = try E2ETarget(.echo)
        defer { target.stop() }
        let input = Array("line one\nline two\n".utf8)
        let port = target.port
        let (output, exit) = try await e2eOffload { () -> (String, ChildProcess.Exit?) in
            let child = try ChildProcess("connect", ["connect", "127.0.0.1:\(port)"], input: input)
            defer { child.forceKill() }
            let exit = child.waitForExit(timeout: .seconds(10))
            try waitUntil("connect's stdout to end", timeout: .seconds(5)) { child.output.hasEnded }
            return (child.output.text, exit)
        }
        #expect(output == "line one\nline two\n")
        #expect(exit?.isCleanExitZero == true, "\(exit.map { "\($0)" } ?? "still running")")
    }

    @Test("socket2ser connect: a reset is reported in one line with exit 1")
    func connectReportsReset() async throws {
        let closedPort = try freeLoopbackPort()
        let (errors, exit) = try await e2eOffload { () -> (String, ChildProcess.Exit?) in
            let rig = try E2ERig.start(targetPort: closedPort, baud: Self.fastBaud)
            defer { rig.forceKill() }
            let child = try ChildProcess("connect", ["connect", "127.0.0.1:\(rig.port)"], input: Array("hi\n".utf8))
            defer { child.forceKill() }
            let exit = child.waitForExit(timeout: .seconds(10))
            try waitUntil("connect's stderr to end", timeout: .seconds(5)) { child.errors.hasEnded }
            _ = rig.shutdown()
            return (child.errors.text, exit)
        }
        #expect(exit?.reason == .exit && exit?.status == 1, "\(exit.map { "\($0)" } ?? "still running")")
        #expect(errors.hasPrefix("socket2ser connect: 127.0.0.1:") && errors.hasSuffix(": connection reset by the other side\n"),
                "\(errors)")
        #expect(errors.split(separator: "\n").count == 1, "\(errors)")
    }
}
