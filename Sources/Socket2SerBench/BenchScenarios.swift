#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

/// A reproducible measurement: a fresh cable and pair of forwarders, real TCP clients through C,
/// the in-process target behind S, and rows for the table.
public struct BenchScenario: Sendable {
    public let name: String
    public let summary: String
    let run: @Sendable (BenchRun) throws -> Void
}

extension BenchScenario {
    /// In the order they run; `--scenario` picks from these by name.
    public static let all: [BenchScenario] = [
        BenchScenario(name: "bulk", summary: "one stream, each direction in turn", run: bulk),
        BenchScenario(name: "dashboard", summary: "bulk each way with each end's dashboard open in a browser; CPU of each end",
                      run: dashboardScenario),
        BenchScenario(name: "duplex", summary: "one stream, bulk both directions at once", run: duplex),
        BenchScenario(name: "streams8", summary: "8 downloads at once: total and Jain fairness", run: { try streams($0, count: 8) }),
        BenchScenario(name: "streams253", summary: "253 downloads at once (the original's limit)", run: { try streams($0, count: 253) }),
        BenchScenario(name: "streams1000", summary: "1000 echo connections open at once", run: streams1000),
        BenchScenario(name: "downloads1000", summary: "1000 downloads of 256 B started at once: all complete, Jain fairness",
                      run: { try streams($0, count: 1000) }),
        BenchScenario(name: "echo", summary: "1-byte echo round trips on an idle link", run: echo),
        BenchScenario(name: "echo-load", summary: "echo round trips while bulk runs both ways", run: echoUnderLoad),
        BenchScenario(name: "stalled-reader", summary: "a stream nobody reads next to a transferring one", run: stalledReader),
        BenchScenario(name: "stall", summary: "a download, then an upload, whose reader stops mid-way next to one that goes on",
                      run: BenchStall.run),
        BenchScenario(name: "stalled1000", summary: "1000 downloads nobody reads, unpaced: each end's memory, and another download",
                      run: BenchStalledMany.run),
        BenchScenario(name: "churn", summary: "200 short echo connections, 20 in parallel", run: churn),
        BenchScenario(name: "ber-1e-5", summary: "bulk each way, bit error rate 1e-5", run: { try bitErrors($0, ber: 1e-5, target: 0.90) }),
        BenchScenario(name: "ber-1e-4", summary: "bulk each way, bit error rate 1e-4", run: { try bitErrors($0, ber: 1e-4, target: 0.60) }),
        BenchScenario(name: "faults", summary: "junk bursts and dropped bytes, both ways", run: faults),
        BenchScenario(name: "outage", summary: "a 3 s outage in the middle of a download", run: outage),
        BenchScenario(name: "radio", summary: "a telemetry radio: 57600 baud, 80 ms each way, bursts of errors", run: BenchRadio.run),
        BenchScenario(name: "compress", summary: "text (logs, JSON, HTML, code) each way: goodput against the line rate",
                      run: BenchCompress.run),
        BenchScenario(name: "protect", summary: "what a pre-shared key costs: bulk, idle echo and unpaced MB/s, sealed and not",
                      run: BenchProtect.run),
        BenchScenario(name: "unpaced", summary: "unpaced cable: socket2ser against a raw copy", run: unpaced),
        BenchScenario(name: "original", summary: "unpaced cable: socket2ser against the original socket2ser.py, MB/s and CPU per MB",
                      run: BenchOriginal.run),
        BenchScenario(name: "cpu921600", summary: "921600 baud: goodput and CPU per MB of each end, one bulk upload",
                      run: BenchOriginal.paced921600),
        BenchScenario(name: "idle-memory", summary: "resident memory of each idle end", run: idleMemory),
        BenchScenario(name: "forward-L", summary: "bulk each way through a -L forward of C", run: { try forwardBulk($0, kind: "-L") }),
        BenchScenario(name: "forward-R", summary: "bulk each way through a -R forward of S", run: { try forwardBulk($0, kind: "-R") }),
        BenchScenario(name: "forward-D", summary: "bulk each way through a SOCKS5 proxy (-D) of C", run: { try forwardBulk($0, kind: "-D") }),
        BenchScenario(name: "socks-churn", summary: "200 short echo connections through -D, 20 in parallel", run: socksChurn),
        BenchScenario(name: "idle-forwards", summary: "line bytes of an idle link, with and without -L, -R and -D", run: idleForwards),
        BenchScenario(name: "lines32", summary: "32 lines in one `run` process: idle cost per line, then bulk on all at once",
                      run: manyLines),
    ]

    public static var names: [String] { all.map(\.name) }
}

// MARK: - Throughput

/// One stream, 200 KB up, then 200 KB down, each over its own fresh cable so that the cable's
/// counters tell each direction's line use apart. Before the first, the cable alone is measured:
/// a raw copy from end A to end B, the ceiling any protocol could reach on it.
private func bulk(_ run: BenchRun) throws {
    let size = run.settings.size(full: 200 << 10, quick: 16 << 10)
    let up = try oneWay(run, label: "bulk-up", up: true, size: size) { rig in
        guard run.settings.baud > 0 else { return }
        let raw = try rawCopy(from: rig.pathA, to: rig.pathB, bytes: run.settings.size(full: 32 << 10, quick: 4 << 10),
                              seed: run.settings.seed)
        run.throughput("cable alone: raw copy / line rate", bytesPerSecond: raw.bytesPerSecond, atLeast: nil)
    }
    let down = try oneWay(run, label: "bulk-down", up: false, size: size)
    run.checkIntact("up: bytes intact", up.up, error: up.error)
    run.checkIntact("down: bytes intact", down.down, error: down.error)
    run.throughput("up: throughput / line rate", bytesPerSecond: up.up?.bytesPerSecond ?? 0, atLeast: 0.99)
    run.lineUse("up: line use", rig: "bulk-up", aToB: false, payload: size, seconds: up.up?.seconds ?? 0)
    run.throughput("down: throughput / line rate", bytesPerSecond: down.down?.bytesPerSecond ?? 0, atLeast: 0.99)
    run.lineUse("down: line use", rig: "bulk-down", aToB: true, payload: size, seconds: down.down?.seconds ?? 0)
    run.details["bytes"] = Double(size)
}

/// A fresh rig (cable with `cable` arguments, S and C with `extra` arguments), `before` run on it
/// before S and C start, then one transfer of `size` bytes up or down; the rig is stopped so its
/// counters are available.
func oneWay(_ run: BenchRun, label: String, up: Bool, size: Int, cable: [String] = [], extra: [String] = [],
            atLeast fraction: Double = 0.25,
            before: (BenchRig) throws -> Void = { _ in }) throws -> TransferOutcome {
    let rig = try run.rig(cable: cable, label: label, startForwarders: false)
    try before(rig)
    try rig.startForwarders(settings: run.settings, forwarderBaud: run.settings.forwarderBaud, extra: extra)
    let outcome = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID(),
                                       up: up ? size : 0, down: up ? 0 : size, ioTimeout: run.settings.ioTimeout,
                                       deadline: run.settings.deadline(bytes: size, atLeast: fraction))
    run.stopRigs()
    return outcome
}

