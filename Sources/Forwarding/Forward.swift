/// A TCP address as a user writes it: a host name or an IP literal, and a port.
public struct Endpoint: Hashable, Sendable, CustomStringConvertible {
    /// A name, an IPv4 literal or an IPv6 literal (without brackets).
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, with an IPv6 literal in brackets: the form OPEN messages carry (§5.2).
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `host:port` or `[v6]:port`, as an OPEN message's target names it.
    public init?(parsing text: String) {
        guard let parts = try? ForwardSpec.split(text), parts.count == 2,
              let port = Int(parts[1]), (0...65_535).contains(port), !parts[0].isEmpty else { return nil }
        self.init(host: parts[0], port: port)
    }

    /// The same endpoint with a name compared as DNS compares names: case-insensitively, and
    /// without a trailing dot.
    var normalised: Endpoint {
        var name = host.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        return Endpoint(host: name, port: port)
    }
}

/// One forward, as OpenSSH's `-L`, `-R` and `-D` describe it. The command line, the config file
/// and the runtime all speak in these.
public enum Forward: Hashable, Sendable, CustomStringConvertible {
    /// Listen here on `listen`; each connection becomes a stream the far end connects to
    /// `target`, or to its own default target when `target` is nil (`C -port P`).
    case local(listen: Endpoint, target: Endpoint?)
    /// Ask the far end to listen on `listen`; each connection there becomes a stream this end
    /// connects to `target`.
    case remote(listen: Endpoint, target: Endpoint)
    /// A SOCKS5 proxy here on `listen`; each CONNECT names its target, which the far end reaches.
    case dynamic(listen: Endpoint)

    /// Where this end or the far end listens.
    public var listen: Endpoint {
        switch self {
        case .local(let listen, _), .remote(let listen, _), .dynamic(let listen): return listen
        }
    }

    /// The spelling the option takes: `-L 127.0.0.1:2222:localhost:22`.
    public var description: String {
        switch self {
        case .local(let listen, let target):
            return "-L \(ForwardSpec.bindText(listen)):\(target.map(ForwardSpec.targetText) ?? "(the far end's default target)")"
        case .remote(let listen, let target):
            return "-R \(ForwardSpec.bindText(listen)):\(ForwardSpec.targetText(target))"
        case .dynamic(let listen):
            return "-D \(ForwardSpec.bindText(listen))"
        }
    }
}

extension Forward {
    /// The option letter and what follows it: ("L", "127.0.0.1:2222:localhost:22"). C's -port,
    /// a local forward to the far end's default target, has no target part.
    public var kindAndSpec: (kind: String, spec: String) {
        switch self {
        case .local(let listen, let target):
            return ("L", target.map { "\(listen):\($0)" } ?? listen.description)
        case .remote(let listen, let target): return ("R", "\(listen):\(target)")
        case .dynamic(let listen): return ("D", listen.description)
        }
    }
}

extension Endpoint {
    /// `localhost`, 127.0.0.0/8 or ::1: reachable from this computer only.
    public static func isLoopback(host: String) -> Bool {
        if host.lowercased() == "localhost" { return true }
        guard let address = IPAddress(host) else { return false }
        return address.isIPv4 ? address.bytes[0] == 127 : address.bytes == [UInt8](repeating: 0, count: 15) + [1]
    }
}

/// Why a forward spec cannot be read; the text is what the user sees after the flag.
public struct ForwardSpecError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// OpenSSH's syntax for forwards: `[bind_address:]port:host:hostport` for -L and -R, and
/// `[bind_address:]port` for -D. An IPv6 address goes in brackets (`[::1]:8080:[fd00::2]:22`).
/// An absent bind address means 127.0.0.1 (this computer only); `*` or an empty one means every
/// interface, as in OpenSSH.
public enum ForwardSpec {
    /// The bind address when none is given: loopback, so nothing is exposed by accident.
    public static let defaultBind = "127.0.0.1"

    public static func local(_ text: String) throws(ForwardSpecError) -> Forward {
        let (listen, target) = try listenAndTarget(text, flag: "-L")
        return .local(listen: listen, target: target)
    }

    public static func remote(_ text: String) throws(ForwardSpecError) -> Forward {
        let (listen, target) = try listenAndTarget(text, flag: "-R")
        return .remote(listen: listen, target: target)
    }

    public static func dynamic(_ text: String) throws(ForwardSpecError) -> Forward {
        let expected = "-D takes [bind_address:]port, e.g. 1080 or 127.0.0.1:1080"
        let parts = try split(text, expected: expected)
        switch parts.count {
        case 1: return .dynamic(listen: Endpoint(host: defaultBind, port: try port(parts[0], expected: expected)))
        case 2: return .dynamic(listen: Endpoint(host: bind(parts[0]), port: try port(parts[1], expected: expected)))
        default: throw ForwardSpecError(expected)
        }
    }

    private static func listenAndTarget(_ text: String, flag: String) throws(ForwardSpecError) -> (Endpoint, Endpoint) {
        let expected = "\(flag) takes [bind_address:]port:host:hostport, e.g. 2222:localhost:22"
        let parts = try split(text, expected: expected)
        let bindHost: String
        let rest: ArraySlice<String>
        switch parts.count {
        case 3:
            bindHost = defaultBind
            rest = parts[...]
        case 4:
            bindHost = bind(parts[0])
            rest = parts[1...]
        default:
            throw ForwardSpecError(expected)
        }
        let listenPort = try port(rest[rest.startIndex], expected: expected)
        let host = rest[rest.startIndex + 1]
        guard !host.isEmpty, !host.contains(where: \.isWhitespace) else { throw ForwardSpecError(expected) }
        let targetPort = try port(rest[rest.startIndex + 2], expected: expected, allowZero: false)
        return (Endpoint(host: bindHost, port: listenPort), Endpoint(host: host, port: targetPort))
    }

    /// OpenSSH: an empty bind address or `*` is every interface; `localhost` stays as written.
    private static func bind(_ text: String) -> String {
        text.isEmpty || text == "*" ? "0.0.0.0" : text
    }

    private static func port(_ text: String, expected: String, allowZero: Bool = true) throws(ForwardSpecError) -> Int {
        guard let value = Int(text), (allowZero ? 0 : 1)...65_535 ~= value else {
            throw ForwardSpecError("'\(text)' is not a port (1 to 65535); \(expected)")
        }
        return value
    }

    /// Splits at colons outside brackets, and takes the brackets off: `[::1]:80` → `::1`, `80`.
    static func split(_ text: String, expected: String = "") throws(ForwardSpecError) -> [String] {
        var parts: [String] = []
        var current = ""
        var inBrackets = false
        var wasBracketed = false
        for character in text {
            switch character {
            case "[" where current.isEmpty && !inBrackets:
                inBrackets = true
                wasBracketed = true
            case "]" where inBrackets:
                inBrackets = false
            case ":" where !inBrackets:
                parts.append(current)
                current = ""
                wasBracketed = false
            default:
                if wasBracketed && !inBrackets {
                    throw ForwardSpecError("'\(text)': only ':' may follow ']'; \(expected)")
                }
                current.append(character)
            }
        }
        guard !inBrackets else { throw ForwardSpecError("'\(text)' has an unclosed '['; \(expected)") }
        parts.append(current)
        return parts
    }

    static func bindText(_ endpoint: Endpoint) -> String { endpoint.description }

    static func targetText(_ endpoint: Endpoint) -> String { endpoint.description }
}
