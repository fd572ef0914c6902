#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import LinkSimulation
import TestKit

// Plumbing shared by the benchmark: a clock, blocking POSIX sockets, threads that can be joined,
// deterministic payloads with byte-exact verification, and readers for /proc.

// MARK: - Errors and time

/// Something went wrong while measuring; the text ends up in the table and the JSON.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    /// The errno behind the failure, when there is one (lets callers tell "refused" from the rest).
    var code: Int32 = 0

    init(_ description: String, code: Int32 = 0) {
        self.description = description
        self.code = code
    }
}

/// Monotonic nanoseconds; the same clock in every thread, so a byte sent by the client thread and
/// received by the target thread are timed against each other exactly.
enum BenchClock {
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func seconds(_ nanoseconds: UInt64) -> Double { Double(nanoseconds) / 1e9 }

    /// `now() + seconds` as a deadline.
    static func deadline(after seconds: Double) -> UInt64 { now() + UInt64(max(0, seconds) * 1e9) }

    static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}

func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

// MARK: - Threads

/// A thread whose end can be waited for. Small stacks, because the 1000-stream scenario runs a
/// couple of thousand of them at once (every buffer lives on the heap).
final class BenchThread: @unchecked Sendable {
    private let finished = DispatchSemaphore(value: 0)

    @discardableResult
    init(_ name: String, stackSize: Int = 512 << 10, _ body: @escaping @Sendable () -> Void) {
        let finished = finished
        let thread = Thread {
            body()
            finished.signal()
        }
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
    }

    /// Waits for the thread to finish; false if it did not before `deadline` (monotonic ns).
    @discardableResult
    func join(deadline: UInt64? = nil) -> Bool {
        guard let deadline else {
            finished.wait()
            finished.signal()
            return true
        }
        let now = BenchClock.now()
        let wait = deadline > now ? deadline - now : 0
        guard finished.wait(timeout: .now() + .nanoseconds(Int(min(wait, UInt64(Int.max))))) == .success else {
            return false
        }
        finished.signal()
        return true
    }
}

// MARK: - Sockets

/// Blocking IPv4 sockets on 127.0.0.1, with timeouts on every call so that nothing in the bench
/// can hang for ever. Descriptors are close-on-exec: the children the bench spawns must not
/// inherit the target's or the clients' sockets.
enum BenchSocket {
    static func loopbackAddress(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(truncatingIfNeeded: port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        return address
    }

    private static func makeSocket() throws -> Int32 {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw BenchError("socket: \(errnoText(errno))", code: errno) }
        return fd
    }



    /// A port nobody listens on right now, for C to listen on (the test kit's).
    static func freePort() throws -> Int {
        do {
            return try freeLoopbackPort()
        } catch {
            throw BenchError("no free port: \(error)")
        }
    }

    /// Connects to 127.0.0.1:`port`. `timeout` bounds the connect (SYN retries when a backlog is
    /// full) and then every later read and write on the socket. TCP_NODELAY is set: the echo
    /// measurements are about the link's latency, not Nagle's.
    /// Connects to 127.0.0.1:`port`, a SOCKS5 proxy (-D), and asks it for 127.0.0.1:`target`;
    /// returns once the proxy has replied success, i.e. once the far end has connected.
    static func connect(port: Int, timeout: Double, throughSOCKSTo target: Int) throws -> Int32 {
        let fd = try connect(port: port, timeout: timeout)
        do {
            try writeAll(fd, [5, 1, 0])
            guard try readExactly(fd, count: 2) == [5, 0] else { throw BenchError("SOCKS: no method accepted") }
            try writeAll(fd, [5, 1, 0, 1, 127, 0, 0, 1, UInt8(target >> 8), UInt8(target & 0xFF)])
            let reply = try readExactly(fd, count: 10)
            guard reply[1] == 0 else { throw BenchError("SOCKS: reply \(reply[1])", code: ECONNREFUSED) }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    static func connect(port: Int, timeout: Double, receiveBuffer: Int32? = nil) throws -> Int32 {
        let fd = try makeSocket()
        setTimeouts(fd, seconds: timeout)
        setNoDelay(fd)
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = loopbackAddress(port: port)
        while true {
            let result = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    systemConnect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            if result == 0 { return fd }
            let code = errno
            if code == EINTR { continue }
            close(fd)
            let reason = code == EINPROGRESS ? "timed out" : errnoText(code)
            throw BenchError("connect 127.0.0.1:\(port): \(reason)", code: code)
        }
    }


    static func setTimeouts(_ fd: Int32, seconds: Double) {
        var value = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    static func setNoDelay(_ fd: Int32) {
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Writes every byte (MSG_NOSIGNAL: a reset peer is an error, not a SIGPIPE).
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws {
        guard var next = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let n = send(fd, next, remaining, Int32(MSG_NOSIGNAL))
            if n > 0 {
                next += n
                remaining -= n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                let code = errno
                throw BenchError(code == EAGAIN ? "write timed out" : "write: \(errnoText(code))", code: code)
            }
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try writeAll(fd, $0) }
    }

    /// Reads what is there (at least one byte); 0 means the peer closed its side.
    static func readSome(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            let code = errno
            if code == EINTR { continue }
            throw BenchError(code == EAGAIN ? "read timed out" : "read: \(errnoText(code))", code: code)
        }
    }

    /// Reads exactly `count` bytes; throws on end of file before that.
    static func readExactly(_ fd: Int32, count: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var got = 0
        try bytes.withUnsafeMutableBytes { buffer in
            while got < count {
                let n = try readSome(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[got...]))
                if n == 0 { throw BenchError("connection closed after \(got) of \(count) bytes", code: ECONNRESET) }
                got += n
            }
        }
        return bytes
    }
}

// The C library's calls, under names the enum's own methods do not shadow.
private func systemConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    connect(fd, address, length)
}