/// One stream carrying 200 KB each way at the same time.
private func duplex(_ run: BenchRun) throws {
    let rig = try run.rig()
    let size = run.settings.size(full: 200 << 10, quick: 16 << 10)
    let both = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID(), up: size, down: size,
                                    ioTimeout: run.settings.ioTimeout, deadline: run.settings.deadline(bytes: size))
    run.stopRigs()
    run.checkIntact("up: bytes intact", both.up, error: both.error)
    run.checkIntact("down: bytes intact", both.down, error: both.error)
    run.throughput("up: throughput / line rate", bytesPerSecond: both.up?.bytesPerSecond ?? 0, atLeast: 0.97)
    run.lineUse("up: line use", rig: run.name, aToB: false, payload: size, seconds: both.up?.seconds ?? 0)
    run.throughput("down: throughput / line rate", bytesPerSecond: both.down?.bytesPerSecond ?? 0, atLeast: 0.97)
    run.lineUse("down: line use", rig: run.name, aToB: true, payload: size, seconds: both.down?.seconds ?? 0)
    run.details["bytes"] = Double(size)
}

/// `count` downloads of equal size started together. Per-stream throughput is the stream's bytes
/// over its own first-byte-sent to last-byte-received time; with fair sharing all end together.
private func streams(_ run: BenchRun, count: Int) throws {
    if count > 253 { try requireDescriptors(for: count) }
    let rig = try run.rig()
    let perStream = count <= 8
        ? run.settings.size(full: 32 << 10, quick: 2 << 10)
        : count <= 253 ? run.settings.size(full: 2 << 10, quick: 256) : run.settings.size(full: 256, quick: 16)
    // 1000 short downloads (issue 11, §4): fairness is the target; each stream's 256 bytes then
    // go in two turns, and every turn costs a DATA header, so the total is not held to 0.97.
    let (totalTarget, jainTarget): (Double?, Double) = count <= 8 ? (0.98, 0.99) : count <= 253 ? (0.97, 0.95) : (nil, 0.9)
    let ids = (0..<count).map { _ in run.newID() }
    let deadline = run.settings.deadline(bytes: perStream * count)
    let settings = run.settings
    let target = rig.target
    let port = rig.clientPort
    // A thousand short downloads start together at the target, once every request is in.
    if count > 253 { target.holdDownloads(untilRequests: count, seconds: 60) }
    let outcomes = benchParallel(count, name: "bench stream") { index in
        BenchClient.transfer(port: port, target: target, id: ids[index], up: 0, down: perStream,
                             ioTimeout: settings.ioTimeout, deadline: deadline)
    }.map { $0 ?? TransferOutcome(id: 0, error: "did not run") }

    let intact = outcomes.filter(\.intact).count
    let corrupt = outcomes.reduce(0) { $0 + ($1.down?.corrupt ?? 0) }
    let firstError = outcomes.first { !$0.intact }?.error
    run.check("streams complete, bytes intact", intact == count,
              measured: "\(intact)/\(count), \(corrupt) corrupt B" + (firstError.map { " (\($0))" } ?? ""),
              target: "\(count)/\(count), SHA-256 equal")
    let downs = outcomes.compactMap(\.down).filter { $0.received > 0 }
    if let first = downs.map(\.firstSentAt).filter({ $0 > 0 }).min(), let last = downs.map(\.lastReceivedAt).max(),
       last > first {
        let bytes = downs.reduce(0) { $0 + $1.received }
        let rate = Double(bytes) / BenchClock.seconds(last - first)
        run.throughput("total throughput / line rate", bytesPerSecond: rate, atLeast: totalTarget)
        let rates = downs.map(\.bytesPerSecond)
        run.atLeast("Jain fairness of per-stream rates", BenchStatistics.jain(rates), limit: jainTarget, unit: "",
                    format: "%.3f")
        let starts = downs.map { BenchClock.seconds($0.firstSentAt - first) }
        let durations = downs.map(\.seconds)
        run.info("stream start / duration, p10 p50 p90", String(
            format: "%.2f %.2f %.2f s / %.2f %.2f %.2f s",
            BenchStatistics.percentile(starts, 10), BenchStatistics.percentile(starts, 50), BenchStatistics.percentile(starts, 90),
            BenchStatistics.percentile(durations, 10), BenchStatistics.percentile(durations, 50),
            BenchStatistics.percentile(durations, 90)))
        run.stopRigs()
        run.lineUse("line use", rig: run.name, aToB: true, payload: bytes, seconds: BenchClock.seconds(last - first))
        run.details["totalBytes"] = Double(bytes)
        run.details["seconds"] = BenchClock.seconds(last - first)
        run.details["slowestStreamBytesPerSecond"] = rates.min()
        run.details["fastestStreamBytesPerSecond"] = rates.max()
        let finishes = downs.map { BenchClock.seconds($0.lastReceivedAt - first) }
        run.details["firstStreamDoneSeconds"] = finishes.min()
        run.details["lastStreamDoneSeconds"] = finishes.max()
    } else {
        run.fail("total throughput / line rate", "no stream delivered anything")
    }
    run.details["bytesPerStream"] = Double(perStream)
}

/// 1000 connections that each echo a few bytes, all held open until every one has echoed, so the
/// link really carries 1000 streams at once.
/// Both sides of every connection live in this process, plus a few dozen other descriptors.
func requireDescriptors(for count: Int) throws {
    var limit = rlimit()
    #if canImport(Glibc)
    getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
    #else
    getrlimit(RLIMIT_NOFILE, &limit)
    #endif
    if limit.rlim_cur < rlim_t(2 * count + 100) {
        throw BenchError("the open-file limit is \(limit.rlim_cur); \(count) streams need about \(2 * count + 100) here "
            + "(and \(count + 100) in S and C): raise it with ulimit -n")
    }
}

