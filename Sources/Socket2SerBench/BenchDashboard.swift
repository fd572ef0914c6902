#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

// MARK: - The dashboard scenario

/// Issue 10: "The dashboard must not cost the link. With a browser open, bulk stays ≥ 0.99 of the
/// line rate at 115200. Report each end's CPU with the page open."
///
/// One rig as `bulk` has (the cable, S and C as child processes), but both ends started with
/// `--ui 0`, each serving its own dashboard, and with XDG_RUNTIME_DIR pointing at a temporary
/// folder so that their token files do not land in the user's home. Each end's page is opened in
/// a headless Chromium of its own, or, when there is no Chromium, by a reader in this process that
/// does what the page does. Once both dashboards have a live subscriber, one stream goes up and
/// then one down (the same transfers as `bulk`, on the same link), with the CPU of S, C and the
/// browser measured over each.
func dashboardScenario(_ run: BenchRun) throws {
    let size = run.settings.size(full: 200 << 10, quick: 16 << 10)
    let scratch = NSTemporaryDirectory() + "socket2ser-bench-dashboard-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let runtime = scratch + "/xdg-runtime"
    try FileManager.default.createDirectory(atPath: runtime, withIntermediateDirectories: true,
                                            attributes: [.posixPermissions: 0o700])

    let rig = try run.rig(startForwarders: false)
    try rig.startForwarders(settings: run.settings, forwarderBaud: run.settings.forwarderBaud,
                            serverExtra: ["--ui", "0"], clientExtra: ["--ui", "0"],
                            environment: ["XDG_RUNTIME_DIR": runtime])
    guard let server = rig.server, let client = rig.client else { throw BenchError("S or C is not running") }
    let announced = BenchClock.deadline(after: 30)
    let ends = [(name: "S", dashboard: try BenchDashboardURL.wait(for: server, deadline: announced)),
                (name: "C", dashboard: try BenchDashboardURL.wait(for: client, deadline: announced))]
    let tokenFiles = ends.compactMap(\.dashboard.tokenPath)
    run.check("token files in the temporary XDG_RUNTIME_DIR",
              tokenFiles.count == ends.count && tokenFiles.allSatisfy {
                  $0.hasPrefix(runtime + "/") && FileManager.default.fileExists(atPath: $0)
              },
              measured: tokenFiles.isEmpty ? "none announced"
                  : tokenFiles.map { $0.replacingOccurrences(of: runtime, with: "$XDG_RUNTIME_DIR") }.joined(separator: ", "),
              target: "both under $XDG_RUNTIME_DIR")

    // Open each end's page.
    // SOCKET2SER_BENCH_PAGE=simulated skips the browser even where there is one (to run the
    // fallback, or on a machine whose Chromium cannot start).
    let forced = ProcessInfo.processInfo.environment["SOCKET2SER_BENCH_PAGE"] == "simulated"
    let chromium = forced ? nil : BenchChromiumPage.executable()
    let pages = chromium.map { BenchPages(mode: "chromium", detail: "a headless \($0) per end") }
        ?? BenchPages(mode: "simulated", detail: (forced ? "SOCKET2SER_BENCH_PAGE=simulated" : "no Chromium found")
            + "; the bench GETs what the page loads and reads /api/live")
    defer { _ = pages.stop() }  // on a throw; stopped (once) explicitly otherwise
    for end in ends {
        if let chromium {
            pages.chromium.append(try BenchChromiumPage(executable: chromium, url: end.dashboard.url,
                                                        profile: "\(scratch)/chromium-\(end.name)", runtime: runtime,
                                                        logPath: "\(run.settings.logDirectory)/\(run.name)-chromium-\(end.name).log"))
        } else {
            pages.simulated.append(try BenchSimulatedPage(port: end.dashboard.port))
        }
    }
    run.info("page", "\(pages.mode): \(pages.detail)")
    run.details["pageChromium"] = pages.mode == "chromium" ? 1 : 0

    let ports = ends.map(\.dashboard.port)
    let subscribed = BenchLiveProbe.waitForSubscribers(ports: ports, timeout: 45, ended: pages.ended)
    run.check("each end's dashboard has a live subscriber", subscribed.allSatisfy { $0.value.found },
              measured: ends.map { "\($0.name) :\($0.dashboard.port) \(subscribed[$0.dashboard.port]?.how ?? "?")" }
                  .joined(separator: "; "),
              target: "S and C")
    guard subscribed.allSatisfy({ $0.value.found }) else {
        throw BenchError("the page did not open the live channel of every end"
            + (pages.mode == "chromium" ? " (Chromium's logs are in \(run.settings.logDirectory))" : ""))
    }
    // Page load and first layout done: wait (polling) until the browser is about idle, so that
    // what the transfers are measured against is an open page, not a starting browser.
    if pages.mode == "chromium" {
        let quiet = pages.waitUntilBrowserQuiet(below: 0.25, window: 0.5, deadline: BenchClock.deadline(after: 20))
        run.details["browserSettleSeconds"] = quiet
    }

    // Bulk, up then down, with every process's CPU over each transfer.
    var cpu: [String: [Double]] = ["S": [], "C": [], "browser": []]
    var outcomes: [TransferOutcome] = []
    for up in [true, false] {
        let before = (s: server.sample()?.cpuSeconds, c: client.sample()?.cpuSeconds, browser: pages.browserCPUSeconds())
        let started = BenchClock.now()
        outcomes.append(BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID(),
                                             up: up ? size : 0, down: up ? 0 : size, ioTimeout: run.settings.ioTimeout,
                                             deadline: run.settings.deadline(bytes: size, atLeast: 0.25)))
        let seconds = BenchClock.seconds(BenchClock.now() - started)
        let after = (s: server.sample()?.cpuSeconds, c: client.sample()?.cpuSeconds, browser: pages.browserCPUSeconds())
        func share(_ a: Double?, _ b: Double?) -> Double { a.flatMap { a in b.map { ($0 - a) / seconds * 100 } } ?? .nan }
        cpu["S"]!.append(share(before.s, after.s))
        cpu["C"]!.append(share(before.c, after.c))
        cpu["browser"]!.append(share(before.browser, after.browser))
        run.details["\(up ? "up" : "down")Seconds"] = seconds
    }
    let stillLive = BenchLiveProbe.waitForSubscribers(ports: ports, timeout: 15, ended: pages.ended)
    let problems = pages.stop()
    run.stopRigs()

    let (up, down) = (outcomes[0], outcomes[1])
    run.checkIntact("up: bytes intact", up.up, error: up.error)
    run.checkIntact("down: bytes intact", down.down, error: down.error)
    run.throughput("up: throughput / line rate, page open", bytesPerSecond: up.up?.bytesPerSecond ?? 0, atLeast: 0.99)
    run.throughput("down: throughput / line rate, page open", bytesPerSecond: down.down?.bytesPerSecond ?? 0, atLeast: 0.99)
    for (key, label) in [("S", "S CPU, page open"), ("C", "C CPU, page open")] {
        let values = cpu[key]!
        run.info(label, String(format: "up %.1f %%, down %.1f %% of a core", values[0], values[1]),
                 value: values.max(), unit: "% of a core")
        run.details["\(key.lowercased())CPUPercentUp"] = values[0]
        run.details["\(key.lowercased())CPUPercentDown"] = values[1]
    }
    if pages.mode == "chromium" {
        let values = cpu["browser"]!
        run.info("browser CPU (both, all their processes)", String(format: "up %.1f %%, down %.1f %% of a core", values[0], values[1]),
                 value: values.max(), unit: "% of a core")
        run.details["browserCPUPercentUp"] = values[0]
        run.details["browserCPUPercentDown"] = values[1]
    }
    run.check("pages still live after the transfers", stillLive.allSatisfy { $0.value.found } && problems.isEmpty,
              measured: problems.isEmpty
                  ? ends.map { "\($0.name) \(stillLive[$0.dashboard.port]?.found == true ? "live" : "gone")" }.joined(separator: ", ")
                  : problems.joined(separator: "; "),
              target: "S and C")
    run.details["bytes"] = Double(size)
}

