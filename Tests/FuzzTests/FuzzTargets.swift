import Foundation
@testable import Forwarding
import LegacyWire
@testable import LinkCore
import NIOCore
@testable import Socket2SerCLI
import Testing

/// Two cores over a perfect in-process cable, shuttled until both are established, with a
/// stream open between them. Every frame A sends is recorded.
struct EstablishedPair {
    var a: Link
    var b: Link
    var now = LinkTime.zero
    var framesFromA: [[UInt8]] = []

    init(protection: LinkProtection? = nil) {
        var ca = LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: 11_520, seed: 1)
        var cb = LinkConfiguration(usesOddStreamIDs: false, lineBytesPerSecond: 11_520, seed: 2)
        ca.protection = protection
        cb.protection = protection
        a = Link(configuration: ca)
        b = Link(configuration: cb)
    }

    /// Moves bytes both ways and runs timers until nothing moves; returns the frames A sent.
    mutating func shuttle(rounds: Int = 200) {
        for _ in 0..<rounds {
            let fromA = a.pollTransmit(maxBytes: 1 << 16, now: now)
            let fromB = b.pollTransmit(maxBytes: 1 << 16, now: now)
            // Cut A's output into whole encoded frames, for the corpus.
            var start = 0
            for (i, byte) in fromA.enumerated() where byte == 0 {
                framesFromA.append(Array(fromA[start...i]))
                start = i + 1
            }
            b.receive(fromA, now: now)
            a.receive(fromB, now: now)
            while let event = b.pollEvent() {
                if case .streamOpened(let id, _) = event { try? b.accept(id) }
                if case .received(let id, let bytes) = event { b.consumed(bytes.count, on: id) }
            }
            while let event = a.pollEvent() {
                if case .received(let id, let bytes) = event { a.consumed(bytes.count, on: id) }
            }
            if fromA.isEmpty && fromB.isEmpty {
                now = now + .milliseconds(5)
                a.handleTimeout(now: now)
                b.handleTimeout(now: now)
            }
        }
    }

    /// An established pair with a stream from A that carried data, a FIN and a CREDIT.
    static func withTraffic(protection: LinkProtection? = nil) -> EstablishedPair {
        var pair = EstablishedPair(protection: protection)
        pair.shuttle(rounds: 20)
        precondition(pair.a.isEstablished && pair.b.isEstablished, "the fuzz pair did not come up")
        let id = try! pair.a.openStream(target: "127.0.0.1:22")
        _ = try! pair.a.send(Array("SSH-2.0-fuzz\r\n".utf8) + [UInt8](repeating: 0x41, count: 3000), on: id)
        let other = try! pair.a.openStream(target: "example.org:80")
        _ = try! pair.a.send(Array("GET / HTTP/1.0\r\n\r\n".utf8), on: other)
        try! pair.a.finish(other)
        pair.shuttle(rounds: 100)
        return pair
    }
}

/// Seed inputs for each target, written to Tests/FuzzTests/corpus by `FUZZ_WRITE_CORPUS=1`.
enum SeedCorpus {
    static func frames(protection: LinkProtection? = nil) -> [[UInt8]] {
        Array(EstablishedPair.withTraffic(protection: protection).framesFromA.prefix(40))
    }

    static func bodies() -> [[UInt8]] {
        frames().compactMap { encoded -> [UInt8]? in
            var decoder = COBSDecoder(maxFrameLength: 1 << 16)
            var index = 0
            let ok: Bool = encoded.withUnsafeBytes { raw in
                if case .frame = decoder.decode(raw, index: &index) { return true }
                return false
            }
            guard ok, decoder.frame.count > 11, decoder.frame[0] & 0x7F == 2 else { return nil }
            return Array(decoder.frame[3..<(decoder.frame.count - 6)])
        }
    }

