#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import LinkCore
import TestKit
import Testing

/// A hostile but well-formed peer against the real executable (issue 12): the fake peer of
/// `E2EFakePeer`, a real core on one end of a virtual cable, made to flood OPENs, play credit
/// games and never acknowledge, against `socket2ser run --config` on the other end. Each limit
/// holds, the process's memory stays bounded (the figures are printed), and its other line, facing
/// a real peer over a second cable, carries a transfer intact meanwhile.
///
/// Nothing here asserts on wall-clock time; the waits are for conditions, with timeouts.
@Suite("A hostile peer, end to end", .serialized, .timeLimit(.minutes(3)))
struct HostilePeerEndToEndTests {
    static let baud = 2_000_000

    /// `socket2ser run --config` with the line `hostile` (an S, `--max-streams 64`, its default
    /// target an echo service, and a `-L` whose streams go to the fake peer) facing an
    /// `E2EFakePeer`; and, with `calm`, the line `calm` facing a real `socket2ser link` over a
    /// cable of its own, with a `-L` to an echo service beside that peer.
    final class Rig: @unchecked Sendable {
        struct Calm {
            let cable: ChildProcess
            let peer: ChildProcess
            let target: E2ETarget
            /// The calm line's -L.
            let port: Int
        }

        static let maxStreams = 64
        let target: E2ETarget
        let cable: ChildProcess
        let pathA: String
        let peer: E2EFakePeer
        let run: ChildProcess
        /// The hostile line's -L: each connection is a stream S opens to the fake peer.
        let localPort: Int
        let calm: Calm?
        /// The config file, and its text but for the hostile line's extra settings.
        let configPath: String
        private let configText: @Sendable ([String]) -> String
        private var reloads = 0

        private init(target: E2ETarget, cable: ChildProcess, pathA: String, peer: E2EFakePeer, run: ChildProcess,
                     localPort: Int, calm: Calm?, configPath: String, configText: @escaping @Sendable ([String]) -> String) {
            self.target = target
            self.cable = cable
            self.pathA = pathA
            self.peer = peer
            self.run = run
            self.localPort = localPort
            self.calm = calm
            self.configPath = configPath
            self.configText = configText
        }

        /// Rewrites the config file with other settings for the hostile line and reloads it
        /// (SIGHUP); returns once `run` says it has. Blocking.
        func reload(hostileExtra: [String]) throws {
            let temporary = configPath + ".new"
            try configText(hostileExtra).write(toFile: temporary, atomically: false, encoding: .utf8)
            guard rename(temporary, configPath) == 0 else { throw E2EFailure("cannot replace \(configPath)") }
            reloads += 1
            run.signal(SIGHUP)
            try run.waitForError(containing: "reloaded \(configPath): ~hostile (forwards)", count: reloads)
        }

