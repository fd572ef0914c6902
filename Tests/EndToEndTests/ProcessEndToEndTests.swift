#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit
import Testing

/// The built `socket2ser` executable, run as real processes: `socket2ser cable` joins two
/// pseudo-terminals, `socket2ser S` and `socket2ser C` run on its ends, and the tests are real
/// TCP clients and target services on 127.0.0.1 (plain blocking sockets on threads of their own).
///
/// Every wait is for a condition with a deadline, and every wait or time measurement runs on a
/// dedicated thread (`e2eOffload`), so the timings hold even while other suites keep Swift's
/// cooperative pool busy. Each test ends by sending SIGTERM to every process and checking that it
/// exits 0 within 2 s (`withE2ERig`); processes are killed whatever happens. The cable runs at
/// 2 Mbaud (200 KB/s each way) where the scenario is about correctness; rates only matter for the
/// outage timeline and the demo.
///
/// Serialized: each test runs three processes and many threads, and the timings it checks should
/// not depend on another test of this suite competing for the two cores.
@Suite("Process end to end", .serialized, .timeLimit(.minutes(3)), .tags(.timing))
struct ProcessEndToEndTests {
    static let fastBaud = 2_000_000

    @Test("1 MB each way at once, byte for byte")
    func bulkBothWaysAtOnce() async throws {
        let upload = Payload.bytes(1_000_000, seed: 11)
        let download = Payload.bytes(1_000_000, seed: 12)
        let target = try E2ETarget(.exchange(download: download))
        defer { target.stop() }
        try await withE2ERig(targetPort: target.port, baud: Self.fastBaud) { rig in
            let port = rig.port
            let (result, received, elapsed) = try await e2eOffload { () -> (E2EReadResult, [UInt8], Duration) in
                let started = ContinuousClock.now
                let client = try E2EClient.connect(port: port)
                defer { client.close() }
                let result = client.sendWhileReadingToEnd(upload, timeout: 30)
                // The readiness probe made an empty connection to the target too; ours has data.
                try waitUntil("the target to receive the whole upload", timeout: .seconds(10)) {
                    target.uploads.contains { !$0.isEmpty }
                }
                return (result, target.uploads.first { !$0.isEmpty } ?? [], ContinuousClock.now - started)
            }
            #expect(result.end == .endOfFile)
            #expect(e2eDifference(result.bytes, download) == nil, "download: \(e2eDifference(result.bytes, download) ?? "")")
            #expect(e2eDifference(received, upload) == nil, "upload: \(e2eDifference(received, upload) ?? "")")
            print("bulk: 1 MB each way at once in \(elapsed.millisecondsText)")
        }
    }

    @Test("300 concurrent connections all echo correctly")
    func threeHundredConcurrentConnections() async throws {
        let target = try E2ETarget(.echo)
        defer { target.stop() }
        try await withE2ERig(targetPort: target.port, baud: Self.fastBaud) { rig in
            let port = rig.port
            let payloads = (0..<300).map { Payload.bytes(200 + ($0 * 7) % 1_500, seed: UInt64(1_000 + $0)) }
            let (results, elapsed) = try await e2eOffload { () -> ([E2EReadResult], Duration) in
                let started = ContinuousClock.now
                // All 300 open at once, all sending, before any reply is read.
                var clients: [E2EClient] = []
                for _ in payloads { clients.append(try E2EClient.connect(port: port)) }
                defer { clients.forEach { $0.close() } }
                for (client, payload) in zip(clients, payloads) {
                    try client.send(payload)
                    client.shutdownWrite()
                }
                let results = clients.map { $0.readToEnd(timeout: 20) }
                return (results, ContinuousClock.now - started)
            }
            var wrong: [String] = []
            for (index, (result, payload)) in zip(results, payloads).enumerated() {
                if result.end != .endOfFile || result.bytes != payload {
                    wrong.append("#\(index): \(result.end), \(e2eDifference(result.bytes, payload) ?? "same bytes")")
                }
            }
            #expect(wrong.isEmpty, "\(wrong.count) of 300 connections wrong: \(wrong.prefix(5))")
            #expect(target.accepted >= 300)
            print("300 connections: all echoed in \(elapsed.millisecondsText)")
        }
    }

