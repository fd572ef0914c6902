#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import LinkCore
import SerialPort
import TestKit

/// Which way a frame crosses the relay.
enum E2ERelayDirection: Int, Sendable, CaseIterable, CustomStringConvertible {
    /// From C's cable to S's: what C sends.
    case towardS = 0
    /// From S's cable to C's: what S sends.
    case towardC = 1

    var description: String { self == .towardS ? "C → S" : "S → C" }
}

/// The test in the middle of the line, frame by frame: S ←cable 1→ relay ←cable 2→ C. It opens
/// cable 1's end B and cable 2's end A and copies what arrives on one to the other, both ways,
/// one whole frame at a time (a frame is everything up to its 0x00 delimiter, docs/protocol.md
/// §1). Every frame goes through `hook`, which may pass it, drop it or send others in its place,
/// and the test may `inject` frames of its own between two frames. Frames can be recorded as
/// they go by, for a replay later.
///
/// Each direction has a thread of its own; a frame is written whole under that direction's lock,
/// so an injected frame never lands inside a relayed one.
final class E2ERelay: @unchecked Sendable {
    // @unchecked: the descriptors are set in init and closed in `stop()` after both threads
    // ended; everything else is guarded by `lock` or by a direction's write lock.

    /// Sees each frame (COBS-encoded, without its delimiter) and returns what to send instead,
    /// each without a delimiter: `[frame]` passes it, `[]` drops it.
    typealias Hook = @Sendable (_ direction: E2ERelayDirection, _ frame: [UInt8]) -> [[UInt8]]

    private let nearS: CInt
    private let nearC: CInt
    private let lock = NSLock()
    private var currentHook: Hook?
    private var recording: [[[UInt8]]]?
    /// Frames to send after relayed ones, one after each, by direction.
    private var queued: [[[UInt8]]] = [[], []]
    private var relayedCount = [0, 0]
    private var stopping = false
    private let writeLocks = [NSLock(), NSLock()]
    private var threads: [E2EBackground<Void>] = []

    /// Opens `nearS` (cable 1's end B, whose far end is S) and `nearC` (cable 2's end A, whose
    /// far end is C) as serial devices at `baud`, and starts copying.
    init(nearS pathS: String, nearC pathC: String, baud: Int) throws {
        let settings = SerialSettings(baudRate: baud)
        let s = try SerialPort.open(path: pathS, settings: settings)
        let c: SerialPort
        do {
            c = try SerialPort.open(path: pathC, settings: settings)
        } catch {
            s.close()
            throw error
        }
        nearS = s.takeFileDescriptor()
        nearC = c.takeFileDescriptor()
        threads = [
            E2EBackground("e2e relay C → S") { [self] in copy(from: nearC, to: nearS, direction: .towardS) },
            E2EBackground("e2e relay S → C") { [self] in copy(from: nearS, to: nearC, direction: .towardC) },
        ]
    }

    deinit { stop() }

    /// What every frame goes through from now on; nil passes them all.
    var hook: Hook? {
        get { lock.withLock { currentHook } }
        set { lock.withLock { currentHook = newValue } }
    }

    /// Frames relayed so far (as they arrived, before the hook) in `direction`.
    func relayed(_ direction: E2ERelayDirection) -> Int { lock.withLock { relayedCount[direction.rawValue] } }

    /// Starts keeping a copy of every frame that arrives (before the hook), in both directions.
    func startRecording() { lock.withLock { recording = [[], []] } }

    /// Stops recording and returns the frames kept, by direction.
    func stopRecording() -> [E2ERelayDirection: [[UInt8]]] {
        let frames = lock.withLock { () -> [[[UInt8]]] in
            defer { recording = nil }
            return recording ?? [[], []]
        }
        return [.towardS: frames[0], .towardC: frames[1]]
    }