// MARK: - The URL an end prints

/// `socket2ser: dashboard at http://127.0.0.1:PORT/#token=TOKEN (the token is also in PATH)`,
/// read back from an end's stderr (its log file).
struct BenchDashboardURL: Sendable {
    var url: String
    var port: Int
    var tokenPath: String?

    static func parse(_ text: String) -> BenchDashboardURL? {
        guard let line = text.split(separator: "\n").first(where: { $0.contains("dashboard at http://") }),
              let at = line.range(of: "dashboard at ") else { return nil }
        let url = String(line[at.upperBound...].prefix { $0 != " " })
        // http://HOST:PORT/… : the port is what follows the authority's last colon.
        let authority = url.dropFirst("http://".count).prefix { $0 != "/" }
        guard let colon = authority.lastIndex(of: ":"), let port = Int(authority[authority.index(after: colon)...]) else {
            return nil
        }
        var tokenPath: String?
        if let also = line.range(of: "(the token is also in "), line.hasSuffix(")") {
            tokenPath = String(line[also.upperBound..<line.index(before: line.endIndex)])
        }
        return BenchDashboardURL(url: url, port: port, tokenPath: tokenPath)
    }

    /// Polls the end's log until it has announced its dashboard.
    static func wait(for end: ChildProcess, deadline: UInt64) throws -> BenchDashboardURL {
        guard let log = end.logPath else { throw BenchError("\(end.name)'s stderr is not in a log file") }
        while true {
            if let text = try? String(contentsOfFile: log, encoding: .utf8), let found = parse(text) { return found }
            if let exit = end.exit { throw BenchError("\(end.name) ended (\(exit)) before announcing its dashboard; see \(log)") }
            guard BenchClock.now() < deadline else { throw BenchError("\(end.name) did not announce a dashboard; see \(log)") }
            BenchClock.sleep(seconds: 0.02)
        }
    }
}

