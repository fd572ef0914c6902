#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix

/// Errors from the socket layer in the words a user expects ("address already in use",
/// "connection refused"), without the library's call names, type names or errno numbers.
///
/// NIO's own descriptions are written for its developers: `bind(descriptor:ptr:bytes:): Address
/// already in use (errno: 98)`, or `SingleConnectionFailure(target: [IPv4]127.0.0.1/...` for a
/// refused connect. Log lines and error messages go through this instead.
public enum PlainErrors {
    /// One short phrase, lowercase, no trailing period.
    public static func describe(_ error: Error) -> String {
        if let error = error as? IOError { return phrase(errno: error.errnoCode) }
        if let error = error as? ChannelError {
            switch error {
            case .connectTimeout(let amount):
                return "timed out after \(seconds(amount))"
            case .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed, .eof:
                return "the connection is closed"
            default:
                return "\(error)"
            }
        }
        if let error = error as? NIOConnectionError {
            return describe(error)
        }
        if let error = error as? SocketAddressError {
            switch error {
            case .unknown(let host, _): return "cannot resolve \(host)"
            case .unsupported: return "unsupported address"
            case .unixDomainSocketPathTooLong: return "socket path too long"
            case .failedToParseIPString(let text): return "'\(text)' is not an IP address"
            }
        }
        return "\(error)"
    }

    /// A failed connect over every address a name resolved to: the most telling cause.
    static func describe(_ error: NIOConnectionError) -> String {
        let causes = error.connectionErrors.map { describe($0.error) }
        if causes.isEmpty {
            if error.dnsAError != nil || error.dnsAAAAError != nil { return "cannot resolve \(error.host)" }
            return "no address to connect to for \(error.host)"
        }
        let refused = phrase(errno: ECONNREFUSED)
        if causes.contains(refused) { return refused }
        return causes[0]
    }

    /// strerror(3) with its first letter lowered, so it reads as part of a sentence.
    public static func phrase(errno code: CInt) -> String {
        guard let text = strerror(code).map({ String(cString: $0) }), !text.isEmpty else {
            return "system error \(code)"
        }
        return text.prefix(1).lowercased() + text.dropFirst()
    }

    private static func seconds(_ amount: TimeAmount) -> String {
        let seconds = Double(amount.nanoseconds) / 1e9
        return seconds == seconds.rounded() ? "\(Int(seconds)) s" : "\(seconds) s"
    }
}