    /// Writes `frames` (each without its delimiter) toward one end, between two relayed frames.
    /// Blocking until written.
    func inject(_ frames: [[UInt8]], toward direction: E2ERelayDirection) throws {
        let destination = direction == .towardS ? nearS : nearC
        try writeLocks[direction.rawValue].withLock {
            for frame in frames {
                guard Self.writeAll(destination, frame + [0]) else { throw E2EFailure("relay: cannot inject \(direction)") }
            }
        }
    }

    /// Queues `frames` (each without its delimiter) to go toward one end one at a time, each
    /// right after a frame the relay passes on: they share the line with its traffic instead of
    /// taking it in one burst.
    func injectAlongside(_ frames: [[UInt8]], toward direction: E2ERelayDirection) {
        lock.withLock { queued[direction.rawValue] += frames }
    }

    /// Frames still queued by `injectAlongside`.
    func queuedCount(_ direction: E2ERelayDirection) -> Int { lock.withLock { queued[direction.rawValue].count } }

    /// Writes at once what `injectAlongside` has not sent yet. Blocking.
    func flushQueued() throws {
        for direction in E2ERelayDirection.allCases {
            let frames = lock.withLock { () -> [[UInt8]] in
                defer { queued[direction.rawValue] = [] }
                return queued[direction.rawValue]
            }
            try inject(frames, toward: direction)
        }
    }

    /// Stops both threads (within 100 ms, or at once when a cable has gone) and closes the ends.
    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopping = true }
            return !stopping
        }
        guard first else { return }
        for thread in threads { _ = try? thread.value(timeout: .seconds(5)) }
        for fd in [nearS, nearC] {
            SerialPort.releaseExclusiveUse(fileDescriptor: fd)
            close(fd)
        }
    }

    private var isStopping: Bool { lock.withLock { stopping } }

    private func copy(from source: CInt, to destination: CInt, direction: E2ERelayDirection) {
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        var partial: [UInt8] = []
        while !isStopping {
            var descriptor = pollfd(fd: source, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, 100)
            if ready < 0 && errno == EINTR { continue }
            if ready < 0 { return }
            if ready == 0 { continue }
            let n = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EINTR || errno == EAGAIN) { continue }
            if n <= 0 { return }  // the cable has gone
            var start = 0
            for i in 0..<n where buffer[i] == 0 {
                partial += buffer[start..<i]
                start = i + 1
                let frame = partial
                partial.removeAll(keepingCapacity: true)
                if frame.isEmpty {
                    // Idle fill between frames: passed on as it is.
                    writeLocks[direction.rawValue].withLock { _ = Self.writeAll(destination, [0]) }
                    continue
                }
                let (hook, extra) = lock.withLock { () -> (Hook?, [UInt8]?) in
                    relayedCount[direction.rawValue] += 1
                    recording?[direction.rawValue].append(frame)
                    let extra = queued[direction.rawValue].isEmpty ? nil : queued[direction.rawValue].removeFirst()
                    return (currentHook, extra)
                }
                let out = (hook?(direction, frame) ?? [frame]) + (extra.map { [$0] } ?? [])
                let bytes: [UInt8] = out.flatMap { $0 + [0] }
                guard writeLocks[direction.rawValue].withLock({ Self.writeAll(destination, bytes) }) else { return }
            }
            partial += buffer[start..<n]
        }
    }

    /// Writes all of `bytes` to a non-blocking descriptor, waiting for room; false if it failed.
    private static func writeAll(_ fd: CInt, _ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
            if n > 0 {
                done += n
            } else if n < 0 && (errno == EAGAIN || errno == EINTR) {
                var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&descriptor, 1, 100)
            } else {
                return false
            }
        }
        return true
    }
}

// MARK: - Frames on the wire

extension E2ERelay {
    /// A frame's content (type to CRC, the CRC included), or nil if its COBS is broken.
    static func decode(_ encoded: [UInt8]) -> [UInt8]? {
        COBSDecoder.decode(encoded)
    }

