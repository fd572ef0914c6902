/// The binary forms of an OPEN target that is an address literal (docs/protocol.md §5.2):
/// `a.b.c.d:port` travels as OPEN-IPV4 (4 address bytes and 2 port bytes, 9 bytes in all where the
/// text form takes up to 25) and `[v6]:port` as OPEN-IPV6. A SOCKS client that names an address
/// (the common case) then costs the line no more than a few bytes over a plain OPEN.
///
/// Only a target whose text is exactly the canonical form is sent this way (dotted decimal without
/// leading zeros; RFC 5952 for IPv6: lower-case hex, no leading zeros, the longest run of two or
/// more zero groups as `::`), so the receiver's text is byte for byte the sender's and a policy
/// that matches names as written sees the same string either way. Anything else stays text.
public enum CompactTarget: Equatable, Sendable, CustomStringConvertible {
    case ipv4((UInt8, UInt8, UInt8, UInt8), port: UInt16)
    case ipv6([UInt16], port: UInt16)

    /// The compact form of `text`, or nil if it is not a canonical address literal with a port.
    public init?(_ text: String) {
        guard let colon = text.utf8.lastIndex(of: UInt8(ascii: ":")) else { return nil }
        let host = text[..<colon]
        guard let port = Self.decimal(text[text.index(after: colon)...], max: 65535) else { return nil }
        let candidate: CompactTarget
        if host.hasPrefix("[") && host.hasSuffix("]") {
            guard let groups = Self.ipv6Groups(host.dropFirst().dropLast()) else { return nil }
            candidate = .ipv6(groups, port: UInt16(port))
        } else {
            let parts = host.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var octets: [UInt8] = []
            for part in parts {
                guard let value = Self.decimal(part, max: 255) else { return nil }
                octets.append(UInt8(value))
            }
            candidate = .ipv4((octets[0], octets[1], octets[2], octets[3]), port: UInt16(port))
        }
        guard candidate.description == text else { return nil }
        self = candidate
    }

    /// The compact form of `text` if it is one and takes fewer bytes than the text OPEN (an IPv4
    /// target always does; `[::1]:22` does not).
    static func shorter(than text: String) -> CompactTarget? {
        guard let compact = CompactTarget(text),
              compact.encodedAddressLength + 2 < 1 + min(text.utf8.count, Wire.maxTargetLength) else { return nil }
        return compact
    }

    public static func == (a: CompactTarget, b: CompactTarget) -> Bool {
        switch (a, b) {
        case let (.ipv4(x, p), .ipv4(y, q)): return x == y && p == q
        case let (.ipv6(x, p), .ipv6(y, q)): return x == y && p == q
        default: return false
        }
    }

    public var port: UInt16 {
        switch self {
        case .ipv4(_, let port), .ipv6(_, let port): return port
        }
    }

    /// The message type that carries it.
    var messageType: Wire.MessageType {
        switch self {
        case .ipv4: return .openIPv4
        case .ipv6: return .openIPv6
        }
    }

    /// Bytes after the message type: stream (2), address, port (2).
    var encodedAddressLength: Int {
        switch self {
        case .ipv4: return 4
        case .ipv6: return 16
        }
    }

    func appendAddress(to out: inout [UInt8]) {
        switch self {
        case .ipv4(let a, _):
            out.append(a.0); out.append(a.1); out.append(a.2); out.append(a.3)
        case .ipv6(let groups, _):
            for group in groups { out.appendBE(group) }
        }
        out.appendBE(port)
    }

    /// The canonical text: what the receiver hands to its application.
    public var description: String {
        switch self {
        case .ipv4(let a, let port):
            return "\(a.0).\(a.1).\(a.2).\(a.3):\(port)"
        case .ipv6(let groups, let port):
            return "[\(Self.canonical(groups))]:\(port)"
        }
    }

    /// RFC 5952: the longest run of at least two zero groups (the first of equal runs) is `::`.
    static func canonical(_ groups: [UInt16]) -> String {
        var best: Range<Int>? = nil
        var index = 0
        while index < groups.count {
            guard groups[index] == 0 else { index += 1; continue }
            var end = index
            while end < groups.count && groups[end] == 0 { end += 1 }
            if end - index >= 2 && end - index > (best?.count ?? 0) { best = index..<end }
            index = end
        }
        func hex(_ slice: ArraySlice<UInt16>) -> String {
            slice.map { String($0, radix: 16) }.joined(separator: ":")
        }
        guard let best else { return hex(groups[...]) }
        return hex(groups[..<best.lowerBound]) + "::" + hex(groups[best.upperBound...])
    }

    /// Eight 16-bit groups from hex text with at most one `::`; nil for anything else (embedded
    /// IPv4 included: such targets stay text).
    static func ipv6Groups(_ text: Substring) -> [UInt16]? {
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            for field in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(field.count), let value = UInt16(field, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        // At most one "::"; a third colon in a row, or a second "::", is not an address.
        let chars = Array(text)
        var doubles: [Int] = []
        for index in chars.indices.dropLast() where chars[index] == ":" && chars[index + 1] == ":" {
            doubles.append(index)
        }
        switch doubles.count {
        case 0:
            guard let all = groups(text), all.count == 8 else { return nil }
            return all
        case 1:
            let at = text.index(text.startIndex, offsetBy: doubles[0])
            guard let head = groups(text[..<at]), let tail = groups(text[text.index(at, offsetBy: 2)...]),
                  head.count + tail.count <= 7 else { return nil }
            return head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        default:
            return nil
        }
    }

    /// A decimal number without sign or leading zeros, at most `max`.
    static func decimal(_ text: Substring, max: Int) -> Int? {
        guard !text.isEmpty, text.count <= 5, text.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              text == "0" || !text.hasPrefix("0"), let value = Int(text), value <= max else { return nil }
        return value
    }
}
