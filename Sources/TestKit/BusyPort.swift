#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A port of 127.0.0.1 held by a listening socket of the test, so that whatever else tries to
/// listen there is told "address already in use". Closed once, by `release()` or deinit.
public final class BusyPort {
    public let port: Int
    private var fd: Int32

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public init() throws {
        #if canImport(Glibc)
        // Close-on-exec: a child spawned meanwhile (the bench starts many) must not inherit it.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard fd >= 0, bound == 0, listen(fd, 1) == 0, withUnsafeMutablePointer(to: &address, {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }) == 0 else {
            if fd >= 0 { close(fd) }
            throw Failure(description: "cannot hold a port: errno \(errno)")
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    public func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { release() }
}

/// A port on 127.0.0.1 that nothing listens on right now: bound, read and released. (Another
/// process could take it before the caller does; on a test machine that is rare, and whoever
/// then listens there fails loudly.)
public func freeLoopbackPort() throws -> Int {
    let held = try BusyPort()
    defer { held.release() }
    return held.port
}
