#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

/// What protecting the line with a pre-shared key costs (`--key-file`, `--protect`). Both ends
/// get one key file, which `socket2ser keygen` writes into the bench's temporary directory (mode
/// 0600). A sealed frame carries 20 bytes more than a plain one (a 4-byte counter and a 16-byte
/// tag), in either mode. Measured:
///
/// - bulk each way at the line rate, encrypted (ChaCha20-Poly1305), and, not under `--quick`,
///   signed only (`--protect authenticate`, HMAC-SHA-256), each direction on a fresh rig;
/// - idle 1-byte echoes as the `echo` scenario makes them, without a key and then encrypted:
///   the difference of the two p50s;
/// - on one unpaced cable, MB/s each way and CPU per MB of S and C: without a key, encrypted,
///   signed, and without a key again, so that the plain figure is the mean of two passes that
///   bracket the others (the CPU-bound rate drifts over seconds, as in `original`);
/// - that protection was really on: the bench itself carries the line between two unpaced cables
///   and looks for pieces of the payload going by. Without a key they are there; encrypted, none
///   is; signed only, they are (the traffic stays readable). The S and C logs say the link came
///   up and name no mismatch of keys or modes.
enum BenchProtect {
    static func run(_ run: BenchRun) throws {
        let keyFile = try writeKeyFile(run)
        let encrypt = ["--key-file", keyFile, "--protect", "encrypt"]
        let authenticate = ["--key-file", keyFile, "--protect", "authenticate"]

        // Bulk each way, each on a fresh rig so that the cable's counters tell the directions apart.
        let size = run.settings.size(full: 200 << 10, quick: 16 << 10)
        let modes = run.settings.quick ? [("encrypt", encrypt)] : [("encrypt", encrypt), ("authenticate", authenticate)]
        for (mode, extra) in modes {
            for up in [true, false] {
                let direction = up ? "up" : "down"
                let label = "\(run.name)-\(mode)-\(direction)"
                let outcome = try oneWay(run, label: label, up: up, size: size, extra: extra)
                let measured = up ? outcome.up : outcome.down
                run.checkIntact("\(mode): \(direction): bytes intact", measured, error: outcome.error)
                run.throughput("\(mode): \(direction): throughput / line rate", bytesPerSecond: measured?.bytesPerSecond ?? 0,
                               atLeast: 0.98)
                run.lineUse("\(mode): \(direction): line use", rig: label, aToB: !up, payload: size, seconds: measured?.seconds ?? 0)
            }
        }
        run.details["bytes"] = Double(size)

        try echoes(run, encrypt: encrypt)
        try unpaced(run, encrypt: encrypt, authenticate: authenticate)
        try tapped(run, encrypt: encrypt, authenticate: authenticate)
    }

    /// A new key in the bench's temporary directory for both ends, written as a user writes one
    /// (`socket2ser keygen -o`), and checked to be private. Returns its path.
    private static func writeKeyFile(_ run: BenchRun) throws -> String {
        let path = "\(run.settings.logDirectory)/\(run.name).key"
        unlink(path)  // keygen never replaces a key file
        let keygen = try ChildProcess.bench("keygen", executable: run.settings.executable, ["keygen", "-o", path],
                                            logPath: "\(run.settings.logDirectory)/\(run.name)-keygen.log")
        guard let exit = keygen.waitForExit(timeout: .seconds(10)), exit.isCleanExitZero else {
            keygen.terminate()
            throw BenchError("socket2ser keygen -o \(path) did not succeed (log \(keygen.logPath ?? "none"))")
        }
        var info = stat()
        guard stat(path, &info) == 0 else { throw BenchError("the key file \(path): \(errnoText(errno))") }
        guard info.st_mode & 0o777 == 0o600 else {
            throw BenchError("the key file \(path) has mode \(String(info.st_mode & 0o777, radix: 8)), not 600")
        }
        return path
    }

    // MARK: - Idle echo

