import CLinkAccel

// MARK: - Compressed stream data (docs/protocol.md §5.7)

/// Whether this end compresses the data it sends. Receiving compressed data costs little, so an
/// end accepts it unless compression is `off`.
public enum CompressionMode: String, Sendable, CaseIterable {
    /// Never compress, and tell the peer not to compress either.
    case off
    /// Compress when the line is the bottleneck: a paced line of at most
    /// `Compression.autoLineRateLimit` bytes per second, where deflate costs far less CPU time
    /// than the line time it saves. Each stream still turns it off for data that does not shrink.
    case auto
    /// Compress on any line, paced or not (tests, and a fast line that is really slower than its
    /// rate says).
    case always
}

public enum Compression {
    /// `auto` compresses on lines up to 4 Mbit/s: deflate (level 6) runs at tens of MB/s, so it
    /// costs at most a few per cent of one core there.
    public static let autoLineRateLimit = 400_000
    /// HELLO extension (§3.5) that offers to receive compressed data.
    public static let helloExtensionType: UInt16 = 0x0001
    /// The only algorithm so far: raw deflate (RFC 1951), sync-flushed.
    public static let deflate: UInt8 = 1
    /// The window this end's decompressors hold, and so the largest it lets the peer use.
    public static let windowBits = 15
    /// Fewer bytes than this waiting on a stream go plain: a keystroke costs a byte, not a
    /// deflate block and a flush marker.
    public static let minimumChunk = 256
    /// Largest chunk compressed (and flushed) at once.
    public static let maximumChunk = 16_384
    /// A stream whose last `probeBytes` or more shrank to more than `poorRatio` of their size
    /// sends plain for `restBytes`, then tries again (§5.7).
    public static let probeBytes = 8_192
    public static let probeWindow = 65_536
    public static let poorRatio = 0.95
    public static let restBytes = 256 << 10

    /// The offer in HELLO: algorithm (1), window bits (1), how many streams may send
    /// compressed data to this end at once (2).
    public struct Offer: Equatable, Sendable {
        public var windowBits: Int
        public var maxStreams: Int

        public init(windowBits: Int = Compression.windowBits, maxStreams: Int) {
            self.windowBits = windowBits
            self.maxStreams = maxStreams
        }

        public var helloExtension: HelloExtension {
            var value: [UInt8] = [Compression.deflate, UInt8(windowBits)]
            value.appendBE(UInt16(clamping: maxStreams))
            return HelloExtension(type: Compression.helloExtensionType, value: value)
        }

        /// The peer's offer, or nil if it made none this end can use (another algorithm, a window
        /// zlib cannot compress for, a malformed value).
        public init?(_ hello: Hello) {
            guard let v = hello.extensionValue(Compression.helloExtensionType), v.count >= 4, v[0] == Compression.deflate,
                  (9...15).contains(Int(v[1])) else { return nil }
            windowBits = Int(v[1])
            maxStreams = Int(UInt16(v[2]) << 8 | UInt16(v[3]))
        }
    }
}

/// The compressor of one stream's outgoing data, with the compressed bytes not yet sent. A
/// class, so the pending bytes are mutated in place inside the stream's state (no copy on write).
final class StreamDeflater: @unchecked Sendable {
    private let raw: OpaquePointer
    /// Compressed bytes whose credit is already spent, waiting for room in a frame.
    var pending = ByteQueue()
    private var scratch: [UInt8] = []

    init?(windowBits: Int) {
        guard let raw = lk_deflater_create(6, Int32(windowBits), 8) else { return nil }
        self.raw = raw
    }

    deinit { lk_deflater_destroy(raw) }

    /// Compresses `input` with a sync flush onto `pending`; returns the compressed size, nil if
    /// zlib failed (the compressor is then unusable).
    func compress(_ input: ArraySlice<UInt8>) -> Int? {
        let bound = lk_deflate_sync_bound(raw, input.count)
        if scratch.count < bound { scratch = [UInt8](repeating: 0, count: bound) }
        let n = input.withUnsafeBytes { i in
            scratch.withUnsafeMutableBytes { o in lk_deflate_sync(raw, i.baseAddress, i.count, o.baseAddress, bound) }
        }
        guard n >= 0 else { return nil }
        pending.append(contentsOf: scratch[0..<n])
        return n
    }
}

/// The decompressor of one stream's incoming data.
final class StreamInflater: @unchecked Sendable {
    private let raw: OpaquePointer

    enum Failure: Error { case corrupt, overLimit }

    init?(windowBits: Int) {
        guard let raw = lk_inflater_create(Int32(windowBits)) else { return nil }
        self.raw = raw
    }

    deinit { lk_inflater_destroy(raw) }

    /// Decompresses `bytes`. More than `limit` bytes of output is `.overLimit`, found after at
    /// most `limit + 1` bytes were produced: a compression bomb costs no more memory than the
    /// window it must fit in.
    func decompress(_ bytes: ArraySlice<UInt8>, limit: Int) -> Result<[UInt8], Failure> {
        var output: [UInt8] = []
        var input = bytes
        let step = 16_384
        while true {
            let room = min(step, limit + 1 - output.count)
            let before = output.count
            output.append(contentsOf: repeatElement(0, count: room))
            var consumed = 0
            let n = input.withUnsafeBytes { i in
                output.withUnsafeMutableBytes { o in
                    lk_inflate(raw, i.baseAddress, i.count, &consumed, o.baseAddress! + before, room)
                }
            }
            guard n >= 0 else { return .failure(.corrupt) }
            output.removeLast(room - n)
            input = input.dropFirst(consumed)
            if output.count > limit { return .failure(.overLimit) }
            // Output not full: zlib used all it could of the input.
            if n < room { break }
        }
        guard input.isEmpty else { return .failure(.corrupt) }
        return .success(output)
    }
}

/// How a stream sends its data: plain, or through its compressor (§5.7).
enum SendCompression: Sendable {
    /// Plain only: the stream's FIN is sent (its compressor is freed).
    case off
    /// May compress once enough is waiting and the link agreed to compression; no compressor
    /// yet (also while none is free).
    case eligible
    /// Compressing. `probeIn`/`probeOut`: bytes in and out since the current probe began.
    case on(StreamDeflater, probeIn: Int, probeOut: Int)
    /// The data did not shrink: plain for `plainLeft` more bytes, then another probe. The
    /// compressor keeps its history, and the peer's decompressor the same. A compressor that
    /// failed rests for good (`Int.max`), keeping its slot until FIN.
    case resting(StreamDeflater, plainLeft: Int)

    var deflater: StreamDeflater? {
        switch self {
        case .off, .eligible: return nil
        case .on(let d, _, _), .resting(let d, _): return d
        }
    }

    /// Compressed bytes already paid for in credit and waiting for a frame.
    var pendingCount: Int { deflater?.pending.count ?? 0 }
}
