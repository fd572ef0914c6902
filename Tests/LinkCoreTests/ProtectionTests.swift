import Crypto
@testable import LinkCore
import Testing

/// Keys for the tests: two different ones.
let testKey = [UInt8](0..<32)
let otherKey = [UInt8](100..<132)

func keyed(_ key: [UInt8], _ mode: LinkProtection.Mode = .encrypt) -> LinkProtection {
    try! LinkProtection(key: key, mode: mode)
}

/// A decoded frame's content with one bit flipped at `offset` and the CRC made good again, as
/// an attacker with a transmitter would send it.
func tampered(_ encoded: [UInt8], flipping offset: Int) -> [UInt8] {
    var content = Array(InspectedFrame(encoded: encoded)!.content.dropLast(4))
    content[offset] ^= 0x10
    return encodeFrame(content)
}

/// Whether `needle` occurs in `haystack`.
func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard needle.count <= haystack.count else { return false }
    return (0...(haystack.count - needle.count)).contains { haystack[$0..<($0 + needle.count)].elementsEqual(needle) }
}

/// A keyed pair that carried `text` from A to B on a stream, with every frame but HELLO that A
/// sent, as it went on the line.
func keyedTransfer(seed: UInt64, key: [UInt8], text: String) throws -> (Pair, StreamID, [[UInt8]]) {
    let pair = Pair(seed: seed) { _, c in c.protection = keyed(key) }
    final class Log { var frames: [[UInt8]] = [] }
    let log = Log()
    pair.filter = { side, frame, _ in
        if side == .a, let f = InspectedFrame(encoded: frame), !f.isHello { log.frames.append(frame) }
        return .deliver
    }
    #expect(pair.establish())
    let id = try pair.openAccepted(from: .a)
    pair.write(.a, id, Array(text.utf8))
    #expect(pair.run { $0.receivedCount(.b, id) == text.utf8.count })
    return (pair, id, log.frames)
}

@Suite("Protection with a pre-shared key")
struct ProtectionTests {
    @Test("key files: 64 hex digits with comments; anything else is a clear error; the key is never printed")
    func keyFiles() throws {
        let key = LinkProtection.generateKey()
        #expect(key.count == 32)
        #expect(LinkProtection.generateKey() != key)
        let text = LinkProtection.keyFileText(key)
        #expect(try LinkProtection.parseKeyFile(text) == key)
        let hexLine = String(text.split(separator: "\n")[1])
        #expect(try LinkProtection.parseKeyFile("# a comment\r\n\n  " + hexLine.uppercased() + " \r\n") == key)
        #expect(throws: LinkProtection.KeyError.malformed) { try LinkProtection.parseKeyFile("") }
        #expect(throws: LinkProtection.KeyError.malformed) { try LinkProtection.parseKeyFile("zz" + String(repeating: "0", count: 62)) }
        #expect(throws: LinkProtection.KeyError.wrongLength(16)) { try LinkProtection.parseKeyFile(String(repeating: "ab", count: 16)) }
        #expect(throws: LinkProtection.KeyError.malformed) { try LinkProtection.parseKeyFile("00\n11") }
        let p = try LinkProtection(key: key, mode: .authenticate)
        let hex = text.split(separator: "\n")[1]
        for shown in [String(describing: p), String(reflecting: p), "\(p)", dumped(p)] {
            #expect(!shown.contains(hex))
            #expect(!shown.contains(String(describing: key)))
        }
        #expect(String(describing: p) == "authenticate with a pre-shared key")
    }

    func dumped(_ value: some Any) -> String {
        var out = ""
        dump(value, to: &out)
        return out
    }

    @Test("the same key: the link comes up, bytes arrive intact through bit errors, and none of them is readable on the line")
    func rightKey() throws {
        let pair = Pair(seed: 81) { _, c in c.protection = keyed(testKey) }
        var line: [UInt8] = []
        pair.tap = { _, bytes, _ in line += bytes }
        var rng = SplitMix64(seed: 7)
        var flipped = 0
        pair.filter = { _, frame, _ in
            guard rng.next() % 5 == 0, frame.count > 8 else { return .deliver }
            var bad = frame
            let i = Int(rng.next() % UInt64(frame.count - 1))
            bad[i] ^= 0x04
            flipped += 1
            return .replace(bad)
        }
        #expect(pair.establish())
        let id = try pair.open(.a)
        let text = Array(String(repeating: "the quick brown fox jumps over the lazy dog ", count: 2000).utf8)
        pair.write(.a, id, text, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == text)
        #expect(flipped > 10)
        #expect(pair.b.statistics.crcErrors > 0)
        #expect(!contains(line, Array("quick brown".utf8)))
        #expect(pair.a.statistics.unauthenticatedFrames == 0 && pair.b.statistics.unauthenticatedFrames == 0)
    }

