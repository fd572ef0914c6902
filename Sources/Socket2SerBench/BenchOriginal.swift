#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

/// socket2ser against the tool it rewrites, and what it costs in CPU on a fast real line.
///
/// `original`: the original `socket2ser.py` (python3 with eventlet and pyserial) and this
/// socket2ser on one unpaced cable, each with its own S and C (their wire protocols differ):
/// socket2ser, then the original, then socket2ser again, each pass carrying the same upload and
/// then the same download, every byte checked. The target: socket2ser moves
/// at least 3 times the original's MB/s, measured side by side in one run.
///
/// `cpu921600`: socket2ser alone on a cable paced at 921600 baud, one bulk upload; goodput as a
/// fraction of the line rate and CPU seconds per MB of S and of C.
enum BenchOriginal {
    /// What one pair of ends did: the upload, the download, and the CPU each end spent on them.
    struct Pass {
        var up: TransferOutcome
        var down: TransferOutcome?
        var cpu: (server: Double, client: Double)
        /// Payload megabytes (10⁶ B) the CPU figures are divided by.
        var megabytes: Double
    }

    static func run(_ run: BenchRun) throws {
        let original: OriginalTool
        switch OriginalTool.find() {
        case let .success(found): original = found
        case let .failure(missing):
            run.info("skipped", "skipped: \(missing)")
            return
        }
        let size = run.settings.quick ? 1 << 20 : 50 << 20
        let rig = try run.rig(cable: ["--baud", "0"], startForwarders: false)
        // A transfer that stops for this long on an unpaced cable has stalled: the original can
        // lose a frame and then its parser stops (see docs/benchmarks.md).
        let stall = min(run.settings.ioTimeout, 10)
        // socket2ser before and after the original, on the same cable: two CPUs shared by the
        // cable, the kernel's pty work, both ends and the bench make a CPU-bound rate drift over
        // seconds, and the mean of a bracket cancels most of it. Between passes the ends stop and
        // whatever they left on the line crosses before the next pair opens the ptys.
        let pass = { (start: () throws -> Void) throws -> Pass in
            try start()
            let pass = measure(run, rig, upload: size, download: size, ioTimeout: stall)
            _ = rig.stopForwarders()
            _ = rig.waitForQuietLine(below: 1, window: 0.2, deadline: BenchClock.deadline(after: 10))
            return pass
        }
        let ours = {
            try pass { try rig.startForwarders(settings: run.settings, forwarderBaud: BenchSettings.fastestForwarderBaud,
                                               extra: ["--unpaced"]) }
        }
        let before = try ours()
        // pyserial asks for even parity, which a Linux pty cannot have: the kernel clears
        // PARENB, and tcsetattr fails (EINVAL) when none of the changes it asks for is applied.
        // The original's open succeeds because its speed (921600, a figure it ignores on a pty)
        // differs from the pty's: socket2ser left it at its own 20 Mbaud.
        let theirs = try pass {
            try rig.startEnds(server: { port in
                try original.start("S", ["-ip", "127.0.0.1", "-port", "\(port)", "-com", rig.pathA], rig: rig)
            }, client: { port in
                try original.start("C", ["-port", "\(port)", "-com", rig.pathB], rig: rig)
            })
        }
        let after = try ours()
        run.stopRigs()

        for (tool, pass) in [("socket2ser, before", before), ("original", theirs), ("socket2ser, after", after)] {
            let asserted = tool != "original"
            run.checkIntact("\(tool): up: bytes intact", pass.up.up, error: pass.up.error, asserted: asserted)
            run.checkIntact("\(tool): down: bytes intact", pass.down?.down, error: pass.down?.error, asserted: asserted)
        }
        let rates = { (pass: Pass, up: Bool) in (up ? pass.up.up : pass.down?.down)?.bytesPerSecond ?? 0 }
        for (label, up) in [("up", true), ("down", false)] {
            let original = rates(theirs, up)
            let (first, second) = (rates(before, up), rates(after, up))
            let rate = (first + second) / 2
            run.info("\(label): original", String(format: "%.2f MB/s", original / 1e6), value: original / 1e6, unit: "MB/s")
            run.info("\(label): socket2ser", String(format: "%.2f MB/s (%.2f before, %.2f after)", rate / 1e6, first / 1e6, second / 1e6),
                     value: rate / 1e6, unit: "MB/s")
            run.atLeast("\(label): socket2ser / original", original > 0 ? rate / original : 0, limit: 3, unit: "", format: "%.2f")
            run.details["\(label)OriginalMBps"] = original / 1e6
            run.details["\(label)Socket2serMBps"] = rate / 1e6
        }
        reportCPU(run, label: "original, up and down", cpu: theirs.cpu, megabytes: theirs.megabytes)
        reportCPU(run, label: "socket2ser, up and down", cpu: (before.cpu.server + after.cpu.server, before.cpu.client + after.cpu.client),
                  megabytes: before.megabytes + after.megabytes)
        run.details["bytes"] = Double(size)
    }

    static let pacedBaud = 921_600

