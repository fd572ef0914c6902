#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

// Plain blocking POSIX sockets for ProcessEndToEndTests: TCP clients, and target services that
// serve each connection on a thread of its own. Blocking calls are made from `e2eOffload` threads
// (or from the services' own threads), never from Swift's cooperative pool.

/// Describes how `actual` differs from `expected`, or nil when they are equal.
func e2eDifference(_ actual: [UInt8], _ expected: [UInt8]) -> String? {
    guard actual != expected else { return nil }
    let common = min(actual.count, expected.count)
    let first = (0..<common).first { actual[$0] != expected[$0] } ?? common
    let corrupted = (0..<common).reduce(0) { $0 + (actual[$1] != expected[$1] ? 1 : 0) }
    return "got \(actual.count) B, expected \(expected.count) B; first difference at byte \(first), "
        + "\(corrupted) differing bytes in the common prefix"
}

private func errnoText(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}

private func loopbackAddress(port: Int) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    return address
}

private func newTCPSocket() throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw E2EFailure("socket: \(errnoText())") }
    return fd
}

private func localPort(of fd: Int32) throws -> Int {
    var address = sockaddr_in()
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let result = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard result == 0 else { throw E2EFailure("getsockname: \(errnoText())") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Writes all of `bytes`, without SIGPIPE; false if the connection failed first.
private func writeAll(_ fd: Int32, _ bytes: ArraySlice<UInt8>, progress: ((Int) -> Void)? = nil) -> Bool {
    var offset = bytes.startIndex
    while offset < bytes.endIndex {
        let chunk = min(bytes.endIndex - offset, 65_536)
        let n = bytes.withUnsafeBytes { raw in
            send(fd, raw.baseAddress! + (offset - bytes.startIndex), chunk, Int32(MSG_NOSIGNAL))
        }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        offset += n
        progress?(n)
    }
    return true
}

// MARK: - Client

/// How a read to the end of a connection ended.
enum E2EEnd: Equatable, Sendable, CustomStringConvertible {
    /// The peer ended its output (FIN).
    case endOfFile
    /// The peer reset the connection (ECONNRESET): an abort, never a complete reply.
    case reset
    /// The connection failed otherwise.
    case failed(String)
    /// Nothing ended it before the deadline.
    case timedOut

    var description: String {
        switch self {
        case .endOfFile: return "end of file"
        case .reset: return "reset by the peer"
        case .failed(let reason): return "error: \(reason)"
        case .timedOut: return "timed out"
        }
    }

    /// The connection is over (whether by FIN or by reset), as opposed to still open.
    var isClosed: Bool { self != .timedOut }
}

struct E2EReadResult: Sendable {
    var bytes: [UInt8]
    var end: E2EEnd
    /// When the end (or the timeout) was seen.
    var endedAt: ContinuousClock.Instant
    /// (when, total so far) after every read, for tests about timing.
    var arrivals: [(at: ContinuousClock.Instant, total: Int)]
}

/// A blocking TCP client connection to 127.0.0.1.
final class E2EClient: @unchecked Sendable {
    // @unchecked: `fd` is only closed once, by `close()` (guarded by `lock`); reads and writes
    // from two threads at once are what a socket is for.
    let fd: Int32
    private let lock = NSLock()
    private var closed = false
    /// A send that failed because the peer had reset the connection. Linux hands the reset to
    /// whichever call comes first: a send that meets it takes the error, and the next recv only
    /// sees the end (0). `readToEnd` reports that end as the reset it was.
    private var sendMetReset = false

    private init(fd: Int32) {
        self.fd = fd
    }

    deinit {
        close()
    }

    /// Connects; `receiveBuffer` (set before connecting, so the window is small from the start)
    /// models a reader that takes little at a time.
    static func connect(port: Int, receiveBuffer: Int? = nil) throws -> E2EClient {
        let fd = try newTCPSocket()
        if var size = receiveBuffer.map(Int32.init) {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = loopbackAddress(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw E2EFailure("connect to 127.0.0.1:\(port): \(errnoText(code))")
        }
        return E2EClient(fd: fd)
    }

    /// Whether something accepts connections on the port now (the probe connection is closed at once).
    static func accepts(port: Int) -> Bool {
        (try? connect(port: port)) != nil
    }

    func send(_ bytes: [UInt8]) throws {
        guard writeAll(fd, bytes[...]) else {
            let code = errno
            if code == ECONNRESET { lock.withLock { sendMetReset = true } }
            throw E2EFailure("send failed: \(errnoText(code))")
        }
    }

    func shutdownWrite() {
        shutdown(fd, Int32(SHUT_WR))
    }

    /// Reads until the peer ends its output, the connection fails, `limit` bytes have arrived,
    /// or `timeout` seconds pass.
    func readToEnd(timeout: Double, limit: Int = .max) -> E2EReadResult {
        let deadline = ContinuousClock.now + .nanoseconds(Int64(timeout * 1e9))
        var bytes: [UInt8] = []
        var arrivals: [(at: ContinuousClock.Instant, total: Int)] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while bytes.count < limit {
            let remaining = deadline - ContinuousClock.now
            if remaining <= .zero {
                return E2EReadResult(bytes: bytes, end: .timedOut, endedAt: .now, arrivals: arrivals)
            }
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&descriptor, 1, Int32(max(1, min(remaining.inSeconds * 1000, 1000))))
            if ready < 0 && errno == EINTR { continue }
            if ready <= 0 { continue }
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, limit - bytes.count), 0) }
            if n > 0 {
                bytes += buffer[0..<n]
                arrivals.append((.now, bytes.count))
            } else if n == 0 {
                let end: E2EEnd = lock.withLock { sendMetReset } ? .reset : .endOfFile
                return E2EReadResult(bytes: bytes, end: end, endedAt: .now, arrivals: arrivals)
            } else if errno == ECONNRESET {
                return E2EReadResult(bytes: bytes, end: .reset, endedAt: .now, arrivals: arrivals)
            } else if errno != EINTR && errno != EAGAIN {
                return E2EReadResult(bytes: bytes, end: .failed(errnoText()), endedAt: .now, arrivals: arrivals)
            }
        }
        return E2EReadResult(bytes: bytes, end: .timedOut, endedAt: .now, arrivals: arrivals)
    }

    /// Waits until the peer closes the connection (ends its output, resets it) or `timeout`
    /// seconds pass, without reading anything, so another thread may read meanwhile. Returns
    /// whether it closed.
    func waitForClose(timeout: Double) -> Bool {
        let deadline = ContinuousClock.now + .nanoseconds(Int64(timeout * 1e9))
        while true {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { return false }
            // POLLRDHUP (0x2000 on Linux): the peer ended its output. Data arriving does not wake it.
            var descriptor = pollfd(fd: fd, events: Int16(0x2000), revents: 0)
            let ready = poll(&descriptor, 1, Int32(max(1, min(remaining.inSeconds * 1000, 1000))))
            if ready > 0 { return true }
            if ready < 0 && errno != EINTR { return true }
        }
    }

    /// Sends `bytes` and ends the output from a thread of its own while this one reads the
    /// whole response, so a large upload and its echo flow at the same time.
    func sendWhileReadingToEnd(_ bytes: [UInt8], timeout: Double) -> E2EReadResult {
        let sender = Thread { [self] in
            try? send(bytes)
            shutdownWrite()
        }
        sender.start()
        return readToEnd(timeout: timeout)
    }

    func close() {
        lock.withLock {
            guard !closed else { return }
            closed = true
            Glibc.close(fd)
        }
    }
}