        /// Starts everything and returns once both lines are up. `hostileExtra` adds lines of
        /// YAML to the hostile line's settings. Blocking.
        static func start(calm withCalm: Bool, hostileExtra: [String] = [], echoes: Bool = false,
                          rewriteIncoming: @escaping @Sendable ([UInt8]) -> [UInt8] = { $0 }) throws -> Rig {
            var started: [ChildProcess] = []
            var services: [E2ETarget] = []
            var fakePeer: E2EFakePeer?
            do {
                let target = try E2ETarget(.echo)
                services.append(target)
                let (cable, a, b) = try e2eStartCable(baud: baud)
                started.append(cable)
                let peer = try E2EFakePeer(path: b, usesOddStreamIDs: true, baud: baud, echoes: echoes,
                                           rewriteIncoming: rewriteIncoming)
                fakePeer = peer
                let localPort = try freeLoopbackPort()
                let hostileText = """
                    lines:
                      hostile:
                        device: \(a)
                        baud: \(baud)
                        target: 127.0.0.1:\(target.port)
                        max-streams: \(maxStreams)
                        local: 127.0.0.1:\(localPort):127.0.0.1:9

                    """
                var calmText = ""
                var calm: Calm?
                if withCalm {
                    let calmTarget = try E2ETarget(.echo)
                    services.append(calmTarget)
                    let (calmCable, a2, b2) = try e2eStartCable(baud: baud)
                    started.append(calmCable)
                    let calmPort = try freeLoopbackPort()
                    calmText = """
                          calm:
                            device: \(a2)
                            baud: \(baud)
                            local: 127.0.0.1:\(calmPort):127.0.0.1:\(calmTarget.port)

                        """
                    let calmPeer = try ChildProcess("calm peer", ["link", "-com", b2, "--baudrate", "\(baud)",
                                                                  "--allow", "127.0.0.1:\(calmTarget.port)"])
                    started.append(calmPeer)
                    calm = Calm(cable: calmCable, peer: calmPeer, target: calmTarget, port: calmPort)
                }
                let folder = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString)")
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                let path = folder.appendingPathComponent("socket2ser.yaml").path
                let configText: @Sendable ([String]) -> String = { [calmText] extra in
                    hostileText + extra.map { "    \($0)\n" }.joined() + calmText
                }
                try configText(hostileExtra).write(toFile: path, atomically: true, encoding: .utf8)
                let run = try ChildProcess("run", ["run", "--config", path])
                started.append(run)
                try run.waitForError(containing: "link up: peer found on \(a)")
                try waitUntil("the fake peer's handshake", timeout: .seconds(10)) { peer.isEstablished }
                if let calm {
                    try run.waitForError(containing: "link up: peer found", count: 2)
                    try waitUntil("the calm line's listener", timeout: .seconds(10)) { E2EClient.accepts(port: calm.port) }
                }
                try waitUntil("the hostile line's listener", timeout: .seconds(10)) { E2EClient.accepts(port: localPort) }
                return Rig(target: target, cable: cable, pathA: a, peer: peer, run: run, localPort: localPort, calm: calm,
                           configPath: path, configText: configText)
            } catch {
                fakePeer?.stop()
                for child in started { child.forceKill() }
                for service in services { service.stop() }
                throw error
            }
        }

        /// The `run` process's memory now.
        func memory() throws -> E2EMemory {
            guard let figures = E2EMemory.of(pid: run.pid) else { throw E2EFailure("run is gone: \(run.errors.text.suffix(2000))") }
            return figures
        }

        /// Starts a 400 KB echo over the calm line (2 s each way at 2 Mbaud) and returns once the
        /// calm line's target has the connection.
        func startCalmTransfer() throws -> (data: [UInt8], transfer: E2EBackground<E2EReadResult>) {
            guard let calm else { throw E2EFailure("no calm line") }
            let data = Payload.bytes(400_000, seed: 121)
            let transfer = E2EBackground("calm line transfer") { () -> E2EReadResult in
                let client = try E2EClient.connect(port: calm.port)
                defer { client.close() }
                return client.sendWhileReadingToEnd(data, timeout: 40)
            }
            try waitUntil("the calm line's transfer to be under way", timeout: .seconds(10)) { calm.target.accepted > 0 }
            return (data, transfer)
        }

        /// SIGTERM to `run` and the calm peer, then the cables; the reports of run and the calm peer.
        func stop() -> [ChildProcess.StopReport] {
            let reports = ChildProcess.terminate([run] + (calm.map { [$0.peer] } ?? []))
            peer.stop()
            _ = ChildProcess.terminate([cable] + (calm.map { [$0.cable] } ?? []))
            target.stop()
            calm?.target.stop()
            return reports
        }

        /// SIGKILL to everything still running; for `defer`.
        func forceKill() {
            for child in [run, cable] + (calm.map { [$0.peer, $0.cable] } ?? []) { child.forceKill() }
            peer.stop()
            target.stop()
            calm?.target.stop()
        }

