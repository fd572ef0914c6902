#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Forwarding
import TestKit
import Testing

/// Listeners against slow and idle clients (issue 12), with the real executable: SOCKS clients
/// that never finish their handshake, a thousand idle connections to a forward's listener and to
/// a SOCKS listener, and an end that runs out of descriptors.
@Suite("Slow clients", .serialized, .timeLimit(.minutes(3)), .tags(.timing))
struct SlowClientsTests {
    static let baud = 2_000_000

    // MARK: SOCKS clients that stall

    @Test("SOCKS clients that stall (silent, half a greeting, half a request, too slow) are each dropped after --socks-timeout with a line; one that gives up is let go at once; others are served meanwhile, and a slow one that finishes in time works")
    func stalledSOCKSClients() async throws {
        let echo = try E2ETarget(.echo)
        defer { echo.stop() }
        let socksPort = try freeLoopbackPort()
        let timeout = 1.0
        // The request for the echo target by its IPv4 address: 10 bytes.
        let request: [UInt8] = [5, 1, 0, 1, 127, 0, 0, 1, UInt8(echo.port >> 8), UInt8(echo.port & 0xFF)]
        struct Stalled: Sendable {
            var name: String
            var localPort: Int
            var connectedAt: ContinuousClock.Instant
            var result: E2EReadResult
        }
        struct Outcome: Sendable {
            var stalled: [Stalled]
            var stillOpenWhileServed: Bool
            var served: [[UInt8]]
            var slowInTime: [UInt8]
            var slowInTimeTook: Duration
            var gaveUp: E2EEnd
            var gaveUpAfter: Duration
            var gaveUpPort: Int
            var log: String
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let rig = try E2ERig.start(targetPort: echo.port, baud: Self.baud,
                                       clientOptions: ["-d", "1", "-D", "\(socksPort)", "--socks-timeout", "\(timeout)"])
            defer { rig.forceKill() }
            try waitUntil("C's SOCKS listener", timeout: .seconds(10)) { E2EClient.accepts(port: socksPort) }

            // Four that stall, each in another place of the handshake.
            var stalling: [(String, E2EClient, ContinuousClock.Instant)] = []
            let silent = try E2EClient.connect(port: socksPort)
            stalling.append(("silent", silent, .now))
            let halfGreeting = try E2EClient.connect(port: socksPort)
            stalling.append(("half a greeting", halfGreeting, .now))
            try halfGreeting.send([5, 2, 0])  // two methods announced, one sent
            let halfRequest = try E2EClient.connect(port: socksPort)
            stalling.append(("half a request", halfRequest, .now))
            try halfRequest.send([5, 1, 0])
            guard halfRequest.readToEnd(timeout: 5, limit: 2).bytes == [5, 0] else { throw E2EFailure("no method reply") }
            try halfRequest.send(Array(request.prefix(6)))
            // Every byte well within the timeout, the whole handshake not: the timeout is for
            // the whole handshake, so a client cannot hold a connection by trickling bytes.
            let tooSlow = try E2EClient.connect(port: socksPort)
            stalling.append(("too slow", tooSlow, .now))
            let trickle = E2EBackground("too slow") {
                for byte in [5, 1, 0] + request {
                    // A slow client's pace: a byte every sixth of the timeout, unless C has
                    // dropped it meanwhile.
                    if tooSlow.waitForClose(timeout: timeout / 6) { return }
                    guard (try? tooSlow.send([byte])) != nil else { return }
                }
            }

            // One that gives up half-way (ends its output) is let go at once, not held until the
            // timeout: it can never finish.
            let givesUp = try E2EClient.connect(port: socksPort)
            let gaveUpAt = ContinuousClock.now
            try givesUp.send([5, 2, 0])
            givesUp.shutdownWrite()
            let gaveUp = givesUp.readToEnd(timeout: 5)
            let gaveUpPort = givesUp.localPort
            givesUp.close()

            // Meanwhile other clients are served, while those four are still held.
            var served: [[UInt8]] = []
            for i in 0..<3 {
                let (reply, client) = try E2ESOCKS.connect(port: socksPort, request: request)
                guard reply == 0 else { throw E2EFailure("SOCKS reply \(String(describing: reply))") }
                try client.send(Array("served \(i)".utf8))
                client.shutdownWrite()
                served.append(client.readToEnd(timeout: 5).bytes)
                client.close()
            }
            let stillOpen = stalling.allSatisfy { _, client, _ in client.readToEnd(timeout: 0.001).end == .timedOut }

            // A slow client that finishes within the timeout is served: 13 bytes in about half of it.
            let slowStarted = ContinuousClock.now
            let slow = try E2EClient.connect(port: socksPort)
            var droppedEarly = false
            for byte in [5, 1, 0] + request {
                // The client's pace; C must not drop it meanwhile.
                if slow.waitForClose(timeout: timeout / 26) { droppedEarly = true }
                try slow.send([byte])
            }
            guard !droppedEarly else { throw E2EFailure("C dropped a slow client that was within the timeout") }
            let slowReply = slow.readToEnd(timeout: 5, limit: 12)
            let slowTook = ContinuousClock.now - slowStarted
            guard slowReply.bytes.prefix(4) == [5, 0, 5, 0] else { throw E2EFailure("slow client: \(slowReply.bytes)") }
            try slow.send(Array("slow but in time".utf8))
            slow.shutdownWrite()
            let slowEcho = slow.readToEnd(timeout: 5).bytes
            slow.close()

            let stalled = stalling.map { name, client, at in
                Stalled(name: name, localPort: client.localPort, connectedAt: at, result: client.readToEnd(timeout: 10))
            }
            _ = try trickle.value(timeout: .seconds(10))
            for (_, client, _) in stalling { client.close() }
            try rig.client.waitForError(containing: "dropped: no complete request within", count: stalled.count)
            let reports = rig.shutdown()
            guard reports.allSatisfy(\.isClean) else { throw E2EFailure("\(reports)\n\(rig.logs)") }
            return Outcome(stalled: stalled, stillOpenWhileServed: stillOpen, served: served, slowInTime: slowEcho,
                           slowInTimeTook: slowTook, gaveUp: gaveUp.end, gaveUpAfter: gaveUp.endedAt - gaveUpAt,
                           gaveUpPort: gaveUpPort, log: rig.client.errors.text)
        }
        #expect(outcome.served == (0..<3).map { Array("served \($0)".utf8) })
        #expect(outcome.stillOpenWhileServed, "the stalled clients were still held while the others were served")
        #expect(outcome.slowInTime == Array("slow but in time".utf8), "took \(outcome.slowInTimeTook.millisecondsText)")
        #expect(outcome.gaveUp == .endOfFile && outcome.gaveUpAfter < .milliseconds(500),
                "a client that gave up: \(outcome.gaveUp) after \(outcome.gaveUpAfter.millisecondsText)")
        #expect(outcome.log.contains("SOCKS client 127.0.0.1:\(outcome.gaveUpPort) closed the connection before naming a target"))
        let lines = outcome.log.split(separator: "\n").filter { $0.contains("dropped: no complete request within 1 s") }
        #expect(lines.count == outcome.stalled.count, "one line per stalled client:\n\(outcome.log)")
        for stalled in outcome.stalled {
            let after = stalled.result.endedAt - stalled.connectedAt
            // The one still trickling bytes into the closed connection sees a reset, as it should.
            #expect(stalled.result.end == .endOfFile || (stalled.name == "too slow" && stalled.result.end == .reset),
                    "\(stalled.name): \(stalled.result.end)")
            #expect(after >= .milliseconds(900) && after < .seconds(3), "\(stalled.name): dropped after \(after.millisecondsText)")
            #expect(lines.contains { $0.contains("SOCKS client 127.0.0.1:\(stalled.localPort) dropped") },
                    "\(stalled.name) (port \(stalled.localPort)) has its line")
            print("  \(stalled.name): dropped after \(after.millisecondsText)")
        }
    }

    // MARK: A thousand idle connections

    @Test("1,000 idle connections to a forward's listener and 1,000 to a SOCKS listener: a new connection still echoes at once, memory stays bounded, and all is released when they close")
    func thousandIdleConnections() async throws {
        // The test holds every client and, as the target, every connection S makes: two
        // descriptors for each connection to the forward, one for each SOCKS client.
        let limit = Int(raiseOpenFileLimit() ?? 1024)
        let count = min(1000, (limit - 400) / 4)
        try #require(count >= 100, "RLIMIT_NOFILE is \(limit): too low for this test")
        if count < 1000 { print("  RLIMIT_NOFILE is \(limit): \(count) connections of each kind, not 1,000") }
        let echo = try E2ETarget(.echo)
        defer { echo.stop() }
        let socksPort = try freeLoopbackPort()
        let runtime = try DashboardTests.runtimeFolder()
        struct Figures: Sendable {
            var idle: (s: E2EProcessFigures, c: E2EProcessFigures)
            var held: (s: E2EProcessFigures, c: E2EProcessFigures)
            var released: (s: E2EProcessFigures, c: E2EProcessFigures)
            var alone: (forward: Duration, socks: Duration)
            var crowded: (forward: Duration, socks: Duration)
            var targetConnections: Int
            var reports: [ChildProcess.StopReport]
        }
        let figures = try await e2eOffload { () -> Figures in
            let cable = try CableProcess(["--baud", "\(Self.baud)"])
            defer { cable.process.forceKill() }
            let server = try cable.startServer(targetPort: echo.port, baud: Self.baud, ["--ui", "0"],
                                               environment: ["XDG_RUNTIME_DIR": runtime + "/s"])
            defer { server.forceKill() }
            let port = try freeLoopbackPort()
            let client = try cable.startClient(port: port, baud: Self.baud,
                                               ["--ui", "0", "-D", "\(socksPort)", "--socks-timeout", "600"],
                                               environment: ["XDG_RUNTIME_DIR": runtime + "/c"])
            defer { client.forceKill() }
            let ids = (s: "pts" + (cable.pathA.split(separator: "/").last.map(String.init) ?? ""),
                       c: "pts" + (cable.pathB.split(separator: "/").last.map(String.init) ?? ""))
            let dashboards = (s: try DashboardTests.Endpoint.from(server), c: try DashboardTests.Endpoint.from(client))
            _ = try dashboards.s.waitForLink(ids.s, state: "up")
            _ = try dashboards.c.waitForLink(ids.c, state: "up")
            try waitUntil("C's SOCKS listener", timeout: .seconds(10)) { E2EClient.accepts(port: socksPort) }
            try waitUntil("C's listener", timeout: .seconds(10)) { E2EClient.accepts(port: port) }
            func streams() throws -> (s: Int, c: Int) {
                (try dashboards.s.link(ids.s)?["streamsOpen"] as? Int ?? -1, try dashboards.c.link(ids.c)?["streamsOpen"] as? Int ?? -1)
            }
            // The probe of the forward's port became a stream that reached the target.
            try waitUntil("the probe's stream to reach the target and close", timeout: .seconds(10)) {
                let made = try dashboards.s.link(ids.s)?["connectionsTotal"] as? Int
                let open = try streams()
                return echo.accepted >= 1 && echo.accepted == made && open == (0, 0)
            }
            let data = Payload.bytes(4096, seed: 151)
            // The same exchanges as below, without the crowd: what "at once" means on this machine.
            let alone = try Self.timedExchanges(port: port, socksPort: socksPort, targetPort: echo.port, data)
            try waitUntil("their streams to close", timeout: .seconds(10)) { try streams() == (0, 0) }
            let idle = (s: try E2EProcessFigures(server.pid), c: try E2EProcessFigures(client.pid))
            let acceptedBefore = echo.accepted

            var plain: [E2EClient] = []
            var socks: [E2EClient] = []
            defer { (plain + socks).forEach { $0.close() } }
            for _ in 0..<count { plain.append(try E2EClient.connect(port: port)) }
            for _ in 0..<count { socks.append(try E2EClient.connect(port: socksPort)) }
            try waitUntil("\(count) streams at both ends", timeout: .seconds(60)) { try streams() == (count, count) }
            var holding = 0
            do {
                try waitUntil("C to hold every connection", timeout: .seconds(30)) {
                    holding = try E2EProcessFigures(client.pid).descriptors
                    // Less a few: the dashboard's own connections come and go.
                    return holding >= idle.c.descriptors + 2 * count - 4
                }
            } catch {
                throw E2EFailure("\(error): C has \(holding) descriptors, \(idle.c.descriptors) before")
            }
            let targetConnections = echo.accepted - acceptedBefore

            // A new connection beside them, through the forward and through SOCKS.
            let crowded = try Self.timedExchanges(port: port, socksPort: socksPort, targetPort: echo.port, data)
            let held = (s: try E2EProcessFigures(server.pid), c: try E2EProcessFigures(client.pid))

            for connection in plain + socks { connection.close() }
            try waitUntil("every stream closed at both ends", timeout: .seconds(60)) { try streams() == (0, 0) }
            try waitUntil("S and C to close every socket", timeout: .seconds(30)) {
                try E2EProcessFigures(server.pid).descriptors <= idle.s.descriptors
                    && E2EProcessFigures(client.pid).descriptors <= idle.c.descriptors
            }
            let released = (s: try E2EProcessFigures(server.pid), c: try E2EProcessFigures(client.pid))
            let reports = ChildProcess.terminate([client, server]) + [cable.process.terminate()]
            return Figures(idle: idle, held: held, released: released, alone: alone, crowded: crowded,
                           targetConnections: targetConnections, reports: reports)
        }
        #expect(figures.targetConnections == count, "S made one connection to the target for each")
        for (end, idle, held, released) in [("S", figures.idle.s, figures.held.s, figures.released.s),
                                            ("C", figures.idle.c, figures.held.c, figures.released.c)] {
            let perConnection = Double(held.privateKiB - idle.privateKiB) * 1024 / Double(end == "S" ? count : 2 * count)
            print("  \(end): private \(idle.privateKiB) kB idle → \(held.privateKiB) kB holding → \(released.privateKiB) kB released "
                  + "(\(Int(perConnection)) B per connection held); RSS \(idle.rssKiB) → \(held.rssKiB) → \(released.rssKiB) kB; "
                  + "descriptors \(idle.descriptors) → \(held.descriptors) → \(released.descriptors)")
            // Bounded: measured about 4 kB of the process's own memory per connection held (the
            // kernel's socket buffers are not in it); four times that fails.
            #expect(perConnection < 16 * 1024, "\(end): \(Int(perConnection)) B per connection")
        }
        print("  a new connection echoed 4 KiB in \(figures.crowded.forward.millisecondsText) beside them "
              + "(\(figures.alone.forward.millisecondsText) alone), through SOCKS in \(figures.crowded.socks.millisecondsText) "
              + "(\(figures.alone.socks.millisecondsText) alone)")
        #expect(figures.crowded.forward < .seconds(2) && figures.crowded.socks < .seconds(2))
        for report in figures.reports { #expect(report.isClean, "\(report)") }
    }

    /// One echo of `data` through the forward and one through SOCKS, each timed from its connect
    /// to the end of its echo. Blocking.
    static func timedExchanges(port: Int, socksPort: Int, targetPort: Int, _ data: [UInt8]) throws -> (forward: Duration, socks: Duration) {
        let started = ContinuousClock.now
        let echoed = try e2eExchange(port: port, data, timeout: 10)
        let forward = ContinuousClock.now - started
        guard echoed.bytes == data else { throw E2EFailure("the echo through the forward: \(echoed.end), \(echoed.bytes.count) B") }
        let socksStarted = ContinuousClock.now
        let request: [UInt8] = [5, 1, 0, 1, 127, 0, 0, 1, UInt8(targetPort >> 8), UInt8(targetPort & 0xFF)]
        let (reply, client) = try E2ESOCKS.connect(port: socksPort, request: request)
        defer { client.close() }
        guard reply == 0 else { throw E2EFailure("SOCKS reply \(String(describing: reply))") }
        try client.send(data)
        client.shutdownWrite()
        let socksEchoed = client.readToEnd(timeout: 10)
        guard socksEchoed.bytes == data else { throw E2EFailure("the echo through SOCKS: \(socksEchoed.end)") }
        return (forward, ContinuousClock.now - socksStarted)
    }

    // MARK: Out of descriptors

    @Test("An end out of descriptors says so in one line, does not spin, serves the connections it holds, and accepts the waiting ones once descriptors are free")
    func outOfDescriptors() async throws {
        let echo = try E2ETarget(.echo)
        defer { echo.stop() }
        struct Outcome: Sendable {
            var heldEchoes: [[UInt8]]
            var waitingEchoes: [[UInt8]]
            var cpuShare: Double
            var log: String
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let rig = try E2ERig.start(targetPort: echo.port, baud: Self.baud)
            defer { rig.forceKill() }
            // Room for four more descriptors at C, no more.
            let pid = rig.client.pid
            try e2eSetDescriptorLimit(pid: pid, to: try E2EProcessFigures(pid).limit(leaving: 4))
            var held: [E2EClient] = []
            for _ in 0..<4 { held.append(try E2EClient.connect(port: rig.port)) }
            // The kernel completes these handshakes; C cannot accept them.
            var waiting: [E2EClient] = []
            for _ in 0..<6 { waiting.append(try E2EClient.connect(port: rig.port)) }
            defer { (held + waiting).forEach { $0.close() } }
            try rig.client.waitForError(containing: "too many open files")
            let cpuBefore = try E2EProcessFigures(pid).cpuSeconds
            let wallBefore = ContinuousClock.now
            // What it holds it still serves.
            var heldEchoes: [[UInt8]] = []
            for (i, client) in held.enumerated() {
                try client.send(Array("held \(i)".utf8))
                heldEchoes.append(client.readToEnd(timeout: 5, limit: "held \(i)".utf8.count).bytes)
            }
            // Once its clients go, the waiting ones are accepted and served.
            for client in held { client.close() }
            var waitingEchoes: [[UInt8]] = []
            for (i, client) in waiting.enumerated() {
                try client.send(Array("waited \(i)".utf8))
                client.shutdownWrite()
                waitingEchoes.append(client.readToEnd(timeout: 10).bytes)
                client.close()
            }
            let cpu = try E2EProcessFigures(pid).cpuSeconds - cpuBefore
            let wall = (ContinuousClock.now - wallBefore).inSeconds
            let reports = rig.shutdown()
            guard reports.allSatisfy(\.isClean) else { throw E2EFailure("\(reports)\n\(rig.logs)") }
            return Outcome(heldEchoes: heldEchoes, waitingEchoes: waitingEchoes, cpuShare: cpu / wall, log: rig.client.errors.text)
        }
        #expect(outcome.heldEchoes == (0..<4).map { Array("held \($0)".utf8) })
        #expect(outcome.waitingEchoes == (0..<6).map { Array("waited \($0)".utf8) }, "\(outcome.log)")
        // A warning once a minute; at -d 1 an info line each time it starts failing again.
        let lines = outcome.log.split(separator: "\n").filter { $0.contains("cannot accept connections on 127.0.0.1:") }
        #expect(lines.filter { $0.contains(" warning: ") && $0.contains(": too many open files (at most ") }.count == 1,
                "one warning, not one per attempt:\n\(lines.joined(separator: "\n"))")
        #expect(lines.count <= 2 * outcome.waitingEchoes.count + 1, "\(lines.count) lines")
        #expect(outcome.log.split(separator: "\n").contains { $0.contains("accepting connections on 127.0.0.1:") && $0.hasSuffix(" again") },
                "and one when it can again:\n\(outcome.log)")
        #expect(outcome.cpuShare < 0.5, "C used \(Int(outcome.cpuShare * 100)) % of a core while out of descriptors")
        print("  out of descriptors: \(lines.first ?? "no line"); C used \(Int(outcome.cpuShare * 100)) % of a core meanwhile")
    }

    @Test("S out of descriptors: a stream it cannot connect is refused with a line, the client is reset, the others go on, and it connects again once descriptors are free")
    func serverOutOfDescriptors() async throws {
        let echo = try E2ETarget(.echo)
        defer { echo.stop() }
        struct Outcome: Sendable {
            var held: [[UInt8]]
            var refused: E2EEnd
            var later: [UInt8]
            var log: String
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let rig = try E2ERig.start(targetPort: echo.port, baud: Self.baud)
            defer { rig.forceKill() }
            // The rig's probe of C's port was a stream: S connected it and closed it again.
            try rig.server.waitForError(containing: " closed (")
            let pid = rig.server.pid
            // Room for two connections to the target, no more.
            try e2eSetDescriptorLimit(pid: pid, to: try E2EProcessFigures(pid).limit(leaving: 2))
            var held: [E2EClient] = []
            var refused: E2EEnd?
            for i in 0..<3 {
                let client = try E2EClient.connect(port: rig.port)
                try client.send(Array("held \(i)".utf8))
                let echo = client.readToEnd(timeout: 5, limit: "held \(i)".utf8.count)
                if echo.bytes == Array("held \(i)".utf8) {
                    held.append(client)
                } else {
                    refused = echo.end
                    client.close()
                    break
                }
            }
            guard let refused, held.count == 2 else { throw E2EFailure("S connected \(held.count) streams with room for 2") }
            try rig.server.waitForError(containing: "too many open files")
            // Those it holds go on.
            var heldEchoes: [[UInt8]] = []
            for (i, client) in held.enumerated() {
                try client.send(Array("still \(i)".utf8))
                heldEchoes.append(client.readToEnd(timeout: 5, limit: "still \(i)".utf8.count).bytes)
            }
            for client in held { client.close() }
            // Once S's connections are gone, it connects again.
            var later: [UInt8] = []
            try waitUntil("a new connection to be carried again", timeout: .seconds(10)) {
                later = (try? e2eExchange(port: rig.port, Array("later".utf8), timeout: 5).bytes) ?? []
                return later == Array("later".utf8)
            }
            let reports = rig.shutdown()
            guard reports.allSatisfy(\.isClean) else { throw E2EFailure("\(reports)\n\(rig.logs)") }
            return Outcome(held: heldEchoes, refused: refused, later: later, log: rig.server.errors.text)
        }
        #expect(outcome.held == (0..<outcome.held.count).map { Array("still \($0)".utf8) })
        #expect(outcome.refused == .reset, "the client of a stream S could not connect: \(outcome.refused)")
        #expect(outcome.later == Array("later".utf8))
        let lines = outcome.log.split(separator: "\n").filter { $0.contains("too many open files") }
        #expect(lines.first?.contains("failed: too many open files; the peer's client is reset") == true, "\(outcome.log)")
        print("  S out of descriptors: \(lines.first ?? "no line")")
    }
}

