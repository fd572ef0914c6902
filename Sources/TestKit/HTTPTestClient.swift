#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A plain HTTP/1.1 client over a blocking socket, for the dashboard's tests: every header is
/// the caller's to set (Host and Origin included), which a browser or URLSession would not
/// allow, and nothing is cached, retried or redirected.
public enum HTTPTestClient {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    public struct Reply: Sendable {
        public var status: Int
        /// Names in lower case.
        public var headers: [String: String]
        public var body: [UInt8]
        public var text: String { String(decoding: body, as: UTF8.self) }

        /// The body as JSON (an object or an array).
        public func json() throws -> Any {
            try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        }
    }

    /// One request with `Connection: close`; the whole answer, read until the server closes.
    public static func request(_ method: String, port: Int, path: String, headers: [String: String] = [:],
                               body: String? = nil, timeout: Duration = .seconds(10)) throws -> Reply {
        let stream = try Stream(port: port, timeout: timeout)
        defer { stream.close() }
        try stream.send(method, path: path, headers: headers, body: body)
        var raw: [UInt8] = []
        while let chunk = try stream.read() { raw += chunk }
        return try parse(raw)
    }

    /// A request whose answer goes on (server-sent events): read it as it comes.
    public final class Stream: @unchecked Sendable {
        // @unchecked: used from one thread at a time by a test.
        let fd: Int32
        let timeout: Duration
        /// Everything received so far, head included.
        public private(set) var received: [UInt8] = []
        public var text: String { String(decoding: received, as: UTF8.self) }

        public init(port: Int, timeout: Duration = .seconds(10)) throws {
            self.timeout = timeout
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw Failure("socket: \(String(cString: strerror(errno)))") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0 else {
                let reason = String(cString: strerror(errno))
                Glibc.close(fd)
                throw Failure("connect to 127.0.0.1:\(port): \(reason)")
            }
            // Reads wake at least every 100 ms, so `read(until:)` keeps to its deadline.
            var wait = timeval(tv_sec: 0, tv_usec: 100_000)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        }

        func send(_ method: String, path: String, headers: [String: String], body: String?) throws {
            var head = "\(method) \(path) HTTP/1.1\r\n"
            var fields = headers
            if fields.keys.first(where: { $0.lowercased() == "host" }) == nil { fields["Host"] = "127.0.0.1:\(port)" }
            fields["Connection"] = fields["Connection"] ?? "close"
            let bytes = Array((body ?? "").utf8)
            if body != nil || method == "POST" { fields["Content-Length"] = "\(bytes.count)" }
            for (name, value) in fields.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
            head += "\r\n"
            let all = Array(head.utf8) + bytes
            var sent = 0
            while sent < all.count {
                let n = all[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                guard n > 0 else { throw Failure("send: \(String(cString: strerror(errno)))") }
                sent += n
            }
        }

        private var port: Int {
            var address = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
            }
            return Int(UInt16(bigEndian: address.sin_port))
        }

        /// The next bytes, or nil at the end; throws once `timeout` has passed without any.
        func read() throws -> [UInt8]? {
            let deadline = ContinuousClock.now + timeout
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n > 0 {
                    received += buffer[0..<n]
                    return Array(buffer[0..<n])
                }
                if n == 0 { return nil }
                guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR else {
                    if errno == ECONNRESET { return nil }
                    throw Failure("recv: \(String(cString: strerror(errno)))")
                }
                if ContinuousClock.now >= deadline { throw Failure("no answer within \(timeout)") }
            }
        }

        /// Opens a request that stays open, e.g. `GET /api/live`.
        public static func open(port: Int, path: String, headers: [String: String] = [:],
                                timeout: Duration = .seconds(10)) throws -> Stream {
            let stream = try Stream(port: port, timeout: timeout)
            try stream.send("GET", path: path, headers: headers.merging(["Connection": "keep-alive"]) { a, _ in a }, body: nil)
            return stream
        }

        /// Reads until `condition` holds for everything received so far, or fails at `timeout`.
        @discardableResult
        public func read(until what: String, timeout: Duration = .seconds(10), _ condition: (String) -> Bool) throws -> String {
            let deadline = ContinuousClock.now + timeout
            while !condition(text) {
                guard ContinuousClock.now < deadline else { throw Failure("\(what) did not come within \(timeout); got: \(text.suffix(400))") }
                do {
                    guard try read() != nil else { throw Failure("the server closed before \(what); got: \(text.suffix(400))") }
                } catch let failure as Failure where failure.description.hasPrefix("no answer") {
                    continue
                }
            }
            return text
        }

        public func close() { Glibc.close(fd) }
    }

    static func parse(_ raw: [UInt8]) throws -> Reply {
        guard let end = raw.firstRange(of: Array("\r\n\r\n".utf8)) else {
            throw Failure("no complete HTTP head in \(raw.count) bytes")
        }
        let head = String(decoding: raw[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw Failure("bad status line: \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(raw[end.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return Reply(status: status, headers: headers, body: body)
    }

    static func dechunk(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < data.count {
            guard let lineEnd = data[index...].firstRange(of: Array("\r\n".utf8)) else { break }
            let sizeText = String(decoding: data[index..<lineEnd.lowerBound], as: UTF8.self)
            guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16), size > 0 else { break }
            let start = lineEnd.upperBound
            out += data[start..<min(data.count, start + size)]
            index = start + size + 2
        }
        return out
    }
}
