#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A target service on 127.0.0.1 for the tests and the bench: a listener on a port of its own,
/// an accept thread, and a thread per connection running `serve` on a blocking descriptor.
///
/// Plain blocking sockets and threads: simple to get exactly right, and a thousand connections
/// need no more than a thousand small threads. Descriptors are close-on-exec, so the children a
/// test spawns never inherit them. `stop()` stops accepting, cuts every open connection and
/// waits (bounded) for the threads; `serve` must return once its descriptor is shut down.
public final class TCPService: @unchecked Sendable {
    // @unchecked: the mutable state is guarded by `lock`.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let port: Int
    private let listener: Int32
    private let serve: @Sendable (Int32) -> Void
    private let lock = NSLock()
    private var open: Set<Int32> = []
    private var acceptedCount = 0
    private var stopping = false
    private let threads = DispatchGroup()
    private let stackSize: Int

    /// Starts listening and accepting; `serve(fd)` runs on its own thread for each connection,
    /// which is closed when it returns.
    public init(name: String = "test service", backlog: Int32 = 4096, stackSize: Int = 256 << 10,
                serve: @escaping @Sendable (Int32) -> Void) throws {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Int32 in
                guard bind(fd, raw, length) == 0, listen(fd, backlog) == 0 else { return -1 }
                return getsockname(fd, raw, &length)
            }
        }
        guard bound == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "\(name): cannot listen on 127.0.0.1: \(why)")
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        self.serve = serve
        self.stackSize = stackSize
        spawn("\(name) accept") { [self] in acceptLoop(name: name) }
    }

    deinit { stop() }

    /// Connections accepted so far.
    public var accepted: Int { lock.withLock { acceptedCount } }

    /// Stops accepting, shuts down every open connection, and waits up to `timeout` for every
    /// thread. Safe to call more than once.
    public func stop(timeout: Duration = .seconds(5)) {
        let connections: Set<Int32>? = lock.withLock {
            guard !stopping else { return nil }
            stopping = true
            return open
        }
        guard let connections else { return }
        shutdown(listener, Int32(SHUT_RDWR))  // wakes the blocked accept()
        for fd in connections { shutdown(fd, Int32(SHUT_RDWR)) }
        let seconds = Double(timeout.components.seconds) + Double(timeout.components.attoseconds) / 1e18
        _ = threads.wait(timeout: .now() + seconds)
        close(listener)
    }

    private func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
        threads.enter()
        let thread = Thread { [threads] in
            body()
            threads.leave()
        }
        thread.name = name
        thread.stackSize = stackSize
        thread.start()
    }

    private func acceptLoop(name: String) {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 {
                switch errno {
                case EINTR, ECONNABORTED:
                    continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                    // Out of descriptors or memory for a moment (a thousand connections at once):
                    // back off briefly rather than stop accepting.
                    usleep(10_000)
                    continue
                default:
                    return  // the listener was shut down
                }
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let admitted = lock.withLock {
                guard !stopping else { return false }
                acceptedCount += 1
                open.insert(fd)
                return true
            }
            guard admitted else {
                close(fd)
                return
            }
            spawn("\(name) connection") { [self] in
                serve(fd)
                lock.withLock { _ = open.remove(fd) }
                close(fd)
            }
        }
    }
}

extension TCPService {
    /// An echo service with half-close: everything a client sends comes back, and when the
    /// client ends its output the service ends its own, once everything has been echoed. The
    /// demo's target, and the simplest target of a test.
    public static func echo(name: String = "echo service") throws -> TCPService {
        try TCPService(name: name) { fd in
            var buffer = [UInt8](repeating: 0, count: 16 << 10)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n < 0 && errno == EINTR { continue }
                if n < 0 { return }
                if n == 0 {
                    shutdown(fd, Int32(SHUT_WR))
                    // Wait for the client to close as well, so closing here resets nothing.
                    while buffer.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) > 0 {}
                    return
                }
                var offset = 0
                while offset < n {
                    let sent = buffer.withUnsafeBytes { send(fd, $0.baseAddress! + offset, n - offset, Int32(MSG_NOSIGNAL)) }
                    if sent < 0 && errno == EINTR { continue }
                    if sent <= 0 { return }
                    offset += sent
                }
            }
        }
    }
}