private func streams1000(_ run: BenchRun) throws {
    let count = 1000
    try requireDescriptors(for: count)
    let rig = try run.rig()
    let size = run.settings.quick ? 4 : 16
    let port = rig.clientPort
    let ioTimeout = max(run.settings.ioTimeout, 60)
    let barrier = NSCondition()
    let settled = Locked(0)
    let deadline = BenchClock.deadline(after: run.settings.lineSeconds(count * (size + 64)) * 4 + 60)
    let started = BenchClock.now()
    let echoedAt = Locked<[UInt64]>([])
    let outcomes = benchParallel(count, name: "bench conn") { index -> (error: String, refused: Bool)? in
        let failure = BenchClient.shortEcho(port: port, size: size, salt: UInt32(index), ioTimeout: ioTimeout) {
            // Echoed: hold the connection open until every other one has echoed (or failed).
            echoedAt.withLock { $0.append(BenchClock.now()) }
            barrier.lock()
            settled.withLock { $0 += 1 }
            barrier.broadcast()
            while settled.current < count && BenchClock.now() < deadline {
                _ = barrier.wait(until: Date(timeIntervalSinceNow: 0.5))
            }
            barrier.unlock()
        }
        if failure != nil {
            barrier.lock()
            settled.withLock { $0 += 1 }
            barrier.broadcast()
            barrier.unlock()
        }
        return failure
    }
    let failures = outcomes.compactMap { $0 ?? nil }
    let refused = failures.filter(\.refused).count
    let completed = count - failures.count
    let lastEcho = echoedAt.current.max() ?? started
    run.check("connections echoed while all open", completed == count,
              measured: "\(completed)/\(count)" + (failures.first.map { " (first failure: \($0.error))" } ?? ""),
              target: "\(count)/\(count)")
    run.check("connections refused or reset", refused == 0, measured: "\(refused)", target: "0")
    run.info("time until all had echoed", String(format: "%.1f s", BenchClock.seconds(lastEcho - started)),
             value: BenchClock.seconds(lastEcho - started), unit: "s")
    run.details["echoBytesPerConnection"] = Double(size)
    run.details["targetConnectionsAccepted"] = Double(rig.target.accepted)
}

// MARK: - Latency

/// Back-to-back 1-byte round trips on an otherwise idle link.
///
/// For comparison, the cable alone is measured first (before S and C open its ends): 16 bytes,
/// about one small frame, written on one end, read on the other and written back.
private func echo(_ run: BenchRun) throws {
    let rig = try run.rig(startForwarders: false)
    let baselineSize = 16
    let baseline = try rawEcho(rig.pathA, rig.pathB, size: baselineSize, count: run.settings.quick ? 50 : 200)
    try rig.startForwarders(settings: run.settings, forwarderBaud: run.settings.forwarderBaud)
    idleEcho(run, rig: rig)
    if !baseline.isEmpty {
        let p50 = BenchStatistics.percentile(baseline, 50)
        let p99 = BenchStatistics.percentile(baseline, 99)
        var text = String(format: "p50 %.2f ms, p99 %.2f ms", p50, p99)
        if run.settings.baud > 0 {
            text += String(format: " (line time %.2f ms)", Double(2 * baselineSize) / run.settings.lineRate * 1000)
        }
        run.info("cable alone, 16 B each way", text, value: p50, unit: "ms")
        run.details["cableAloneP50Milliseconds"] = p50
        run.details["cableAloneP99Milliseconds"] = p99
    }
}

/// The `echo` scenario's measurement on `rig`, whose S and C are up: 1000 back-to-back 1-byte
/// round trips (200 under `--quick`) and the line bytes each cost, reported under metrics that
/// begin with `prefix`, with the echo's targets (p50 ≤ 5 ms, p99 ≤ 10 ms) unless `targets` is
/// false. Returns the round trips and the line bytes per round trip (nil if none came back).
@discardableResult
func idleEcho(_ run: BenchRun, rig: BenchRig, prefix: String = "",
              targets: Bool = true) -> (outcome: EchoOutcome, lineBytesPerTrip: Double?) {
    let count = run.settings.quick ? 200 : 1000
    let carriedBefore = rig.cableBytesCarried
    let outcome = BenchClient.echoRoundTrips(port: rig.clientPort, count: count + 1, interval: 0,
                                             ioTimeout: run.settings.ioTimeout, deadline: BenchClock.deadline(after: 120))
    let carried = Double(rig.cableBytesCarried - carriedBefore)
    reportEcho(run, outcome, expected: count, p50Limit: targets ? 5 : nil, p99Limit: targets ? 10 : nil, prefix: prefix)
    guard !outcome.milliseconds.isEmpty else { return (outcome, nil) }
    let perTrip = carried / Double(outcome.milliseconds.count + 1)
    var text = String(format: "%.1f B both ways", perTrip)
    if run.settings.baud > 0 {
        text += String(format: " = %.2f ms of line time", perTrip / run.settings.lineRate * 1000)
    }
    run.info("\(prefix)line bytes per round trip", text, value: perTrip, unit: "B")
    run.details["\(prefix)lineBytesPerRoundTrip"] = perTrip
    return (outcome, perTrip)
}

/// Round trips through the cable alone: `size` bytes written on end A are read on end B and
/// written back. Returns the round-trip times in milliseconds.
private func rawEcho(_ pathA: String, _ pathB: String, size: Int, count: Int) throws -> [Double] {
    let a = open(pathA, O_RDWR | O_NOCTTY | O_CLOEXEC)
    let b = open(pathB, O_RDWR | O_NOCTTY | O_CLOEXEC)
    defer {
        if a >= 0 { close(a) }
        if b >= 0 { close(b) }
    }
    guard a >= 0, b >= 0 else { throw BenchError("cannot open the cable's ends: \(errnoText(errno))") }
    /// Reads exactly `size` bytes, waiting at most a second for each; false on failure.
    @Sendable func readFully(_ fd: Int32, into buffer: inout [UInt8]) -> Bool {
        var got = 0
        while got < size {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 1000) > 0 else { return false }
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + got, size - got) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            got += n
        }
        return true
    }
    let echoer = BenchThread("bench raw echo") {
        var buffer = [UInt8](repeating: 0, count: size)
        for _ in 0..<count {
            guard readFully(b, into: &buffer) else { return }
            guard write(b, buffer, size) == size else { return }
        }
    }
    var samples: [Double] = []
    var message = [UInt8](repeating: 0, count: size)
    var reply = [UInt8](repeating: 0, count: size)
    for i in 0..<count {
        for j in 0..<size { message[j] = UInt8(truncatingIfNeeded: i &* 7 &+ j) }
        let started = BenchClock.now()
        guard write(a, message, size) == size, readFully(a, into: &reply), reply == message else { break }
        samples.append(Double(BenchClock.now() - started) / 1e6)
    }
    echoer.join(deadline: BenchClock.deadline(after: 2))
    return samples
}

/// The rows of a run of round trips; every metric and detail begins with `prefix`. A percentile
/// without a limit is reported, not judged.
private func reportEcho(_ run: BenchRun, _ outcome: EchoOutcome, expected: Int?, p50Limit: Double?, p99Limit: Double?,
                        prefix: String = "") {
    let samples = outcome.milliseconds
    let complete = expected.map { samples.count >= $0 } ?? !samples.isEmpty
    run.check("\(prefix)echoes returned unchanged", outcome.error == nil && outcome.mismatches == 0 && complete,
              measured: "\(samples.count) round trips, \(outcome.mismatches) wrong" + (outcome.error.map { " (\($0))" } ?? ""),
              target: expected.map { "\($0), 0 wrong" } ?? "0 wrong")
    guard !samples.isEmpty else { return }
    let p50 = BenchStatistics.percentile(samples, 50)
    let p99 = BenchStatistics.percentile(samples, 99)
    for (label, value, limit) in [("p50", p50, p50Limit), ("p99", p99, p99Limit)] {
        if let limit {
            run.atMost("\(prefix)round trip \(label)", value, limit: limit, unit: "ms")
        } else {
            run.info("\(prefix)round trip \(label)", String(format: "%.2f ms", value), value: value, unit: "ms")
        }
    }
    run.info("\(prefix)round trip max", String(format: "%.2f ms", samples.max() ?? 0), value: samples.max(), unit: "ms")
    run.details["\(prefix)samples"] = Double(samples.count)
    run.details["\(prefix)p50Milliseconds"] = p50
    run.details["\(prefix)p90Milliseconds"] = BenchStatistics.percentile(samples, 90)
    run.details["\(prefix)p99Milliseconds"] = p99
    run.details["\(prefix)maxMilliseconds"] = samples.max()
    run.details["\(prefix)meanMilliseconds"] = samples.reduce(0, +) / Double(samples.count)
}

