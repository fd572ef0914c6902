@testable import LinkCore
import Testing

/// A real sequenced frame with OPEN and DATA, captured from a Link, and the peer as it was just
/// before the frame arrived.
struct CapturedFrame {
    var encoded: [UInt8]
    var content: [UInt8]
    var receiver: Link
    var stream: StreamID
    var target: String
    var payload: [UInt8]
    var now: LinkTime

    static func make(payloadLength: Int = 120, seed: UInt64 = 7) throws -> CapturedFrame {
        let pair = Pair(seed: seed)
        #expect(pair.establish())
        #expect(pair.quiesce())
        let target = "bits.example:7"
        let payload = pattern(payloadLength, seed: seed)
        let id = try pair.a.openStream(target: target)
        #expect(try pair.a.send(payload, on: id) == payload.count)
        let out = pair.a.pollTransmit(maxBytes: 1 << 20, now: pair.now)
        let frames = splitFrames(out).map(\.bytes)
        let encoded = try #require(frames.first { InspectedFrame(encoded: $0)?.carriesData == true })
        let f = try #require(InspectedFrame(encoded: encoded))
        #expect(f.isSequenced && f.crcOK)
        #expect(f.messages.map(\.message) == [.open(id, target: target), .data(id, payload[...])])
        // The untouched frame is delivered as it should be.
        var check = pair.b
        check.receive(encoded, now: pair.now)
        var events: [LinkEvent] = []
        while let e = check.pollEvent() { events.append(e) }
        #expect(events == [.streamOpened(id, target: target), .received(id, payload)])
        return CapturedFrame(encoded: encoded, content: f.content, receiver: pair.b, stream: id, target: target,
                             payload: payload, now: pair.now)
    }

    /// Feeds `bytes` to a copy of the receiver; returns its events and statistics.
    func feed(_ bytes: [UInt8]) -> (events: [LinkEvent], statistics: LinkStatistics) {
        var link = receiver
        link.receive(bytes, now: now)
        var events: [LinkEvent] = []
        while let e = link.pollEvent() { events.append(e) }
        return (events, link.statistics)
    }
}

/// Flips bit `k` of `bytes`, numbering bits in line order (least significant bit of each byte first).
func flip(_ bytes: inout [UInt8], bit k: Int) {
    bytes[k / 8] ^= UInt8(1) << UInt8(k % 8)
}

/// The receiver's check as a linear function of an error pattern: 0 means "accepted".
func syndrome(_ frame: [UInt8]) -> UInt32 {
    CRC32C.checksum(frame[0..<(frame.count - 4)]) ^ storedCRC(frame)
}

/// An error pattern confined to the 32 bits (line order) starting at bit `start` of a valid
/// frame's content that the receiver's check cannot see, as a byte mask to XOR onto the
/// content; nil if there is none. The check is linear in the error, so this is Gaussian
/// elimination over GF(2) on the syndromes of the 32 single-bit errors.
func undetectableError(in content: [UInt8], window start: Int) -> [UInt8]? {
    var basis = [(syndrome: UInt32, bits: UInt32)](repeating: (0, 0), count: 32)  // by leading bit
    for j in 0..<32 {
        var bad = content
        flip(&bad, bit: start + j)
        var v = syndrome(bad)
        var combination = UInt32(1) << UInt32(j)
        for i in stride(from: 31, through: 0, by: -1) where v >> UInt32(i) & 1 == 1 {
            if basis[i].syndrome == 0 {
                basis[i] = (v, combination)
                v = 0
                combination = 0
                break
            }
            v ^= basis[i].syndrome
            combination ^= basis[i].bits
        }
        if combination != 0 {
            // These single-bit errors together have syndrome 0.
            var mask = [UInt8](repeating: 0, count: content.count)
            for k in 0..<32 where combination >> UInt32(k) & 1 == 1 { flip(&mask, bit: start + k) }
            return mask
        }
    }
    return nil
}

/// Span in bits (line order) from the first to the last flipped bit of a mask.
func burstLength(_ mask: [UInt8]) -> Int {
    let bits = (0..<(mask.count * 8)).filter { mask[$0 / 8] >> UInt8($0 % 8) & 1 == 1 }
    guard let first = bits.first, let last = bits.last else { return 0 }
    return last - first + 1
}

@Suite("Bit errors")
struct BitErrorTests {
    @Test("every single-bit error in a frame's content is detected, by the CRC and by Link")
    func singleBitErrors() throws {
        let captured = try CapturedFrame.make()
        let content = captured.content
        #expect(crcVerifies(content))
        let base = captured.receiver.statistics
        for k in 0..<(content.count * 8) {
            var bad = content
            flip(&bad, bit: k)
            #expect(!crcVerifies(bad), "bit \(k) undetected")
            // The same damage on the line (re-stuffed, so the COBS layer is intact) is refused by Link.
            let (events, stats) = captured.feed(COBSEncoder.encode(bad))
            #expect(events.isEmpty, "bit \(k): \(events)")
            #expect(stats.crcErrors == base.crcErrors + 1)
            #expect(stats.framesReceived == base.framesReceived)
        }
    }