    @Test("Half-close: the reply still arrives after the client ends its output, then end of file")
    func halfClose() async throws {
        let target = try E2ETarget(.replyAfterEndOfInput)
        defer { target.stop() }
        try await withE2ERig(targetPort: target.port, baud: Self.fastBaud) { rig in
            let request = Payload.bytes(50_000, seed: 21)
            let port = rig.port
            let result = try await e2eOffload { try e2eExchange(port: port, request, timeout: 10) }
            #expect(result.end == .endOfFile)
            let expected = E2ETarget.replyAfterEndOfInput(to: request)
            #expect(e2eDifference(result.bytes, expected) == nil, "\(e2eDifference(result.bytes, expected) ?? "")")
        }
    }

    @Test("A refused target resets the client within 1 s")
    func refusedTarget() async throws {
        let closedPort = try freeLoopbackPort()
        try await withE2ERig(targetPort: closedPort, baud: Self.fastBaud) { rig in
            let port = rig.port
            let (result, elapsed) = try await e2eOffload { () -> (E2EReadResult, Duration) in
                let started = ContinuousClock.now
                let client = try E2EClient.connect(port: port)
                defer { client.close() }
                try? client.send(Array("hello?".utf8))
                let result = client.readToEnd(timeout: 3)
                return (result, result.endedAt - started)
            }
            // Reset, not a clean end: the client sent data, and an empty reply is not what it got.
            #expect(result.end == .reset, "\(result.end)")
            #expect(result.bytes.isEmpty)
            #expect(elapsed < .seconds(1), "closed after \(elapsed.millisecondsText)")
            print("refused target: client closed after \(elapsed.millisecondsText) (\(result.end))")
        }
    }

    @Test("A stalled reader does not hold up another connection, and gets its data later")
    func stalledReader() async throws {
        let flood = Payload.bytes(1_000_000, seed: 31)
        let target = try E2ETarget(.floodOrEcho(flood: flood))
        defer { target.stop() }
        try await withE2ERig(targetPort: target.port, baud: Self.fastBaud) { rig in
            let port = rig.port
            // Asks for 1 MB (5 s of line time) and reads none of it, with a small receive buffer.
            let stalled = try E2EClient.connect(port: port, receiveBuffer: 4_096)
            defer { stalled.close() }
            try stalled.send(E2ETarget.floodRequest)

            let data = Payload.bytes(200_000, seed: 32)
            let (other, elapsed) = try await e2eOffload { () -> (E2EReadResult, Duration) in
                try waitUntil("the flood to start", timeout: .seconds(5)) { target.floodBytesWritten > 0 }
                let started = ContinuousClock.now
                let other = try e2eExchange(port: port, data, timeout: 15)
                return (other, ContinuousClock.now - started)
            }
            #expect(other.end == .endOfFile)
            #expect(e2eDifference(other.bytes, data) == nil, "\(e2eDifference(other.bytes, data) ?? "")")

            // What has crossed the cable for the stalled stream sits in the kernel on C's side:
            // in C's socket and in the client's. Per-stream flow control keeps that well under the
            // flood; the rest waits behind the cable. (How much has left the target says little:
            // the loopback buffers between the target and S grow to hold most of it.)
            let atC = e2eSocketQueues(localPort: port, remotePort: stalled.localPort)
            let atClient = e2eSocketQueues(localPort: stalled.localPort, remotePort: port)
            let delivered = (atC?.send ?? 0) + (atClient?.receive ?? 0)
            #expect(atC != nil && atClient != nil, "the stalled connection is not in /proc/net/tcp")
            #expect(delivered + 65_536 < flood.count, "the stalled stream took the whole flood across the cable")
            print("stalled reader: 200 KB echo beside it in \(elapsed.millisecondsText); \(delivered) B of the "
                  + "unread 1 MB had crossed the cable (C socket \(atC.map { "\($0.send)" } ?? "?") B, client "
                  + "socket \(atClient.map { "\($0.receive)" } ?? "?") B), the target had written "
                  + "\(target.floodBytesWritten) B")

            // Once it reads, every byte arrives.
            let rest = try await e2eOffload { stalled.readToEnd(timeout: 20) }
            #expect(rest.end == .endOfFile)
            #expect(e2eDifference(rest.bytes, flood) == nil, "\(e2eDifference(rest.bytes, flood) ?? "")")
        }
    }

