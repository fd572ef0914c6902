#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

/// Every child of the bench still running, so that an interrupted bench does not leave
/// forwarders behind (`Bench` kills them all on SIGINT and SIGTERM).
let benchChildren = ChildProcessRegistry()

extension ChildProcess {
    /// A child of the bench (`socket2ser cable`, `S`, `C` or `run`), in `benchChildren`, with its
    /// stderr in `logPath` and its stdout discarded unless `captureOutput`.
    static func bench(_ name: String, executable: String, _ arguments: [String], logPath: String,
                      captureOutput: Bool = false) throws -> ChildProcess {
        try ChildProcess(name, arguments, executable: URL(fileURLWithPath: executable),
                         output: .logFile(path: logPath, collectingOutput: captureOutput), registry: benchChildren)
    }

    func sample() -> ProcessSample? { isRunning ? ProcessSample.read(pid: pid) : nil }
}

/// Counters `socket2ser cable` prints on stderr when it stops, parsed back.
struct CableReport: Codable, Sendable {
    var aToB: [String: UInt64] = [:]
    var bToA: [String: UInt64] = [:]

    /// Parses lines like `A->B: accepted 10 sent 10 delivered 10 bits-flipped 0 …`.
    init(log: String) {
        for line in log.split(separator: "\n") {
            let direction: WritableKeyPath<CableReport, [String: UInt64]>
            if line.hasPrefix("A->B:") { direction = \.aToB } else if line.hasPrefix("B->A:") { direction = \.bToA } else { continue }
            let words = line.dropFirst(5).split(separator: " ")
            var values: [String: UInt64] = [:]
            var index = 0
            while index + 1 < words.count {
                if let value = UInt64(words[index + 1]) { values[String(words[index])] = value }
                index += 2
            }
            self[keyPath: direction] = values
        }
    }
}

/// What a rig leaves behind once stopped.
struct RigReport: Codable, Sendable {
    /// Last samples of S and C (peak RSS, CPU) taken just before SIGTERM, and of the cable.
    var server: ProcessSample?
    var client: ProcessSample?
    var cable: ProcessSample?
    var cableCounters: CableReport?
    /// Exit statuses; a forwarder that needed SIGKILL did not shut down cleanly.
    var exits: [String: Int32] = [:]
}

/// One fresh setup for one scenario: the in-process target, `socket2ser cable`, `socket2ser S`
/// on end A (connecting to the target) and `socket2ser C` on end B (listening on `clientPort`).
final class BenchRig: @unchecked Sendable {
    let target: BenchTarget
    let cableProcess: CableProcess
    var cable: ChildProcess { cableProcess.process }
    var pathA: String { cableProcess.pathA }
    var pathB: String { cableProcess.pathB }
    /// When the cable announced its ends: its outage clock starts about then.
    let cableStartedAt: UInt64
    private(set) var server: ChildProcess?
    private(set) var client: ChildProcess?
    private(set) var clientPort = 0
    let logDirectory: String
    let name: String
    let baud: Int
    private var stopped = false

    /// Starts the target and the cable; `startForwarders` then starts S and C.
    init(name: String, settings: BenchSettings, cableArguments: [String]) throws {
        self.name = name
        self.baud = settings.baud
        self.logDirectory = settings.logDirectory
        target = try BenchTarget(seed: settings.seed, ioTimeout: settings.ioTimeout)
        do {
            let started = try CableProcess(["--seed", "\(settings.seed)"] + cableArguments,
                                           executable: URL(fileURLWithPath: settings.executable),
                                           output: .logFile(path: "\(settings.logDirectory)/\(name)-cable.log", collectingOutput: true),
                                           registry: benchChildren)
            cableStartedAt = BenchClock.now()
            cableProcess = started
        } catch {
            target.stop()
            throw error
        }
    }

    /// Starts S and C on an unpaced cable without pacing themselves: with `--unpaced` where the
    /// command line has it, else at the fastest rate it accepts, whose pacing model is then their
    /// ceiling. Returns whether `--unpaced` was given.
    @discardableResult
    func startUnpacedForwarders(settings: BenchSettings) throws -> Bool {
        let unpaced = BenchHost.forwarderAccepts("--unpaced", executable: settings.executable)
        try startForwarders(settings: settings, forwarderBaud: BenchSettings.fastestForwarderBaud,
                            extra: unpaced ? ["--unpaced"] : [])
        return unpaced
    }