    @Test("every burst of 2...32 bits at every position in a frame's content is detected", arguments: [1, 2] as [UInt64])
    func burstErrors(seed: UInt64) throws {
        let captured = try CapturedFrame.make(payloadLength: 100 + Int(seed) * 37, seed: seed)
        let content = captured.content
        let bits = content.count * 8
        var rng = SplitMix64(seed: seed)
        var checked = 0
        for length in 2...32 {
            for start in 0...(bits - length) {
                var bad = content
                flip(&bad, bit: start)
                flip(&bad, bit: start + length - 1)
                for k in (start + 1)..<(start + length - 1) where rng.next() & 1 == 1 {
                    flip(&bad, bit: k)
                }
                if crcVerifies(bad) {
                    Issue.record("burst of \(length) bits at bit \(start) undetected")
                }
                checked += 1
            }
        }
        #expect(checked > 30_000)
    }

    /// Stronger than sampling: for every window of 32 consecutive bits (in line order), the
    /// receiver's check, restricted to error patterns inside the window, must be injective.
    /// Then no error confined to 32 consecutive bits, whatever its inner pattern, can pass.
    @Test("no error pattern confined to any 32-bit window passes the check")
    func everyPatternInEveryWindow() throws {
        let captured = try CapturedFrame.make(payloadLength: 60)
        let content = captured.content
        var bodyOnly: [Int] = []
        var reachingIntoCRC: [Int] = []
        let crcStartBit = (content.count - 4) * 8
        for start in 0...(content.count * 8 - 32) {
            guard let mask = undetectableError(in: content, window: start) else { continue }
            var bad = content
            for i in bad.indices { bad[i] ^= mask[i] }
            #expect(crcVerifies(bad) && bad != content && burstLength(mask) <= 32)
            if start + 32 <= crcStartBit { bodyOnly.append(start) } else { reachingIntoCRC.append(start) }
        }
        #expect(bodyOnly.isEmpty, "windows inside the body with undetectable patterns: \(bodyOnly)")
        // CRC-32C is a reflected CRC (it takes each byte least significant bit first, as a
        // UART sends it). Its burst guarantee needs the CRC appended least significant byte
        // first, which is why the wire format stores it little-endian (docs/protocol.md §2): a
        // big-endian field let bursts straddling the body/CRC boundary cancel out.
        #expect(reachingIntoCRC.isEmpty, "windows reaching into the CRC field with undetectable patterns: \(reachingIntoCRC)")
    }

    /// The smallest instance of the bug above, for the record: flip the top bit of the byte
    /// before the CRC (the low byte of the SACK bitmap in every sequenced and control frame) and
    /// XOR the CRC field with 82 F6 3B 78: a 32-bit burst that every frame accepts.
    @Test("a concrete 32-bit burst over the SACK byte and the CRC field")
    func concreteBoundaryBurst() throws {
        let captured = try CapturedFrame.make(payloadLength: 60)
        var bad = captured.content
        let n = bad.count
        bad[n - 5] ^= 0x80
        for (i, b) in crcField(0x82F6_3B78).enumerated() { bad[n - 4 + i] ^= b }
        var mask = [UInt8](repeating: 0, count: n)
        for i in 0..<n { mask[i] = bad[i] ^ captured.content[i] }
        let span = burstLength(mask)
        #expect(span > 32 || !crcVerifies(bad), "a \(span)-bit burst ending in the CRC field passes the check")
        // Link accepts it: the SACK bitmap now claims a frame the peer never got.
        let (events, stats) = captured.feed(COBSEncoder.encode(bad))
        #expect(span > 32 || stats.crcErrors == captured.receiver.statistics.crcErrors + 1, "\(summary(events))")
    }