// MARK: - Payload

/// The bytes one direction of one connection carries: pseudo-random (so compression or a lucky
/// pattern cannot flatter anything), and deterministic from the run's seed, the connection and
/// the direction, so the receiver can regenerate them and check every byte. A connection whose
/// id has `textFlag` carries text instead (`TextCorpus`: logs, JSON, HTML, source code), for
/// the `compress` scenario.
///
/// Generated in 64 KiB blocks, each from its own SplitMix64 sequence, so any offset is cheap.
struct BenchPayload: Sendable {
    static let blockSize = 1 << 16
    static let textFlag: UInt32 = 1 << 31
    let key: UInt64
    let isText: Bool

    init(seed: UInt64, connection: UInt32, direction: UInt8) {
        key = BenchPayload.mix(seed &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(connection) << 8 ^ UInt64(direction))
        isText = connection & Self.textFlag != 0
    }

    static func mix(_ value: UInt64) -> UInt64 { SplitMix64.mix(value) }

    /// Fills `buffer` (blockSize bytes) with block number `index`.
    func fill(block index: Int, into buffer: inout [UInt8]) {
        if isText {
            buffer = TextCorpus.generate(count: Self.blockSize, seed: BenchPayload.mix(key ^ UInt64(index)))
            return
        }
        if buffer.count != Self.blockSize { buffer = [UInt8](repeating: 0, count: Self.blockSize) }
        var generator = SplitMix64(seed: BenchPayload.mix(key ^ UInt64(index) &* 0xD6E8_FEB8_6659_FD93))
        buffer.withUnsafeMutableBytes { raw in
            for word in 0..<(Self.blockSize / 8) {
                raw.storeBytes(of: generator.next().littleEndian, toByteOffset: word * 8, as: UInt64.self)
            }
        }
    }
}

/// Sends a payload over a socket, hashing what it sends.
struct PayloadSender {
    let payload: BenchPayload
    let total: Int
    private(set) var sent = 0
    private var hasher = BenchSHA256()
    private var block: [UInt8] = []
    /// When the first byte was handed to the kernel (monotonic ns), 0 if none yet.
    private(set) var firstSentAt: UInt64 = 0

    init(payload: BenchPayload, total: Int) {
        self.payload = payload
        self.total = total
    }

    /// Writes everything; `chunk` bounds each write (small chunks for a stream that must not
    /// get ahead of the others' start).
    mutating func run(fd: Int32, chunk: Int = BenchPayload.blockSize) throws {
        while sent < total {
            let index = sent / BenchPayload.blockSize
            let within = sent % BenchPayload.blockSize
            if within == 0 || block.isEmpty { payload.fill(block: index, into: &block) }
            let count = min(chunk, BenchPayload.blockSize - within, total - sent)
            if firstSentAt == 0 { firstSentAt = BenchClock.now() }
            try block.withUnsafeBytes { raw in
                let slice = UnsafeRawBufferPointer(rebasing: raw[within..<(within + count)])
                hasher.update(bufferPointer: slice)
                try BenchSocket.writeAll(fd, slice)
            }
            sent += count
        }
    }

    var digest: [UInt8] {
        var finished = hasher
        return finished.finalize()
    }
}