    /// Starts S and C with the line rate they should assume, and waits until an echo goes through.
    /// `environment` adds to both ends' environment (the bench's own otherwise).
    func startForwarders(settings: BenchSettings, forwarderBaud: Int, extra: [String] = [],
                         serverExtra: [String] = [], clientExtra: [String] = [],
                         environment: [String: String] = [:]) throws {
        var extra = extra
        if settings.forwarderDebug > 0 { extra += ["-d", "\(settings.forwarderDebug)"] }
        try startEnds(server: { targetPort in
            try self.cableProcess.startServer(targetPort: targetPort, baud: forwarderBaud, extra + serverExtra,
                                              output: .logFile(path: "\(self.logDirectory)/\(self.name)-S.log", collectingOutput: false),
                                              environment: environment)
        }, client: { clientPort in
            try self.cableProcess.startClient(port: clientPort, baud: forwarderBaud, extra + clientExtra,
                                              output: .logFile(path: "\(self.logDirectory)/\(self.name)-C.log", collectingOutput: false),
                                              environment: environment)
        })
    }

    /// Starts the two ends as `server` (given the target's port; on end A) and `client` (given a
    /// free port to listen on; on end B) spawn them, and waits until an echo goes through. Any
    /// pair of forwarders with that shape fits, not only socket2ser's (the `original` scenario
    /// starts the Python tool this way). An end that exits before the echo is named in the error.
    func startEnds(server startServer: (Int) throws -> ChildProcess, client startClient: (Int) throws -> ChildProcess) throws {
        clientPort = try BenchSocket.freePort()
        server = try startServer(target.port)
        client = try startClient(clientPort)
        do {
            try BenchClient.waitUntilReady(port: clientPort, deadline: BenchClock.deadline(after: 30))
        } catch {
            let exited = [server, client].compactMap { $0 }.filter { !$0.isRunning }
            guard !exited.isEmpty else { throw error }
            throw BenchError("\(error); " + exited.map { "\($0.name) exited (\($0.exit.map { "\($0)" } ?? "?"), log \($0.logPath ?? "none"))" }
                .joined(separator: ", "))
        }
    }

    /// Stops S and C (SIGTERM, SIGKILL after 2 s) but keeps the cable, so it can be measured
    /// alone again. Returns their last samples.
    func stopForwarders() -> (server: ProcessSample?, client: ProcessSample?) {
        let last = samples()
        ChildProcess.terminate([server, client].compactMap { $0 })
        server = nil
        client = nil
        return last
    }

    /// Seconds since the cable started (its outage clock, give or take a millisecond).
    var cableSeconds: Double { BenchClock.seconds(BenchClock.now() - cableStartedAt) }

    /// Waits until the line carries less than `bytesPerSecond` (both directions together),
    /// judged over `window` seconds, from the cable's own read counter. Returns how long that
    /// took, or nil if the line was still busy at the deadline.
    func waitForQuietLine(below bytesPerSecond: Double, window: Double, deadline: UInt64) -> Double? {
        let started = BenchClock.now()
        guard var previous = benchProcessIO(pid: cable.pid) else { return nil }
        var previousAt = BenchClock.now()
        while BenchClock.now() < deadline {
            BenchClock.sleep(seconds: window)
            guard let now = benchProcessIO(pid: cable.pid) else { return nil }
            let at = BenchClock.now()
            let rate = Double(now - previous) / BenchClock.seconds(at - previousAt)
            if rate < bytesPerSecond { return BenchClock.seconds(at - started) }
            (previous, previousAt) = (now, at)
        }
        return nil
    }

    /// Bytes the cable has carried so far, both directions together.
    var cableBytesCarried: UInt64 { benchProcessIO(pid: cable.pid) ?? 0 }

    func samples() -> (server: ProcessSample?, client: ProcessSample?) {
        (server?.sample(), client?.sample())
    }

    /// Stops everything: S and C first (SIGTERM, SIGKILL after 2 s), then the cable, whose
    /// counters are read back from its log.
    func stop() -> RigReport {
        var report = RigReport()
        guard !stopped else { return report }
        stopped = true
        report.server = server?.sample()
        report.client = client?.sample()
        report.cable = cable.sample()
        for end in cableProcess.stop(ends: [server, client].compactMap { $0 }) { report.exits[end.name] = end.code }
        let log = cable.logPath.flatMap { try? String(contentsOfFile: $0, encoding: .utf8) } ?? ""
        report.cableCounters = CableReport(log: log)
        target.stop()
        return report
    }

    deinit {
        if !stopped { _ = stop() }
    }
}
