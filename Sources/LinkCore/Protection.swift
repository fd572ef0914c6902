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
    /// Where each session's fresh random comes from: the system's cryptographic generator. A
    /// simulation passes a seeded one, so that it replays exactly.
    public var randomBytes: @Sendable (Int) -> [UInt8] = { n in
        SymmetricKey(size: SymmetricKeySize(bitCount: n * 8)).withUnsafeBytes { Array($0) }
    }

    public init(key: [UInt8], mode: Mode = .encrypt) throws(KeyError) {
        guard key.count == Self.keyLength else { throw .wrongLength(key.count) }
        self.key = SymmetricKey(data: key)
        self.mode = mode
    }

    public static func == (a: LinkProtection, b: LinkProtection) -> Bool { a.mode == b.mode && a.key == b.key }

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
        let lines = text.split(whereSeparator: \.isNewline)
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

// MARK: - Keys (§11.2)

import CryptoExtras
import struct Foundation.Data

extension HelloExtension.Types {
    /// `mode (1) · random (32) [· proof (32)]`, the last extension of a keyed end's HELLO (§11.1).
    public static let protection: UInt16 = 0x0002
}

extension LinkProtection {
    static let randomLength = 32
    static let proofLength = 32
    /// The tag is the first 8 bytes of Poly1305's or HMAC's: one forgery in 2^64 attempts,
    /// and 16 bytes less per keystroke's round trip (1.4 ms at 115200 baud) than a full tag.
    static let tagLength = 8
    /// The counter field holds the counter's low byte (§11.3).
    static let counterFieldLength = 1
    /// A gap of lost frames longer than this many can no longer be bridged.
    static let counterReach = 16 * 256
    /// Bytes a sealed frame adds: the counter field and the tag (§11.3).
    static let frameOverhead = counterFieldLength + tagLength

    /// The key that signs HELLO proofs, derived from the pre-shared key alone.
    var proofKey: SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: Array("SFSL-1 proof".utf8),
                               info: [mode.rawValue], outputByteCount: 32)
    }

    /// The proof a HELLO carries: HMAC-SHA-256 over the receiver's random and the HELLO body up
    /// to the proof itself, so it is fresh (the receiver's random), bound to every field the
    /// sender sends (mode, capabilities, session, echo, extensions) and cannot be reflected
    /// (an end refuses its own random).
    func proof(receiverRandom: [UInt8], body: some Collection<UInt8>) -> [UInt8] {
        var mac = HMAC<SHA256>(key: proofKey)
        mac.update(data: Array("SFSL-1 hello".utf8))
        mac.update(data: receiverRandom)
        mac.update(data: Array(body))
        return Array(mac.finalize())
    }

    /// The key for frames sent by the end whose random is `senderRandom` to the one whose random
    /// is `receiverRandom`: one per direction and per session, as each session has fresh randoms.
    func frameKey(senderRandom: [UInt8], receiverRandom: [UInt8]) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, salt: senderRandom + receiverRandom,
                               info: Array("SFSL-1 frames".utf8) + [mode.rawValue], outputByteCount: 32)
    }
}

/// Whether two byte strings are equal, in a time that depends on their lengths only, not on
/// where they differ: for secrets and tags (SOCKS passwords, HELLO proofs, frame tags).
public func constantTimeEqual(_ a: some Collection<UInt8>, _ b: some Collection<UInt8>) -> Bool {
    let x = Array(a), y = Array(b)
    var difference: UInt8 = x.count == y.count ? 0 : 1
    for index in 0..<max(x.count, y.count) {
        difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
    }
    return difference == 0
}

/// The nonce of frame `counter`: four zero bytes, then the 64-bit counter, big-endian (§11.3).
func frameNonce(_ counter: UInt64) -> [UInt8] {
    var n: [UInt8] = [0, 0, 0, 0]
    n.appendBE(counter)
    return n
}

// MARK: - Sealing frames (§11.3)

/// Seals the frames one end sends in one session. A frame is streamed: `begin` returns the
/// bytes that go in the clear (type and counter), `transform` turns each run of the plaintext
/// into what goes on the line, and `finish` returns the tag. In encrypt mode the plaintext is
/// XORed with the ChaCha20 key stream as it goes (the block counter starting at 1, as
/// ChaCha20-Poly1305 does), and `finish` seals the whole plaintext with ChaCha20-Poly1305 to get
/// the tag: its ciphertext is, byte for byte, what was streamed.
struct FrameSealer: Sendable {
    let mode: LinkProtection.Mode
    let key: SymmetricKey
    /// Frames sealed so far in this session; the next frame's counter is one more.
    private(set) var counter: UInt64 = 0
    private var aad: [UInt8] = []
    private var plaintext: [UInt8] = []
    private var keystream: [UInt8] = []
    private var used = 0
    private var mac: HMAC<SHA256>?

