@testable import LinkCore
import Testing

/// OPEN-IPV4 and OPEN-IPV6 (docs/protocol.md §5.2): an address target travels in binary, and the
/// receiver's text is exactly the sender's.
@Suite("Compact OPEN targets")
struct CompactTargetTests {
    @Test("canonical address literals are compact, and come back as the same text",
          arguments: ["127.0.0.1:40123", "0.0.0.0:0", "255.255.255.255:65535", "10.1.2.3:22",
                      "[::1]:22", "[::]:80", "[fe80::1:2]:443", "[2001:db8::8:800:200c:417a]:8080",
                      "[2001:db8:0:1:1:1:1:1]:1", "[1:0:0:2::3]:9", "[fe80::1:2:3]:443", "[fe80::1:2:3]:4433", "[1:2:3:4:5:6:7:8]:65535"])
    func roundTrip(text: String) throws {
        let compact = try #require(CompactTarget(text))
        #expect(compact.description == text)
        let message = Message.open(StreamID(7), target: text)
        var bytes: [UInt8] = []
        message.encode(into: &bytes, compactTargets: true)
        #expect(bytes.count == message.encodedLength(compactTargets: true))
        // The binary form where it is shorter: always for IPv4, for IPv6 only from 18 characters.
        #expect(bytes.count == min(text.hasPrefix("[") ? 21 : 9, message.encodedLength))
        #expect(bytes.count <= message.encodedLength)
        var parser = MessageParser(bytes[...])
        #expect(try parser.next() == message)
        #expect(try parser.next() == nil)
    }

    @Test("anything that is not the canonical form stays text",
          arguments: ["localhost:80", "example.com:443", "127.000.0.1:80", "1.2.3.4:080", "1.2.3.4:65536",
                      "1.2.3:80", "1.2.3.4.5:80", "1.2.3.256:80", "1.2.3.4", "1.2.3.4:", "[::0:1]:22",
                      "[0:0:0:0:0:0:0:1]:22", "[::FFFF:1]:1", "[::ffff:1.2.3.4]:80", "[1::2::3]:4",
                      "[1:2:3:4:5:6:7:8:9]:1", "[1::2:3:4:5:6:7:8]:1", "::1:22",
                      "[::1]22", "", ":", "[]:1", "1.2.3.4:+80", "[00001::]:1"])
    func staysText(text: String) throws {
        #expect(CompactTarget(text) == nil)
        let message = Message.open(StreamID(7), target: text)
        var bytes: [UInt8] = []
        message.encode(into: &bytes, compactTargets: true)
        #expect(bytes.first == Wire.MessageType.open.rawValue)
        #expect(bytes.count == message.encodedLength(compactTargets: true))
        var parser = MessageParser(bytes[...])
        #expect(try parser.next() == message)
    }

    @Test("RFC 5952: the longest zero run is compressed, the first of equal runs, never a single group")
    func canonicalIPv6() {
        #expect(CompactTarget.canonical([1, 0, 0, 2, 0, 0, 0, 3]) == "1:0:0:2::3")
        #expect(CompactTarget.canonical([1, 0, 0, 2, 0, 0, 3, 4]) == "1::2:0:0:3:4")
        #expect(CompactTarget.canonical([1, 0, 2, 3, 4, 5, 6, 7]) == "1:0:2:3:4:5:6:7")
        #expect(CompactTarget.canonical([0, 0, 0, 0, 0, 0, 0, 0]) == "::")
        #expect(CompactTarget.canonical([0xABCD, 0, 0, 0, 0, 0, 0, 0]) == "abcd::")
    }

    @Test("a truncated compact OPEN is a parse error, not a crash")
    func truncated() {
        for cut in 1..<9 {
            var bytes: [UInt8] = []
            Message.open(StreamID(3), target: "10.0.0.1:22").encode(into: &bytes, compactTargets: true)
            var parser = MessageParser(bytes[..<(bytes.count - cut)])
            #expect(throws: MessageParseError.truncated) { try parser.next() }
        }
    }

    @Test("between two current ends an address target goes compact; towards an older peer, as text")
    func negotiated() throws {
        for older in [false, true] {
            let pair = Pair(seed: older ? 82 : 81)
            var openTypes: [UInt8] = []
            pair.filter = { side, frame, _ in
                guard let f = InspectedFrame(encoded: frame) else { return .deliver }
                if older, side == .b, f.isHello,
                   case .success(var hello) = Hello.decode(f.content[1..<(f.content.count - 4)]) {
                    hello.capabilities &= ~Wire.Capability.compactTargets
                    return .replace(helloFrame(hello))
                }
                if side == .a, f.isSequenced, let body = f.body, let first = body.first { openTypes.append(first) }
                return .deliver
            }
            #expect(pair.establish())
            let id = try pair.open(.a, target: "192.168.7.2:8080")
            pair.write(.a, id, [1, 2, 3], finish: true)
            #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
            #expect(pair.has(.b, .streamOpened(id, target: "192.168.7.2:8080")))
            #expect(pair.receivedBytes(.b, id) == [1, 2, 3])
            let expected = older ? Wire.MessageType.open : Wire.MessageType.openIPv4
            #expect(openTypes.first == expected.rawValue, "older peer: \(older)")
        }
    }
}