    static func paced921600(_ run: BenchRun) throws {
        let size = run.settings.quick ? 128 << 10 : 1 << 20
        let lineRate = Double(pacedBaud) / 10
        let rig = try run.rig(cable: ["--baud", "\(pacedBaud)"], forwarderBaud: pacedBaud)
        let pass = measure(run, rig, upload: size, download: nil, atLeast: lineRate / 4)
        run.stopRigs()
        run.checkIntact("up: bytes intact", pass.up.up, error: pass.up.error)
        run.throughput("up: goodput / line rate", bytesPerSecond: pass.up.up?.bytesPerSecond ?? 0, atLeast: nil, lineRate: lineRate)
        run.lineUse("up: line use", rig: run.name, aToB: false, payload: size, seconds: pass.up.up?.seconds ?? 0, lineRate: lineRate)
        reportCPU(run, label: "up", cpu: pass.cpu, megabytes: pass.megabytes)
        run.details["bytes"] = Double(size)
    }

    /// An upload of `upload` bytes, then a download of `download`, through the rig's ends, with
    /// the CPU time S and C spent from just before the first to just after the last (read from
    /// /proc/PID/stat while they still run). `atLeast`: the slowest rate (B/s) the deadline allows
    /// for; `ioTimeout`: the longest a socket read or write may block (the bench's by default).
    static func measure(_ run: BenchRun, _ rig: BenchRig, upload: Int, download: Int?,
                        atLeast slowest: Double = 1e6, ioTimeout: Double? = nil) -> Pass {
        let transfer = { (up: Int, down: Int) in
            BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID(), up: up, down: down,
                                 ioTimeout: ioTimeout ?? run.settings.ioTimeout,
                                 deadline: BenchClock.deadline(after: 30 + Double(max(up, down)) / slowest))
        }
        let before = rig.samples()
        let up = transfer(upload, 0)
        let down = download.map { transfer(0, $0) }
        let after = rig.samples()
        let spent = { (start: ProcessSample?, end: ProcessSample?) in (end?.cpuSeconds ?? .nan) - (start?.cpuSeconds ?? .nan) }
        return Pass(up: up, down: down, cpu: (spent(before.server, after.server), spent(before.client, after.client)),
                    megabytes: Double(upload + (download ?? 0)) / 1e6)
    }

    static func reportCPU(_ run: BenchRun, label: String, cpu: (server: Double, client: Double), megabytes: Double) {
        for (end, seconds) in [("S", cpu.server), ("C", cpu.client)] {
            let perMB = seconds / megabytes
            run.info("\(label): \(end) CPU per MB", String(format: "%.4f s/MB (%.2f s for %.1f MB)", perMB, seconds, megabytes),
                     value: perMB, unit: "s/MB")
            run.details["\(label): \(end) CPU seconds per MB"] = perMB
        }
    }
}

/// The original tool: its script, and a python3 that can import what it needs.
struct OriginalTool {
    let python: String
    let script: String
    /// The rate the original is told; it does not pace itself, so on a pty the figure only
    /// matters to pyserial's tcsetattr (see `BenchOriginal.run`).
    static let baud = 921_600

    /// `$SOCKET2SER_ORIGINAL`, else the repository's copy (vendor/original-socket2ser) or
    /// `shared/seed/socket2ser.py`, in the working directory or a folder above it, with a python3 on
    /// PATH that imports eventlet and serial. The failure says which is missing.
    static func find() -> Result<OriginalTool, BenchError> {
        let environment = ProcessInfo.processInfo.environment
        var candidates = environment["SOCKET2SER_ORIGINAL"].map { [$0] } ?? []
        var folder = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        while folder.path != "/" {
            candidates.append(folder.appendingPathComponent("vendor/original-socket2ser/socket2ser.py").path)
            candidates.append(folder.appendingPathComponent("shared/seed/socket2ser.py").path)
            folder.deleteLastPathComponent()
        }
        guard let script = candidates.first(where: { access($0, R_OK) == 0 }) else {
            return .failure(BenchError("the original's socket2ser.py not found (set $SOCKET2SER_ORIGINAL)"))
        }
        let missing = BenchError("python3 with eventlet and pyserial not found")
        guard let python = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map({ String($0) + "/python3" })
            .first(where: { access($0, X_OK) == 0 })
        else { return .failure(missing) }
        guard let (ending, _, _) = try? Spawn.run(python, ["-c", "import eventlet, serial"]) else { return .failure(missing) }
        return ending == .exited(0) ? .success(OriginalTool(python: python, script: script)) : .failure(missing)
    }

    /// `python3 socket2ser.py ACTION ARGUMENTS -baudrate 921600`, its stderr in the rig's logs.
    func start(_ action: String, _ arguments: [String], rig: BenchRig) throws -> ChildProcess {
        try ChildProcess.bench("original \(action)", executable: python,
                               [script, action] + arguments + ["-baudrate", "\(Self.baud)"],
                               logPath: "\(rig.logDirectory)/\(rig.name)-original-\(action).log")
    }
}
