#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as bytes, for matching against address rules.
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 (IPv6), network order.
    public let bytes: [UInt8]

    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            let raw = withUnsafeBytes(of: &v6) { Array($0) }
            // An IPv4-mapped address (::ffff:a.b.c.d) is that IPv4 address.
            if raw[0..<10].allSatisfy({ $0 == 0 }) && raw[10] == 0xFF && raw[11] == 0xFF {
                bytes = Array(raw[12...])
            } else {
                bytes = raw
            }
            return
        }
        return nil
    }

    public var isIPv4: Bool { bytes.count == 4 }

    public var description: String {
        if isIPv4 { return bytes.map(String.init).joined(separator: ".") }
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var raw = in6_addr()
        withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: bytes) }
        _ = inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Whether the first `prefix` bits equal those of `network` (same family only).
    func isIn(_ network: IPAddress, prefix: Int) -> Bool {
        guard bytes.count == network.bytes.count else { return false }
        var remaining = prefix
        for index in bytes.indices where remaining > 0 {
            let bits = min(8, remaining)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if bytes[index] & mask != network.bytes[index] & mask { return false }
            remaining -= bits
        }
        return true
    }
}

/// One `--allow` rule: which targets the end that makes the TCP connection may reach.
///
/// - `host:port`, `host:*`: that name as written (case aside), or that address;
/// - `*:443`: any host on that port;
/// - `10.0.0.0/8:22`, `[fd00::/8]:*`: any address in the network;
/// - `any`: everything (an open proxy; say so on purpose).
///
/// A name is matched as written. An address or network is matched against the addresses the
/// target resolves to, and the connection then goes only to an address that matched, so a DNS
/// name cannot be used to reach an address the rules do not allow.
public enum AllowRule: Hashable, Sendable, CustomStringConvertible {
    case any
    /// A host name, matched textually; nil port = any port.
    case name(String, port: Int?)
    /// An address or network (`prefix` bits); nil port = any port.
    case network(IPAddress, prefix: Int, port: Int?)
    /// Any host on this port (`*:443`).
    case anyHost(port: Int)

    public var description: String {
        func port(_ port: Int?) -> String { port.map(String.init) ?? "*" }
        switch self {
        case .any: return "any"
        case .name(let name, let p): return "\(name):\(port(p))"
        case .network(let address, let prefix, let p):
            let full = prefix == (address.isIPv4 ? 32 : 128)
            let text = full ? "\(address)" : "\(address)/\(prefix)"
            return address.isIPv4 ? "\(text):\(port(p))" : "[\(text)]:\(port(p))"
        case .anyHost(let p): return "*:\(p)"
        }
    }

    /// Parses a rule; the error says what the forms are.
    public static func parse(_ text: String) throws(ForwardSpecError) -> AllowRule {
        let expected = "an --allow rule is host:port, host:*, *:port, a network such as 10.0.0.0/8:22, or any"
        if text.lowercased() == "any" { return .any }
        guard let parts = try? ForwardSpec.split(text, expected: expected), parts.count == 2, !parts[0].isEmpty else {
            throw ForwardSpecError("'\(text)': \(expected)")
        }
        let port: Int?
        if parts[1] == "*" {
            port = nil
        } else if let value = Int(parts[1]), (1...65_535).contains(value) {
            port = value
        } else {
            throw ForwardSpecError("'\(text)': '\(parts[1])' is not a port (1 to 65535, or *); \(expected)")
        }
        let host = parts[0]
        if host == "*" {
            guard let port else { return .any }
            return .anyHost(port: port)
        }
        if let slash = host.firstIndex(of: "/") {
            guard let address = IPAddress(String(host[..<slash])), let prefix = Int(host[host.index(after: slash)...]),
                  (0...(address.isIPv4 ? 32 : 128)).contains(prefix) else {
                throw ForwardSpecError("'\(text)': '\(host)' is not a network such as 10.0.0.0/8; \(expected)")
            }
            return .network(address, prefix: prefix, port: port)
        }
        if let address = IPAddress(host) {
            return .network(address, prefix: address.isIPv4 ? 32 : 128, port: port)
        }
        guard !host.contains(where: { $0.isWhitespace || $0 == "/" || $0 == "*" }) else {
            throw ForwardSpecError("'\(text)': \(expected) (names match as written: no wildcards inside a name)")
        }
        return .name(host, port: port)
    }
}

/// What the end that makes TCP connections may connect to: its default target (`S -ip -port`),
/// the targets of its own `-R` forwards, and its `--allow` rules. Nothing else (secure by
/// default: the connecting side decides).
public struct TargetPolicy: Hashable, Sendable {
    public var defaultTarget: Endpoint?
    public var forwardTargets: Set<Endpoint>
    public var rules: [AllowRule]

    public init(defaultTarget: Endpoint? = nil, forwardTargets: Set<Endpoint> = [], rules: [AllowRule] = []) {
        self.defaultTarget = defaultTarget
        self.forwardTargets = forwardTargets
        self.rules = rules
    }

    /// What an OPEN for `target` may lead to, before any name is resolved.
    public enum Verdict: Equatable, Sendable {
        /// Allowed as named: connect to it (resolving a name as usual).
        case allowed
        /// Only an address rule could allow it: resolve the name, and connect only to the
        /// addresses `allowedAddresses(of:among:)` keeps.
        case needsAddresses
        case denied
    }

    public func verdict(for target: Endpoint) -> Verdict {
        let wanted = target.normalised
        if let defaultTarget, defaultTarget.normalised == wanted { return .allowed }
        if forwardTargets.contains(where: { $0.normalised == wanted }) { return .allowed }
        var addressRules = false
        let literal = IPAddress(target.host)
        for rule in rules {
            switch rule {
            case .any:
                return .allowed
            case .anyHost(let port):
                if port == target.port { return .allowed }
            case .name(let name, let port):
                if Endpoint(host: name, port: target.port).normalised.host == wanted.host, port == nil || port == target.port {
                    return .allowed
                }
            case .network(let network, let prefix, let port):
                guard port == nil || port == target.port else { continue }
                if let literal {
                    if literal.isIn(network, prefix: prefix) { return .allowed }
                } else {
                    addressRules = true
                }
            }
        }
        return addressRules ? .needsAddresses : .denied
    }

    /// The resolved addresses of `target` that an address rule allows, in their order.
    public func allowedAddresses(of target: Endpoint, among addresses: [IPAddress]) -> [IPAddress] {
        addresses.filter { address in
            rules.contains { rule in
                guard case .network(let network, let prefix, let port) = rule else { return false }
                return (port == nil || port == target.port) && address.isIn(network, prefix: prefix)
            }
        }
    }
}