    static func hellos() -> [[UInt8]] {
        Array(frames(protection: try! LinkProtection(key: [UInt8](repeating: 7, count: 32))).filter { $0.count > 40 }.prefix(4))
            + Array(frames().prefix(2))
    }

    static let socks: [[UInt8]] = [
        [5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 22],
        [5, 1, 0, 5, 1, 0, 3, 11] + Array("example.org".utf8) + [0, 80],
        [5, 1, 0, 5, 1, 0, 4] + [UInt8](repeating: 0, count: 15) + [1, 1, 187],
        [5, 1, 2, 1, 4] + Array("user".utf8) + [6] + Array("secret".utf8) + [5, 1, 0, 1, 10, 0, 0, 1, 31, 144],
    ]

    static var config: [[UInt8]] {
        let example = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../docs/examples/socket2ser.yaml").standardizedFileURL
        return [Array((try? Data(contentsOf: example)) ?? Data()),
                Array("lines:\n  radio:\n    device: /dev/ttyUSB0\n    baud: 57600\n    role: C\n    listen: 127.0.0.1:7000\n    protect: authenticate\n".utf8)]
    }

    /// The original's frames (docs/legacy-protocol.md): each kind, FFs in payload, a long one.
    static var legacy: [[UInt8]] {
        let frames: [LegacyFrame] = [.open(0), .connectFailed(3), .closed(253), .data(0, Array("hello".utf8)),
                                     .data(3, [0x41, 0xFF, 0x42]), .data(9, [UInt8](repeating: 0xFF, count: 300))]
        return frames.map { try! LegacyEncoder.encode($0) } + [frames.flatMap { try! LegacyEncoder.encode($0) }]
    }

    static func all() -> [String: [[UInt8]]] {
        ["frames": frames(), "sealed": frames(protection: try! LinkProtection(key: [UInt8](repeating: 7, count: 32))),
         "messages": bodies(), "hello": hellos(), "socks": socks, "config": config, "legacy": legacy]
    }
}

