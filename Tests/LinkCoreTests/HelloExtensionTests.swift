import Testing
@testable import LinkCore

/// HELLO's extension area (docs/protocol.md §3.5): type, length, value after the fixed fields;
/// unknown types skipped; one that runs past the body makes the HELLO malformed.
@Suite("HELLO extensions")
struct HelloExtensionTests {
    private func hello(_ extensions: [HelloExtension] = []) -> Hello {
        Hello(usesOddStreamIDs: false, needsReply: true, session: 0xFEED, echo: 0, maxFrame: 8192, maxStreams: 16,
              initialWindow: 65536, capabilities: Wire.Capability.compactTargets, extensions: extensions)
    }

    private func body(_ hello: Hello) -> [UInt8] {
        var out: [UInt8] = []
        hello.encode(into: &out)
        return out
    }

    @Test("without extensions the body is the 36 bytes it always was")
    func emptyArea() throws {
        let plain = body(hello())
        #expect(plain.count == Hello.encodedLength)
        #expect(try Hello.decode(plain[...]).get() == hello())
    }

    @Test("extensions go after the fixed fields as type, length, value, and come back in order")
    func roundTrip() throws {
        let items = [HelloExtension(type: 0x0001, value: [1, 2, 3]), HelloExtension(type: 0x8001, value: []),
                     HelloExtension(type: 0x0001, value: Array(repeating: 0xAB, count: 300))]
        let encoded = body(hello(items))
        #expect(encoded.count == Hello.encodedLength + (4 + 3) + 4 + (4 + 300))
        #expect(Array(encoded[36..<43]) == [0x00, 0x01, 0x00, 0x03, 1, 2, 3])
        #expect(Array(encoded[43..<47]) == [0x80, 0x01, 0x00, 0x00])
        let decoded = try Hello.decode(encoded[...]).get()
        #expect(decoded.extensions == items)
        #expect(decoded.extensionValue(0x0001) == [1, 2, 3], "the first of a type")
        #expect(decoded.extensionValue(0x0002) == nil)
        // The fixed fields are what they were.
        var fixed = decoded
        fixed.extensions = []
        #expect(fixed == hello())
    }

    @Test("an extension that runs past the body, or a lone byte after the fixed part, makes the HELLO malformed",
          arguments: [[0x00], [0x00, 0x01], [0x00, 0x01, 0x00], [0x00, 0x01, 0x00, 0x05, 1, 2, 3, 4]] as [[UInt8]])
    func truncated(tail: [UInt8]) {
        let encoded = body(hello()) + tail
        #expect(Hello.decode(encoded[...]) == .failure(.notHello))
    }

    @Test("a Link that meets unknown extensions skips them and handshakes; a malformed area is counted and ignored")
    func linkSkipsUnknown() {
        var link = Link(configuration: LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: 0, seed: 9))
        _ = link.pollTransmit(maxBytes: 1000, now: .zero)
        let unknown = hello([HelloExtension(type: 0x7FFE, value: Array("a future feature".utf8)),
                             HelloExtension(type: 0xC000, value: [0xFF])])
        let bad: [UInt8] = [Wire.FrameType.hello.rawValue] + body(hello()) + [0x00, 0x09, 0x00, 0x10]
        link.receive(encodeFrame(bad), now: .zero)
        #expect(link.statistics.malformedFrames == 1)
        #expect(link.inspection.peerHello == nil)
        link.receive(helloFrame(unknown), now: .zero)
        #expect(link.inspection.peerHello?.session == 0xFEED)
        #expect(link.inspection.peerHello?.extensions.count == 2)
        // It answers (the peer asked for a reply), with an empty area of its own.
        let reply = splitFrames(link.pollTransmit(maxBytes: 1000, now: .zero))
        #expect(reply.contains { InspectedFrame(encoded: $0.bytes)?.isHello == true })
    }

    @Test("-d 4's description names the extensions")
    func described() {
        let text = FrameDescription.describe(hello([HelloExtension(type: 0x8001, value: [1, 2])]))
        #expect(text.hasSuffix(" extensions 0x8001:2B"), "\(text)")
        #expect(!FrameDescription.describe(hello()).contains("extensions"))
    }
}