/// Echo round trips on one stream, about ten a second like keystrokes (100 ms apart), while
/// another carries bulk both ways.
private func echoUnderLoad(_ run: BenchRun) throws {
    let rig = try run.rig()
    let size = run.settings.size(full: 200 << 10, quick: 12 << 10)
    let settings = run.settings
    let (port, target, id) = (rig.clientPort, rig.target, run.newID())
    let bulkDone = Locked(false)
    let bulkResult = Locked<TransferOutcome?>(nil)
    let bulk = BenchThread("bench bulk") {
        let outcome = BenchClient.transfer(port: port, target: target, id: id, up: size, down: size,
                                           ioTimeout: settings.ioTimeout, deadline: settings.deadline(bytes: size))
        bulkResult.withLock { $0 = outcome }
        bulkDone.withLock { $0 = true }
    }
    // Give the bulk transfer a moment to fill the queues, so every sample sees a loaded line.
    let loaded = BenchClock.deadline(after: 0.3)
    while BenchClock.now() < loaded && !bulkDone.current { BenchClock.sleep(seconds: 0.01) }
    let outcome = BenchClient.echoRoundTrips(port: port, count: Int.max, interval: 0.1, ioTimeout: settings.ioTimeout,
                                             deadline: settings.deadline(bytes: size)) { !bulkDone.current }
    bulk.join()
    run.stopRigs()
    let both = bulkResult.current ?? TransferOutcome(id: id, error: "did not run")
    // Issue 11, §3: half the latency of before under load, and bulk still nearly the line's.
    reportEcho(run, outcome, expected: nil, p50Limit: 30, p99Limit: 50)
    run.checkIntact("bulk up: bytes intact", both.up, error: both.error)
    run.checkIntact("bulk down: bytes intact", both.down, error: both.error)
    run.throughput("bulk up: throughput / line rate", bytesPerSecond: both.up?.bytesPerSecond ?? 0, atLeast: 0.97)
    run.lineUse("bulk up: line use (echoes included)", rig: run.name, aToB: false, payload: size,
                seconds: both.up?.seconds ?? 0)
    run.throughput("bulk down: throughput / line rate", bytesPerSecond: both.down?.bytesPerSecond ?? 0, atLeast: 0.97)
    run.lineUse("bulk down: line use (echoes included)", rig: run.name, aToB: true, payload: size,
                seconds: both.down?.seconds ?? 0)
}

// MARK: - Back-pressure

/// A download nobody reads next to one that runs. The stuck stream must neither slow the other
/// nor make either end buffer without limit.
private func stalledReader(_ run: BenchRun) throws {
    let rig = try run.rig()
    let size = run.settings.size(full: 150 << 10, quick: 12 << 10)
    let carriedBefore = rig.cableBytesCarried
    let stalled = try BenchClient.openStalled(port: rig.clientPort, id: run.newID(), ioTimeout: run.settings.ioTimeout)
    defer { close(stalled) }
    // The stuck stream may first use its credit (the window the protocol grants every stream)
    // and fill the buffers below C; measured is what comes after, when it is truly stuck. Under
    // --quick there is no time for that, so the figure then includes the transient.
    if run.settings.quick || run.settings.baud == 0 {
        BenchClock.sleep(seconds: 0.5)
    } else {
        let settled = rig.waitForQuietLine(below: 0.05 * run.settings.lineRate, window: 0.5,
                                           deadline: BenchClock.deadline(after: 30))
        let carried = Double(rig.cableBytesCarried - carriedBefore)
        if let settled {
            run.info("stuck stream stopped using the line after",
                     String(format: "%.1f s, %.0f line bytes", settled, carried), value: settled, unit: "s")
        } else {
            run.info("stuck stream stopped using the line after",
                     String(format: "still busy after 30 s (%.0f line bytes)", carried))
        }
        run.details["stuckStreamSettleSeconds"] = settled
        run.details["stuckStreamLineBytes"] = carried
    }
    let before = rig.samples()

    // Sample both ends while the other stream runs, to catch growth as it happens.
    let peaks = Locked<(server: Int, client: Int)>((0, 0))
    let sampling = Locked(true)
    let sampler = BenchThread("bench sampler") { [rig] in
        while sampling.current {
            let now = rig.samples()
            peaks.withLock {
                $0.server = max($0.server, now.server?.peakRSSKiB ?? 0)
                $0.client = max($0.client, now.client?.peakRSSKiB ?? 0)
            }
            BenchClock.sleep(seconds: 0.2)
        }
    }
    let other = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID(), up: 0, down: size,
                                     ioTimeout: run.settings.ioTimeout, deadline: run.settings.deadline(bytes: size))
    let after = rig.samples()
    sampling.withLock { $0 = false }
    sampler.join()
    run.checkIntact("other stream: bytes intact", other.down, error: other.error)
    run.throughput("other stream: throughput / line rate", bytesPerSecond: other.down?.bytesPerSecond ?? 0, atLeast: 0.9)
    let peakS = max(peaks.current.server, after.server?.peakRSSKiB ?? 0)
    let peakC = max(peaks.current.client, after.client?.peakRSSKiB ?? 0)
    run.atMost("S peak RSS (VmHWM)", ProcessSample.megabytes(peakS), limit: BenchLimits.stalledPeakMB, unit: "MB",
               format: "%.1f")
    run.atMost("C peak RSS (VmHWM)", ProcessSample.megabytes(peakC), limit: BenchLimits.stalledPeakMB, unit: "MB",
               format: "%.1f")
    let growthS = Double((after.server?.rssKiB ?? 0) - (before.server?.rssKiB ?? 0)) * 1024 / 1e6
    let growthC = Double((after.client?.rssKiB ?? 0) - (before.client?.rssKiB ?? 0)) * 1024 / 1e6
    run.info("RSS growth during the transfer", String(format: "S %+.1f MB, C %+.1f MB", growthS, growthC))
    run.details["sRSSBeforeKiB"] = Double(before.server?.rssKiB ?? 0)
    run.details["cRSSBeforeKiB"] = Double(before.client?.rssKiB ?? 0)
    run.details["sRSSAfterKiB"] = Double(after.server?.rssKiB ?? 0)
    run.details["cRSSAfterKiB"] = Double(after.client?.rssKiB ?? 0)
}