    @Test("authenticate only: the bytes on the line are readable, and a frame altered with its CRC fixed up is dropped")
    func authenticateOnly() throws {
        let pair = Pair(seed: 82) { _, c in c.protection = keyed(testKey, .authenticate); c.compression = .off }
        var line: [UInt8] = []
        pair.tap = { side, bytes, _ in if side == .a { line += bytes } }
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        var altered = 0
        pair.filter = { side, frame, _ in
            guard side == .a, altered == 0, let f = InspectedFrame(encoded: frame), f.isSequenced else { return .deliver }
            altered += 1
            return .replace(tampered(frame, flipping: f.content.count - 24))
        }
        let text = Array("CQ CQ de N0CALL, readable on the air".utf8)
        pair.write(.a, id, text, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == text)
        #expect(altered == 1)
        #expect(pair.b.statistics.unauthenticatedFrames == 1)
        #expect(contains(line, Array("readable on the air".utf8)))
    }

    @Test("encrypt: a bit flipped anywhere in a sealed frame, CRC fixed up, is dropped and counted, and the data still arrives", arguments: [1, 3, 6, -11, -8, -5])
    func tamperedFrames(offset: Int) throws {
        let pair = Pair(seed: 83) { _, c in c.protection = keyed(testKey) }
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        var altered = 0
        pair.filter = { side, frame, _ in
            guard side == .a, altered < 3, let f = InspectedFrame(encoded: frame), !f.isHello, f.content.count > 30 else { return .deliver }
            altered += 1
            return .replace(tampered(frame, flipping: offset >= 0 ? offset : f.content.count - 4 + offset))
        }
        let data = pattern(5000, seed: 3)
        pair.write(.a, id, data, finish: true)
        #expect(pair.run(timeLimit: .seconds(30)) { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == data)
        #expect(altered == 3)
        #expect(pair.b.statistics.unauthenticatedFrames == 3)
        #expect(pair.b.statistics.protocolViolations == 0)
    }

    @Test("the one-byte counter bridges up to 4,095 lost frames, and a sealed frame's ciphertext is ChaCha20-Poly1305's own")
    func counterReach() throws {
        let protection = keyed(testKey)
        let key = protection.frameKey(senderRandom: [UInt8](repeating: 1, count: 32), receiverRandom: [UInt8](repeating: 2, count: 32))
        var sealer = FrameSealer(mode: .encrypt, key: key)
        var opener = FrameOpener(mode: .encrypt, key: key)
        func frame(_ body: [UInt8]) -> [UInt8] {
            var f = sealer.begin(type: Wire.FrameType.control.rawValue)
            f += sealer.transform(body.prefix(100))
            f += sealer.transform(body.dropFirst(100))
            f += sealer.finish()
            return f + [0, 0, 0, 0]   // the CRC, which the opener does not read
        }
        let body = pattern(1500, seed: 9)
        #expect(opener.open(frame(body)) == body)
        for _ in 0..<4095 { _ = frame([1]) }   // lost on the line
        #expect(opener.open(frame(body)) == body)
        for _ in 0..<4096 { _ = frame([1]) }
        #expect(opener.open(frame(body)) == nil)
        // What was streamed is what a one-shot ChaCha20-Poly1305 seal gives.
        var one = FrameSealer(mode: .encrypt, key: key)
        var streamed = one.begin(type: 3)
        streamed += one.transform(body.prefix(7)) + one.transform(body.dropFirst(7))
        let box = try ChaChaPoly.seal(body, using: key, nonce: ChaChaPoly.Nonce(data: frameNonce(1)), authenticating: streamed.prefix(2))
        #expect(Array(streamed.dropFirst(2)) == Array(box.ciphertext))
        #expect(one.finish() == Array(box.tag.prefix(8)))
    }

