// MARK: - Protection with a pre-shared key (docs/protocol.md §11, docs/security.md)

import Crypto

/// A pre-shared 256-bit key and what it protects. Both ends need the same key and mode: an end
/// with a key never talks to one without, and the reverse (§11.1).
///
/// The key is never printed: `description`, `debugDescription` and reflection (`dump`) show
/// only the mode.
public struct LinkProtection: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public enum Mode: UInt8, Sendable, CaseIterable, CustomStringConvertible {
        /// Confidentiality and integrity: every sequenced and control frame is sealed with
        /// ChaCha20-Poly1305.
        case encrypt = 1
        /// Integrity and authenticity only, with HMAC-SHA-256: the traffic stays readable, as
        /// amateur radio rules require.
        case authenticate = 2

        /// The name on the command line and in config files.
        public var description: String { self == .encrypt ? "encrypt" : "authenticate" }

        public init?(name: String) {
            guard let mode = Mode.allCases.first(where: { $0.description == name }) else { return nil }
            self = mode
        }
    }

    public enum KeyError: Error, Equatable, CustomStringConvertible {
        /// The text is not 64 hexadecimal digits (comment lines starting with `#` aside).
        case malformed
        case wrongLength(Int)

        public var description: String {
            switch self {
            case .malformed:
                "it does not hold a key: expected one line of 64 hexadecimal digits (socket2ser keygen writes one)"
            case .wrongLength(let n): "the key is \(n) bytes; a key is 32 bytes (64 hexadecimal digits)"
            }
        }
    }

    public static let keyLength = 32

    public var mode: Mode
    let key: SymmetricKey

    public init(key: [UInt8], mode: Mode = .encrypt) throws(KeyError) {
        guard key.count == Self.keyLength else { throw .wrongLength(key.count) }
        self.key = SymmetricKey(data: key)
        self.mode = mode
    }

    /// A fresh random key from the system's cryptographic generator.
    public static func generateKey() -> [UInt8] {
        SymmetricKey(size: .bits256).withUnsafeBytes { Array($0) }
    }

    /// The key file's text: a comment line, then the key as 64 lowercase hexadecimal digits.
    public static func keyFileText(_ key: [UInt8]) -> String {
        let hex = key.map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
        }.joined()
        return "# socket2ser link key: give both ends this file (--key-file); keep it private\n\(hex)\n"
    }

    /// Reads a key file's text: lines starting with `#` and blank lines are skipped, and exactly
    /// one line of 64 hexadecimal digits must remain.
    public static func parseKeyFile(_ text: String) throws(KeyError) -> [UInt8] {
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .map { $0.trimmingCharacters() }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard lines.count == 1 else { throw .malformed }
        let digits = Array(lines[0].utf8)
        guard digits.count % 2 == 0, digits.allSatisfy({ Self.hexValue($0) != nil }) else { throw .malformed }
        guard digits.count == 2 * keyLength else { throw .wrongLength(digits.count / 2) }
        return stride(from: 0, to: digits.count, by: 2).map { i in
            Self.hexValue(digits[i])! << 4 | Self.hexValue(digits[i + 1])!
        }
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    public var description: String { "\(mode) with a pre-shared key" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["mode": mode]) }
}

/// Why two ends will not talk (§11.1). Reported once per kind, as a version mismatch is.
public enum ProtectionMismatch: Equatable, Sendable, CustomStringConvertible {
    /// This end has a key and the peer's HELLO offers none (or it was stripped in transit).
    case peerHasNoKey
    /// The peer's HELLO offers protection and this end has no key.
    case peerHasKey
    /// The peer's proof does not verify: it uses another key (or the HELLO was tampered with).
    case differentKey
    /// The peer proves the same key but protects in the other mode.
    case differentMode(peer: LinkProtection.Mode)

    public var description: String {
        switch self {
        case .peerHasNoKey: "the peer has no key"
        case .peerHasKey: "the peer uses a key and this end has none"
        case .differentKey: "the peer uses a different key"
        case .differentMode(let peer): "the peer protects with --protect \(peer)"
        }
    }
}

extension Substring {
    fileprivate func trimmingCharacters() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return s
    }
}