enum BenchLimits {
    /// Private (anonymous) memory of an idle end.
    static let idlePrivateMB = 3.0
    /// Peak resident memory of one end with a stream nobody reads: the idle figure plus room for
    /// one stream's windows and the socket buffers' worth of user-space copies. Anything that
    /// grows with the amount the stuck stream offers blows through this within seconds.
    static let stalledPeakMB = 32.0
}

/// 200 short connections (connect, echo 4 bytes, close), 20 at a time.
private func churn(_ run: BenchRun) throws {
    let rig = try run.rig()
    let total = 200
    let port = rig.clientPort
    let ioTimeout = run.settings.ioTimeout
    let (failures, elapsed, times) = churnConnections(total: total, parallel: 20, name: "bench churn") { index in
        BenchClient.shortEcho(port: port, size: 4, salt: UInt32(index), ioTimeout: ioTimeout)?.error
    }
    run.stopRigs()
    run.check("connections echoed", failures.isEmpty,
              measured: "\(total - failures.count)/\(total)" + (failures.first.map { " (\($0))" } ?? ""),
              target: "\(total)/\(total)")
    run.atLeast("connection rate", Double(total - failures.count) / elapsed, limit: 380, unit: "conn/s", format: "%.0f")
    if !times.isEmpty {
        run.info("connect-to-echo time", String(format: "p50 %.1f ms, p99 %.1f ms",
                                                BenchStatistics.percentile(times, 50), BenchStatistics.percentile(times, 99)))
        run.details["p50Milliseconds"] = BenchStatistics.percentile(times, 50)
        run.details["p99Milliseconds"] = BenchStatistics.percentile(times, 99)
    }
    reportLineBytes(run, connections: total, elapsed: elapsed)
}

/// What each connection of a churn cost the line, each way, and how busy the line was.
private func reportLineBytes(_ run: BenchRun, connections total: Int, elapsed: Double) {
    if let counters = run.rigReports[run.name]?.cableCounters, run.settings.baud > 0 {
        let up = Double(counters.bToA["sent"] ?? 0), down = Double(counters.aToB["sent"] ?? 0)
        run.info("line bytes per connection", String(format: "%.1f C->S, %.1f S->C (line busy %.0f%% / %.0f%%)",
                                                     up / Double(total), down / Double(total),
                                                     up / (elapsed * run.settings.lineRate) * 100,
                                                     down / (elapsed * run.settings.lineRate) * 100))
    }
    run.details["seconds"] = elapsed
}

// MARK: - Faults

/// Bulk up, then down, with bits flipped at `ber` on the line.
private func bitErrors(_ run: BenchRun, ber: Double, target: Double) throws {
    let size = run.settings.size(full: 100 << 10, quick: 8 << 10)
    let cable = ["--ber", "\(ber)"]
    let up = try oneWay(run, label: "\(run.name)-up", up: true, size: size, cable: cable, atLeast: 0.1)
    let down = try oneWay(run, label: "\(run.name)-down", up: false, size: size, cable: cable, atLeast: 0.1)
    run.checkIntact("up: bytes intact", up.up, error: up.error)
    run.checkIntact("down: bytes intact", down.down, error: down.error)
    run.throughput("up: throughput / line rate", bytesPerSecond: up.up?.bytesPerSecond ?? 0, atLeast: target)
    run.lineUse("up: line use", rig: "\(run.name)-up", aToB: false, payload: size, seconds: up.up?.seconds ?? 0)
    run.throughput("down: throughput / line rate", bytesPerSecond: down.down?.bytesPerSecond ?? 0, atLeast: target)
    run.lineUse("down: line use", rig: "\(run.name)-down", aToB: true, payload: size, seconds: down.down?.seconds ?? 0)
    for (label, key) in [("up", "\(run.name)-up"), ("down", "\(run.name)-down")] {
        if let counters = run.rigReports[key]?.cableCounters {
            let flipped = (counters.aToB["bits-flipped"] ?? 0) + (counters.bToA["bits-flipped"] ?? 0)
            run.details["\(label): bits flipped"] = Double(flipped)
        }
    }
    run.details["ber"] = ber
    run.details["bytes"] = Double(size)
}

/// Junk bursts and dropped bytes in both directions while bulk runs both ways.
private func faults(_ run: BenchRun) throws {
    let rig = try run.rig(cable: ["--junk", "2e-4", "--drop", "2e-4"])
    let size = run.settings.size(full: 64 << 10, quick: 8 << 10)
    let both = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID(), up: size, down: size,
                                    ioTimeout: run.settings.ioTimeout,
                                    deadline: run.settings.deadline(bytes: size, atLeast: 0.05))
    run.checkIntact("up: bytes intact", both.up, error: both.error)
    run.checkIntact("down: bytes intact", both.down, error: both.error)
    run.stopRigs()
    run.throughput("up: throughput / line rate", bytesPerSecond: both.up?.bytesPerSecond ?? 0, atLeast: nil)
    run.throughput("down: throughput / line rate", bytesPerSecond: both.down?.bytesPerSecond ?? 0, atLeast: nil)
    if let counters = run.rigReports[run.name]?.cableCounters {
        let dropped = (counters.aToB["dropped"] ?? 0) + (counters.bToA["dropped"] ?? 0)
        let junk = (counters.aToB["junk"] ?? 0) + (counters.bToA["junk"] ?? 0)
        run.info("faults the cable injected", "\(dropped) bytes dropped, \(junk) junk bytes")
        run.details["bytesDropped"] = Double(dropped)
        run.details["junkBytes"] = Double(junk)
    }
}

/// A download with a 3 s outage of the cable in the middle of it.
private func outage(_ run: BenchRun) throws {
    let outageStart = run.settings.quick ? 4.0 : 6.0
    let outageSeconds = 3.0
    let rig = try run.rig(cable: ["--outage", "\(outageStart):\(outageSeconds)"])
    let size = run.settings.size(full: 100 << 10, quick: 16 << 10)
    // Start so that the outage falls a while into the transfer (readiness usually takes ~1 s).
    let lead = min(1.0, run.settings.lineSeconds(size) / 3)
    let wait = outageStart - lead - rig.cableSeconds
    if wait > 0 { BenchClock.sleep(seconds: wait) }
    let startedAt = rig.cableSeconds
    let down = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID(), up: 0, down: size,
                                    ioTimeout: run.settings.ioTimeout,
                                    deadline: BenchClock.deadline(after: 60 + run.settings.lineSeconds(size) * 4))
    let endedAt = rig.cableSeconds
    run.checkIntact("download across the outage: bytes intact", down.down, error: down.error)
    run.stopRigs()
    let lost = run.rigReports[run.name]?.cableCounters.map { ($0.aToB["outage-lost"] ?? 0) + ($0.bToA["outage-lost"] ?? 0) } ?? 0
    let overlapped = startedAt < outageStart + outageSeconds && endedAt > outageStart
    run.check("the outage hit the transfer", overlapped && lost > 0,
              measured: String(format: "transfer %.1f-%.1f s, outage %.0f-%.0f s, %d line bytes lost",
                               startedAt, endedAt, outageStart, outageStart + outageSeconds, Int(lost)),
              target: "overlap, bytes lost")
    if let seconds = down.down?.seconds {
        run.info("download time (line alone would take)",
                 String(format: "%.1f s (%.1f s + %.0f s outage)", seconds, run.settings.lineSeconds(size), outageSeconds),
                 value: seconds, unit: "s")
    }
    run.details["outageLostBytes"] = Double(lost)
}