/// Sends `request`, ends the output, and reads the whole response.
func e2eExchange(port: Int, _ request: [UInt8], timeout: Double) throws -> E2EReadResult {
    let client = try E2EClient.connect(port: port)
    defer { client.close() }
    try client.send(request)
    client.shutdownWrite()
    return client.readToEnd(timeout: timeout)
}

// MARK: - Target services

/// A TCP service on 127.0.0.1 (a port the system picks), one thread per connection.
final class E2ETarget: @unchecked Sendable {
    // @unchecked: the mutable state is guarded by `lock`.
    enum Behaviour: Sendable {
        /// Echoes everything; ends its output after the client's end of input.
        case echo
        /// Reads until the client's end of input, then answers `replyAfterEndOfInput(to:)`.
        case replyAfterEndOfInput
        /// A connection whose first bytes are `floodRequest` gets `flood` and the end of output;
        /// any other connection is echoed.
        case floodOrEcho(flood: [UInt8])
        /// Sends `download` while reading the client's upload, at the same time; every complete
        /// upload is kept in `uploads`.
        case exchange(download: [UInt8])
        /// A minimal HTTP/1.0 server: reads a request's head, answers 200 with `body`, closes.
        case http(body: [UInt8])
        /// Reads until `expected` bytes (or the end of input) have come, keeps them in `uploads`,
        /// answers `GOT <count>\n` and ends its output: an upload with no half-close needed.
        case sink(expected: Int)
    }

    static let floodRequest = Array("FLOOD\n".utf8)

    static func replyAfterEndOfInput(to data: [UInt8]) -> [UInt8] {
        Array("GOT \(data.count)\n".utf8) + data.reversed()
    }

    let behaviour: Behaviour
    private var service: TCPService?
    private let lock = NSLock()
    private var completedUploads: [[UInt8]] = []
    private var floodWritten = 0
    private var resetCount = 0