// MARK: - Pages

/// The pages open on the ends' dashboards: Chromiums, or simulated ones.
final class BenchPages: @unchecked Sendable {
    // @unchecked: used from the scenario's thread only.
    let mode: String
    let detail: String
    var chromium: [BenchChromiumPage] = []
    var simulated: [BenchSimulatedPage] = []
    private var stopped = false

    init(mode: String, detail: String) {
        self.mode = mode
        self.detail = detail
    }

    /// User + system CPU seconds of every browser process so far; nil for simulated pages (their
    /// reading is done by the bench itself).
    func browserCPUSeconds() -> Double? {
        guard !chromium.isEmpty else { return nil }
        let table = BenchProcessTable.read()
        return chromium.reduce(0) { $0 + table.treeCPUSeconds(root: $1.process.pid) }
    }

    /// Polls the browsers' CPU over `window`-second spans until it is below `below` of a core;
    /// returns how long that took, or nil if it was still busy at the deadline.
    func waitUntilBrowserQuiet(below: Double, window: Double, deadline: UInt64) -> Double? {
        let started = BenchClock.now()
        guard var previous = browserCPUSeconds() else { return nil }
        var previousAt = BenchClock.now()
        while BenchClock.now() < deadline {
            BenchClock.sleep(seconds: window)
            guard let now = browserCPUSeconds() else { return nil }
            let at = BenchClock.now()
            if (now - previous) / BenchClock.seconds(at - previousAt) < below { return BenchClock.seconds(at - started) }
            (previous, previousAt) = (now, at)
        }
        return nil
    }

    /// Why the pages cannot be open any more (a browser has exited), if they cannot.
    func ended() -> String? {
        chromium.first { $0.process.exit != nil }.map { "(chromium exited: \($0.process.exit!))" }
    }

    /// Closes every page; returns what went wrong (a browser that had died, a reader's error).
    func stop() -> [String] {
        guard !stopped else { return [] }
        stopped = true
        return chromium.compactMap { $0.stop() } + simulated.compactMap { $0.stop() }
    }
}

/// A headless Chromium showing one dashboard. It keeps the page's live channel open as long as it
/// runs.
final class BenchChromiumPage: @unchecked Sendable {
    // @unchecked: used from the scenario's thread only.
    let process: ChildProcess