// MARK: - CPU-bound

/// Unpaced cable: first a raw copy from one pty to the other with nobody else on the cable, then
/// the same amount through socket2ser each way, so the two figures share the cable and the run.
private func unpaced(_ run: BenchRun) throws {
    let size = run.settings.quick ? 4 << 20 : 50 << 20
    let rig = try run.rig(cable: ["--baud", "0"], startForwarders: false)
    // Raw copies before and after socket2ser, each direction: two CPUs shared by the cable, the
    // kernel's pty work, S, C and the bench make a CPU-bound rate drift by tens of percent over a
    // few seconds, and bracketing the measurement cancels most of that drift from the ratio.
    let rawABBefore = try rawCopy(from: rig.pathA, to: rig.pathB, bytes: size, seed: run.settings.seed)
    let rawBABefore = try rawCopy(from: rig.pathB, to: rig.pathA, bytes: size, seed: run.settings.seed)
    // The forwarders must not pace themselves to a line rate here (the ceiling is reported below).
    let unpacedOption = try rig.startUnpacedForwarders(settings: run.settings)
    run.info("forwarders' line model", unpacedOption
        ? "--unpaced" : "\(BenchSettings.fastestForwarderBaud) baud = \(BenchSettings.fastestForwarderBaud / 10 / 1000) kB/s ceiling (no --unpaced option)")
    let deadline = BenchClock.deadline(after: 120 + Double(size) / 1e5)
    let up = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID(), up: size, down: 0,
                                  ioTimeout: run.settings.ioTimeout, deadline: deadline)
    let down = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID(), up: 0, down: size,
                                    ioTimeout: run.settings.ioTimeout, deadline: deadline)
    let samples = rig.stopForwarders()
    let rawBAAfter = try rawCopy(from: rig.pathB, to: rig.pathA, bytes: size, seed: run.settings.seed)
    let rawABAfter = try rawCopy(from: rig.pathA, to: rig.pathB, bytes: size, seed: run.settings.seed)
    run.checkIntact("up: bytes intact", up.up, error: up.error)
    run.checkIntact("down: bytes intact", down.down, error: down.error)
    let raws = [rawABBefore, rawBABefore, rawBAAfter, rawABAfter]
    run.check("raw copies intact", raws.allSatisfy(\.intact),
              measured: raws.map { $0.intact ? "ok" : "BAD" }.joined(separator: ", "), target: "ok")
    // S is on end A, C on end B: up (client to target) crosses B->A, down crosses A->B.
    let pairs: [(String, DirectionOutcome?, RawCopy, RawCopy)] = [("up", up.up, rawBABefore, rawBAAfter),
                                                                 ("down", down.down, rawABBefore, rawABAfter)]
    for (label, direction, before, after) in pairs {
        let rate = direction?.bytesPerSecond ?? 0
        let raw = (before.bytesPerSecond + after.bytesPerSecond) / 2
        run.info("\(label): raw pty copy", String(format: "%.2f MB/s (%.2f before, %.2f after)", raw / 1e6,
                                                  before.bytesPerSecond / 1e6, after.bytesPerSecond / 1e6),
                 value: raw / 1e6, unit: "MB/s")
        run.info("\(label): socket2ser", String(format: "%.2f MB/s", rate / 1e6), value: rate / 1e6, unit: "MB/s")
        run.atLeast("\(label): socket2ser / raw copy", raw > 0 ? rate / raw : 0, limit: 0.6, unit: "", format: "%.3f")
    }
    run.details["bytes"] = Double(size)
    run.details["sCPUSeconds"] = samples.server?.cpuSeconds
    run.details["cCPUSeconds"] = samples.client?.cpuSeconds
    run.details["cableCPUSeconds"] = rig.cable.sample()?.cpuSeconds
}

struct RawCopy: Sendable {
    var bytesPerSecond: Double
    var intact: Bool
}