    @Test("frames replayed, from this session or from an earlier one, and frames of a third device with another key are dropped")
    func replayAndForeign() throws {
        let (pair, id, recorded) = try keyedTransfer(seed: 84, key: testKey, text: "first")
        #expect(recorded.count >= 2)
        // The same session: every recorded frame again.
        for frame in recorded { pair.b.receive(frame, now: pair.now) }
        #expect(pair.b.statistics.unauthenticatedFrames == recorded.count)
        #expect(pair.receivedCount(.b, id) == 5)

        // A third device with another key, its frames sent to B.
        let (_, _, foreign) = try keyedTransfer(seed: 85, key: otherKey, text: "intruder")
        let before = pair.b.statistics.unauthenticatedFrames
        for frame in foreign { pair.b.receive(frame, now: pair.now) }
        #expect(pair.b.statistics.unauthenticatedFrames == before + foreign.count)

        // A restarts: a new session, new keys. The old session's frames do not open in it.
        let old = recorded
        pair.a = Link(configuration: { var c = LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: 0, seed: 99)
                                       c.protection = keyed(testKey); return c }())
        #expect(pair.run(timeLimit: .seconds(30)) { $0.a.isEstablished && $0.b.isEstablished })
        let id2 = try pair.openAccepted(from: .a)
        let base = pair.receivedCount(.b, id2)   // the new A numbers its streams from 1 again
        pair.write(.a, id2, Array("second".utf8))
        #expect(pair.run { $0.receivedCount(.b, id2) == base + 6 })
        let afterRestart = pair.b.statistics.unauthenticatedFrames
        for frame in old { pair.b.receive(frame, now: pair.now) }
        #expect(pair.b.statistics.unauthenticatedFrames == afterRestart + old.count)
        pair.write(.a, id2, Array(" and more".utf8), finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id2)) })
        #expect(pair.receivedBytes(.b, id2).dropFirst(base).elementsEqual("second and more".utf8))
    }

    @Test("different keys, a key on one side only, or different modes: each end reports it once and nothing opens",
          arguments: [
            (keyed(testKey), keyed(otherKey), ProtectionMismatch.differentKey, ProtectionMismatch.differentKey),
            (keyed(testKey), nil, .peerHasNoKey, .peerHasKey),
            (nil, keyed(testKey), .peerHasKey, .peerHasNoKey),
            (keyed(testKey, .encrypt), keyed(testKey, .authenticate), .differentMode(peer: .authenticate), .differentMode(peer: .encrypt)),
          ] as [(LinkProtection?, LinkProtection?, ProtectionMismatch, ProtectionMismatch)])
    func mismatches(a: LinkProtection?, b: LinkProtection?, seenByA: ProtectionMismatch, seenByB: ProtectionMismatch) throws {
        let pair = Pair(seed: 86) { side, c in c.protection = side == .a ? a : b }
        #expect(!pair.establish(timeLimit: .seconds(5)))
        #expect(!pair.a.isEstablished && !pair.b.isEstablished)
        #expect(pair.events(.a).filter { if case .protectionMismatch = $0 { true } else { false } } == [.protectionMismatch(seenByA)])
        #expect(pair.events(.b).filter { if case .protectionMismatch = $0 { true } else { false } } == [.protectionMismatch(seenByB)])
        let id = try pair.open(.a, target: "x")
        pair.write(.a, id, Array("hello?".utf8))
        pair.run(for: .seconds(3))
        #expect(!pair.events(.b).contains { if case .streamOpened = $0 { true } else { false } })
        #expect(pair.a.statistics.payloadBytesReceived == 0 && pair.b.statistics.payloadBytesReceived == 0)
    }

    @Test("a man in the middle who strips the protection offer from a keyed end's HELLO gets no link, and no clear text")
    func downgrade() throws {
        let pair = Pair(seed: 87) { _, c in c.protection = keyed(testKey) }
        pair.filter = { side, frame, _ in
            guard side == .a, let f = InspectedFrame(encoded: frame), f.isHello,
                  case .success(var hello) = Hello.decode(f.content[1..<(f.content.count - 4)]) else { return .deliver }
            hello.extensions.removeAll { $0.type == HelloExtension.Types.protection }
            return .replace(helloFrame(hello))
        }
        #expect(!pair.establish(timeLimit: .seconds(5)))
        #expect(pair.has(.b, .protectionMismatch(.peerHasNoKey)))
        #expect(!pair.a.isEstablished && !pair.b.isEstablished)
    }

    @Test("an end's own HELLO reflected back to it is not taken for a peer")
    func reflection() throws {
        let pair = Pair(seed: 88) { _, c in c.protection = keyed(testKey) }
        // B hears only its own HELLOs, sent back to it; A hears nothing.
        var fromB: [[UInt8]] = []
        pair.filter = { side, frame, _ in
            if side == .b { fromB.append(frame) }
            return .drop
        }
        pair.run(for: .seconds(2))
        for _ in 0..<3 {
            for frame in fromB { pair.b.receive(frame, now: pair.now) }
            pair.run(for: .milliseconds(600))
        }
        #expect(!pair.b.isEstablished)
        #expect(pair.events(.b).isEmpty)
    }
}