/// Checks what arrives against the payload it should be, byte by byte, and hashes it.
struct PayloadVerifier {
    let payload: BenchPayload
    let total: Int
    private(set) var received = 0
    /// Bytes that differ from what was sent, plus any beyond the expected length.
    private(set) var corrupt = 0
    private(set) var lastReceivedAt: UInt64 = 0
    private var hasher = BenchSHA256()
    private var expected: [UInt8] = []
    private var expectedIndex = -1

    init(payload: BenchPayload, total: Int) {
        self.payload = payload
        self.total = total
    }

    var isComplete: Bool { received >= total }

    mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        guard !bytes.isEmpty else { return }
        lastReceivedAt = BenchClock.now()
        hasher.update(bufferPointer: bytes)
        var offset = 0
        while offset < bytes.count {
            if received >= total {
                corrupt += bytes.count - offset
                received += bytes.count - offset
                return
            }
            let index = received / BenchPayload.blockSize
            if index != expectedIndex {
                payload.fill(block: index, into: &expected)
                expectedIndex = index
            }
            let within = received % BenchPayload.blockSize
            let count = min(bytes.count - offset, BenchPayload.blockSize - within, total - received)
            let same = expected.withUnsafeBytes { e in
                memcmp(e.baseAddress! + within, bytes.baseAddress! + offset, count) == 0
            }
            if !same {
                expected.withUnsafeBytes { e in
                    for i in 0..<count where e[within + i] != bytes[offset + i] { corrupt += 1 }
                }
            }
            received += count
            offset += count
        }
    }

    var digest: [UInt8] {
        var finished = hasher
        return finished.finalize()
    }
}

// MARK: - /proc

/// Memory and CPU of a child process, read from /proc/PID/status and /proc/PID/stat.
struct ProcessSample: Codable, Sendable {
    /// Resident set now, in kB (KiB, as the kernel reports it).
    var rssKiB: Int = 0
    /// Peak resident set so far (VmHWM), in kB.
    var peakRSSKiB: Int = 0
    /// The resident set split: private anonymous memory (heaps, stacks) and file-backed pages
    /// (the executable and shared libraries' code and data), in kB.
    var rssAnonKiB: Int = 0
    var rssFileKiB: Int = 0
    /// User + system CPU seconds so far.
    var cpuSeconds: Double = 0

    static func read(pid: Int32) -> ProcessSample? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        var sample = ProcessSample()
        for line in status.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == ":" })
            guard parts.count >= 2, let value = Int(parts[1]) else { continue }
            if parts[0] == "VmRSS" { sample.rssKiB = value }
            if parts[0] == "VmHWM" { sample.peakRSSKiB = value }
            if parts[0] == "RssAnon" { sample.rssAnonKiB = value }
            if parts[0] == "RssFile" { sample.rssFileKiB = value }
        }
        if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
           let close = stat.lastIndex(of: ")") {
            // Fields after the command name: state is field 3, utime 14 and stime 15.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            if fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) {
                sample.cpuSeconds = (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
            }
        }
        return sample
    }

    /// Megabytes (10^6 bytes) of a kB figure.
    static func megabytes(_ kib: Int) -> Double { Double(kib) * 1024 / 1e6 }
}

/// Bytes a process has read so far (/proc/PID/io `rchar`): for the cable, every byte it has
/// taken from either end, i.e. what the line has carried in both directions together.
func benchProcessIO(pid: Int32) -> UInt64? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8) else { return nil }
    var total: UInt64 = 0
    for line in text.split(separator: "\n") where line.hasPrefix("rchar:") {
        total += UInt64(line.dropFirst(6).trimmingCharacters(in: .whitespaces)) ?? 0
    }
    return total
}

/// Facts about the machine, for the report.
enum BenchHost {
    static var cpuModel: String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        for line in info.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return "unknown"
    }

    static var processors: Int { ProcessInfo.processInfo.activeProcessorCount }

    static var kernel: String {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: &names.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// Whether `socket2ser S` accepts `option` (looked up in its help), so the bench can use an
    /// option as soon as the command line offers it.
    static func forwarderAccepts(_ option: String, executable: String) -> Bool {
        guard let (_, output, _) = try? Spawn.run(executable, ["S", "--help"]) else { return false }
        return String(decoding: output, as: UTF8.self).contains(option)
    }

    /// The running executable: `socket2ser` itself, to spawn the cable and both ends.
    static func executablePath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if n > 0 {
            return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let argument = CommandLine.arguments[0]
        return URL(fileURLWithPath: argument).resolvingSymlinksInPath().path
    }
}
