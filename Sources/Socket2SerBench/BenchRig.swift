#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A child process of the bench (`socket2ser cable`, `S` or `C`), with its stderr in a log file.
final class BenchChild: @unchecked Sendable {
    let name: String
    let process = Process()
    let logPath: String
    /// The read end of stdout, when it is captured.
    private let output: Pipe?

    init(name: String, executable: String, arguments: [String], logPath: String, captureOutput: Bool) throws {
        self.name = name
        self.logPath = logPath
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        guard FileManager.default.createFile(atPath: logPath, contents: Data()),
              let log = FileHandle(forWritingAtPath: logPath)
        else { throw BenchError("cannot create \(logPath)") }
        process.standardError = log
        output = captureOutput ? Pipe() : nil
        process.standardOutput = output ?? FileHandle.nullDevice
        try process.run()
        try? log.close()
        BenchChildren.shared.add(self)
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// Reads stdout until `predicate` holds for the text so far, or the deadline passes.
    func readOutput(until predicate: (String) -> Bool, deadline: UInt64) throws -> String {
        guard let output else { throw BenchError("\(name): stdout is not captured") }
        let fd = output.fileHandleForReading.fileDescriptor
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let text = String(decoding: data, as: UTF8.self)
            if predicate(text) { return text }
            let now = BenchClock.now()
            guard now < deadline else { throw BenchError("\(name) printed nothing usable in time (got '\(text)')") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&pfd, 1, Int32(min(1000, (deadline - now) / 1_000_000 + 1)))
            if ready <= 0 { continue }
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { throw BenchError("\(name) exited or closed stdout (got '\(text)'); see \(logPath)") }
            data += chunk[0..<n]
        }
    }

    func sample() -> ProcessSample? { isRunning ? ProcessSample.read(pid: pid) : nil }

    /// SIGTERM, then SIGKILL if it has not exited within `grace` seconds. Returns the exit status
    /// (or the signal, negated) and whether it had to be killed.
    @discardableResult
    /// `signalled`: SIGTERM was already sent (a second one would make a forwarder give up on its
    /// clean shutdown and exit at once).
    func terminate(grace: Double = 2, signalled: Bool = false) -> (status: Int32, killed: Bool) {
        defer { BenchChildren.shared.remove(self) }
        if process.isRunning && !signalled { kill(pid, SIGTERM) }
        guard waitForExit(deadline: BenchClock.deadline(after: grace)) else {
            kill(pid, SIGKILL)
            _ = waitForExit(deadline: BenchClock.deadline(after: 5))
            return (-SIGKILL, true)
        }
        let status = process.terminationReason == .uncaughtSignal ? -process.terminationStatus : process.terminationStatus
        return (status, false)
    }

    private func waitForExit(deadline: UInt64) -> Bool {
        while process.isRunning {
            if BenchClock.now() >= deadline { return false }
            BenchClock.sleep(seconds: 0.005)
        }
        return true
    }
}

/// Every child still running, so that an interrupted bench does not leave forwarders behind.
final class BenchChildren: @unchecked Sendable {
    static let shared = BenchChildren()
    private let lock = NSLock()
    private var children: [ObjectIdentifier: BenchChild] = [:]

    func add(_ child: BenchChild) {
        lock.lock()
        children[ObjectIdentifier(child)] = child
        lock.unlock()
    }

    func remove(_ child: BenchChild) {
        lock.lock()
        children[ObjectIdentifier(child)] = nil
        lock.unlock()
    }

    /// SIGKILL to every child: used only when the bench itself is interrupted.
    func killAll() {
        lock.lock()
        let all = Array(children.values)
        lock.unlock()
        for child in all where child.isRunning { kill(child.pid, SIGKILL) }
    }
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
    let cable: BenchChild
    let pathA: String
    let pathB: String
    /// When the cable announced its ends: its outage clock starts about then.
    let cableStartedAt: UInt64
    private(set) var server: BenchChild?
    private(set) var client: BenchChild?
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
            cable = try BenchChild(
                name: "cable", executable: settings.executable,
                arguments: ["cable", "--seed", "\(settings.seed)"] + cableArguments,
                logPath: "\(settings.logDirectory)/\(name)-cable.log", captureOutput: true)
        } catch {
            target.stop()
            throw error
        }
        do {
            let text = try cable.readOutput(until: { text in
                text.split(separator: "\n").contains { $0.hasPrefix("A ") } && text.split(separator: "\n").contains { $0.hasPrefix("B ") }
            }, deadline: BenchClock.deadline(after: 10))
            cableStartedAt = BenchClock.now()
            let lines = text.split(separator: "\n")
            pathA = String(lines.first { $0.hasPrefix("A ") }!.dropFirst(2))
            pathB = String(lines.first { $0.hasPrefix("B ") }!.dropFirst(2))
        } catch {
            cable.terminate()
            target.stop()
            throw error
        }
    }

    /// Starts S and C with the line rate they should assume, and waits until an echo goes through.
    func startForwarders(settings: BenchSettings, forwarderBaud: Int, extra: [String] = [],
                         serverExtra: [String] = [], clientExtra: [String] = []) throws {
        clientPort = try BenchSocket.freePort()
        var extra = extra
        if settings.forwarderDebug > 0 { extra += ["-d", "\(settings.forwarderDebug)"] }
        server = try BenchChild(
            name: "S", executable: settings.executable,
            arguments: ["S", "-ip", "127.0.0.1", "-port", "\(target.port)", "-com", pathA,
                        "--baudrate", "\(forwarderBaud)"] + extra + serverExtra,
            logPath: "\(logDirectory)/\(name)-S.log", captureOutput: false)
        client = try BenchChild(
            name: "C", executable: settings.executable,
            arguments: ["C", "-port", "\(clientPort)", "-com", pathB, "--baudrate", "\(forwarderBaud)"] + extra + clientExtra,
            logPath: "\(logDirectory)/\(name)-C.log", captureOutput: false)
        try BenchClient.waitUntilReady(port: clientPort, deadline: BenchClock.deadline(after: 30))
    }

    /// Stops S and C (SIGTERM, SIGKILL after 2 s) but keeps the cable, so it can be measured
    /// alone again. Returns their last samples.
    func stopForwarders() -> (server: ProcessSample?, client: ProcessSample?) {
        let last = samples()
        let ends = [server, client].compactMap { $0 }
        for end in ends where end.isRunning { kill(end.pid, SIGTERM) }
        for end in ends { _ = end.terminate(signalled: true) }
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
        // Both ends at once: each may spend up to a second draining its resets onto the line.
        let ends = [server, client].compactMap { $0 }
        for end in ends where end.isRunning { kill(end.pid, SIGTERM) }
        for end in ends {
            let exit = end.terminate(signalled: true)
            report.exits[end.name] = exit.killed ? -SIGKILL : exit.status
        }
        report.exits["cable"] = cable.terminate().status
        let log = (try? String(contentsOfFile: cable.logPath, encoding: .utf8)) ?? ""
        report.cableCounters = CableReport(log: log)
        target.stop()
        return report
    }

    deinit {
        if !stopped { _ = stop() }
    }
}