    @Test("S killed with SIGKILL and restarted: new connections work again within a few seconds")
    func serverKilledAndRestarted() async throws {
        struct Outcome: Sendable {
            var killed: ChildProcess.Exit
            var recovery: Duration?
            var attempts: Int
            var held: E2EReadResult
            var heldClosedAfter: Duration
        }
        let target = try E2ETarget(.echo)
        defer { target.stop() }
        try await withE2ERig(targetPort: target.port, baud: Self.fastBaud) { rig in
            let port = rig.port
            let outcome = try await e2eOffload { () -> Outcome in
                let before = try e2eExchange(port: port, Array("before".utf8), timeout: 5)
                guard before.bytes == Array("before".utf8) else { throw E2EFailure("no echo before the kill: \(before.end)") }

                // A connection that is open while S dies.
                let held = try E2EClient.connect(port: port)
                defer { held.close() }
                try held.send(Array("held".utf8))
                guard held.readToEnd(timeout: 5, limit: 4).bytes == Array("held".utf8) else {
                    throw E2EFailure("no echo on the held connection")
                }

                let killed = try rig.killServer()
                let restarted = ContinuousClock.now
                try rig.restartServer()

                // Whole exchanges until one works, each with its own short deadline.
                var attempts = 0
                var recovery: Duration?
                while ContinuousClock.now < restarted + .seconds(10) {
                    attempts += 1
                    let probe = Payload.bytes(1_000, seed: UInt64(40 + attempts))
                    if let result = try? e2eExchange(port: port, probe, timeout: 1.5),
                       result.end == .endOfFile, result.bytes == probe {
                        recovery = ContinuousClock.now - restarted
                        break
                    }
                    usleep(20_000)
                }
                // The connection open across the restart must be closed, not left hanging.
                let heldEnd = held.readToEnd(timeout: 10)
                return Outcome(killed: killed, recovery: recovery, attempts: attempts, held: heldEnd,
                               heldClosedAfter: heldEnd.endedAt - restarted)
            }
            #expect(outcome.killed.reason == .uncaughtSignal)
            let recovery = try #require(outcome.recovery, "no working connection within 10 s of the restart")
            #expect(recovery < .seconds(5), "recovered after \(recovery.millisecondsText)")
            #expect(outcome.held.end == .reset, "the connection held across the restart: \(outcome.held.end)")
            print("restart: new connections work \(recovery.millisecondsText) after S restarted (attempt "
                  + "\(outcome.attempts)); the connection held across it ended (\(outcome.held.end)) "
                  + "\(outcome.heldClosedAfter.millisecondsText) after the restart")

            // And it is a full service again.
            let data = Payload.bytes(100_000, seed: 49)
            let after = try await e2eOffload { try e2eExchange(port: port, data, timeout: 10) }
            #expect(e2eDifference(after.bytes, data) == nil, "\(e2eDifference(after.bytes, data) ?? "")")
        }
    }