// MARK: - A process's figures from /proc

/// Memory, descriptors and CPU time of a running process, from /proc (Linux).
struct E2EProcessFigures: Sendable {
    /// Private_Clean + Private_Dirty of /proc/PID/smaps_rollup: memory no other process shares.
    var privateKiB: Int
    var rssKiB: Int
    var descriptors: Int
    /// The numbers of the descriptors open.
    var open: Set<Int>
    /// User plus system time.
    var cpuSeconds: Double

    /// The limit on descriptors (one above the highest number a new one may get) that leaves
    /// exactly `free` numbers for new descriptors: the lowest free number is always taken first,
    /// and those open above the limit (one inherited from the test's harness, say) stay open.
    func limit(leaving free: Int) -> Int {
        var limit = 0
        var left = 0
        while left < free {
            if !open.contains(limit) { left += 1 }
            limit += 1
        }
        return limit
    }

    init(_ pid: Int32) throws {
        guard let rollup = try? String(contentsOfFile: "/proc/\(pid)/smaps_rollup", encoding: .utf8) else {
            throw E2EFailure("cannot read /proc/\(pid)/smaps_rollup")
        }
        var fields: [String: Int] = [:]
        for line in rollup.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            if parts.count >= 2, parts[0].hasSuffix(":"), let value = Int(parts[1]) { fields[String(parts[0].dropLast())] = value }
        }
        privateKiB = (fields["Private_Clean"] ?? 0) + (fields["Private_Dirty"] ?? 0)
        rssKiB = fields["Rss"] ?? 0
        let numbers = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").compactMap { Int($0) }
        descriptors = numbers.count
        open = Set(numbers)
        // /proc/PID/stat: fields 14 and 15 (utime, stime) in clock ticks, after the command in parentheses.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { throw E2EFailure("cannot read /proc/\(pid)/stat") }
        let rest = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        cpuSeconds = ((Double(rest[11]) ?? 0) + (Double(rest[12]) ?? 0)) / ticks
    }
}

/// Sets a running process's soft and hard limit on open descriptors.
func e2eSetDescriptorLimit(pid: Int32, to value: Int) throws {
    let run = try e2eRunTool("prlimit", ["--pid", "\(pid)", "--nofile=\(value):\(value)"])
    guard run.status == 0 else { throw E2EFailure("prlimit failed: \(run.errors)") }
}