    /// The `echo` scenario's round trips on a plain link, with its targets, then on an encrypted
    /// one, whose target is its p50 against the plain one's.
    private static func echoes(_ run: BenchRun, encrypt: [String]) throws {
        let plainRig = try run.rig(label: "\(run.name)-echo-plain")
        let plain = idleEcho(run, rig: plainRig, prefix: "plain: ")
        run.stopRigs()
        let sealedRig = try run.rig(label: "\(run.name)-echo-encrypt", startForwarders: false)
        try sealedRig.startForwarders(settings: run.settings, forwarderBaud: run.settings.forwarderBaud, extra: encrypt)
        let sealed = idleEcho(run, rig: sealedRig, prefix: "encrypt: ", targets: false)
        run.stopRigs()
        guard !plain.outcome.milliseconds.isEmpty, !sealed.outcome.milliseconds.isEmpty else { return }
        let p50 = BenchStatistics.percentile(sealed.outcome.milliseconds, 50) - BenchStatistics.percentile(plain.outcome.milliseconds, 50)
        let p99 = BenchStatistics.percentile(sealed.outcome.milliseconds, 99) - BenchStatistics.percentile(plain.outcome.milliseconds, 99)
        run.atMost("encrypt − plain: round trip p50", p50, limit: 2, unit: "ms")
        run.info("encrypt − plain: round trip p99", String(format: "%+.2f ms", p99), value: p99, unit: "ms")
        // Each round trip is a frame each way, both on its path: the seal's bytes cross the line
        // before the echo can come back, so at a low rate they are most of the difference.
        if let sealedBytes = sealed.lineBytesPerTrip, let plainBytes = plain.lineBytesPerTrip {
            let more = sealedBytes - plainBytes
            var text = String(format: "%+.1f B both ways", more)
            if run.settings.baud > 0 { text += String(format: " = %.2f ms of line time", more / run.settings.lineRate * 1000) }
            run.info("encrypt − plain: line bytes per round trip", text, value: more, unit: "B")
        }
        run.details["echoP50DifferenceMilliseconds"] = p50
        run.details["echoP99DifferenceMilliseconds"] = p99
    }

    // MARK: - Unpaced

    /// One unpaced cable; S and C started four times on it (plain, encrypted, signed, plain
    /// again), each pass an upload and then a download, with the CPU both ends spent on it.
    private static func unpaced(_ run: BenchRun, encrypt: [String], authenticate: [String]) throws {
        let size = run.settings.quick ? 2 << 20 : 32 << 20
        let rig = try run.rig(cable: ["--baud", "0"], label: "\(run.name)-unpaced", startForwarders: false)
        // Between passes the ends stop and whatever they left on the line crosses before the
        // next pair opens the ptys.
        let pass = { (extra: [String]) throws -> BenchOriginal.Pass in
            try rig.startForwarders(settings: run.settings, forwarderBaud: BenchSettings.fastestForwarderBaud,
                                    extra: ["--unpaced"] + extra)
            let pass = BenchOriginal.measure(run, rig, upload: size, download: size)
            _ = rig.stopForwarders()
            _ = rig.waitForQuietLine(below: 1, window: 0.2, deadline: BenchClock.deadline(after: 10))
            return pass
        }
        let before = try pass([])
        let sealed = try pass(encrypt)
        let signed = try pass(authenticate)
        let after = try pass([])
        run.stopRigs()

        let passes = [("unpaced plain, before", before), ("unpaced encrypt", sealed), ("unpaced authenticate", signed),
                      ("unpaced plain, after", after)]
        for (label, pass) in passes {
            run.checkIntact("\(label): up: bytes intact", pass.up.up, error: pass.up.error)
            run.checkIntact("\(label): down: bytes intact", pass.down?.down, error: pass.down?.error)
        }
        for (label, up) in [("up", true), ("down", false)] {
            let rate = { (pass: BenchOriginal.Pass) in (up ? pass.up.up : pass.down?.down)?.bytesPerSecond ?? 0 }
            let plain = (rate(before) + rate(after)) / 2
            run.info("unpaced \(label): plain", String(format: "%.2f MB/s (%.2f before, %.2f after)", plain / 1e6,
                                                       rate(before) / 1e6, rate(after) / 1e6),
                     value: plain / 1e6, unit: "MB/s")
            run.details["unpaced \(label): plain MBps"] = plain / 1e6
            for (mode, pass) in [("encrypt", sealed), ("authenticate", signed)] {
                let protected = rate(pass)
                run.info("unpaced \(label): \(mode)", String(format: "%.2f MB/s = %.3f of plain", protected / 1e6,
                                                             plain > 0 ? protected / plain : 0),
                         value: protected / 1e6, unit: "MB/s")
                run.details["unpaced \(label): \(mode) MBps"] = protected / 1e6
            }
        }
        BenchOriginal.reportCPU(run, label: "unpaced plain", cpu: (before.cpu.server + after.cpu.server,
                                                                   before.cpu.client + after.cpu.client),
                                megabytes: before.megabytes + after.megabytes)
        BenchOriginal.reportCPU(run, label: "unpaced encrypt", cpu: sealed.cpu, megabytes: sealed.megabytes)
        BenchOriginal.reportCPU(run, label: "unpaced authenticate", cpu: signed.cpu, megabytes: signed.megabytes)
        run.details["unpacedBytes"] = Double(size)
    }