    init(mode: LinkProtection.Mode, key: SymmetricKey) {
        self.mode = mode
        self.key = key
    }

    mutating func begin(type: UInt8) -> [UInt8] {
        counter += 1
        aad = [type, UInt8(truncatingIfNeeded: counter)]
        plaintext.removeAll(keepingCapacity: true)
        keystream.removeAll(keepingCapacity: true)
        used = 0
        if mode == .authenticate {
            var m = HMAC<SHA256>(key: key)
            m.update(data: frameNonce(counter))
            m.update(data: aad)
            mac = m
        }
        return aad
    }

    mutating func transform<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        switch mode {
        case .authenticate:
            let clear = Array(bytes)
            mac!.update(data: clear)
            return clear
        case .encrypt:
            plaintext.append(contentsOf: bytes)
            var out = Array(bytes)
            for i in out.indices {
                if used == keystream.count { extendKeystream() }
                out[i] ^= keystream[used]
                used += 1
            }
            return out
        }
    }

    /// The next 512 bytes of key stream (8 ChaCha20 blocks).
    private mutating func extendKeystream() {
        let block = UInt32(1 + keystream.count / 64)
        let nonce = try! Insecure.ChaCha20CTR.Nonce(data: frameNonce(counter))
        let more = try! Insecure.ChaCha20CTR.encrypt([UInt8](repeating: 0, count: 512), using: key,
                                                      counter: Insecure.ChaCha20CTR.Counter(offset: block), nonce: nonce)
        keystream.append(contentsOf: more)
    }

    mutating func finish() -> [UInt8] {
        switch mode {
        case .authenticate:
            defer { mac = nil }
            return Array(mac!.finalize().prefix(LinkProtection.tagLength))
        case .encrypt:
            let nonce = try! ChaChaPoly.Nonce(data: frameNonce(counter))
            let box = try! ChaChaPoly.seal(plaintext, using: key, nonce: nonce, authenticating: aad)
            return Array(box.tag.prefix(LinkProtection.tagLength))
        }
    }
}

/// Opens the frames the peer sends in one session (§11.3). The counter field is the counter's
/// low byte: the receiver tries the smallest counter above the last frame that opened with that
/// byte, then the next 15 with it (a gap of up to 4,095 lost frames; the line never reorders),
/// and takes the first whose tag verifies. A frame that fails is dropped and changes nothing, so
/// a burst of forged, replayed or foreign frames costs only the retransmissions that repair the
/// gap.
struct FrameOpener: Sendable {
    let mode: LinkProtection.Mode
    let key: SymmetricKey
    /// The counter of the last frame that opened.
    private(set) var last: UInt64 = 0

    init(mode: LinkProtection.Mode, key: SymmetricKey) {
        self.mode = mode
        self.key = key
    }

    /// `f` is a decoded frame with its CRC checked: `type · counter (1) · sealed · tag (8) · CRC (4)`.
    /// Returns the plaintext between the counter and the tag, or nil.
    mutating func open(_ f: [UInt8]) -> [UInt8]? {
        let n = f.count
        guard n >= 1 + LinkProtection.frameOverhead + Wire.crcLength else { return nil }
        let aad = Array(f[0..<2])
        let sealed = Array(f[2..<(n - 4 - LinkProtection.tagLength)])
        let tag = f[(n - 4 - LinkProtection.tagLength)..<(n - 4)]
        var counter = (last & ~0xFF) | UInt64(f[1])
        if counter <= last { counter += 256 }
        for _ in 0..<(LinkProtection.counterReach / 256) {
            if let plaintext = attempt(counter: counter, aad: aad, sealed: sealed, tag: tag) {
                last = counter
                return plaintext
            }
            counter += 256
        }
        return nil
    }

    private func attempt(counter: UInt64, aad: [UInt8], sealed: [UInt8], tag: ArraySlice<UInt8>) -> [UInt8]? {
        let nonce = frameNonce(counter)
        switch mode {
        case .authenticate:
            var mac = HMAC<SHA256>(key: key)
            mac.update(data: nonce)
            mac.update(data: aad)
            mac.update(data: sealed)
            return constantTimeEqual(Array(mac.finalize()).prefix(LinkProtection.tagLength), tag) ? sealed : nil
        case .encrypt:
            // The key stream gives the plaintext; sealing it again gives the tag to compare.
            guard let ctrNonce = try? Insecure.ChaCha20CTR.Nonce(data: nonce),
                  let plaintext = try? Insecure.ChaCha20CTR.encrypt(sealed, using: key,
                                                                    counter: Insecure.ChaCha20CTR.Counter(offset: 1), nonce: ctrNonce),
                  let box = try? ChaChaPoly.seal(plaintext, using: key, nonce: ChaChaPoly.Nonce(data: nonce), authenticating: aad),
                  constantTimeEqual(box.tag.prefix(LinkProtection.tagLength), tag) else { return nil }
            return Array(plaintext)
        }
    }
}
