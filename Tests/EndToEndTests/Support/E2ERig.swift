#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit
import Testing

/// Three real processes: `socket2ser cable`, `socket2ser S` on end A (connecting to a target on
/// 127.0.0.1) and `socket2ser C` on end B (listening on a free port of 127.0.0.1).
final class E2ERig: @unchecked Sendable {
    // @unchecked: `server` is replaced only by `restartServer()`, which the test calls from one task.
    let baud: Int
    let targetPort: Int
    let cableProcess: CableProcess
    var cable: ChildProcess { cableProcess.process }
    var pathA: String { cableProcess.pathA }
    var pathB: String { cableProcess.pathB }
    /// When the cable printed its paths; it starts carrying bytes (and counting outage time)
    /// just before.
    let cableStartedAt: ContinuousClock.Instant
    private(set) var server: ChildProcess
    let client: ChildProcess
    /// The port C listens on.
    let port: Int
    private var retired: [ChildProcess] = []

    let serverOptions: [String]

    private init(baud: Int, targetPort: Int, cable: CableProcess,
                 cableStartedAt: ContinuousClock.Instant, server: ChildProcess, client: ChildProcess, port: Int,
                 serverOptions: [String]) {
        self.serverOptions = serverOptions
        self.baud = baud
        self.targetPort = targetPort
        self.cableProcess = cable
        self.cableStartedAt = cableStartedAt
        self.server = server
        self.client = client
        self.port = port
    }

    /// Starts the cable, then S and C (with `-d 1` unless told otherwise), and returns once C
    /// accepts connections and both ends report "link up" (logged at every level). Blocking.
    static func start(targetPort: Int, baud: Int, cableOptions: [String] = [], seed: UInt64 = 1,
                      serverOptions: [String] = ["-d", "1"], clientOptions: [String] = ["-d", "1"]) throws -> E2ERig {
        var started: [ChildProcess] = []
        do {
            let cable = try CableProcess(["--baud", "\(baud)"] + cableOptions + ["--seed", "\(seed)"])
            started.append(cable.process)
            let cableStartedAt = ContinuousClock.now

            let server = try cable.startServer(targetPort: targetPort, baud: baud, serverOptions)
            started.append(server)
            let port = try freeLoopbackPort()
            let client = try cable.startClient(port: port, baud: baud, clientOptions)
            started.append(client)

            try waitUntil("C to accept connections on \(port)", timeout: .seconds(10)) {
                if let exit = client.exit {
                    throw E2EFailure("C ended (\(exit)): \(client.errors.text.suffix(1000))")
                }
                return E2EClient.accepts(port: port)
            }
            try client.waitForError(containing: "link up: peer found")
            try server.waitForError(containing: "link up: peer found")
            return E2ERig(baud: baud, targetPort: targetPort, cable: cable,
                          cableStartedAt: cableStartedAt, server: server, client: client, port: port,
                          serverOptions: serverOptions)
        } catch {
            for child in started { child.forceKill() }
            throw error
        }
    }

    /// SIGKILLs S (no clean shutdown: the peer is not told) and waits for it to be gone. Blocking.
    func killServer() throws -> ChildProcess.Exit {
        server.signal(SIGKILL)
        guard let exit = server.waitForExit(timeout: .seconds(5)) else {
            throw E2EFailure("S did not die from SIGKILL")
        }
        return exit
    }

    /// Starts a new S on the same device and target.
    func restartServer() throws {
        retired.append(server)
        server = try cableProcess.startServer(targetPort: targetPort, baud: baud, serverOptions)
    }

    /// SIGTERM to C and S at once, then to the cable; each must exit 0 within 2 s. Blocking.
    func shutdown() -> [ChildProcess.StopReport] {
        cableProcess.stop(ends: [client, server])
    }

    /// SIGKILL to every process still running; for `defer` after a failure.
    func forceKill() {
        for child in [client, server, cable] + retired { child.forceKill() }
    }

    /// The tail of every process's stderr, to make a failure explainable.
    var logs: String {
        [cable, server, client].map { "--- \($0.name) stderr:\n\($0.errors.text.suffix(3000))" }
            .joined(separator: "\n")
    }
}

/// Runs `body` with a rig; afterwards stops every process with SIGTERM and checks each exits
/// with status 0 within 2 s. On failure the processes are killed (also by `defer`, whatever
/// happens) and their logs are printed. Returns the stopped rig, whose output can be inspected.
///
/// `onReady` runs on the starting thread as soon as the rig is up, for work that must begin
/// without delay (the cable's clock is already running).
@discardableResult
func withE2ERig(targetPort: Int, baud: Int, cableOptions: [String] = [], seed: UInt64 = 1,
                serverOptions: [String] = ["-d", "1"], clientOptions: [String] = ["-d", "1"],
                onReady: (@Sendable (E2ERig) -> Void)? = nil,
                sourceLocation: SourceLocation = #_sourceLocation,
                _ body: (E2ERig) async throws -> Void) async throws -> E2ERig {
    let rig = try await e2eOffload("e2e rig start") {
        let rig = try E2ERig.start(targetPort: targetPort, baud: baud, cableOptions: cableOptions, seed: seed,
                                   serverOptions: serverOptions, clientOptions: clientOptions)
        onReady?(rig)
        return rig
    }
    defer { rig.forceKill() }
    do {
        try await body(rig)
    } catch {
        print("ProcessEndToEndTests failure: \(error)\n\(rig.logs)")
        throw error
    }
    let reports = try await e2eOffload("e2e rig shutdown") { rig.shutdown() }
    for report in reports {
        #expect(report.isClean, "\(report)", sourceLocation: sourceLocation)
        #expect(report.elapsed < .seconds(2), "\(report)", sourceLocation: sourceLocation)
    }
    print("  shutdown after SIGTERM: " + reports.map { "\($0.name) \($0.elapsed.millisecondsText)" }.joined(separator: ", "))
    return rig
}

/// Starts `socket2ser cable` and returns it with the paths of its two ends, once it printed them.
/// Blocking.
func e2eStartCable(baud: Int, options: [String] = []) throws -> (cable: ChildProcess, pathA: String, pathB: String) {
    let cable = try CableProcess(["--baud", "\(baud)"] + options)
    return (cable.process, cable.pathA, cable.pathB)
}