    @Test("A 3 s outage mid-transfer: the transfer completes intact afterwards")
    func outageMidTransfer() async throws {
        // The cable's clock starts before S and C; the link is up ~0.2 s later. Two seconds in,
        // the transfer is well under way even on a busy machine.
        let outageStart = 2.0
        let outageSeconds = 3.0
        let baud = 1_000_000  // 100 KB/s each way: the echo below needs ~4 s of line time
        let data = Payload.bytes(400_000, seed: 51)
        let target = try E2ETarget(.echo)
        defer { target.stop() }
        let transfer = E2EBox<E2EBackground<(started: ContinuousClock.Instant, result: E2EReadResult)>>()
        try await withE2ERig(
            targetPort: target.port, baud: baud, cableOptions: ["--outage", "\(outageStart):\(outageSeconds)"],
            onReady: { rig in
                // Started on the rig's own thread the moment the link is up.
                let port = rig.port
                transfer.value = E2EBackground("e2e outage transfer") {
                    let started = ContinuousClock.now
                    let client = try E2EClient.connect(port: port)
                    defer { client.close() }
                    return (started, client.sendWhileReadingToEnd(data, timeout: 40))
                }
            }
        ) { rig in
            let background = try #require(transfer.value)
            let (started, result) = try await e2eOffload { try background.value(timeout: .seconds(45)) }
            #expect(result.end == .endOfFile)
            #expect(e2eDifference(result.bytes, data) == nil, "\(e2eDifference(result.bytes, data) ?? "")")

            // The timeline, in seconds on the cable's clock.
            func seconds(_ instant: ContinuousClock.Instant) -> Double { (instant - rig.cableStartedAt).inSeconds }
            let beforeOutage = result.arrivals.last { seconds($0.at) < outageStart }?.total ?? 0
            let duringOutage = result.arrivals.filter {
                seconds($0.at) > outageStart + 0.3 && seconds($0.at) < outageStart + outageSeconds - 0.1
            }
            #expect(seconds(started) < outageStart, "the transfer began only after the outage started")
            #expect(beforeOutage > 0 && beforeOutage < data.count,
                    "not mid-transfer: \(beforeOutage) B had arrived when the outage began")
            #expect(duringOutage.isEmpty, "bytes arrived during the outage: \(duringOutage.map(\.total).prefix(5))")
            let completion = seconds(result.endedAt) - (outageStart + outageSeconds)
            #expect(completion > 0 && completion < 10, "completed \(completion) s after the outage ended")
            print("outage: \(beforeOutage) of \(data.count) B echoed before the outage; complete "
                  + "\(Int(completion * 1000)) ms after it ended (transfer began at "
                  + "\(Int(seconds(started) * 1000)) ms on the cable clock)")
        }
    }

    @Test("Bit error rate 1e-5: a 1 MB echo arrives without a corrupted byte")
    func bitErrors() async throws {
        let target = try E2ETarget(.echo)
        defer { target.stop() }
        let data = Payload.bytes(1_000_000, seed: 61)
        let rig = try await withE2ERig(targetPort: target.port, baud: Self.fastBaud,
                                       cableOptions: ["--ber", "0.00001"], seed: 7) { rig in
            let port = rig.port
            let (result, elapsed) = try await e2eOffload { () -> (E2EReadResult, Duration) in
                let started = ContinuousClock.now
                let client = try E2EClient.connect(port: port)
                defer { client.close() }
                let result = client.sendWhileReadingToEnd(data, timeout: 40)
                return (result, ContinuousClock.now - started)
            }
            #expect(result.end == .endOfFile)
            #expect(e2eDifference(result.bytes, data) == nil, "\(e2eDifference(result.bytes, data) ?? "")")
            print("BER 1e-5: 1 MB echo intact in \(elapsed.millisecondsText)")
        }
        // The cable prints its counters when it stops: the faults must really have happened.
        try await e2eOffload {
            try waitUntil("the cable's counters", timeout: .seconds(5)) { rig.cable.errors.hasEnded }
        }
        let words = rig.cable.errors.text.split(whereSeparator: \.isWhitespace)
        let flipped = words.indices.dropLast().filter { words[$0] == "bits-flipped" }.compactMap { Int(words[$0 + 1]) }
        #expect(flipped.count == 2 && flipped.allSatisfy { $0 > 0 },
                "bits flipped per direction: \(flipped); cable stderr: \(rig.cable.errors.text)")
        print("BER 1e-5: the cable flipped \(flipped) bits (A->B, B->A)")
    }

    @Test("socket2ser demo --seconds 3: prints a client hint that works here, relays an echo, exits 0")
    func demo() async throws {
        let demo = try ChildProcess("demo", ["demo", "--seconds", "3"])
        defer { demo.forceKill() }
        let message = Array("hello through the demo\n".utf8)
        let (hint, result, exit) = try await e2eOffload { () -> (Substring, E2EReadResult, ChildProcess.Exit?) in
            let hint = try demo.waitForOutputLine("the client hint") { $0.contains("; try:  ") }
            let port = try e2eDemoPort(hint)
            let result = try e2eExchange(port: port, message, timeout: 5)
            return (hint, result, demo.waitForExit(timeout: .seconds(8)))
        }
        #expect(hint.hasPrefix("socket2ser demo: virtual cable at 115200 baud, C listening on 127.0.0.1:"))
        // The hint names a client this machine has, and the built-in one is always offered.
        let suggested = hint.components(separatedBy: "; try:  ").last ?? ""
        let builtin = demo.output.text.contains(" connect 127.0.0.1:")
        #expect(builtin, "stdout: \(demo.output.text)")
        if suggested.hasPrefix("nc ") {
            #expect(e2eOnPath("nc"))
        } else if suggested.hasPrefix("socat ") {
            #expect(e2eOnPath("socat"))
        } else {
            #expect(suggested.contains(" connect 127.0.0.1:"))
        }
        #expect(result.end == .endOfFile)
        #expect(result.bytes == message)
        let ended = try #require(exit, "demo still running 8 s after it started")
        #expect(ended.isCleanExitZero, "\(ended); stderr: \(demo.errors.text)")
        #expect(ended.at - demo.startedAt < .seconds(6), "ran \((ended.at - demo.startedAt).millisecondsText)")
        // Counter lines, one per second; plain lines on a pipe (no \r updating in place).
        #expect(demo.output.text.contains("| link up"), "stdout: \(demo.output.text)")
        #expect(!demo.output.text.contains("\r"))
    }

    /// Run as root, the tests would not notice a socket option only root may set (SO_DEBUG was
    /// set in place of TCP_NODELAY, so every connection of an ordinary user was reset). This one
    /// runs the demo as `nobody`, when the suite runs as root and `setpriv` is there.
    @Test("socket2ser demo run by an unprivileged user relays an echo")
    func unprivilegedDemo() async throws {
        guard getuid() == 0, e2eOnPath("setpriv") else {
            print("unprivileged demo: skipped (not root, or no setpriv); the other tests run unprivileged already")
            return
        }
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-nobody-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: home) }
        chmod(home, 0o777)
        let demo = try ChildProcess("demo as nobody",
                                    ["--reuid=65534", "--regid=65534", "--clear-groups",
                                     try Socket2SerExecutable.url().path, "demo", "--seconds", "3"],
                                    executable: URL(fileURLWithPath: "/usr/bin/setpriv"), environment: ["HOME": home])
        defer { demo.forceKill() }
        let message = Array("hello from nobody\n".utf8)
        let (result, exit) = try await e2eOffload { () -> (E2EReadResult, ChildProcess.Exit?) in
            let hint = try demo.waitForOutputLine("the client hint") { $0.contains("; try:  ") }
            let result = try e2eExchange(port: try e2eDemoPort(hint), message, timeout: 5)
            return (result, demo.waitForExit(timeout: .seconds(8)))
        }
        #expect(result.end == .endOfFile && result.bytes == message, "\(result.end), stderr: \(demo.errors.text)")
        #expect(exit?.isCleanExitZero == true, "\(String(describing: exit)); stderr: \(demo.errors.text)")
    }

    @Test("socket2ser demo stops on SIGTERM or SIGINT within 2 s, exit 0, resetting a connection still open",
          arguments: [SIGTERM, SIGINT])
    func demoStopsOnSignal(signal: Int32) async throws {
        let demo = try ChildProcess("demo", ["demo", "--baud", "\(Self.fastBaud)"])
        defer { demo.forceKill() }
        let (echo, afterSignal, exit, sent) = try await e2eOffload {
            () -> (E2EReadResult, E2EReadResult, ChildProcess.Exit?, ContinuousClock.Instant) in
            let hint = try demo.waitForOutputLine("the client hint") { $0.contains("; try:  ") }
            let port = try e2eDemoPort(hint)
            // A stream open through both ends when the signal arrives.
            let open = try E2EClient.connect(port: port)
            defer { open.close() }
            try open.send(Array("ping".utf8))
            let echo = open.readToEnd(timeout: 5, limit: 4)
            let sent = ContinuousClock.now
            demo.signal(signal)
            let exit = demo.waitForExit(timeout: .seconds(5))
            return (echo, open.readToEnd(timeout: 2), exit, sent)
        }
        #expect(echo.bytes == Array("ping".utf8))
        let ended = try #require(exit, "demo still running 5 s after the signal")
        #expect(ended.at - sent < .seconds(2), "exited \((ended.at - sent).millisecondsText) after the signal")
        #expect(ended.isCleanExitZero, "\(ended); stderr: \(demo.errors.text)")
        #expect(afterSignal.end == .reset, "the connection open when the demo stopped: \(afterSignal.end)")
        print("demo: exited \((ended.at - sent).millisecondsText) after signal \(signal) with a stream open")
    }
}

/// The port in the demo's hint line, "... C listening on 127.0.0.1:PORT; try: ...".
func e2eDemoPort(_ line: Substring) throws -> Int {
    guard let range = line.range(of: "C listening on 127.0.0.1:") else { throw E2EFailure("no port in '\(line)'") }
    let digits = line[range.upperBound...].prefix { $0.isNumber }
    guard let port = Int(digits) else { throw E2EFailure("no port in '\(line)'") }
    return port
}

/// Whether an executable of this name is on PATH.
func e2eOnPath(_ name: String) -> Bool {
    (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").contains {
        access("\($0)/\(name)", X_OK) == 0
    }
}