    /// `$CHROME_BIN`, else /usr/bin/chromium, else `chromium` on PATH: the first that is executable.
    static func executable() -> String? {
        let environment = ProcessInfo.processInfo.environment
        let path = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map { "\($0)/chromium" }
        var candidates: [String] = []
        if let bin = environment["CHROME_BIN"], !bin.isEmpty {
            candidates += bin.contains("/") ? [bin] : (environment["PATH"] ?? "").split(separator: ":").map { "\($0)/\(bin)" }
        }
        candidates += ["/usr/bin/chromium"] + path
        return candidates.first { access($0, X_OK) == 0 }
    }

    /// Its profile in `profile`; its XDG folders (dconf's, GTK's) there and in `runtime` too, so
    /// that nothing of it lands in the user's home.
    init(executable: String, url: String, profile: String, runtime: String, logPath: String) throws {
        try FileManager.default.createDirectory(atPath: profile, withIntermediateDirectories: true)
        process = try ChildProcess("chromium", ["--headless=new", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(profile)",
                                                "--remote-debugging-port=0", url],
                                   executable: URL(fileURLWithPath: executable),
                                   output: .logFile(path: logPath, collectingOutput: false), registry: benchChildren,
                                   environment: ["XDG_RUNTIME_DIR": runtime, "XDG_CACHE_HOME": profile + "/xdg-cache",
                                                 "XDG_CONFIG_HOME": profile + "/xdg-config"])
    }

    /// SIGTERM to the browser (it takes its zygotes, renderers and utilities with it), SIGKILL
    /// after 5 s; then SIGKILL to any of those it leaves behind. Returns a problem, if any.
    func stop() -> String? {
        let table = BenchProcessTable.read()
        let family = table.tree(root: process.pid).filter { $0.pid != process.pid }
        let report = process.terminate(grace: .seconds(5))
        func left() -> [BenchProcessTable.Entry] {
            let now = BenchProcessTable.read()
            return family.filter { member in
                now.entries[member.pid].map { $0.startTicks == member.startTicks && $0.state != "Z" } ?? false
            }
        }
        for member in left() { kill(member.pid, SIGKILL) }
        // Orphaned, they are init's to reap; wait until none still runs.
        let deadline = BenchClock.deadline(after: 5)
        while !left().isEmpty && BenchClock.now() < deadline { BenchClock.sleep(seconds: 0.05) }
        if !left().isEmpty { return "\(left().count) of chromium's processes outlived it" }
        if report.alreadyExited { return "chromium had ended before it was stopped (\(report.exit.map { "\($0)" } ?? "?"))" }
        return nil
    }
}

/// Without a browser: what the page does, from this process. The GETs the page makes when it
/// loads (the overview, each link's history, the events, the ports), then the live channel, read
/// continuously until stopped.
final class BenchSimulatedPage: @unchecked Sendable {
    // @unchecked: the reader thread owns the stream; the rest is Locked.
    private let stopping = Locked(false)
    private let failure = Locked<String?>(nil)
    private var reader: BenchThread?

    init(port: Int) throws {
        func get(_ path: String) throws -> HTTPTestClient.Reply {
            let reply = try HTTPTestClient.request("GET", port: port, path: path)
            guard reply.status == 200 else { throw BenchError("GET \(path) on :\(port): \(reply.status) \(reply.text.prefix(200))") }
            return reply
        }
        let overview = try get("/api/overview").json() as? [String: Any]
        let links = overview?["links"] as? [[String: Any]] ?? []
        let allowed = CharacterSet.urlPathAllowed.subtracting(CharacterSet(charactersIn: "/"))
        for id in links.compactMap({ $0["id"] as? String }) {
            _ = try get("/api/links/\(id.addingPercentEncoding(withAllowedCharacters: allowed) ?? id)/history")
        }
        _ = try get("/api/events")
        _ = try get("/api/ports")
        let stream = try HTTPTestClient.Stream.open(port: port, path: "/api/live", headers: ["Accept": "text/event-stream"],
                                                    timeout: .seconds(5))
        do {
            try stream.read(until: "the first snapshot") { $0.contains("event: snapshot") }
        } catch {
            stream.close()
            throw error
        }
        let (stopping, failure) = (self.stopping, self.failure)
        reader = BenchThread("bench page :\(port)") {
            defer { stream.close() }
            while !stopping.current {
                let seen = stream.received.count
                do {
                    // A snapshot a second: this returns within about a second, or once stopping.
                    try stream.read(until: "the next live message", timeout: .seconds(20)) { _ in
                        stopping.current || stream.received.count > seen
                    }
                } catch {
                    failure.withLock { $0 = "the live channel of :\(port): \(error)" }
                    return
                }
            }
        }
    }