        /// The hostile line's own messages (and the process's).
        var log: String { run.errors.text }
    }

    /// A stream this end opens still works: a connection to the hostile line's -L is echoed by
    /// the fake peer. Blocking.
    static func ownStreamWorks(_ rig: Rig, _ text: String) throws {
        let reply = try e2eExchange(port: rig.localPort, Array(text.utf8), timeout: 10)
        guard reply.bytes == Array(text.utf8), reply.end == .endOfFile else {
            throw E2EFailure("a stream of this end's -L: got \(reply.bytes.count) B, \(reply.end)\n\(rig.log.suffix(2000))")
        }
    }

    /// A stream the fake peer opens to the line's default target still works. Blocking.
    static func peerStreamWorks(_ rig: Rig, _ text: String) throws {
        let bytes = Array(text.utf8)
        let id = try rig.peer.open(sending: bytes, finish: true)
        try waitUntil("the echo of a stream the peer opened", timeout: .seconds(10)) {
            rig.peer.events.contains(.remoteFinished(id)) || rig.peer.events.contains(.streamClosed(id))
        }
        guard rig.peer.received(on: id) == bytes else {
            throw E2EFailure("a stream the peer opened: got \(rig.peer.received(on: id).count) B\n\(rig.log.suffix(2000))")
        }
    }

    /// Lines of the log that are warnings or errors.
    static func warnings(_ log: String) -> [Substring] {
        log.split(separator: "\n").filter { $0.contains(" warning: ") || $0.contains(" error: ") }
    }

    // MARK: - A flood of OPENs

    @Test("A flood of 6,000 OPENs: at most --max-streams are connected, the rest refused as too many; memory stays flat, and both lines keep working")
    func openFlood() async throws {
        struct Outcome: Sendable {
            var before: E2EMemory, afterFirst: E2EMemory, afterSecond: E2EMemory, afterAll: E2EMemory
            var observed: E2EFakePeer.Observed
            var targetConnections: Int
            var transfer: E2EReadResult
            var data: [UInt8]
            var log: String
            var reports: [ChildProcess.StopReport]
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let rig = try Rig.start(calm: true, echoes: true)
            defer { rig.forceKill() }
            let before = try rig.memory()
            let (data, transfer) = try rig.startCalmTransfer()

            // Two rounds of 3,000 OPENs to the default target, 100 to a frame, each with an ID of
            // the peer's half that its own core will not use soon.
            func flood(from first: UInt16) throws -> [StreamID] {
                let ids = (0..<3000).map { StreamID(first + UInt16($0) * 2) }
                try rig.peer.inject(ids.map { .open($0, target: "") }, perFrame: 100)
                return ids
            }
            let firstRound = try flood(from: 1001)
            try waitUntil("S to answer every OPEN of the first round", timeout: .seconds(20)) {
                let seen = rig.peer.observed
                return firstRound.allSatisfy { seen.accepted.contains($0) || seen.refused[$0] != nil }
            }
            let afterFirst = try rig.memory()
            let secondRound = try flood(from: 7001)
            try waitUntil("S to answer every OPEN of the second round", timeout: .seconds(20)) {
                let seen = rig.peer.observed
                return secondRound.allSatisfy { seen.accepted.contains($0) || seen.refused[$0] != nil }
            }
            let afterSecond = try rig.memory()

            // This end's own streams are counted apart: one of its -L still works beside the 64.
            try Self.ownStreamWorks(rig, "still mine")
            // Once the peer resets what it holds, a stream it opens is accepted and works.
            let held = Array(rig.peer.observed.accepted)
            try rig.peer.inject(held.map { .reset($0, .aborted) }, perFrame: 100)
            try Self.peerStreamWorks(rig, "after the flood")
            let targetConnections = rig.target.accepted
            let afterAll = try rig.memory()

            let result = try transfer.value(timeout: .seconds(45))
            let observed = rig.peer.observed
            let reports = rig.stop()
            return Outcome(before: before, afterFirst: afterFirst, afterSecond: afterSecond, afterAll: afterAll,
                           observed: observed, targetConnections: targetConnections, transfer: result, data: data,
                           log: rig.log, reports: reports)
        }
        let limit = Rig.maxStreams
        #expect(outcome.observed.accepted.count == limit + 1, "accepted \(outcome.observed.accepted.count)")
        #expect(outcome.observed.refusals(.tooManyStreams) == 6000 - limit, "\(outcome.observed.refused.count) refused")
        #expect(outcome.observed.refused.count == 6000 - limit)
        // The 64 flood streams and the one opened after them; never more.
        #expect(outcome.targetConnections == limit + 1, "S connected \(outcome.targetConnections) times to its target")
        // A second flood as large as the first costs nothing more: what is refused is not kept.
        let secondGrowth = outcome.afterSecond.peak - outcome.afterFirst.peak
        #expect(secondGrowth < 2048, "the second round of 3,000 OPENs grew the peak by \(E2EMemory.text(secondGrowth))")
        let growth = outcome.afterAll.peak - outcome.before.peak
        #expect(growth < 16 * 1024, "peak grew by \(E2EMemory.text(growth))")
        #expect(outcome.transfer.end == .endOfFile, "\(outcome.transfer.end)")
        #expect(e2eDifference(outcome.transfer.bytes, outcome.data) == nil, "\(e2eDifference(outcome.transfer.bytes, outcome.data) ?? "")")
        for report in outcome.reports { #expect(report.isClean, "\(report)") }
        // One line says why, however many were refused; the rest go to -d 1 (info).
        let refusedLines = Self.warnings(outcome.log).filter { $0.contains("more streams than --max-streams \(limit) allows") }
        #expect(refusedLines.count == 1, "\(Self.warnings(outcome.log))")
        #expect(refusedLines.first?.contains("line=hostile") == true)
        print("""
            hostile OPEN flood: 6000 OPENs against --max-streams \(limit): \(outcome.observed.accepted.count - 1) accepted, \
            \(outcome.observed.refusals(.tooManyStreams)) refused as too many, \(outcome.targetConnections) connections to the target; \
            memory before \(outcome.before), after 3000 \(outcome.afterFirst), after 6000 \(outcome.afterSecond), \
            at the end \(outcome.afterAll); the calm line's 400 KB echo arrived intact; \
            warnings: \(Self.warnings(outcome.log).count) \(Self.warnings(outcome.log).prefix(3))
            """)
    }

    // MARK: - Listen requests

    @Test("Listen requests: refused unless --allow-listen allows them, at most 64 held, 1,000 asked and cancelled in a burst leave nothing open, and a reload that withdraws the permission closes what was granted")
    func listenRequests() async throws {
        let limit = 64  // LinkConfiguration.maxPeerListens
        struct Outcome: Sendable {
            var unallowed: [ListenRefusal]
            var unallowedListening: Bool
            var granted: [UInt16]
            var grantedListening: Int
            var refusedTooMany: Int
            var echo: [UInt8]
            var churnDescriptorsPeak: Int
            var before: E2EMemory, granting: E2EMemory, afterChurn: E2EMemory
            var lastGranted: UInt16?
            var lastListeningAfterWithdrawal: Bool
            var lastRefusal: ListenRefusal?
            var log: String
            var reports: [ChildProcess.StopReport]
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let rig = try Rig.start(calm: false, echoes: true)
            defer { rig.forceKill() }
            let before = try rig.memory()

            // Without --allow-listen the peer cannot make this end listen anywhere, loopback
            // included: 200 requests for free ports and for any port, all refused.
            let ports = try (0..<4).map { _ in try freeLoopbackPort() }
            let asked = (0..<200).map { i -> Message in
                .listen(ListenID(UInt16(1000 + i)), bind: "127.0.0.1", port: i < 4 ? UInt16(ports[i]) : 0, target: "127.0.0.1:9")
            }
            try rig.peer.inject(asked, perFrame: 50)
            try waitUntil("S to refuse all 200", timeout: .seconds(10)) { rig.peer.observed.listensRefused.count == 200 }
            let unallowed = Array(rig.peer.observed.listensRefused.values)
            let unallowedListening = ports.contains { E2EClient.accepts(port: $0) }

            // Allowed on any loopback port now: 100 requests for any port, 64 granted.
            try rig.reload(hostileExtra: ["allow-listen: 127.0.0.1:*"])
            let requests = try rig.peer.perform("100 listen requests") { _, link in
                try (0..<100).map { _ in try link.requestListen(bind: "127.0.0.1", port: 0, target: "127.0.0.1:9") }
            }
            try waitUntil("S to answer all 100", timeout: .seconds(10)) {
                let seen = rig.peer.observed
                return requests.allSatisfy { seen.listensGranted[$0] != nil || seen.listensRefused[$0] != nil }
            }
            let seen = rig.peer.observed
            let granted = requests.compactMap { seen.listensGranted[$0] }
            let refusedTooMany = requests.filter { seen.listensRefused[$0] == .tooMany }.count
            // A connection to one of them is a stream to the peer (which echoes it).
            let echo = try e2eExchange(port: Int(granted.first ?? 1), Array("via -R".utf8), timeout: 10).bytes
            let granting = try rig.memory()
            let grantedListening = granted.filter { E2EClient.accepts(port: Int($0)) }.count

            // The peer withdraws them all, then asks and cancels 1,000 more in one burst.
            try rig.peer.perform("cancelling") { _, link in
                for id in requests where seen.listensGranted[id] != nil { try link.cancelListen(id) }
            }
            try waitUntil("S to close the 64", timeout: .seconds(10)) {
                !granted.contains { E2EClient.accepts(port: Int($0)) }
            }
            // The probes' streams are gone too before the burst (each held a socket).
            let quiet = before.descriptors + 2
            try waitUntil("S's descriptors to settle", timeout: .seconds(10)) { E2EMemory.descriptors(pid: rig.run.pid) <= quiet }
            let sampling = E2EBox<Bool>()
            let peak = E2EBackground("descriptor sampling") { () -> Int in
                var most = 0
                while sampling.value != true {
                    most = max(most, E2EMemory.descriptors(pid: rig.run.pid))
                }
                return most
            }
            let churn = (0..<1000).flatMap { i -> [Message] in
                let id = ListenID(UInt16(5000 + i))
                return [.listen(id, bind: "127.0.0.1", port: 0, target: "127.0.0.1:9"), .unlisten(id)]
            }
            // Behind them, a request S refuses at once (127.0.0.2 is not 127.0.0.1): its answer
            // says S has taken the burst.
            let marker = ListenID(9999)
            try rig.peer.inject(churn + [.listen(marker, bind: "127.0.0.2", port: 1, target: "127.0.0.1:9")], perFrame: 200)
            try waitUntil("S to take the burst", timeout: .seconds(10)) { rig.peer.observed.listensRefused[marker] != nil }
            // Every bind the burst started has ended (S closes each, as its request was cancelled).
            try waitUntil("S's descriptors to settle after the burst", timeout: .seconds(10)) {
                E2EMemory.descriptors(pid: rig.run.pid) <= quiet
            }
            sampling.value = true
            let churnDescriptorsPeak = try peak.value(timeout: .seconds(5))
            let afterChurn = try rig.memory()
            // And a request after them is granted.
            let last = try rig.peer.perform("a last request") { _, link in
                try link.requestListen(bind: "127.0.0.1", port: 0, target: "127.0.0.1:9")
            }
            do {
                try waitUntil("S to answer the last request", timeout: .seconds(10)) {
                    let seen = rig.peer.observed
                    return seen.listensGranted[last] != nil || seen.listensRefused[last] != nil
                }
            } catch {
                throw E2EFailure("\(error): \(last); peer events \(rig.peer.events.suffix(8)); \(rig.peer.observed.listensRefused.count) refused, "
                                 + "\(rig.peer.observed.listensGranted.count) granted\n\(rig.log.suffix(3000))")
            }
            let lastGranted = rig.peer.observed.listensGranted[last]

            // The permission withdrawn: what was granted is closed, and the peer is told.
            try rig.reload(hostileExtra: [])
            try waitUntil("S to refuse the last listener", timeout: .seconds(10)) { rig.peer.observed.listensRefused[last] != nil }
            let lastListening = lastGranted.map { E2EClient.accepts(port: Int($0)) } ?? false
            let lastRefusal = rig.peer.observed.listensRefused[last]
            try Self.ownStreamWorks(rig, "after the listens")
            try Self.peerStreamWorks(rig, "theirs after the listens")
            let reports = rig.stop()
            return Outcome(unallowed: unallowed, unallowedListening: unallowedListening, granted: granted,
                           grantedListening: grantedListening, refusedTooMany: refusedTooMany, echo: echo,
                           churnDescriptorsPeak: churnDescriptorsPeak, before: before, granting: granting,
                           afterChurn: afterChurn, lastGranted: lastGranted, lastListeningAfterWithdrawal: lastListening,
                           lastRefusal: lastRefusal, log: rig.log, reports: reports)
        }
        // Not allowed; or too many, for those that arrived while 64 still waited for this end's
        // answer (the core counts a request from its arrival).
        #expect(outcome.unallowed.count == 200 && outcome.unallowed.allSatisfy { $0 == .notAllowed || $0 == .tooMany },
                "\(Set(outcome.unallowed))")
        #expect(outcome.unallowed.filter { $0 == .notAllowed }.count >= limit)
        #expect(!outcome.unallowedListening)
        #expect(outcome.granted.count == limit && Set(outcome.granted).count == limit, "\(outcome.granted.count) granted")
        #expect(outcome.grantedListening == limit)
        #expect(outcome.refusedTooMany == 100 - limit)
        #expect(outcome.echo == Array("via -R".utf8))
        // A socket for each of 1,000 requests at once would show here.
        #expect(outcome.churnDescriptorsPeak < outcome.before.descriptors + limit + 16,
                "\(outcome.churnDescriptorsPeak) descriptors during the burst, \(outcome.before.descriptors) before")
        #expect(outcome.lastGranted != nil)
        #expect(!outcome.lastListeningAfterWithdrawal)
        #expect(outcome.lastRefusal == .notAllowed)
        let warnings = Self.warnings(outcome.log)
        let notAllowedLines = warnings.filter { $0.contains("which this end does not allow; refused (allow it with --allow-listen 127.0.0.1:") }
        #expect(notAllowedLines.count == 1, "\(warnings)")
        #expect(warnings.filter { $0.contains("as too many") && $0.contains("(-R)") }.count == 1, "\(warnings)")
        #expect(outcome.log.contains("--allow-listen no longer allows it"), "\(outcome.log)")
        // Each address the peer asks for is announced once a minute at most.
        let announced = outcome.log.split(separator: "\n").filter { $0.contains(" notice: listening on ") && $0.contains("for the peer (-R)") }
        #expect(announced.count == 1, "\(announced.count) lines announce a listener for the peer")
        let growth = outcome.afterChurn.peak - outcome.before.peak
        #expect(growth < 16 * 1024, "peak grew by \(E2EMemory.text(growth))")
        for report in outcome.reports { #expect(report.isClean, "\(report)") }
        print("""
            hostile listen requests: 200 refused without --allow-listen \
            (\(outcome.unallowed.filter { $0 == .notAllowed }.count) not allowed, \
            \(outcome.unallowed.filter { $0 == .tooMany }.count) too many at once); with it \(outcome.granted.count) of 100 granted, \
            \(outcome.refusedTooMany) refused as too many; 1,000 asked and cancelled in a burst: at most \
            \(outcome.churnDescriptorsPeak) descriptors (\(outcome.before.descriptors) before); memory before \(outcome.before), \
            with 64 listeners \(outcome.granting), after the burst \(outcome.afterChurn); warnings: \(warnings.count) \(warnings.prefix(4))
            """)
    }

    // MARK: - Credit games

    @Test("Credit games: CREDIT for unknown and closed streams, thousands of small ones, one past 2^31 − 1, data beyond the credit given; each is ignored or resets its own stream, and memory stays flat")
    func creditGames() async throws {
        let stalled = try StalledTarget()
        defer { stalled.close() }
        let stalledPort = stalled.port
        struct Outcome: Sendable {
            var before: E2EMemory, after: E2EMemory
            var afterSmallCredits: [UInt8]
            var overflowEnd: E2EEnd
            var events: [LinkEvent]
            var mine: StreamID, greedy: StreamID
            var log: String
            var reports: [ChildProcess.StopReport]
        }
        let outcome = try await e2eOffload { () -> Outcome in
            // The peer believes S gave every stream 1 MiB of credit.
            let rig = try Rig.start(calm: false, hostileExtra: ["allow: 127.0.0.1:\(stalledPort)"], echoes: true,
                                    rewriteIncoming: E2EFakePeer.inflatingInitialWindow(to: 1 << 20))
            defer { rig.forceKill() }
            let before = try rig.memory()
            // A stream of this end's -L, held open, echoed by the peer.
            let client = try E2EClient.connect(port: rig.localPort)
            defer { client.close() }
            try client.send(Array("one".utf8))
            guard client.readToEnd(timeout: 10, limit: 3).bytes == Array("one".utf8) else {
                throw E2EFailure("no echo on the -L stream\n\(rig.log)")
            }
            // (The rig's probe of the listener was a stream too: this one is the stream that carried "one".)
            guard let mine = rig.peer.events.lazy.compactMap({ event -> StreamID? in
                if case .received(let id, Array("one".utf8)) = event { return id } else { return nil }
            }).first else { throw E2EFailure("the peer saw no stream carry \"one\"") }
            // A stream the peer opened, used and closed.
            let closed = try rig.peer.open(sending: Array("closed".utf8), finish: true)
            try waitUntil("the closed stream's end", timeout: .seconds(10)) { rig.peer.events.contains(.streamClosed(closed)) }

            // CREDIT of 2^32 − 1 for 3,000 streams that were never opened (both halves) and
            // 1,000 times for the closed one: ignored, as CREDITs crossing a RESET are (§5.5).
            let unknown = (0..<3000).map { Message.credit(StreamID(20_000 + UInt16($0)), UInt32.max) }
            let stale = Array(repeating: Message.credit(closed, UInt32.max), count: 1000)
            try rig.peer.inject(unknown + stale, perFrame: 500)
            // 5,000 CREDITs of one byte on the open stream: within the window's limit.
            try rig.peer.inject(Array(repeating: Message.credit(mine, 1), count: 5000), perFrame: 1000)
            // A stream opened after them is served after them: S has taken them all.
            try Self.peerStreamWorks(rig, "after the credits")
            try client.send(Array("two".utf8))
            let afterSmallCredits = client.readToEnd(timeout: 10, limit: 3).bytes

            // One CREDIT that takes the window past 2^31 − 1: a violation, the stream is reset.
            try rig.peer.inject([.credit(mine, UInt32.max)])
            let overflow = client.readToEnd(timeout: 10)

            // The same 150 times over, on streams the peer opens for it in the same frames (S is
            // still connecting them to its target): each is reset, and the log does not fill up.
            var violators: [StreamID] = []
            for round in 0..<3 {
                let ids = (0..<50).map { StreamID(9001 + UInt16(round * 100 + $0) * 2) }
                violators += ids
                try rig.peer.inject(ids.flatMap { [Message.open($0, target: ""), .credit($0, UInt32.max)] }, perFrame: 20)
                try waitUntil("S to reset the streams of round \(round + 1)", timeout: .seconds(10)) {
                    let resets = rig.peer.observed.resets
                    return ids.allSatisfy { resets[$0] == .protocolViolation }
                }
            }

            // Data beyond the credit given, to a target that does not read: reset for credit.
            let greedy = try rig.peer.open(target: "127.0.0.1:\(stalledPort)", sending: Payload.bytes(1_000_000, seed: 122))
            do {
                try waitUntil("S to reset the stream that exceeded its credit", timeout: .seconds(20)) {
                    rig.peer.events.contains { if case .streamReset(greedy, _) = $0 { return true } else { return false } }
                }
            } catch {
                let inspection = try? rig.peer.perform("an inspection") { _, link in
                    "\(link.inspection.stream(greedy).map { "\($0)" } ?? "gone"), \(link.inspection.outstandingFrames.count) frames outstanding"
                }
                throw E2EFailure("\(error): \(greedy): \(inspection ?? "?"); \(rig.peer.events.suffix(10))\n\(rig.log)")
            }
            // And the line still works both ways.
            try Self.ownStreamWorks(rig, "mine again")
            try Self.peerStreamWorks(rig, "theirs again")
            let after = try rig.memory()
            let events = rig.peer.events
            let reports = rig.stop()
            return Outcome(before: before, after: after, afterSmallCredits: afterSmallCredits, overflowEnd: overflow.end,
                           events: events, mine: mine, greedy: greedy, log: rig.log, reports: reports)
        }
        #expect(outcome.afterSmallCredits == Array("two".utf8), "the stream stopped working after 5,000 small CREDITs")
        #expect(outcome.overflowEnd == .reset, "\(outcome.overflowEnd)")
        #expect(outcome.events.contains(.streamReset(outcome.mine, .protocolViolation)), "\(outcome.events.suffix(20))")
        #expect(outcome.events.contains(.streamReset(outcome.greedy, .creditExceeded)), "\(outcome.events.suffix(20))")
        #expect(outcome.log.contains("protocol violation by the peer: CREDIT for \(outcome.mine) overflows the window"), "\(outcome.log)")
        #expect(outcome.log.contains("the peer broke the protocol (credit exceeded)"), "\(outcome.log)")
        // 151 violations, one line each kind at the default level: the rest go to -d 1 (info).
        let violationLines = Self.warnings(outcome.log).filter { $0.contains("protocol violation by the peer") }
        #expect(violationLines.count == 1, "\(violationLines)")
        let resetLines = Self.warnings(outcome.log).filter { $0.contains("the peer broke the protocol (protocol violation)") }
        #expect(resetLines.count == 1, "\(resetLines)")
        let growth = outcome.after.peak - outcome.before.peak
        #expect(growth < 16 * 1024, "peak grew by \(E2EMemory.text(growth))")
        for report in outcome.reports { #expect(report.isClean, "\(report)") }
        print("""
            hostile credit games: memory before \(outcome.before), after \(outcome.after); \
            warnings: \(Self.warnings(outcome.log).count) \(Self.warnings(outcome.log).prefix(4))
            """)
    }

    /// A target that stalls: connections to it complete in the kernel and are never accepted
    /// or read, and each holds at most a few KiB (a small receive buffer, inherited from the
    /// listening socket), so the end that connects soon has to stop consuming.
    final class StalledTarget: @unchecked Sendable {
        // @unchecked: `fd` is closed once, by `close()`, which the test calls from one thread.
        private var fd: Int32
        let port: Int

        init() throws {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var size: Int32 = 4096
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, length) == 0 && listen(fd, 4) == 0 && getsockname(fd, $0, &length) == 0
                }
            }
            guard fd >= 0, bound else {
                if fd >= 0 { Glibc.close(fd) }
                throw E2EFailure("cannot listen for a stalled target: errno \(errno)")
            }
            self.fd = fd
            port = Int(UInt16(bigEndian: address.sin_port))
        }

        func close() {
            guard fd >= 0 else { return }
            Glibc.close(fd)
            fd = -1
        }

        deinit { close() }
    }

    // MARK: - A peer that never acknowledges

    /// Sends up to `total` bytes without blocking; returns how many the kernel took before it
    /// stopped taking any for `patience` (the connection is held back), or the deadline passed.
    static func push(_ client: E2EClient, total: Int, patience: Duration, deadline: Duration) -> (sent: Int, heldBack: Bool) {
        _ = fcntl(client.fd, F_SETFL, fcntl(client.fd, F_GETFL) | O_NONBLOCK)
        let chunk = Payload.bytes(65_536, seed: 123)
        let end = ContinuousClock.now + deadline
        var sent = 0
        while sent < total, ContinuousClock.now < end {
            let n = chunk.withUnsafeBytes { send(client.fd, $0.baseAddress, min($0.count, total - sent), Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                sent += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            guard n < 0, errno == EAGAIN || errno == EWOULDBLOCK else { return (sent, false) }
            var descriptor = pollfd(fd: client.fd, events: Int16(POLLOUT), revents: 0)
            if poll(&descriptor, 1, Int32(patience.inSeconds * 1000)) == 0 { return (sent, true) }
        }
        return (sent, false)
    }

    @Test("A peer that never acknowledges: a 20 MB upload is held back at the client, S's memory stays flat, and the other line's transfer completes intact")
    func neverAcknowledges() async throws {
        let total = 20_000_000
        struct Outcome: Sendable {
            var before: E2EMemory, held: E2EMemory
            var sent: Int, heldBack: Bool
            var peerReceived: Int
            var transfer: E2EReadResult
            var data: [UInt8]
            var log: String
            var reports: [ChildProcess.StopReport]
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let rig = try Rig.start(calm: true)
            defer { rig.forceKill() }
            let before = try rig.memory()
            let (data, transfer) = try rig.startCalmTransfer()
            rig.peer.freezeAcknowledgements()
            let client = try E2EClient.connect(port: rig.localPort)
            defer { client.close() }
            let (sent, heldBack) = Self.push(client, total: total, patience: .milliseconds(1500), deadline: .seconds(30))
            let held = try rig.memory()
            let peerReceived = rig.peer.receivedTotal
            let result = try transfer.value(timeout: .seconds(45))
            client.close()
            let reports = rig.stop()
            return Outcome(before: before, held: held, sent: sent, heldBack: heldBack, peerReceived: peerReceived,
                           transfer: result, data: data, log: rig.log, reports: reports)
        }
        #expect(outcome.heldBack, "the client's upload was never held back: \(outcome.sent) B sent")
        #expect(outcome.sent < total / 2, "S let \(outcome.sent) B in")
        // At most 32 frames wait for an acknowledgement (§4.4), so little reaches the peer.
        #expect(outcome.peerReceived < 1 << 20, "\(outcome.peerReceived) B reached the peer")
        let growth = outcome.held.peak - outcome.before.peak
        #expect(growth < 16 * 1024, "peak grew by \(E2EMemory.text(growth))")
        #expect(outcome.transfer.end == .endOfFile, "\(outcome.transfer.end)")
        #expect(e2eDifference(outcome.transfer.bytes, outcome.data) == nil, "\(e2eDifference(outcome.transfer.bytes, outcome.data) ?? "")")
        for report in outcome.reports { #expect(report.isClean, "\(report)") }
        print("""
            hostile never-ack: the client's kernel took \(outcome.sent) of \(total) B before it was held back, \
            \(outcome.peerReceived) B reached the peer; memory before \(outcome.before), held \(outcome.held); \
            the calm line's 400 KB echo arrived intact; warnings: \(Self.warnings(outcome.log).count) \(Self.warnings(outcome.log).prefix(3))
            """)
    }
}