/// Writes `bytes` to one end of the cable and reads them from the other, no socket2ser involved.
private func rawCopy(from source: String, to destination: String, bytes: Int, seed: UInt64) throws -> RawCopy {
    let writer = open(source, O_WRONLY | O_NOCTTY | O_CLOEXEC)
    let reader = open(destination, O_RDONLY | O_NOCTTY | O_CLOEXEC)
    defer {
        if writer >= 0 { close(writer) }
        if reader >= 0 { close(reader) }
    }
    guard writer >= 0, reader >= 0 else { throw BenchError("cannot open the cable's ends: \(errnoText(errno))") }
    try discardUntilQuiet(reader)
    let payload = BenchPayload(seed: seed, connection: 0, direction: 9)
    let failed = Locked<String?>(nil)
    let started = BenchClock.now()
    let thread = BenchThread("bench raw writer") {
        var block: [UInt8] = []
        var offset = 0
        while offset < bytes {
            payload.fill(block: offset / BenchPayload.blockSize, into: &block)
            let count = min(block.count, bytes - offset)
            let ok = block.withUnsafeBytes { raw -> Bool in
                var done = 0
                while done < count {
                    let n = write(writer, raw.baseAddress! + done, count - done)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { return false }
                    done += n
                }
                return true
            }
            if !ok {
                failed.withLock { $0 = "write: \(errnoText(errno))" }
                return
            }
            offset += count
        }
    }
    var verifier = PayloadVerifier(payload: payload, total: bytes)
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    let deadline = BenchClock.deadline(after: 120)
    while !verifier.isComplete && BenchClock.now() < deadline {
        var pfd = pollfd(fd: reader, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 1000) > 0 else {
            if failed.current != nil { break }
            continue
        }
        let n = buffer.withUnsafeMutableBytes { read(reader, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        buffer.withUnsafeBytes { verifier.consume(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }
    thread.join(deadline: BenchClock.deadline(after: 5))
    let seconds = BenchClock.seconds(verifier.lastReceivedAt > started ? verifier.lastReceivedAt - started : 1)
    return RawCopy(bytesPerSecond: Double(verifier.received) / seconds,
                   intact: verifier.received == bytes && verifier.corrupt == 0)
}

/// Reads and drops whatever is still arriving (the forwarders' last frames), until nothing has
/// come for 100 ms.
private func discardUntilQuiet(_ fd: CInt) throws {
    var buffer = [UInt8](repeating: 0, count: 64 << 10)
    let deadline = BenchClock.deadline(after: 10)
    while BenchClock.now() < deadline {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 100) > 0 else { return }
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
    }
    throw BenchError("the cable did not fall quiet before a raw copy")
}

// MARK: - Memory

/// Resident memory of both ends once the link is up and idle.
private func idleMemory(_ run: BenchRun) throws {
    let rig = try run.rig()
    BenchClock.sleep(seconds: run.settings.quick ? 1 : 3)
    let samples = rig.samples()
    guard let server = samples.server, let client = samples.client else {
        run.fail("resident memory", "S or C is not running")
        return
    }
    // The target is private memory (issue 11): the file-backed part is the executable's pages,
    // shared through the page cache by every socket2ser process on the machine, and grows with
    // the size of the binary rather than with what an end holds. Both are reported.
    run.atMost("S idle private memory (RssAnon)", ProcessSample.megabytes(server.rssAnonKiB),
               limit: BenchLimits.idlePrivateMB, unit: "MB", format: "%.1f")
    run.atMost("C idle private memory (RssAnon)", ProcessSample.megabytes(client.rssAnonKiB),
               limit: BenchLimits.idlePrivateMB, unit: "MB", format: "%.1f")
    for (end, sample) in [("S", server), ("C", client)] {
        run.info("\(end) idle RSS (VmRSS)", String(format: "%.1f MB, of which file-backed %.1f MB",
                                                ProcessSample.megabytes(sample.rssKiB),
                                                ProcessSample.megabytes(sample.rssFileKiB)))
    }
    if let cable = rig.cable.sample() {
        run.info("cable process RSS (same binary, no NIO)", String(format: "%.1f MB", ProcessSample.megabytes(cable.rssKiB)))
    }
    run.details["sPeakRSSKiB"] = Double(server.peakRSSKiB)
    run.details["cPeakRSSKiB"] = Double(client.peakRSSKiB)
    run.details["sRSSAnonKiB"] = Double(server.rssAnonKiB)
    run.details["sRSSFileKiB"] = Double(server.rssFileKiB)
}

// MARK: - Forwards (-L, -R, -D)

/// Starts S and C with one extra forward of `kind` to the target and returns the port a client
/// uses for it, once it carries an echo.
private func forwardRig(_ run: BenchRun, kind: String) throws -> (rig: BenchRig, port: Int, socks: Bool) {
    let rig = try run.rig(startForwarders: false)
    let port = try BenchSocket.freePort()
    let target = rig.target.port
    switch kind {
    case "-L":
        try rig.startForwarders(settings: run.settings, forwarderBaud: run.settings.forwarderBaud,
                                clientExtra: ["-L", "\(port):127.0.0.1:\(target)"])
    case "-R":
        try rig.startForwarders(settings: run.settings, forwarderBaud: run.settings.forwarderBaud,
                                serverExtra: ["-R", "127.0.0.1:\(port):127.0.0.1:\(target)"],
                                clientExtra: ["--allow-listen", "127.0.0.1:\(port)"])
    default:
        try rig.startForwarders(settings: run.settings, forwarderBaud: run.settings.forwarderBaud,
                                clientExtra: ["-D", "\(port)"])
    }
    let socks = kind == "-D"
    let deadline = BenchClock.deadline(after: 30)
    var ready = false
    while !ready && BenchClock.now() < deadline {
        ready = BenchClient.shortEcho(port: port, size: 1, salt: 9, ioTimeout: 3, socksTarget: socks ? target : nil) == nil
        if !ready { BenchClock.sleep(seconds: 0.05) }
    }
    guard ready else { throw BenchError("the \(kind) forward did not carry an echo within 30 s") }
    return (rig, port, socks)
}

/// One stream up, then one down, through a forward of `kind`: the figure issue 9 asks of every
/// kind of forward (≥ 0.99 of the line rate).
private func forwardBulk(_ run: BenchRun, kind: String) throws {
    let size = run.settings.size(full: 200 << 10, quick: 16 << 10)
    let (rig, port, socks) = try forwardRig(run, kind: kind)
    let deadline = run.settings.deadline(bytes: size, atLeast: 0.25)
    let up = BenchClient.transfer(port: port, target: rig.target, id: run.newID(), up: size, down: 0,
                                  ioTimeout: run.settings.ioTimeout, deadline: deadline, socks: socks)
    let down = BenchClient.transfer(port: port, target: rig.target, id: run.newID(), up: 0, down: size,
                                    ioTimeout: run.settings.ioTimeout, deadline: run.settings.deadline(bytes: size, atLeast: 0.25),
                                    socks: socks)
    run.stopRigs()
    run.checkIntact("up: bytes intact", up.up, error: up.error)
    run.checkIntact("down: bytes intact", down.down, error: down.error)
    run.throughput("up: throughput / line rate", bytesPerSecond: up.up?.bytesPerSecond ?? 0, atLeast: 0.99)
    run.throughput("down: throughput / line rate", bytesPerSecond: down.down?.bytesPerSecond ?? 0, atLeast: 0.99)
    run.details["bytes"] = Double(size)
}

/// 200 short echo connections through a SOCKS5 proxy, 20 at a time. Each SOCKS connect costs the
/// OPEN's round trip and nothing more (the reply waits for OPEN-OK).
private func socksChurn(_ run: BenchRun) throws {
    let (rig, port, _) = try forwardRig(run, kind: "-D")
    let target = rig.target.port
    let total = 200
    let ioTimeout = run.settings.ioTimeout
    let (failures, elapsed, _) = churnConnections(total: total, parallel: 20, name: "bench socks churn") { index in
        BenchClient.shortEcho(port: port, size: 4, salt: UInt32(index), ioTimeout: ioTimeout, socksTarget: target)?.error
    }
    run.stopRigs()
    run.check("connections echoed", failures.isEmpty,
              measured: "\(total - failures.count)/\(total)" + (failures.first.map { " (\($0))" } ?? ""),
              target: "\(total)/\(total)")
    run.atLeast("connection rate through -D", Double(total - failures.count) / elapsed, limit: 400, unit: "conn/s",
                format: "%.0f")
    reportLineBytes(run, connections: total, elapsed: elapsed)
}

/// Runs `total` short connections, `parallel` at a time; `connect(index)` returns nil on success
/// or why it failed. Returns the failures, the seconds it took, and each success's milliseconds.
private func churnConnections(total: Int, parallel: Int, name: String,
                              _ connect: @escaping @Sendable (Int) -> String?) -> ([String], Double, [Double]) {
    let next = Locked(0)
    let durations = Locked<[Double]>([])
    let started = BenchClock.now()
    let results = benchParallel(parallel, name: name) { _ -> [String] in
        var failures: [String] = []
        while true {
            let index = next.withLock { value -> Int in
                value += 1
                return value
            }
            if index > total { return failures }
            let began = BenchClock.now()
            if let failure = connect(index) {
                failures.append(failure)
            } else {
                let milliseconds = Double(BenchClock.now() - began) / 1e6
                durations.withLock { $0.append(milliseconds) }
            }
        }
    }
    let elapsed = BenchClock.seconds(BenchClock.now() - started)
    return (results.flatMap { $0 ?? ["did not run"] }, elapsed, durations.current)
}

/// Line bytes per second of an idle link: a plain S and C, then the same with a -L and a -D at C
/// and a -R at S. Forwards that carry nothing must cost nothing beyond the keepalive.
private func idleForwards(_ run: BenchRun) throws {
    let window = run.settings.quick ? 2.0 : 6.0
    func idleRate(_ rig: BenchRig) -> Double {
        BenchClock.sleep(seconds: 1)  // the handshake's PINGs and the readiness echo are done
        let before = rig.cableBytesCarried
        let started = BenchClock.now()
        BenchClock.sleep(seconds: window)
        return Double(rig.cableBytesCarried - before) / BenchClock.seconds(BenchClock.now() - started)
    }
    let plain = try run.rig(label: "idle-plain")
    let plainRate = idleRate(plain)
    run.stopRigs()

    let rig = try run.rig(label: "idle-forwards", startForwarders: false)
    let target = rig.target.port
    let local = try BenchSocket.freePort(), remote = try BenchSocket.freePort(), socks = try BenchSocket.freePort()
    try rig.startForwarders(settings: run.settings, forwarderBaud: run.settings.forwarderBaud,
                            serverExtra: ["-R", "127.0.0.1:\(remote):127.0.0.1:\(target)"],
                            clientExtra: ["-L", "\(local):127.0.0.1:\(target)", "-D", "\(socks)",
                                          "--allow-listen", "127.0.0.1:\(remote)"])
    try BenchClient.waitUntilReady(port: remote, deadline: BenchClock.deadline(after: 30))
    let forwardsRate = idleRate(rig)
    run.stopRigs()
    run.info("idle line, plain S and C", String(format: "%.1f line B/s (both directions)", plainRate))
    run.atMost("idle line with -L, -R, -D", forwardsRate, limit: plainRate * 1.1 + 2, unit: "B/s", format: "%.1f")
    run.details["plainBytesPerSecond"] = plainRate
    run.details["forwardsBytesPerSecond"] = forwardsRate
}

// MARK: - Many lines in one process (`run --config`)

/// 32 lines (4 under `--quick`) over 32 USB-adapter-like cables, served by one `socket2ser run` process whose
/// lines are S ends; a C per cable on the other side. Measures the process idle (CPU share and
/// private memory per line), then one download on every line at once (each line's share of
/// its line rate).
private func manyLines(_ run: BenchRun) throws {
    let count = run.settings.quick ? 4 : 32
    var rigs: [BenchRig] = []
    // The issue's case is a test farm of boards on a USB hub, so the cables hand bytes over as an
    // FTDI adapter does (62 at a time), not as a 16550 UART (8 at a time): with 32 cables the
    // UART model alone keeps both cores of this machine busy with pty work (docs/benchmarks.md).
    for index in 0..<count {
        rigs.append(try run.rig(cable: ["--receive-batch", "62"], label: "line\(index)", startForwarders: false))
    }
    var yaml = "lines:\n"
    for (index, rig) in rigs.enumerated() {
        yaml += "  line\(index):\n    device: \(rig.pathA)\n    baud: \(run.settings.forwarderBaud)\n"
        yaml += "    target: 127.0.0.1:\(rig.target.port)\n"
        if run.settings.baud == 0 { yaml += "    unpaced: true\n" }
    }
    let configPath = "\(run.settings.logDirectory)/lines\(count).yaml"
    try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
    let server = try ChildProcess.bench("run", executable: run.settings.executable, ["run", "--config", configPath],
                                        logPath: "\(run.settings.logDirectory)/lines-run.log")
    defer { server.terminate() }
    var clients: [ChildProcess] = []
    defer { for client in clients { client.terminate() } }
    var ports: [Int] = []
    for (index, rig) in rigs.enumerated() {
        let port = try BenchSocket.freePort()
        ports.append(port)
        var arguments = ["C", "-port", "\(port)", "-com", rig.pathB, "--baudrate", "\(run.settings.forwarderBaud)"]
        if run.settings.baud == 0 { arguments.append("--unpaced") }
        clients.append(try .bench("C\(index)", executable: run.settings.executable, arguments,
                                  logPath: "\(run.settings.logDirectory)/lines-C\(index).log"))
    }
    for port in ports { try BenchClient.waitUntilReady(port: port, deadline: BenchClock.deadline(after: 60)) }

    // Idle: every line up, nothing to carry.
    BenchClock.sleep(seconds: 1)
    let window = run.settings.quick ? 2.0 : 5.0
    guard let before = server.sample() else { throw BenchError("the run process is gone") }
    let started = BenchClock.now()
    BenchClock.sleep(seconds: window)
    guard let after = server.sample() else { throw BenchError("the run process is gone") }
    let cpuShare = (after.cpuSeconds - before.cpuSeconds) / BenchClock.seconds(BenchClock.now() - started)
    run.atMost("idle CPU of the process, \(count) lines", cpuShare * 100, limit: 1, unit: "% of a core", format: "%.2f")
    run.atMost("private memory per line", ProcessSample.megabytes(after.rssAnonKiB) / Double(count), limit: 1, unit: "MB",
               format: "%.2f")
    run.info("process memory", String(format: "anonymous %.1f MB, file-backed %.1f MB",
                                      ProcessSample.megabytes(after.rssAnonKiB), ProcessSample.megabytes(after.rssFileKiB)))

    // Bulk: one download on every line at once.
    let size = run.settings.size(full: 64 << 10, quick: 8 << 10)
    let ids = (0..<count).map { _ in run.newID() }
    let listening = ports, targets = rigs.map(\.target)
    let outcomes = benchParallel(count, name: "bench lines") { index in
        BenchClient.transfer(port: listening[index], target: targets[index], id: ids[index], up: 0, down: size,
                             ioTimeout: run.settings.ioTimeout, deadline: run.settings.deadline(bytes: size, atLeast: 0.25))
    }
    let rates = outcomes.map { $0?.down?.bytesPerSecond ?? 0 }
    let intact = outcomes.filter { $0?.intact == true }.count
    run.check("downloads intact", intact == count, measured: "\(intact)/\(count)", target: "\(count)/\(count)")
    if run.settings.baud > 0 {
        let shares = rates.map { $0 / run.settings.lineRate }
        run.atLeast("slowest line's share of its line rate", shares.min() ?? 0, limit: 0.98, unit: "", format: "%.3f")
        run.info("mean share", String(format: "%.3f", shares.reduce(0, +) / Double(max(1, shares.count))))
    }
    run.details["lines"] = Double(count)
    run.details["idleCPUPercent"] = cpuShare * 100
    run.details["privateMBPerLine"] = ProcessSample.megabytes(after.rssAnonKiB) / Double(count)
    run.stopRigs()
}