    /// Stops reading and closes the channel; returns the reader's error, if it had one.
    func stop() -> String? {
        stopping.withLock { $0 = true }
        if let reader, !reader.join(deadline: BenchClock.deadline(after: 10)) { return "a page reader did not stop" }
        return failure.current
    }
}

// MARK: - Has the dashboard a live subscriber?

/// Whether something holds a dashboard's live channel (`/api/live`) open. The API has no
/// subscriber count, and a browser's other connections (the page, its script, the JSON GETs,
/// idle keep-alive sockets) look the same in a list of connections, so the probe watches what
/// the dashboard sends on each of its established connections (`ss -tin`, `bytes_sent` of the
/// socket whose local port is the dashboard's): the live channel is the one connection that
/// keeps receiving, a snapshot every second, long after the page has loaded. Found once one
/// connection's `bytes_sent` has grown at least three times over at least two seconds; the
/// page's load is a single burst, and nothing else on the page is periodic.
///
/// Without `ss` (or a kernel whose tcp_info lacks the byte counters), /proc/net/tcp is read
/// instead: an established connection to the port, the same one for at least three seconds. That
/// is weaker (an idle keep-alive connection qualifies too) and the answer says so.
enum BenchLiveProbe {
    struct Answer: Sendable {
        var found: Bool
        var how: String
    }

    private struct Track {
        var port: Int
        var firstSeen: UInt64
        var bytes: UInt64?
        var changes = 0
        var firstChange: UInt64 = 0
        var lastChange: UInt64 = 0
    }

    /// Polls every 250 ms until each port has a subscriber, `timeout` has passed, or `ended`
    /// names a reason to give up (a browser that has exited).
    static func waitForSubscribers(ports: [Int], timeout: Double, ended: () -> String? = { nil }) -> [Int: Answer] {
        let deadline = BenchClock.deadline(after: timeout)
        let ss = (["/usr/sbin/ss", "/sbin/ss", "/usr/bin/ss", "/bin/ss"] as [String]).first { access($0, X_OK) == 0 }
        var tracks: [String: Track] = [:]
        var answers: [Int: Answer] = [:]
        while true {
            let now = BenchClock.now()
            let sockets = ss.flatMap { established(ss: $0, ports: ports) } ?? establishedFromProc(ports: ports)
            tracks = tracks.filter { sockets[$0.key] != nil }  // closed connections drop out
            for (key, socket) in sockets {
                var track = tracks[key] ?? Track(port: socket.port, firstSeen: now, bytes: socket.bytes)
                if let bytes = socket.bytes, let last = track.bytes, bytes != last {
                    if track.changes == 0 { track.firstChange = now }
                    track.changes += 1
                    track.lastChange = now
                }
                track.bytes = socket.bytes
                tracks[key] = track
            }
            for port in ports where answers[port] == nil {
                for track in tracks.values where track.port == port {
                    if track.bytes != nil, track.changes >= 3, track.lastChange - track.firstChange >= 2_000_000_000 {
                        answers[port] = Answer(found: true, how: "live (bytes_sent grew \(track.changes)× in "
                            + "\(String(format: "%.1f", BenchClock.seconds(now - track.firstSeen))) s)")
                    } else if track.bytes == nil, now - track.firstSeen >= 3_000_000_000 {
                        answers[port] = Answer(found: true, how: "connected 3 s (/proc/net/tcp; no ss byte counters)")
                    }
                }
            }
            if answers.count == ports.count { return answers }
            let gone = ended()
            if now >= deadline || gone != nil {
                for port in ports where answers[port] == nil {
                    let count = tracks.values.filter { $0.port == port }.count
                    answers[port] = Answer(found: false, how: "no live subscriber " + (gone ?? "within \(Int(timeout)) s")
                        + " (\(count) connections)")
                }
                return answers
            }
            BenchClock.sleep(seconds: 0.25)
        }
    }