    // MARK: - Was it on?

    /// What one transfer through the tap showed.
    private struct Tapped {
        var mode: String
        var outcome: TransferOutcome
        /// Distinct pieces of the upload seen crossing C -> S, and of the download S -> C.
        var seen: (up: Int, down: Int)
        /// Pieces each payload has.
        var pieces: (up: Int, down: Int)
        /// What is wrong in the S and C logs, if anything.
        var logProblems: [String]
    }

    /// A transfer each way at once without a key, encrypted and signed, every byte of the line
    /// read by the bench on its way, and the logs of the keyed ends.
    private static func tapped(_ run: BenchRun, encrypt: [String], authenticate: [String]) throws {
        let results = try [("plain", [String]()), ("encrypt", encrypt), ("authenticate", authenticate)].map {
            try tapTransfer(run, mode: $0.0, extra: $0.1)
        }
        let broken = results.filter { !$0.outcome.intact }
        run.check("line tap: transfers intact", broken.isEmpty,
                  measured: broken.isEmpty ? results.map { "\($0.mode) ok" }.joined(separator: ", ")
                      : broken.map { "\($0.mode): \($0.outcome.error ?? "bytes differ")" }.joined(separator: "; "),
                  target: "all bytes, SHA-256 equal")
        func seen(_ tapped: Tapped) -> String {
            "\(tapped.seen.up)/\(tapped.pieces.up) up, \(tapped.seen.down)/\(tapped.pieces.down) down"
        }
        let plain = results[0], sealed = results[1], signed = results[2]
        // The plain transfer proves the tap sees the payload where it is in the clear (a piece
        // that a frame boundary or a COBS code byte splits is not found, so not quite all).
        let tapSees = 2 * plain.seen.up >= plain.pieces.up && 2 * plain.seen.down >= plain.pieces.down
        run.check("encrypt: pieces of the payload on the line", tapSees && sealed.seen.up == 0 && sealed.seen.down == 0,
                  measured: "plain \(seen(plain)); encrypt \(seen(sealed))",
                  target: "plain: most (the tap sees them); encrypt: none")
        run.info("authenticate: pieces of the payload on the line", "\(seen(signed)) (signed only: readable)")
        let problems = results.dropFirst().flatMap(\.logProblems)
        run.check("keyed S and C logs: link up, no mismatch", problems.isEmpty,
                  measured: problems.isEmpty ? "link up at both ends, encrypt and authenticate" : problems.joined(separator: "; "),
                  target: "link up, no mismatch")
        for result in results {
            run.details["tap \(result.mode): up pieces seen"] = Double(result.seen.up)
            run.details["tap \(result.mode): down pieces seen"] = Double(result.seen.down)
            run.details["tap \(result.mode): up pieces"] = Double(result.pieces.up)
            run.details["tap \(result.mode): down pieces"] = Double(result.pieces.down)
        }
    }

