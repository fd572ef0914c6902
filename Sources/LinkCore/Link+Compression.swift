// MARK: - Compressed stream data (docs/protocol.md §5.7)

extension Link {
    /// What this end's HELLO carries in its extension area (§3.5).
    var helloExtensions: [HelloExtension] {
        guard configuration.compression != .off else { return [] }
        return [Compression.Offer(maxStreams: configuration.maxCompressedStreams).helloExtension]
    }

    /// This end compresses what it sends: the peer accepts it, and the configuration wants it on
    /// this line.
    var compressesToPeer: Bool {
        guard peerCompression != nil else { return false }
        switch configuration.compression {
        case .off: return false
        case .always: return true
        case .auto: return (1...Compression.autoLineRateLimit).contains(configuration.lineBytesPerSecond)
        }
    }

    /// Whether stream `id`'s next data goes as DATA-COMPRESSED. Compresses a chunk from the send
    /// buffer first when nothing compressed is waiting and compression is worth it: enough is
    /// waiting (`continuing`, inside a compressed tail, any amount is), and the stream's data has
    /// been shrinking. `s` is the caller's working copy of the stream; the caller writes it back.
    mutating func nextDataIsCompressed(_ id: StreamID, _ s: inout StreamState, continuing: Bool) -> Bool {
        if s.compression.pendingCount > 0 { return true }
        let available = min(s.sendBuffer.count, s.sendCredit)
        guard available > 0, available >= Compression.minimumChunk || continuing else { return false }
        let deflater: StreamDeflater
        var probeIn = 0, probeOut = 0
        switch s.compression {
        case .off, .resting:
            return false
        case .eligible:
            guard compressesToPeer, let offer = peerCompression,
                  liveCompressors < min(offer.maxStreams, configuration.maxCompressedStreams) else { return false }
            guard let d = StreamDeflater(windowBits: min(offer.windowBits, Compression.windowBits)) else { return false }
            liveCompressors += 1
            // Held by the stream from now on, so that releasing it counts it free.
            s.compression = .on(d, probeIn: 0, probeOut: 0)
            deflater = d
        case .on(let d, let pin, let pout):
            deflater = d
            probeIn = pin
            probeOut = pout
        }
        let k = min(available, Compression.maximumChunk)
        // Compressed from the buffer in place, and taken from it only once that worked: if zlib
        // ever failed, the stream would go on plain without a gap (the peer's decompressor has
        // seen nothing of the failed chunk).
        guard let n = deflater.compress(s.sendBuffer.prefix(k)) else {
            // The stream goes on plain for good. It keeps its slot until FIN, as the peer keeps
            // its decompressor until then: freeing it now could let another stream push the
            // peer past the number it offered.
            s.compression = .resting(deflater, plainLeft: Int.max)
            return false
        }
        withSendBuffer(id, of: &s) { $0.removeFirst(k) }
        s.sendCredit -= k
        statistics.payloadBytesSent += k
        statistics.compressedPayloadBytesSent += k
        statistics.compressedBytesSent += n
        probeIn += k
        probeOut += n
        if probeIn >= Compression.probeBytes && Double(probeOut) > Double(probeIn) * Compression.poorRatio {
            s.compression = .resting(deflater, plainLeft: Compression.restBytes)
        } else if probeIn >= Compression.probeWindow {
            s.compression = .on(deflater, probeIn: 0, probeOut: 0)
        } else {
            s.compression = .on(deflater, probeIn: probeIn, probeOut: probeOut)
        }
        return true
    }

    /// Counts plain bytes against a resting compressor's pause; at its end the stream probes again.
    func notePlainSent(_ n: Int, _ s: inout StreamState) {
        guard case .resting(let d, let left) = s.compression else { return }
        s.compression = left > n ? .resting(d, plainLeft: left - n) : .on(d, probeIn: 0, probeOut: 0)
    }

    /// The stream's direction is finished or gone: its compressor is freed for another stream.
    mutating func releaseCompressor(_ s: inout StreamState) {
        if s.compression.deflater != nil { liveCompressors -= 1 }
        s.compression = .off
    }

    /// The peer's direction of the stream is finished or gone: its decompressor is freed.
    mutating func releaseDecompressor(_ s: inout StreamState) {
        if s.inflater != nil { liveDecompressors -= 1 }
        s.inflater = nil
    }

    /// Inflates a DATA-COMPRESSED for stream `s`, within what its window lets the peer send.
    /// Returns the bytes, or nil after resetting the stream for a violation.
    mutating func inflate(_ id: StreamID, _ s: inout StreamState, _ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        if s.inflater == nil {
            guard liveDecompressors < configuration.maxCompressedStreams,
                  let z = StreamInflater(windowBits: Compression.windowBits) else {
                // More streams than this end offered compress at once: the peer broke its word.
                statistics.protocolViolations += 1
                abortStream(id, .protocolViolation)
                return nil
            }
            liveDecompressors += 1
            s.inflater = z
        }
        switch s.inflater!.decompress(bytes, limit: s.receiveRemaining) {
        case .success(let plain):
            statistics.compressedBytesReceived += bytes.count
            statistics.compressedPayloadBytesReceived += plain.count
            return plain
        case .failure(.overLimit):
            // The stream's entry must hold the decompressor when it is removed, to count it free.
            streams[id] = s
            statistics.creditViolations += 1
            abortStream(id, .creditExceeded)
            return nil
        case .failure(.corrupt):
            streams[id] = s
            statistics.protocolViolations += 1
            abortStream(id, .protocolViolation)
            return nil
        }
    }

    /// Resets a stream the peer broke the rules on, and tells both the peer and the application.
    mutating func abortStream(_ id: StreamID, _ reason: ResetReason) {
        removeStream(id)
        control.append(.reset(id, reason))
        events.append(.streamReset(id, reason))
    }
}