    /// The encoded frame (without its delimiter) for `content` without its CRC: the CRC-32C is
    /// computed and appended little-endian, as docs/protocol.md §2 has it.
    static func encode(withoutCRC content: [UInt8]) -> [UInt8] {
        let crc = CRC32C.checksum(content)
        var encoded = COBSEncoder.encode(content + [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF),
                                                    UInt8(crc >> 24)])
        if encoded.last == 0 { encoded.removeLast() }
        return encoded
    }

    /// Whether a frame's content is one a keyed session seals (§11.3): SEQUENCED, CONTROL or
    /// FRAGMENT, with or without the compact trailer; HELLO never is.
    static func isSealable(_ content: [UInt8]) -> Bool {
        guard let type = content.first else { return false }
        return [Wire.FrameType.sequenced, .control, .fragment].map(\.rawValue).contains(type & ~Wire.compactTrailerFlag)
    }

    /// The same frame with one bit changed in its content and the CRC made good again, as an
    /// attacker with a transmitter would send it. `offset` counts from the type byte.
    static func flipping(_ content: [UInt8], offset: Int, mask: UInt8) -> [UInt8] {
        var changed = Array(content.dropLast(4))
        changed[offset] ^= mask
        return encode(withoutCRC: changed)
    }
}

// MARK: - The rig around it

/// S and C of the real executable with the relay between them: two `socket2ser cable`s, S on
/// the first's end A (its target on 127.0.0.1), C on the second's end B (listening on a free
/// port), and an `E2ERelay` on the two ends in the middle.
final class E2ERelayRig: @unchecked Sendable {
    // @unchecked: `server` is replaced only by `restartServer()`, from the test's one thread.
    let baud: Int
    let targetPort: Int
    let nearS: CableProcess
    let nearC: CableProcess
    let relay: E2ERelay
    private(set) var server: ChildProcess
    let client: ChildProcess
    let port: Int
    let serverOptions: [String]
    private var retired: [ChildProcess] = []

    private init(baud: Int, targetPort: Int, nearS: CableProcess, nearC: CableProcess, relay: E2ERelay,
                 server: ChildProcess, client: ChildProcess, port: Int, serverOptions: [String]) {
        self.baud = baud
        self.targetPort = targetPort
        self.nearS = nearS
        self.nearC = nearC
        self.relay = relay
        self.server = server
        self.client = client
        self.port = port
        self.serverOptions = serverOptions
    }

    /// Starts both cables, the relay (with `hook` from its first frame), S and C, and returns
    /// once C accepts connections and, unless `linkUp` is false, both ends say "link up".
    /// Blocking.
    static func start(targetPort: Int, baud: Int, serverOptions: [String], clientOptions: [String],
                      hook: E2ERelay.Hook? = nil, linkUp: Bool = true) throws -> E2ERelayRig {
        var started: [ChildProcess] = []
        var relay: E2ERelay?
        do {
            let nearS = try CableProcess(["--baud", "\(baud)"])
            started.append(nearS.process)
            let nearC = try CableProcess(["--baud", "\(baud)"])
            started.append(nearC.process)
            relay = try E2ERelay(nearS: nearS.pathB, nearC: nearC.pathA, baud: baud)
            relay!.hook = hook
            let server = try nearS.startServer(targetPort: targetPort, baud: baud, serverOptions)
            started.append(server)
            let port = try freeLoopbackPort()
            let client = try nearC.startClient(port: port, baud: baud, clientOptions)
            started.append(client)
            try waitUntil("C to accept connections on \(port)", timeout: .seconds(10)) {
                if let exit = client.exit { throw E2EFailure("C ended (\(exit)): \(client.errors.text.suffix(1000))") }
                return E2EClient.accepts(port: port)
            }
            if linkUp {
                try client.waitForError(containing: "link up: peer found")
                try server.waitForError(containing: "link up: peer found")
            }
            return E2ERelayRig(baud: baud, targetPort: targetPort, nearS: nearS, nearC: nearC, relay: relay!,
                               server: server, client: client, port: port, serverOptions: serverOptions)
        } catch {
            for child in started { child.forceKill() }
            relay?.stop()
            throw error
        }
    }