    /// Two unpaced cables with the bench between them: S on the first's end A, C on the
    /// second's end B, and a `LineTap` between the first's end B and the second's end A. One
    /// transfer of 16 KiB each way at once through it.
    private static func tapTransfer(_ run: BenchRun, mode: String, extra: [String]) throws -> Tapped {
        let size = 16 << 10
        let label = "\(run.name)-tap-\(mode)"
        let rig = try run.rig(cable: ["--baud", "0"], label: label, startForwarders: false)
        let second = try CableProcess(["--seed", "\(run.settings.seed)", "--baud", "0"],
                                      executable: URL(fileURLWithPath: run.settings.executable),
                                      output: .logFile(path: "\(rig.logDirectory)/\(label)-cable2.log", collectingOutput: true),
                                      registry: benchChildren)
        defer { second.process.terminate() }
        let id = run.newID()
        let tap = try LineTap(nearS: rig.pathB, nearC: second.pathA,
                              up: PayloadPieces(BenchPayload(seed: rig.target.seed, connection: id, direction: 1), bytes: size),
                              down: PayloadPieces(BenchPayload(seed: rig.target.seed, connection: id, direction: 2), bytes: size))
        defer { tap.stop() }
        var arguments = ["--unpaced"] + extra
        if run.settings.forwarderDebug > 0 { arguments += ["-d", "\(run.settings.forwarderDebug)"] }
        let logs = (server: "\(rig.logDirectory)/\(label)-S.log", client: "\(rig.logDirectory)/\(label)-C.log")
        try rig.startEnds(server: { port in
            try rig.cableProcess.startServer(targetPort: port, baud: BenchSettings.fastestForwarderBaud, arguments,
                                             output: .logFile(path: logs.server, collectingOutput: false))
        }, client: { port in
            try second.startClient(port: port, baud: BenchSettings.fastestForwarderBaud, arguments,
                                   output: .logFile(path: logs.client, collectingOutput: false))
        })
        let outcome = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: id, up: size, down: size,
                                           ioTimeout: run.settings.ioTimeout, deadline: BenchClock.deadline(after: 60))
        // A keyed end hears only a HELLO that proves the key, so "link up" is the handshake done
        // with it; the line is said once the first RTT sample is in (at most a second later).
        var problems: [String] = []
        if !extra.isEmpty {
            for (end, path) in [("S", logs.server), ("C", logs.client)] {
                let log = waitForLog(path, containing: "link up:", deadline: BenchClock.deadline(after: 5))
                if !log.contains("link up:") { problems.append("\(end) (\(mode)): no 'link up' in \(path)") }
                if log.contains("nothing is exchanged") { problems.append("\(end) (\(mode)): a mismatch in \(path)") }
            }
        }
        run.stopRigs()
        tap.stop()
        return Tapped(mode: mode, outcome: outcome, seen: tap.seen, pieces: (tap.up.count, tap.down.count),
                      logProblems: problems)
    }

    /// Reads the log at `path` until it contains `text` or `deadline` passes; returns it as last read.
    private static func waitForLog(_ path: String, containing text: String, deadline: UInt64) -> String {
        while true {
            let log = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            if log.contains(text) || BenchClock.now() >= deadline { return log }
            BenchClock.sleep(seconds: 0.05)
        }
    }
}

