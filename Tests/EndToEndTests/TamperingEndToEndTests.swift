#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LinkCore
import TestKit
import Testing

/// Tampering with a keyed line (issue 12), with the real executable at both ends and the test in
/// the middle of the line (`E2ERelay`): frames with bits flipped and the CRC made good, frames
/// recorded earlier and replayed, frames of a third device with another key. None may deliver a
/// byte; each is dropped and counted, the ends say so in their "frames failing the key" line,
/// and what the client sends arrives intact, repaired by retransmission.
@Suite("Tampering end to end", .serialized, .timeLimit(.minutes(3)))
struct TamperingEndToEndTests {
    static let baud = 2_000_000

    static func options(key: String, mode: String) -> [String] {
        ["-d", "1", "--key-file", key, "--protect", mode]
    }

    /// What one echo through the line gave.
    struct Echo: Sendable {
        var sent: [UInt8]
        var result: E2EReadResult
        var intact: Bool { result.end == .endOfFile && result.bytes == sent }
        var problem: String { "\(result.end); \(e2eDifference(result.bytes, sent) ?? "same bytes")" }
    }

    /// One connection to C: sends `data` while reading the echo to its end. Blocking.
    static func echo(port: Int, _ data: [UInt8]) throws -> Echo {
        let client = try E2EClient.connect(port: port)
        defer { client.close() }
        return Echo(sent: data, result: client.sendWhileReadingToEnd(data, timeout: 30))
    }

    /// The sealed frames among `frames` (HELLO is never sealed), at most `limit` of them.
    static func sealed(_ frames: [[UInt8]]?, limit: Int = 150) -> [[UInt8]] {
        Array((frames ?? []).filter { E2ERelay.decode($0).map(E2ERelay.isSealable) ?? false }.prefix(limit))
    }

    /// Each end counts every frame sent to it that fails the key, and only those: exactly, unless
    /// its cable lost bytes to an overrun (the end did not read them in time: a debug build on a
    /// busy machine checks a forged frame against 16 counters), which can take such frames with
    /// them; then it counts no more than were sent.
    static func expectCounted(_ log: String, sent: Int, overrun: Int?, _ what: String,
                              sourceLocation: SourceLocation = #_sourceLocation) {
        let counted = e2eFramesFailingTheKey(log)
        if overrun == 0 {
            #expect(counted == sent, "\(what): counted \(counted) of \(sent)", sourceLocation: sourceLocation)
        } else {
            #expect(counted > 0 && counted <= sent, "\(what): counted \(counted) of \(sent)", sourceLocation: sourceLocation)
            print("  \(what): the cable lost \(overrun ?? -1) B to an overrun; counted \(counted) of the \(sent) frames sent")
        }
    }

    /// Runs `body` with `frames` (by direction) going into the line through `relay`, each right
    /// after a frame it passes on; what is left when `body` returns is sent at once. Blocking.
    static func injecting<T>(_ frames: [[[UInt8]]], into relay: E2ERelay, while body: () throws -> T) throws -> T {
        for (direction, queue) in zip(E2ERelayDirection.allCases, frames) { relay.injectAlongside(queue, toward: direction) }
        let result = try body()
        try relay.flushQueued()
        return result
    }

    /// What the target's connections sent, leaving out those that sent nothing: the rig's probes
    /// of C's port, each a stream that S connected and closed.
    static func uploads(_ target: E2ERecordingEcho) -> [[UInt8]] {
        target.uploads.filter { !$0.isEmpty }
    }

    static func sizes(_ target: E2ERecordingEcho) -> String {
        "\(target.uploads.map(\.count)) B"
    }