    /// Listens (through the test kit's `TCPService`) and serves every connection as `behaviour` says.
    init(_ behaviour: Behaviour) throws {
        self.behaviour = behaviour
        service = try TCPService(name: "e2e target") { [weak self] fd in self?.serve(fd) }
    }

    deinit {
        stop()
    }

    var port: Int { service!.port }
    var accepted: Int { service?.accepted ?? 0 }
    var uploads: [[UInt8]] { lock.withLock { completedUploads } }
    var floodBytesWritten: Int { lock.withLock { floodWritten } }
    /// Connections whose reads ended with ECONNRESET: S cut them off rather than closing.
    var resets: Int { lock.withLock { resetCount } }

    /// Stops accepting, breaks every open connection, and waits for all threads.
    func stop() {
        service?.stop()
    }

    /// Reads up to `count` bytes; fewer only at end of file or on error.
    private func readSome(_ fd: Int32, _ buffer: inout [UInt8], max count: Int) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count), 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && errno == ECONNRESET { lock.withLock { resetCount += 1 } }
            return n
        }
    }

    private func serve(_ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        switch behaviour {
        case .echo:
            echo(fd, prefix: [], buffer: &buffer)
        case .replyAfterEndOfInput:
            var received: [UInt8] = []
            while true {
                let n = readSome(fd, &buffer, max: buffer.count)
                if n < 0 { return }
                if n == 0 { break }
                received += buffer[0..<n]
            }
            if writeAll(fd, Self.replyAfterEndOfInput(to: received)[...]) { shutdown(fd, Int32(SHUT_WR)) }
            drainUntilClosed(fd, &buffer)
        case .floodOrEcho(let flood):
            var first: [UInt8] = []
            while first.count < Self.floodRequest.count {
                let n = readSome(fd, &buffer, max: Self.floodRequest.count - first.count)
                if n <= 0 { break }
                first += buffer[0..<n]
            }
            if first == Self.floodRequest {
                let complete = writeAll(fd, flood[...]) { [self] n in lock.withLock { floodWritten += n } }
                if complete { shutdown(fd, Int32(SHUT_WR)) }
                drainUntilClosed(fd, &buffer)
            } else {
                echo(fd, prefix: first, buffer: &buffer)
            }
        case .http(let body):
            var request: [UInt8] = []
            while !request.e2eContains(Array("\r\n\r\n".utf8)) && request.count < 65_536 {
                let n = readSome(fd, &buffer, max: buffer.count)
                if n <= 0 { return }
                request += buffer[0..<n]
            }
            let head = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
            if writeAll(fd, (Array(head.utf8) + body)[...]) { shutdown(fd, Int32(SHUT_WR)) }
            drainUntilClosed(fd, &buffer)
        case .sink(let expected):
            var upload: [UInt8] = []
            while upload.count < expected {
                let n = readSome(fd, &buffer, max: min(buffer.count, expected - upload.count))
                if n <= 0 { break }
                upload += buffer[0..<n]
            }
            lock.withLock { completedUploads.append(upload) }
            if writeAll(fd, Array("GOT \(upload.count)\n".utf8)[...]) { shutdown(fd, Int32(SHUT_WR)) }
            drainUntilClosed(fd, &buffer)
        case .exchange(let download):
            let sent = DispatchSemaphore(value: 0)
            let writer = Thread {
                if writeAll(fd, download[...]) { shutdown(fd, Int32(SHUT_WR)) }
                sent.signal()
            }
            writer.stackSize = 256 * 1024
            writer.start()
            var upload: [UInt8] = []
            var complete = false
            while true {
                let n = readSome(fd, &buffer, max: buffer.count)
                if n < 0 { break }
                if n == 0 {
                    complete = true
                    break
                }
                upload += buffer[0..<n]
            }
            if complete { lock.withLock { completedUploads.append(upload) } }
            else { shutdown(fd, Int32(SHUT_RDWR)) }  // unblock the writer
            sent.wait()
        }
    }

    private func echo(_ fd: Int32, prefix: [UInt8], buffer: inout [UInt8]) {
        if !prefix.isEmpty, !writeAll(fd, prefix[...]) { return }
        while true {
            let n = readSome(fd, &buffer, max: buffer.count)
            if n < 0 { return }
            if n == 0 {
                shutdown(fd, Int32(SHUT_WR))
                return
            }
            if !writeAll(fd, buffer[0..<n]) { return }
        }
    }

    /// After ending its output, waits for the client to close too (so closing does not reset
    /// a connection whose last bytes are still on their way).
    private func drainUntilClosed(_ fd: Int32, _ buffer: inout [UInt8]) {
        while readSome(fd, &buffer, max: buffer.count) > 0 {}
    }
}

// MARK: - Kernel socket queues

