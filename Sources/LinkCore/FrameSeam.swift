// MARK: - The frame seam (docs/protocol.md §1–2)
//
// Everything between a frame's bytes and the line goes through these two: `FrameWriter` builds
// frames onto the output (header, body chunks, then the trailer and CRC that seal it), and
// `FrameReader` opens a frame off the line into a `Frame`. What would change the frame's bytes
// as a whole (encryption, say) belongs here, and nowhere else.

/// The acknowledgement a SEQUENCED, CONTROL or FRAGMENT frame's trailer carries (§4.2).
struct Acknowledgement: Sendable, Equatable {
    /// The next sequence number the sender expects.
    var ack: SequenceNumber
    /// Frames after `ack` the sender holds: bit i is `ack + i + 1`.
    var sack: UInt32
}

/// One frame from the line, its CRC checked and its header and trailer parsed (§2).
enum Frame {
    case hello(body: ArraySlice<UInt8>)
    case sequenced(SequenceNumber, body: ArraySlice<UInt8>, Acknowledgement)
    case control(body: ArraySlice<UInt8>, Acknowledgement)
    case fragment(SequenceNumber, index: Int, count: Int, body: ArraySlice<UInt8>, Acknowledgement)
}

enum FrameReader {
    enum Failure: Error, Equatable {
        /// The CRC does not match: damaged on the line.
        case crc
        /// Too short, an unknown type, or a header that does not fit.
        case malformed
        /// Sealed with another key, tampered with, replayed or not sealed at all (§11.3).
        case unauthenticated
    }

    /// Checks and parses one COBS-decoded frame. With `opener` (a keyed session, §11.3) every
    /// frame but HELLO must open with the session's key, or it is `.unauthenticated`.
    static func open(_ f: [UInt8], opener: inout FrameOpener?) -> Result<Frame, Failure> {
        let n = f.count
        guard n >= 1 + Wire.crcLength else { return .failure(.malformed) }
        // Little-endian, so the CRC's low-order bits come first, as a UART sends them and as the
        // CRC polynomial reads them; that keeps the all-bursts-up-to-32-bits guarantee (§2).
        let stored = UInt32(f[n - 1]) << 24 | UInt32(f[n - 2]) << 16 | UInt32(f[n - 3]) << 8 | UInt32(f[n - 4])
        let computed = f.withUnsafeBytes { raw in
            CRC32C.advance(0xFFFF_FFFF, UnsafeRawBufferPointer(rebasing: raw[0..<(n - 4)])) ^ 0xFFFF_FFFF
        }
        guard stored == computed else { return .failure(.crc) }
        if opener != nil && f[0] != Wire.FrameType.hello.rawValue {
            guard let plaintext = opener!.open(f) else { return .failure(.unauthenticated) }
            // The frame as it would be unsealed; its CRC was checked on the line.
            return parse([f[0]] + plaintext + [0, 0, 0, 0])
        }
        return parse(f)
    }

    /// Checks and parses a frame of an unkeyed session.
    static func open(_ f: [UInt8]) -> Result<Frame, Failure> {
        var none: FrameOpener?
        return open(f, opener: &none)
    }

    /// Parses a frame whose CRC (its last four bytes) was checked.
    static func parse(_ f: [UInt8]) -> Result<Frame, Failure> {
        let n = f.count
        let compactTrailer = f[0] & Wire.compactTrailerFlag != 0
        guard let type = Wire.FrameType(rawValue: f[0] & ~Wire.compactTrailerFlag),
              !(compactTrailer && type == .hello) else { return .failure(.malformed) }
        if type == .hello { return .success(.hello(body: f[1..<(n - 4)])) }
        let headerEnd: Int
        switch type {
        case .sequenced: headerEnd = Wire.sequencedHeaderLength
        case .fragment: headerEnd = Wire.fragmentHeaderLength
        case .control, .hello: headerEnd = 1
        }
        let trailerLength = compactTrailer ? Wire.compactAckTrailerLength : Wire.ackTrailerLength
        guard n >= headerEnd + trailerLength + Wire.crcLength else { return .failure(.malformed) }
        let t = n - 4 - trailerLength
        let ack = SequenceNumber(UInt16(f[t]) << 8 | UInt16(f[t + 1]))
        let sack = compactTrailer
            ? 0 : UInt32(f[t + 2]) << 24 | UInt32(f[t + 3]) << 16 | UInt32(f[t + 4]) << 8 | UInt32(f[t + 5])
        let acknowledgement = Acknowledgement(ack: ack, sack: sack)
        let body = f[headerEnd..<t]
        switch type {
        case .sequenced:
            return .success(.sequenced(SequenceNumber(UInt16(f[1]) << 8 | UInt16(f[2])), body: body, acknowledgement))
        case .fragment:
            return .success(.fragment(SequenceNumber(UInt16(f[1]) << 8 | UInt16(f[2])), index: Int(f[3]), count: Int(f[4]),
                                      body: body, acknowledgement))
        case .control, .hello:
            return .success(.control(body: body, acknowledgement))
        }
    }
}

