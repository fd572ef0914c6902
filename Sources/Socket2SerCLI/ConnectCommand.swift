#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import Forwarding

/// `socket2ser connect HOST:PORT`: a tiny TCP client, standard input to the connection and the
/// connection to standard output, so that trying a forward needs nothing that may not be
/// installed (`nc` and `socat` are not on every machine).
///
/// The end of standard input half-closes the connection (as `nc -N` does), and the command exits
/// once the other side has closed: 0 after a clean end of the stream, 1 after a reset or an error,
/// with one line saying which. A cut-off connection can so never pass for a complete reply.
struct ConnectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connect",
        abstract: "Connect standard input and output to a TCP port (a minimal nc).",
        discussion: """
            Try a forward without nc or socat:
              socket2ser connect 127.0.0.1:2222
            Typed lines go to the connection, what comes back is printed. The end of input \
            (Ctrl-D) ends the sending side; the command ends when the other side closes: status 0 \
            after a clean end, 1 after a reset or an error.
            """)

    @Argument(help: ArgumentHelp("Where to connect: HOST:PORT, [IPv6]:PORT, or a port alone for 127.0.0.1.",
                                 valueName: "host:port"),
              transform: ConnectCommand.endpoint)
    var endpoint: Endpoint

    struct Endpoint: Equatable, Sendable {
        var host: String
        var port: Int
    }

    /// `127.0.0.1:2222`, `[::1]:2222`, `localhost:80`, or `2222` alone.
    static func endpoint(_ text: String) throws -> Endpoint {
        let expected = "give HOST:PORT, e.g. 127.0.0.1:2222 (or [::1]:2222, or a port alone)"
        if let port = Int(text) { return Endpoint(host: "127.0.0.1", port: try ArgumentValues.port("\(port)")) }
        var host: Substring
        var portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                throw CommandLineError(expected)
            }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") else {
                throw CommandLineError(expected)
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard !host.isEmpty else { throw CommandLineError(expected) }
        return Endpoint(host: String(host), port: try ArgumentValues.port(String(portText)))
    }

    func run() throws {
        // A write to a connection the other side has reset must be reported, not kill us.
        signal(SIGPIPE, SIG_IGN)
        let fd = try Self.connect(to: endpoint)
        defer { close(fd) }
        let name = endpoint.host.contains(":") ? "[\(endpoint.host)]:\(endpoint.port)" : "\(endpoint.host):\(endpoint.port)"
        if let failure = Self.relay(socket: fd) {
            StandardError.write("socket2ser connect: \(name): \(failure)\n")
            throw ExitCode.failure
        }
    }

    struct ConnectError: Error, CustomStringConvertible {
        let description: String
    }

    /// Resolves and connects, trying every address in turn.
    static func connect(to endpoint: Endpoint) throws -> CInt {
        var lastError: CInt = ECONNREFUSED
        var connected: CInt?
        let status = forEachStreamAddress(host: endpoint.host, port: endpoint.port) { info in
            let fd = socket(info.ai_family, info.ai_socktype, info.ai_protocol)
            guard fd >= 0 else {
                lastError = errno
                return true
            }
            if systemConnect(fd, info.ai_addr, info.ai_addrlen) == 0 {
                connected = fd
                return false
            }
            lastError = errno
            close(fd)
            return true
        }
        guard status == 0 else {
            let reason = String(cString: gai_strerror(status))
            throw ConnectError(description: "cannot resolve \(endpoint.host): \(reason.prefix(1).lowercased() + reason.dropFirst())")
        }
        if let connected { return connected }
        throw ConnectError(description: "cannot connect to \(endpoint.host):\(endpoint.port): \(PlainErrors.phrase(errno: lastError))")
    }

    /// Copies standard input to the socket and the socket to standard output until the socket
    /// ends. Returns nil after a clean end, or what went wrong.
    static func relay(socket fd: CInt) -> String? {
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        var inputOpen = true
        while true {
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            if inputOpen { fds.append(pollfd(fd: STDIN_FILENO, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), -1)
            if ready < 0 {
                if errno == EINTR { continue }
                return PlainErrors.phrase(errno: errno)
            }
            if fds[0].revents != 0 {
                let count = read(fd, &buffer, buffer.count)
                if count == 0 { return nil }
                if count < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    return errno == ECONNRESET ? "connection reset by the other side" : PlainErrors.phrase(errno: errno)
                }
                guard writeAll(STDOUT_FILENO, buffer, count) else { return "cannot write to standard output" }
            }
            if inputOpen, fds.count > 1, fds[1].revents != 0 {
                let count = read(STDIN_FILENO, &buffer, buffer.count)
                if count > 0 {
                    guard writeAll(fd, buffer, count) else {
                        return errno == ECONNRESET || errno == EPIPE
                            ? "connection reset by the other side" : PlainErrors.phrase(errno: errno)
                    }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    inputOpen = false
                    shutdown(fd, Int32(SHUT_WR))
                }
            }
        }
    }

    private static func writeAll(_ fd: CInt, _ buffer: [UInt8], _ count: Int) -> Bool {
        var offset = 0
        while offset < count {
            let written = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + offset, count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                return false
            }
            offset += written
        }
        return true
    }
}

private func systemConnect(_ fd: CInt, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> CInt {
    #if canImport(Glibc)
    return Glibc.connect(fd, address, length)
    #else
    return Darwin.connect(fd, address, length)
    #endif
}