extension E2EClient {
    /// This connection's local port.
    var localPort: Int { (try? localPortOf(fd)) ?? 0 }
}

private func localPortOf(_ fd: Int32) throws -> Int { try localPort(of: fd) }

/// The rows of /proc/net/tcp after its header, split into fields: [1] is the local address,
/// [2] the remote one (hex `ADDR:PORT`), [3] the state (`0A` listening), [4] `TXQ:RXQ`.
func e2eTCPTable() -> [[Substring]] {
    // Read to the end by hand: procfs files report a size of 0, which some readers trust.
    guard let file = FileHandle(forReadingAtPath: "/proc/net/tcp") else { return [] }
    defer { try? file.close() }
    let table = String(decoding: file.readDataToEndOfFile(), as: UTF8.self)
    return table.split(separator: "\n").dropFirst().map { $0.split(separator: " ") }.filter { $0.count > 4 }
}

/// Bytes queued in the kernel for the IPv4 TCP socket `localPort` → `remotePort` on 127.0.0.1, from
/// /proc/net/tcp: `send` written by the application and not yet acknowledged by the peer,
/// `receive` arrived and not yet read by the application. Nil if there is no such socket.
func e2eSocketQueues(localPort: Int, remotePort: Int) -> (send: Int, receive: Int)? {
    let local = String(format: "0100007F:%04X", localPort)
    let remote = String(format: "0100007F:%04X", remotePort)
    guard let fields = e2eTCPTable().first(where: { $0[1] == local && $0[2] == remote }) else { return nil }
    let queues = fields[4].split(separator: ":")
    guard queues.count == 2, let send = Int(queues[0], radix: 16), let receive = Int(queues[1], radix: 16) else { return nil }
    return (send, receive)
}

/// Whether a TCP socket listens on `port` of 127.0.0.1 or of every address, found without
/// connecting to it.
func e2eListening(port: Int) -> Bool {
    let suffix = String(format: ":%04X", port)
    return e2eTCPTable().contains { $0[1].hasSuffix(suffix) && $0[3] == "0A" }
}

extension Array where Element == UInt8 {
    /// Whether `needle` occurs anywhere in the bytes.
    func e2eContains(_ needle: [UInt8]) -> Bool {
        guard needle.count <= count else { return false }
        return (0...(count - needle.count)).contains { self[$0..<($0 + needle.count)].elementsEqual(needle) }
    }
}

// MARK: - SOCKS5 client

/// A SOCKS5 CONNECT made by hand, for the requests curl would never send. Blocking.
enum E2ESOCKS {
    /// Greets without authentication, sends `request` (VER CMD RSV ATYP ADDR PORT) and returns
    /// the reply code, or nil if the proxy closed the connection without one.
    static func connect(port: Int, request: [UInt8], timeout: Double = 10) throws -> (reply: UInt8?, client: E2EClient) {
        let client = try E2EClient.connect(port: port)
        try client.send([5, 1, 0])
        let method = client.readToEnd(timeout: timeout, limit: 2)
        guard method.bytes == [5, 0] else { return (nil, client) }
        try client.send(request)
        let reply = client.readToEnd(timeout: timeout, limit: 10)
        return (reply.bytes.count == 10 ? reply.bytes[1] : nil, client)
    }

    /// Greets offering only username/password (RFC 1929) and authenticates; returns the method
    /// the proxy chose (0xFF: none acceptable) and the status of the authentication (0: success),
    /// nil where the proxy closed the connection first.
    static func authenticate(port: Int, username: String, password: String,
                             timeout: Double = 10) throws -> (method: UInt8?, status: UInt8?, client: E2EClient) {
        let client = try E2EClient.connect(port: port)
        try client.send([5, 1, 2])
        let method = client.readToEnd(timeout: timeout, limit: 2).bytes
        guard method.count == 2, method[1] == 2 else { return (method.count == 2 ? method[1] : nil, nil, client) }
        try client.send([1, UInt8(username.utf8.count)] + Array(username.utf8) + [UInt8(password.utf8.count)] + Array(password.utf8))
        let status = client.readToEnd(timeout: timeout, limit: 2).bytes
        return (2, status.count == 2 ? status[1] : nil, client)
    }

    /// A CONNECT request for a host name.
    static func request(host: String, port: Int, command: UInt8 = 1) -> [UInt8] {
        [5, command, 0, 3, UInt8(host.utf8.count)] + Array(host.utf8) + [UInt8(port >> 8), UInt8(port & 0xFF)]
    }

    /// A CONNECT request for an IPv6 address given as 16 bytes.
    static func request(ipv6: [UInt8], port: Int) -> [UInt8] {
        [5, 1, 0, 4] + ipv6 + [UInt8(port >> 8), UInt8(port & 0xFF)]
    }
}
