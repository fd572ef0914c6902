@testable import LinkCore
import Testing

/// The compact acknowledgement trailer (docs/protocol.md §2, §3, §4.2): an empty SACK bitmap is
/// left out, four bytes less per frame, but only towards a peer whose HELLO offers it.
@Suite("Compact acknowledgement trailer")
struct CompactTrailerTests {
    /// Every frame one side sent, taken apart.
    final class Recorder {
        var frames: [[InspectedFrame]] = [[], []]
        func record(_ side: Side, _ frame: [UInt8]) {
            if let f = InspectedFrame(encoded: frame) { frames[side.rawValue].append(f) }
        }
        func acknowledging(_ side: Side) -> [InspectedFrame] {
            frames[side.rawValue].filter { $0.isSequenced || $0.isControl || $0.isFragment }
        }
    }

    /// Runs a transfer each way on `pair` and checks every byte arrived.
    func transferBothWays(_ pair: Pair) throws {
        #expect(pair.establish())
        let up = try pair.open(.a, target: "up")
        let down = try pair.open(.b, target: "down")
        let upData = pattern(60_000, seed: 1)
        let downData = pattern(40_000, seed: 2)
        pair.write(.a, up, upData, finish: true)
        pair.write(.b, down, downData, finish: true)
        #expect(pair.run { $0.receivedCount(.b, up) == upData.count && $0.receivedCount(.a, down) == downData.count })
        #expect(pair.receivedBytes(.b, up) == upData)
        #expect(pair.receivedBytes(.a, down) == downData)
    }

    @Test("on a clean line every frame to a peer that offers it has the compact trailer")
    func cleanLineIsCompact() throws {
        let pair = Pair(seed: 31)
        let recorder = Recorder()
        pair.filter = { side, frame, _ in
            recorder.record(side, frame)
            return .deliver
        }
        try transferBothWays(pair)
        #expect((pair.a.inspection.peerHello?.capabilities ?? 0) & Wire.Capability.compactAcknowledgement != 0)
        for side in Side.allCases {
            let frames = recorder.acknowledging(side)
            #expect(frames.count > 10)
            #expect(frames.allSatisfy { $0.hasCompactTrailer }, "\(side)")
            #expect(frames.allSatisfy { $0.crcOK })
        }
        // A standalone acknowledgement is type, ack and CRC: 7 bytes, 9 on the line.
        pair.run(for: .seconds(2))
        let standalone = (recorder.acknowledging(.a) + recorder.acknowledging(.b))
            .filter { $0.isControl && $0.body?.isEmpty == true }
        #expect(!standalone.isEmpty)
        #expect(standalone.allSatisfy { $0.content.count == 7 })
    }

    @Test("a peer whose HELLO does not offer it gets the full trailer, and still understands")
    func olderPeerGetsFullTrailer() throws {
        let pair = Pair(seed: 32)
        let recorder = Recorder()
        pair.filter = { side, frame, _ in
            // B plays an older version-1 peer: its HELLOs offer no capabilities.
            if side == .b, let f = InspectedFrame(encoded: frame), f.isHello,
               case .success(var hello) = Hello.decode(f.content[1..<(f.content.count - 4)]) {
                hello.capabilities = 0
                return .replace(helloFrame(hello))
            }
            recorder.record(side, frame)
            return .deliver
        }
        try transferBothWays(pair)
        #expect(pair.a.inspection.peerHello?.capabilities == 0)
        #expect(!recorder.acknowledging(.a).isEmpty)
        #expect(recorder.acknowledging(.a).allSatisfy { !$0.hasCompactTrailer })
        // B itself still sends compact frames to A, which offered them; A understands them.
        #expect(recorder.acknowledging(.b).contains { $0.hasCompactTrailer })
        #expect(pair.a.statistics.malformedFrames == 0 && pair.b.statistics.malformedFrames == 0)
    }

    @Test("after a lost frame the receiver reports its SACK bitmap in a full trailer at once")
    func gapGetsFullTrailer() throws {
        let pair = Pair(seed: 33)
        let recorder = Recorder()
        var sequencedFromA = 0
        pair.filter = { side, frame, _ in
            recorder.record(side, frame)
            if side == .a, let f = InspectedFrame(encoded: frame), f.isSequenced {
                sequencedFromA += 1
                if sequencedFromA == 4 { return .drop }
            }
            return .deliver
        }
        #expect(pair.establish())
        let id = try pair.open(.a, target: "bulk")
        let data = pattern(200_000, seed: 3)
        pair.write(.a, id, data, finish: true)
        #expect(pair.run { $0.receivedCount(.b, id) == data.count })
        #expect(pair.receivedBytes(.b, id) == data)
        // B told A about the frames after the gap with a SACK bitmap.
        let full = recorder.acknowledging(.b).filter { !$0.hasCompactTrailer }
        #expect(!full.isEmpty)
        let sacks = full.compactMap { f -> UInt32? in
            let t = f.content.count - 4 - Wire.ackTrailerLength
            let sack = f.content[(t + 2)..<(t + 6)].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            return sack == 0 ? nil : sack
        }
        #expect(!sacks.isEmpty)
        #expect(pair.a.statistics.retransmissions >= 1)
    }

    @Test("a compact-trailer flag on a HELLO is malformed")
    func compactHelloIsMalformed() {
        var link = Link(configuration: LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: 0, seed: 9))
        var content: [UInt8] = [Wire.FrameType.hello.rawValue | Wire.compactTrailerFlag]
        Hello(usesOddStreamIDs: false, needsReply: true, session: 5, echo: 0, maxFrame: 8192, maxStreams: 4,
              initialWindow: 1000).encode(into: &content)
        link.receive(encodeFrame(content), now: .zero)
        #expect(link.statistics.malformedFrames == 1)
        #expect(link.inspection.peerHello == nil)
    }
}