/// Builds frames onto the bytes bound for the line, COBS-encoding them as they grow (§1–2).
///
/// A frame streamed as it is built (a long SEQUENCED frame, §8.3) is `begin`, any number of
/// `append`s, then `seal`; a frame known whole goes in one `write`. Bytes up to the encoder's
/// open block are final (`committedCount`) and may be handed to the line at once.
struct FrameWriter: Sendable {
    private var out: [UInt8] = []
    private var outStart = 0
    private var encoder = COBSEncoder()
    private var crc = CRC32C()

    /// Encoded bytes that are final and may be handed to the line.
    var committedCount: Int { (encoder.codeIndex ?? out.count) - outStart }

    /// Nothing is waiting to be handed to the line, and no frame is being built.
    var isEmpty: Bool { outStart == out.count && encoder.codeIndex == nil }

    /// Bytes in the open COBS block: a block ends after 254, or at the next zero byte.
    var blockLength: Int { encoder.blockLength }

    /// Seals every frame but HELLO once a keyed session is established (§11.3).
    var sealer: FrameSealer?

    /// Starts a frame with its header.
    mutating func begin(header: [UInt8]) {
        crc = CRC32C()
        encoder.begin(into: &out)
        if sealer != nil {
            emit(sealer!.begin(type: header[0]))
            emit(sealer!.transform(header.dropFirst()))
        } else {
            emit(header)
        }
    }

    /// Adds body bytes to the frame being built.
    mutating func append<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        if sealer != nil { emit(sealer!.transform(bytes)) } else { emit(bytes) }
    }

    /// Ends the frame being built: `trailer`, the tag if sealed, then the CRC over everything
    /// (little-endian, §2).
    mutating func seal(trailer: [UInt8]) {
        if sealer != nil {
            emit(sealer!.transform(trailer))
            emit(sealer!.finish())
        } else {
            emit(trailer)
        }
        var end: [UInt8] = []
        end.appendLE(crc.value)
        encoder.append(contentsOf: end, into: &out)
        encoder.finish(into: &out)
    }

    private mutating func emit<C: Collection>(_ bytes: C) where C.Element == UInt8 {
        crc.update(bytes)
        encoder.append(contentsOf: bytes, into: &out)
    }

    /// A whole frame (header, body and trailer, without the CRC) in one go. HELLO is never sealed.
    mutating func write(_ raw: [UInt8]) {
        if sealer != nil && raw[0] != Wire.FrameType.hello.rawValue {
            begin(header: [raw[0]])
            append(raw.dropFirst())
            seal(trailer: [])
            return
        }
        var frame = raw
        frame.appendLE(CRC32C.checksum(raw))
        encoder.begin(into: &out)
        encoder.append(contentsOf: frame, into: &out)
        encoder.finish(into: &out)
    }

    /// Moves up to `n` committed bytes to `buffer`; returns how many.
    mutating func hand(_ n: Int, to buffer: inout [UInt8]) -> Int {
        let count = min(n, committedCount)
        guard count > 0 else { return 0 }
        buffer.append(contentsOf: out[outStart..<(outStart + count)])
        outStart += count
        if outStart == out.count && encoder.codeIndex == nil {
            out.removeAll(keepingCapacity: true)
            outStart = 0
        } else if outStart >= 1 << 15 {
            out.removeFirst(outStart)
            encoder.rebase(by: outStart)
            outStart = 0
        }
        return count
    }
}