/// Each target is fed for FUZZ_SECONDS (2 s by default; scripts/test runs them longer in a step
/// of their own). A target passes when no input crashes or traps it, and where it makes sense,
/// when the core still works afterwards.
@Suite("Fuzzing")
struct FuzzTests {
    @Test("the seed corpus can be regenerated (FUZZ_WRITE_CORPUS=1 writes it)")
    func corpus() throws {
        let all = SeedCorpus.all()
        if ProcessInfo.processInfo.environment["FUZZ_WRITE_CORPUS"] != nil {
            for (name, inputs) in all {
                let folder = Fuzzer.corpusFolder.appendingPathComponent(name)
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                for (i, input) in inputs.enumerated() {
                    try Data(input).write(to: folder.appendingPathComponent(String(format: "seed-%03d", i)))
                }
            }
        }
        for name in all.keys { #expect(!Fuzzer.corpusFiles(name).isEmpty, "no corpus for \(name)") }
    }

    @Test("frames: junk, damaged and forged frames into an established core, which still answers")
    func frames() {
        let pair = EstablishedPair.withTraffic()
        var fuzzer = Fuzzer("frames", seeds: [])
        fuzzer.run { input in
            var b = pair.b
            b.receive(input, now: pair.now)
            _ = b.pollTransmit(maxBytes: 1 << 16, now: pair.now)
            while b.pollEvent() != nil {}
            b.handleTimeout(now: pair.now + .seconds(1))
            _ = b.pollTransmit(maxBytes: 1 << 16, now: pair.now + .seconds(1))
        }
    }

    @Test("sealed: mutated sealed frames into a keyed core: none opens a stream or delivers a byte")
    func sealed() {
        let pair = EstablishedPair.withTraffic(protection: try! LinkProtection(key: [UInt8](repeating: 7, count: 32)))
        var fuzzer = Fuzzer("sealed", seeds: [])
        let delivered = pair.b.statistics.payloadBytesReceived
        fuzzer.run { input in
            var b = pair.b
            b.receive(input, now: pair.now)
            _ = b.pollTransmit(maxBytes: 1 << 16, now: pair.now)
            while let event = b.pollEvent() {
                if case .streamOpened = event { Issue.record("a forged frame opened a stream") }
            }
            // Every corpus frame was delivered already (a replay now) and a mutant cannot open.
            if b.statistics.payloadBytesReceived != delivered { Issue.record("a replayed or mutated sealed frame delivered data") }
        }
    }

    @Test("messages: the message parser on any body")
    func messages() {
        var fuzzer = Fuzzer("messages", seeds: [])
        fuzzer.run { input in
            var parser = MessageParser(input[...])
            while (try? parser.next()) != nil {}
        }
    }

    @Test("hello: the HELLO parser, and a keyed core in its handshake")
    func hello() {
        let keyed = Link(configuration: {
            var c = LinkConfiguration(usesOddStreamIDs: true, seed: 3)
            c.protection = try! LinkProtection(key: [UInt8](repeating: 7, count: 32))
            return c
        }())
        var fuzzer = Fuzzer("hello", seeds: [])
        fuzzer.run { input in
            _ = Hello.decode(input[...])
            var link = keyed
            link.receive(input, now: .zero)
            while link.pollEvent() != nil {}
            _ = link.pollTransmit(maxBytes: 4096, now: .zero)
        }
    }

    @Test("socks: the SOCKS5 negotiation, fed in pieces of any size, with and without a password")
    func socks() {
        var fuzzer = Fuzzer("socks", seeds: [])
        var cut = SplitMix64(seed: 5)
        fuzzer.run { input in
            for credentials in [nil, SOCKS5Negotiation.Credentials(username: "user", password: "secret")] {
                var negotiation = SOCKS5Negotiation(credentials: credentials)
                var offset = 0
                while offset < input.count {
                    let n = 1 + Int(cut.next() % 8)
                    var buffer = ByteBuffer(bytes: input[offset..<min(input.count, offset + n)])
                    offset += n
                    if case .needMore = negotiation.feed(&buffer) { continue }
                    break
                }
            }
        }
    }

    @Test("config: the config file parser on any text")
    func config() {
        var fuzzer = Fuzzer("config", seeds: [])
        fuzzer.run { input in
            _ = try? ConfigFile.parse(String(decoding: input, as: UTF8.self), path: "/nonexistent/fuzz.yaml")
        }
    }

    @Test("legacy: the original's frames, in pieces of any size; what decodes encodes and decodes back the same")
    func legacy() {
        var fuzzer = Fuzzer("legacy", seeds: [])
        var cut = SplitMix64(seed: 6)
        fuzzer.run { input in
            var decoder = LegacyDecoder()
            var frames: [LegacyFrame] = []
            var offset = 0
            while offset < input.count {
                let n = 1 + Int(cut.next() % 16)
                frames += decoder.feed(input[offset..<min(input.count, offset + n)])
                offset += n
            }
            // The decoder's frames are ones the encoder writes; split data joins up again.
            var again = LegacyDecoder()
            var line: [UInt8] = []
            for frame in frames {
                guard (try? LegacyEncoder.encode(frame, into: &line)) != nil else {
                    Issue.record("the decoder gave a frame the encoder refuses: \(frame)")
                    return
                }
            }
            let decoded = again.feed(line)
            if again.malformedFrames != 0 || again.skippedBytes != 0 { Issue.record("re-encoded frames did not decode cleanly") }
            // Long data comes back in several frames: compare the bytes, and the other frames.
            func flattened(_ frames: [LegacyFrame]) -> [String] {
                frames.flatMap { frame -> [String] in
                    if case .data(let id, let bytes) = frame { return bytes.map { "\(id):\($0)" } }
                    return ["\(frame)"]
                }
            }
            if flattened(decoded) != flattened(frames) { Issue.record("re-encoded frames decoded to something else") }
        }
    }
}
