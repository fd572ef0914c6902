@testable import LinkCore
import Testing

/// Kinds of line noise.
enum Junk: String, CaseIterable, CustomTestStringConvertible, Sendable {
    /// Uniform random bytes: a 0x00 every 256 bytes on average.
    case uniform
    /// Three bytes in ten are 0x00: many tiny frames.
    case zeroHeavy
    /// Long runs without 0x00, far beyond any frame limit, between delimiters.
    case longRuns

    var testDescription: String { rawValue }

    func make(_ count: Int, using rng: inout SplitMix64) -> [UInt8] {
        var bytes = randomBytes(count, using: &rng)
        switch self {
        case .uniform:
            break
        case .zeroHeavy:
            for i in bytes.indices where bytes[i] < 77 { bytes[i] = 0 }
        case .longRuns:
            for i in bytes.indices where bytes[i] == 0 { bytes[i] = 0x5A }
            // A delimiter every 20...120 KB.
            var i = 0
            while i < count {
                i += 20_000 + Int(rng.next() % 100_000)
                if i < count { bytes[i] = 0 }
            }
        }
        return bytes
    }
}

@Suite("Junk on the line")
struct JunkInputTests {
    @Test("the decoder survives megabytes of junk in bounded memory", arguments: Junk.allCases)
    func decoderBounded(junk: Junk) {
        var rng = SplitMix64(seed: 0x7A11)
        let input = junk.make(3 << 20, using: &rng)
        let limit = 8192 + 64
        var d = COBSDecoder(maxFrameLength: limit)
        var counts: [COBSDecoder.Outcome: Int] = [:]
        var offset = 0
        while offset < input.count {
            let n = min(input.count - offset, 1 + Int(rng.next() % 70_000))
            input[offset..<(offset + n)].withUnsafeBytes { raw in
                var index = 0
                while true {
                    let outcome = d.decode(raw, index: &index)
                    #expect(d.frame.count <= limit)
                    guard let outcome else { break }
                    counts[outcome, default: 0] += 1
                }
                #expect(index == raw.count)
            }
            #expect(d.frame.count <= limit)
            offset += n
        }
        let longestRun = input.split(separator: 0, omittingEmptySubsequences: false).map(\.count).max() ?? 0
        if junk == .longRuns {
            #expect(longestRun > limit)
            #expect(counts[.oversize, default: 0] >= 20)
        } else {
            #expect(counts[.frame, default: 0] + counts[.malformed, default: 0] > 10_000)
        }
    }

    @Test("Link survives megabytes of junk, counts oversize frames and delivers nothing", arguments: Junk.allCases)
    func linkSurvivesJunk(junk: Junk) throws {
        let pair = Pair(seed: 41)
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        #expect(pair.quiesce())
        var rng = SplitMix64(seed: 0xBAD)
        let input = junk.make(2 << 20, using: &rng)
        for link in [Link(configuration: pair.b.configuration), pair.b] {
            var link = link
            var offset = 0
            while offset < input.count {
                let n = min(input.count - offset, 1 + Int(rng.next() % 9000))
                link.receive(input[offset..<(offset + n)], now: pair.now)
                #expect(link.inspection.partialFrameLength <= link.inspection.maxFrameLength)
                offset += n
            }
            var events: [LinkEvent] = []
            while let e = link.pollEvent() { events.append(e) }
            #expect(events.isEmpty, "\(events.prefix(5))")
            let s = link.statistics
            #expect(s.lineBytesReceived >= input.count)
            #expect(s.framesReceived == (link.isEstablished ? pair.b.statistics.framesReceived : 0))
            if junk == .longRuns {
                #expect(s.oversizeFrames >= 10)
            } else {
                #expect(s.crcErrors + s.malformedFrames > 5_000)
            }
        }
        _ = id
    }

    @Test("junk between frames does not disturb a transfer", arguments: Junk.allCases)
    func junkBetweenFrames(junk: Junk) throws {
        let pair = Pair(seed: 43)
        var rng = SplitMix64(seed: 17)
        pair.filter = { _, frame, _ in
            guard rng.next() % 3 == 0 else { return .deliver }
            let noise = junk.make(junk == .longRuns ? 30_000 : 1 + Int(rng.next() % 600), using: &rng)
            return .replace(noise + [0] + frame)
        }
        #expect(pair.establish())
        let id = try pair.open(.a)
        let data = pattern(400_000, seed: 2)
        pair.write(.a, id, data, finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == data)
        #expect(!pair.log.contains { if case .protocolViolation = $0.event { return true } else { return false } })
        if junk == .longRuns { #expect(pair.b.statistics.oversizeFrames > 0) }
    }
}