    @Test("bits flipped in every 20th sealed frame, the CRC made good: each is dropped and counted, and a 150 KB echo arrives intact",
          arguments: ["encrypt", "authenticate"])
    func flippedBits(mode: String) async throws {
        let key = try ProtectionEndToEndTests.keyFile("tamper.key")
        let target = try E2ERecordingEcho()
        defer { target.stop() }
        let data = Payload.bytes(150_000, seed: 121)
        struct Outcome: Sendable {
            var echo: Echo
            var after: E2EReadResult
            var tampered: [Int]
            var overrun: [Int?]
            var kinds: Set<Int>
            var serverLog: String
            var clientLog: String
            var reports: [ChildProcess.StopReport]
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let options = Self.options(key: key, mode: mode)
            let rig = try E2ERelayRig.start(targetPort: target.port, baud: Self.baud, serverOptions: options, clientOptions: options)
            defer { rig.forceKill() }
            // Sealed frames seen and frames tampered with, by direction, and which parts were hit.
            let counts = Locked((seen: [0, 0], tampered: [0, 0], kinds: Set<Int>()))
            rig.relay.hook = { direction, frame in
                guard let content = E2ERelay.decode(frame), E2ERelay.isSealable(content) else { return [frame] }
                let n = counts.withLock { counts -> Int in
                    counts.seen[direction.rawValue] += 1
                    return counts.seen[direction.rawValue]
                }
                guard n % 20 == 0 else { return [frame] }
                // type · counter · sealed · tag (8) · CRC (4): one part after the other.
                let length = content.count - 4
                let kind = n / 20 % 4
                let (offset, mask): (Int, UInt8) = switch kind {
                case 0: (0, 0x80)                               // the type byte (its compact-trailer bit)
                case 1: (1, UInt8(1) << (n / 80 % 8))           // the counter
                case 2: (2 + max(0, length - 10) / 2, 0x04)     // the sealed body
                default: (length - 1 - n / 80 % 8, 0x40)        // the tag
                }
                counts.withLock {
                    $0.tampered[direction.rawValue] += 1
                    $0.kinds.insert(kind)
                }
                return [E2ERelay.flipping(content, offset: offset, mask: mask)]
            }
            let echo = try Self.echo(port: rig.port, data)
            rig.relay.hook = nil
            // It crosses the line behind every frame tampered with, both ways: by the time it is
            // back, each end has seen them all.
            let after = try e2eExchange(port: rig.port, Array("after".utf8), timeout: 10)
            let seen = counts.current
            let reports = rig.shutdown()
            return Outcome(echo: echo, after: after, tampered: seen.tampered,
                           overrun: E2ERelayDirection.allCases.map { rig.overrun(toward: $0) }, kinds: seen.kinds,
                           serverLog: rig.server.errors.text, clientLog: rig.client.errors.text, reports: reports)
        }
        let logs = "--- S:\n\(outcome.serverLog.suffix(3000))\n--- C:\n\(outcome.clientLog.suffix(3000))"
        #expect(outcome.echo.intact, "\(outcome.echo.problem)\n\(logs)")
        #expect(outcome.after.bytes == Array("after".utf8))
        #expect(Self.uploads(target) == [data, Array("after".utf8)], "the target got exactly what the client sent: \(Self.sizes(target))")
        #expect(outcome.tampered.allSatisfy { $0 >= 4 }, "frames tampered with: \(outcome.tampered)")
        #expect(outcome.kinds == [0, 1, 2, 3], "every part was hit: \(outcome.kinds)")
        // Each end counted exactly the frames altered on their way to it, and said so.
        Self.expectCounted(outcome.serverLog, sent: outcome.tampered[0], overrun: outcome.overrun[0], "S (\(mode))")
        Self.expectCounted(outcome.clientLog, sent: outcome.tampered[1], overrun: outcome.overrun[1], "C (\(mode))")
        for report in outcome.reports { #expect(report.isClean, "\(report)") }
        print("  tampered with \(outcome.tampered[0]) frames C → S and \(outcome.tampered[1]) S → C (\(mode))")
    }

    @Test("frames recorded in a first session and replayed, in the same session and into the next one after S restarts: dropped, counted, nothing extra delivered",
          arguments: ["encrypt", "authenticate"])
    func replayedFrames(mode: String) async throws {
        let key = try ProtectionEndToEndTests.keyFile("replay.key")
        let target = try E2ERecordingEcho()
        defer { target.stop() }
        let first = Payload.bytes(60_000, seed: 131)
        let second = Payload.bytes(60_000, seed: 132)
        let third = Payload.bytes(100_000, seed: 133)
        struct Outcome: Sendable {
            var echoes: [Echo]
            var recorded: [Int]
            var overrun: [Int?]
            var firstServerLog: String
            var serverLog: String
            var clientLog: String
            var reports: [ChildProcess.StopReport]
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let options = Self.options(key: key, mode: mode)
            let rig = try E2ERelayRig.start(targetPort: target.port, baud: Self.baud, serverOptions: options, clientOptions: options)
            defer { rig.forceKill() }
            rig.relay.startRecording()
            var echoes = [try Self.echo(port: rig.port, first)]
            let recording = rig.relay.stopRecording()
            let recorded = E2ERelayDirection.allCases.map { Self.sealed(recording[$0]) }

            // The same session: every recorded frame again, both ways, during a second echo.
            echoes.append(try Self.injecting(recorded, into: rig.relay) { try Self.echo(port: rig.port, second) })
            echoes.append(Echo(sent: Array("after".utf8), result: try e2eExchange(port: rig.port, Array("after".utf8), timeout: 10)))

            // S restarts: a new session with new keys. The first session's frames, replayed
            // into it, open nothing.
            let firstServer = try rig.restartServer()
            try rig.server.waitForError(containing: "link up: peer found")
            try rig.client.waitForError(containing: "restarted")
            echoes.append(try Self.injecting(recorded, into: rig.relay) { try Self.echo(port: rig.port, third) })
            echoes.append(Echo(sent: Array("after".utf8), result: try e2eExchange(port: rig.port, Array("after".utf8), timeout: 10)))
            let reports = rig.shutdown()
            return Outcome(echoes: echoes, recorded: recorded.map(\.count),
                           overrun: E2ERelayDirection.allCases.map { rig.overrun(toward: $0) }, firstServerLog: firstServer.errors.text,
                           serverLog: rig.server.errors.text, clientLog: rig.client.errors.text, reports: reports)
        }
        let logs = "--- first S:\n\(outcome.firstServerLog.suffix(2000))\n--- S:\n\(outcome.serverLog.suffix(2000))\n"
            + "--- C:\n\(outcome.clientLog.suffix(3000))"
        for echo in outcome.echoes { #expect(echo.intact, "\(echo.problem)\n\(logs)") }
        #expect(Self.uploads(target) == outcome.echoes.map(\.sent), "the target got exactly what the clients sent: \(Self.sizes(target))")
        let (towardS, towardC) = (outcome.recorded[0], outcome.recorded[1])
        #expect(towardS >= 20 && towardC >= 20, "recorded \(outcome.recorded)")
        // Each S counted the replayed frames it was sent; C those of both replays.
        Self.expectCounted(outcome.firstServerLog, sent: towardS, overrun: outcome.overrun[0], "the first S (\(mode))")
        Self.expectCounted(outcome.serverLog, sent: towardS, overrun: outcome.overrun[0], "the second S (\(mode))")
        Self.expectCounted(outcome.clientLog, sent: 2 * towardC, overrun: outcome.overrun[1], "C (\(mode))")
        for report in outcome.reports { #expect(report.isClean, "\(report)") }
    }

    @Test("frames of a third device with another key, sent into the line during an echo: dropped, counted, the echo intact",
          arguments: ["encrypt", "authenticate"])
    func thirdDevice(mode: String) async throws {
        let key = try ProtectionEndToEndTests.keyFile("line.key")
        let otherKey = try ProtectionEndToEndTests.keyFile("third.key")
        let target = try E2ERecordingEcho()
        defer { target.stop() }
        let otherTarget = try E2ERecordingEcho()
        defer { otherTarget.stop() }
        let data = Payload.bytes(150_000, seed: 141)
        struct Outcome: Sendable {
            var echo: Echo
            var after: E2EReadResult
            var foreign: [Int]
            var overrun: [Int?]
            var serverLog: String
            var clientLog: String
            var reports: [ChildProcess.StopReport]
        }
        let outcome = try await e2eOffload { () -> Outcome in
            // The third device: a pair of ends of its own with another key, whose frames are
            // recorded off its line.
            let third = try E2ERelayRig.start(targetPort: otherTarget.port, baud: Self.baud,
                                              serverOptions: Self.options(key: otherKey, mode: mode),
                                              clientOptions: Self.options(key: otherKey, mode: mode))
            defer { third.forceKill() }
            third.relay.startRecording()
            let thirdEcho = try Self.echo(port: third.port, Payload.bytes(60_000, seed: 142))
            guard thirdEcho.intact else { throw E2EFailure("the third device's own echo: \(thirdEcho.problem)") }
            let recording = third.relay.stopRecording()
            _ = third.shutdown()
            let foreign = E2ERelayDirection.allCases.map { Self.sealed(recording[$0]) }

            let options = Self.options(key: key, mode: mode)
            let rig = try E2ERelayRig.start(targetPort: target.port, baud: Self.baud, serverOptions: options, clientOptions: options)
            defer { rig.forceKill() }
            // Its frames go into this line as it carries an echo, S's to C and C's to S.
            let echo = try Self.injecting(foreign, into: rig.relay) { try Self.echo(port: rig.port, data) }
            let after = try e2eExchange(port: rig.port, Array("after".utf8), timeout: 10)
            let reports = rig.shutdown()
            return Outcome(echo: echo, after: after, foreign: foreign.map(\.count),
                           overrun: E2ERelayDirection.allCases.map { rig.overrun(toward: $0) }, serverLog: rig.server.errors.text,
                           clientLog: rig.client.errors.text, reports: reports)
        }
        let logs = "--- S:\n\(outcome.serverLog.suffix(3000))\n--- C:\n\(outcome.clientLog.suffix(3000))"
        #expect(outcome.echo.intact, "\(outcome.echo.problem)\n\(logs)")
        #expect(outcome.after.bytes == Array("after".utf8))
        #expect(Self.uploads(target) == [data, Array("after".utf8)], "the target got exactly what the client sent: \(Self.sizes(target))")
        #expect(outcome.foreign.allSatisfy { $0 >= 20 }, "the third device's frames: \(outcome.foreign)")
        Self.expectCounted(outcome.serverLog, sent: outcome.foreign[0], overrun: outcome.overrun[0], "S (\(mode))")
        Self.expectCounted(outcome.clientLog, sent: outcome.foreign[1], overrun: outcome.overrun[1], "C (\(mode))")
        for report in outcome.reports { #expect(report.isClean, "\(report)") }
    }

    /// A man in the middle who removes the PROTECTION extension from every HELLO, both ways,
    /// with the CRC made good (§11.1): each keyed end then sees a peer without a key. Neither may
    /// fall back to a clear line: each says so once, and nothing reaches the target.
    @Test("a downgrade: the protection offer stripped from both HELLOs in transit makes the handshake fail at both ends, and nothing is delivered",
          arguments: ["encrypt", "authenticate"])
    func strippedOffer(mode: String) async throws {
        let key = try ProtectionEndToEndTests.keyFile("downgrade.key")
        let target = try E2ERecordingEcho()
        defer { target.stop() }
        let stripped = Locked(0)
        let hook: E2ERelay.Hook = { _, frame in
            guard let content = E2ERelay.decode(frame), content.first == Wire.FrameType.hello.rawValue,
                  case .success(var hello) = Hello.decode(content[1..<(content.count - 4)]),
                  hello.extensionValue(HelloExtension.Types.protection) != nil else { return [frame] }
            hello.extensions.removeAll { $0.type == HelloExtension.Types.protection }
            var out: [UInt8] = [Wire.FrameType.hello.rawValue]
            hello.encode(into: &out)
            stripped.withLock { $0 += 1 }
            return [E2ERelay.encode(withoutCRC: out)]
        }
        struct Outcome: Sendable {
            var reply: E2EReadResult
            var serverLog: String
            var clientLog: String
        }
        let outcome = try await e2eOffload { () -> Outcome in
            let options = Self.options(key: key, mode: mode)
            let rig = try E2ERelayRig.start(targetPort: target.port, baud: Self.baud, serverOptions: options,
                                            clientOptions: options, hook: hook, linkUp: false)
            defer { rig.forceKill() }
            try rig.server.waitForError(containing: "the peer has no key", timeout: .seconds(10))
            try rig.client.waitForError(containing: "the peer has no key", timeout: .seconds(10))
            let client = try E2EClient.connect(port: rig.port)
            defer { client.close() }
            try client.send(Array("secret request".utf8))
            let reply = client.readToEnd(timeout: 3)
            return Outcome(reply: reply, serverLog: rig.server.errors.text, clientLog: rig.client.errors.text)
        }
        #expect(stripped.current >= 2, "HELLOs stripped: \(stripped.current)")
        #expect(outcome.reply.bytes.isEmpty)
        #expect(target.uploads.isEmpty, "the target saw \(Self.sizes(target))")
        for (name, log) in [("S", outcome.serverLog), ("C", outcome.clientLog)] {
            #expect(log.components(separatedBy: "the peer has no key").count - 1 == 1, "\(name):\n\(log)")
            #expect(!log.contains("link up"), "\(name):\n\(log)")
        }
    }
}