    /// Stops S (SIGTERM, so it says goodbye with its last lines, or SIGKILL, so the peer is not
    /// told), waits for it to be gone and starts a new S on the same device and target; returns
    /// the old one, whose output can still be read. Blocking.
    @discardableResult
    func restartServer(signal: Int32 = SIGTERM) throws -> ChildProcess {
        let old = server
        old.signal(signal)
        guard old.waitForExit(timeout: .seconds(5)) != nil else { throw E2EFailure("S did not end from signal \(signal)") }
        retired.append(old)
        server = try nearS.startServer(targetPort: targetPort, baud: baud, serverOptions)
        return old
    }

    /// SIGTERM to S and C at once, then the relay and both cables. Blocking.
    func shutdown() -> [ChildProcess.StopReport] {
        let ends = ChildProcess.terminate([server, client])
        relay.stop()
        return ends + ChildProcess.terminate([nearS.process, nearC.process])
    }

    /// SIGKILL to every process still running, and the relay stopped; for `defer`.
    func forceKill() {
        for child in [client, server, nearS.process, nearC.process] + retired { child.forceKill() }
        relay.stop()
    }

    var logs: String {
        [server, client].map { "--- \($0.name) stderr:\n\($0.errors.text.suffix(3000))" }.joined(separator: "\n")
    }

    /// Bytes the cable lost on their way to an end because it did not read them in time (a UART
    /// overrun), from the counters a cable prints when it stops; nil before that.
    func overrun(toward direction: E2ERelayDirection) -> Int? {
        let (cable, prefix) = direction == .towardS ? (nearS.process, "B->A:") : (nearC.process, "A->B:")
        guard let line = cable.errors.text.split(separator: "\n").last(where: { $0.contains(prefix) }),
              let range = line.range(of: "overrun ") else { return nil }
        return Int(line[range.upperBound...].prefix { $0.isNumber })
    }

    /// What the cables said, their counters at the end included (bytes lost to an overrun when an
    /// end did not read in time).
    var cableLogs: String {
        [("cable near S", nearS.process), ("cable near C", nearC.process)].map { name, cable in
            "--- \(name):\n\(cable.output.text.suffix(1000))\(cable.errors.text.suffix(1000))"
        }.joined(separator: "\n")
    }
}

/// Frames that failed the key at an end, in all, as its last "frames failing the key" warning
/// says; 0 if it gave none.
func e2eFramesFailingTheKey(_ log: String) -> Int {
    let marker = "frames failing the key: "
    guard let line = log.split(separator: "\n").last(where: { $0.contains(marker) }),
          let range = line.range(of: " new, ") else { return 0 }
    return Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0
}

/// An echo service that keeps what each connection sent, to show that a target got exactly the
/// client's bytes and nothing else.
final class E2ERecordingEcho: @unchecked Sendable {
    // @unchecked: `received` is guarded by `lock`; `service` is set once in init.
    private let lock = NSLock()
    private var received: [[UInt8]] = []
    private var service: TCPService!

    init() throws {
        service = try TCPService(name: "recording echo") { [weak self] fd in self?.serve(fd) }
    }

    deinit { stop() }

    var port: Int { service.port }

    /// What each connection sent, in the order they were accepted (complete or not).
    var uploads: [[UInt8]] { lock.withLock { received } }

    func stop() { service?.stop() }

    private func serve(_ fd: Int32) {
        let index = lock.withLock { () -> Int in
            received.append([])
            return received.count - 1
        }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                if n == 0 { shutdown(fd, Int32(SHUT_WR)) }
                return
            }
            lock.withLock { received[index] += buffer[0..<n] }
            var done = 0
            while done < n {
                let sent = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + done, n - done, Int32(MSG_NOSIGNAL)) }
                if sent < 0 && errno == EINTR { continue }
                if sent <= 0 { return }
                done += sent
            }
        }
    }
}