    /// Established TCP sockets whose local port is one of `ports`, keyed by both addresses, with
    /// what the socket has sent (nil if ss does not say); nil if ss cannot be run.
    private static func established(ss: String, ports: [Int]) -> [String: (port: Int, bytes: UInt64?)]? {
        let arguments = ["-t", "-i", "-n", "state", "established",
                         "( " + ports.map { "sport = :\($0)" }.joined(separator: " or ") + " )"]
        guard let (ending, data, _) = try? Spawn.run(ss, arguments), ending == .exited(0) else { return nil }
        // A socket's line (Recv-Q Send-Q Local:Port Peer:Port; no State column with a state
        // filter), then, indented, its tcp_info (… bytes_sent:N bytes_acked:N …).
        var sockets: [String: (port: Int, bytes: UInt64?)] = [:]
        var current: String?
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            if line.first == " " || line.first == "\t" {
                guard let current else { continue }
                let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
                let value = { (name: String) in words.first { $0.hasPrefix(name) }.flatMap { UInt64($0.dropFirst(name.count)) } }
                sockets[current]?.bytes = value("bytes_sent:") ?? value("bytes_acked:")
                continue
            }
            current = nil
            let addresses = line.split(separator: " ", omittingEmptySubsequences: true).filter { $0.contains(":") }
            guard addresses.count >= 2, let colon = addresses[0].lastIndex(of: ":"),
                  let port = Int(addresses[0][addresses[0].index(after: colon)...]), ports.contains(port) else { continue }
            let key = "\(addresses[0]) \(addresses[1])"
            sockets[key] = (port, nil)
            current = key
        }
        return sockets
    }

    /// The same from /proc/net/tcp and tcp6, without byte counts.
    private static func establishedFromProc(ports: [Int]) -> [String: (port: Int, bytes: UInt64?)] {
        var sockets: [String: (port: Int, bytes: UInt64?)] = [:]
        for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 3, fields[3] == "01", let colon = fields[1].lastIndex(of: ":"),
                      let port = Int(fields[1][fields[1].index(after: colon)...], radix: 16), ports.contains(port) else { continue }
                sockets["\(fields[1]) \(fields[2])"] = (port, nil)
            }
        }
        return sockets
    }
}

// MARK: - Process trees

/// Every process's parent, start time and CPU so far, from /proc/*/stat: a browser is a tree of
/// processes (zygotes, renderers, a network service), all of them its cost.
struct BenchProcessTable {
    struct Entry {
        var pid: Int32
        var parent: Int32
        /// R, S, D, Z (a zombie: ended, not yet reaped), …
        var state: Character
        /// Start time in clock ticks since boot: with the pid, tells a process from a later one
        /// that reuses its number.
        var startTicks: UInt64
        var cpuTicks: UInt64
    }

    var entries: [Int32: Entry] = [:]

    static func read() -> BenchProcessTable {
        var table = BenchProcessTable()
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(name),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            // After the command name: state (field 3), ppid (4), utime (14), stime (15), starttime (22).
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 19, let state = fields[0].first, let parent = Int32(fields[1]), let user = UInt64(fields[11]),
                  let system = UInt64(fields[12]), let start = UInt64(fields[19]) else { continue }
            table.entries[pid] = Entry(pid: pid, parent: parent, state: state, startTicks: start, cpuTicks: user + system)
        }
        return table
    }

    /// `root` and every process descended from it.
    func tree(root: Int32) -> [Entry] {
        var children: [Int32: [Int32]] = [:]
        for entry in entries.values { children[entry.parent, default: []].append(entry.pid) }
        var result: [Entry] = []
        var queue = [root]
        while let pid = queue.popLast() {
            guard let entry = entries[pid] else { continue }
            result.append(entry)
            queue += children[pid] ?? []
        }
        return result
    }

    func treeCPUSeconds(root: Int32) -> Double {
        Double(tree(root: root).reduce(0) { $0 + $1.cpuTicks }) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