/// Pieces of a payload to look for on the line: 8 bytes every 64 of the first `bytes`, leaving
/// out those with a zero byte (the line's COBS framing replaces zeros, so such a piece never
/// crosses as it is). Eight random bytes turn up by chance once in 2^64 places.
struct PayloadPieces: Sendable {
    let pieces: Set<UInt64>
    var count: Int { pieces.count }

    init(_ payload: BenchPayload, bytes: Int) {
        var block: [UInt8] = []
        payload.fill(block: 0, into: &block)
        var pieces = Set<UInt64>()
        for offset in stride(from: 0, through: min(bytes, BenchPayload.blockSize) - 8, by: 64) {
            let piece = block[offset..<(offset + 8)]
            if !piece.contains(0) { pieces.insert(piece.reduce(0) { $0 << 8 | UInt64($1) }) }
        }
        self.pieces = pieces
    }
}

/// The bench in the middle of the line: copies every byte between one cable's end and another's,
/// both ways, as it comes, and counts the distinct pieces of each direction's payload going by.
final class LineTap: @unchecked Sendable {
    let up: PayloadPieces
    let down: PayloadPieces
    private let nearS: Int32
    private let nearC: Int32
    private let stopping = Locked(false)
    private let found = Locked((up: 0, down: 0))
    private var threads: [BenchThread] = []
    private var stopped = false

    /// Opens `nearS` (the end whose cable leads to S) and `nearC`, and starts copying.
    init(nearS pathS: String, nearC pathC: String, up: PayloadPieces, down: PayloadPieces) throws {
        self.up = up
        self.down = down
        nearS = open(pathS, O_RDWR | O_NOCTTY | O_CLOEXEC)
        nearC = open(pathC, O_RDWR | O_NOCTTY | O_CLOEXEC)
        guard nearS >= 0, nearC >= 0 else {
            let code = errno
            if nearS >= 0 { close(nearS) }
            if nearC >= 0 { close(nearC) }
            throw BenchError("cannot open the cables' ends for the tap: \(errnoText(code))")
        }
        threads = [copy(from: nearC, to: nearS, name: "up", pieces: up) { $0.up = $1 },
                   copy(from: nearS, to: nearC, name: "down", pieces: down) { $0.down = $1 }]
    }

    /// Distinct pieces seen so far: of the upload (C -> S), of the download (S -> C).
    var seen: (up: Int, down: Int) { found.current }

    /// Stops copying (at once if the cables have gone; else within 100 ms) and closes the ends.
    func stop() {
        guard !stopped else { return }
        stopped = true
        stopping.withLock { $0 = true }
        for thread in threads { thread.join(deadline: BenchClock.deadline(after: 5)) }
        close(nearS)
        close(nearC)
    }

    private func copy(from source: Int32, to destination: Int32, name: String, pieces: PayloadPieces,
                      record: @escaping @Sendable (inout (up: Int, down: Int), Int) -> Void) -> BenchThread {
        BenchThread("bench tap \(name)") { [stopping, found] in
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            var window: UInt64 = 0
            var filled = 0
            var seen = Set<UInt64>()
            while !stopping.current {
                var pfd = pollfd(fd: source, events: Int16(POLLIN), revents: 0)
                let ready = poll(&pfd, 1, 100)
                if ready < 0 && errno == EINTR { continue }
                if ready < 0 { return }
                if ready == 0 { continue }
                let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }  // the cable has gone
                let before = seen.count
                for byte in buffer[0..<n] {
                    window = window << 8 | UInt64(byte)
                    filled = min(filled + 1, 8)
                    if filled == 8 && pieces.pieces.contains(window) { seen.insert(window) }
                }
                if seen.count != before {
                    let count = seen.count
                    found.withLock { record(&$0, count) }
                }
                var done = 0
                while done < n {
                    let written = buffer.withUnsafeBytes { write(destination, $0.baseAddress! + done, n - done) }
                    if written < 0 && errno == EINTR { continue }
                    if written <= 0 { return }
                    done += written
                }
            }
        }
    }
}