    /// What the boundary weakness costs: B's acknowledgement is hit by an undetectable burst
    /// that sets a SACK bit for a frame B never got. A then believes that frame delivered,
    /// drops its copy and never resends it; B waits for it forever, and once 32 frames are
    /// outstanding A cannot send anything new. The transfer must still complete.
    @Test("an undetectable burst in a SACK bitmap must not stall the link")
    func forgedSackStallsTheLink() throws {
        // Undetectable patterns depend only on the frame's length. Find one for a control
        // frame (type, ack, SACK, CRC) that leaves the type and ack alone and sets SACK bits.
        let template = [Wire.FrameType.control.rawValue, 0, 2, 0, 0, 0, 0]
        let controlFrame = template + crcField(CRC32C.checksum(template))
        let sackStart = 3 * 8
        var forged: (mask: [UInt8], bit: Int)?
        for start in sackStart...(controlFrame.count * 8 - 32) {
            guard let mask = undetectableError(in: controlFrame, window: start) else { continue }
            let sackFlips = (0..<32).filter { b in mask[6 - b / 8] >> UInt8(b % 8) & 1 == 1 }
            if let bit = sackFlips.first, forged == nil || sackFlips.count == 1 { forged = (mask, bit) }
        }
        guard let (_, sackBit) = forged else {
            // The wire format leaves no such pattern: nothing to demonstrate.
            return
        }
        let gap: UInt16 = 2
        let victim = gap + 1 + UInt16(sackBit)

        let pair = Pair(seed: 91)
        #expect(pair.establish())
        let counter = TransmissionCounter()
        var forgedOnce = false
        pair.filter = { side, frame, _ in
            guard let f = InspectedFrame(encoded: frame) else { return .deliver }
            if side == .a {
                guard let t = counter.note(frame) else { return .deliver }
                return (t.seq == gap || t.seq == victim) && t.transmission == 1 ? .drop : .deliver
            }
            // B's first acknowledgement that reports the gap: forge the victim's SACK bit.
            guard !forgedOnce, f.isSequenced || f.isControl else { return .deliver }
            let n = f.content.count
            let ack = UInt16(f.content[n - 10]) << 8 | UInt16(f.content[n - 9])
            let sack = UInt32(f.content[n - 8]) << 24 | UInt32(f.content[n - 7]) << 16
                | UInt32(f.content[n - 6]) << 8 | UInt32(f.content[n - 5])
            guard ack == gap, sack >> UInt32(sackBit) & 1 == 0, sack >> UInt32(sackBit + 1) != 0 else { return .deliver }
            for start in ((n - 8) * 8)...(n * 8 - 32) {
                guard let mask = undetectableError(in: f.content, window: start) else { continue }
                var bad = f.content
                for i in bad.indices { bad[i] ^= mask[i] }
                let forgedSack = UInt32(bad[n - 8]) << 24 | UInt32(bad[n - 7]) << 16 | UInt32(bad[n - 6]) << 8 | UInt32(bad[n - 5])
                guard forgedSack >> UInt32(sackBit) & 1 == 1, burstLength(mask) <= 32, crcVerifies(bad) else { continue }
                forgedOnce = true
                return .replace(COBSEncoder.encode(bad))
            }
            return .deliver
        }
        let id = try pair.open(.a)
        let data = pattern(600_000, seed: 12)
        pair.write(.a, id, data, finish: true)
        let completed = pair.run(timeLimit: .seconds(60)) { $0.has(.b, .remoteFinished(id)) }
        #expect(forgedOnce)
        let (stuckAt, inFlight) = (pair.b.inspection.expectedSequence, pair.a.inspection.outstandingFrames.count)
        #expect(completed, "B stuck at frame \(stuckAt) (A thinks it delivered); A has \(inFlight) frames outstanding; B got \(pair.receivedCount(.b, id)) of \(data.count) bytes")
    }

    /// Damage to the stuffed bytes on the line: flipped bits may move or create delimiters, so
    /// a frame can fall apart into pieces. Nothing damaged may ever reach the application, and
    /// the undamaged retransmission that follows is delivered exactly once.
    @Test("bit errors in the COBS-encoded bytes never deliver corrupted data")
    func encodedBitErrors() throws {
        let captured = try CapturedFrame.make(payloadLength: 180, seed: 3)
        let good: [LinkEvent] = [.streamOpened(captured.stream, target: captured.target),
                                 .received(captured.stream, captured.payload)]
        let base = captured.receiver.statistics
        var rng = SplitMix64(seed: 99)

        func check(_ bad: [UInt8], _ what: String) {
            let (events, stats) = captured.feed(bad + [0] + captured.encoded)
            #expect(events == good, "\(what): \(events)")
            let rejected = (stats.crcErrors - base.crcErrors) + (stats.malformedFrames - base.malformedFrames)
                + (stats.oversizeFrames - base.oversizeFrames)
            #expect(rejected >= 1, "\(what): damage went unnoticed")
        }

        let bits = captured.encoded.count * 8
        for k in 0..<bits {
            var bad = captured.encoded
            flip(&bad, bit: k)
            check(bad, "bit \(k)")
        }
        for trial in 0..<3000 {
            var bad = captured.encoded
            let length = 2 + Int(rng.next() % 31)
            let start = Int(rng.next() % UInt64(bits - length + 1))
            flip(&bad, bit: start)
            flip(&bad, bit: start + length - 1)
            for k in (start + 1)..<(start + length - 1) where rng.next() & 1 == 1 { flip(&bad, bit: k) }
            if trial % 3 == 0 {
                // And a second, independent error elsewhere.
                flip(&bad, bit: Int(rng.next() % UInt64(bits)))
            }
            if bad == captured.encoded { continue }
            check(bad, "burst \(length) at \(start) (trial \(trial))")
        }
    }
}
