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
    /// been shrinking. The stream is changed in place in the table.
    mutating func nextDataIsCompressed(_ id: StreamID, continuing: Bool) -> Bool {
        // No copy of the stream's state is held here: it would share the send buffer's storage,
        // and taking from the buffer below would then duplicate it.
        guard let compression = streams[id]?.compression else { return false }
        if compression.pendingCount > 0 { return true }
        let available = streams[id]!.plainSendable
        guard available > 0, available >= Compression.minimumChunk || continuing else { return false }
        let deflater: StreamDeflater
        var probeIn = 0, probeOut = 0
        switch compression {
        case .off, .resting:
            return false
        case .eligible:
            guard compressesToPeer, let offer = peerCompression,
                  let d = streams.makeDeflater(for: id, windowBits: min(offer.windowBits, Compression.windowBits),
                                               limit: min(offer.maxStreams, configuration.maxCompressedStreams))
            else { return false }
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
        guard let n = deflater.compress(streams[id]!.sendBuffer.prefix(k)) else {
            // The stream goes on plain for good. It keeps its slot until FIN, as the peer keeps
            // its decompressor until then: freeing it now could let another stream push the
            // peer past the number it offered.
            streams[id]!.compression = .resting(deflater, plainLeft: Int.max)
            return false
        }
        streams[id]!.sendBuffer.removeFirst(k)
        streams[id]!.spendCredit(k)
        statistics.payloadBytesSent += k
        statistics.compressedPayloadBytesSent += k
        statistics.compressedBytesSent += n
        probeIn += k
        probeOut += n
        if probeIn >= Compression.probeBytes && Double(probeOut) > Double(probeIn) * Compression.poorRatio {
            streams[id]!.compression = .resting(deflater, plainLeft: Compression.restBytes)
        } else if probeIn >= Compression.probeWindow {
            streams[id]!.compression = .on(deflater, probeIn: 0, probeOut: 0)
        } else {
            streams[id]!.compression = .on(deflater, probeIn: probeIn, probeOut: probeOut)
        }
        return true
    }

    /// Counts plain bytes against a resting compressor's pause; at its end the stream probes again.
    mutating func notePlainSent(_ n: Int, on id: StreamID) {
        guard case .resting(let d, let left) = streams[id]?.compression else { return }
        streams[id]!.compression = left > n ? .resting(d, plainLeft: left - n) : .on(d, probeIn: 0, probeOut: 0)
    }

    /// Inflates a DATA-COMPRESSED for stream `id`, within what its window lets the peer send.
    /// Returns the bytes, or nil after resetting the stream for a violation.
    mutating func inflate(_ id: StreamID, _ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        guard streams.makeInflater(for: id, limit: configuration.maxCompressedStreams),
              let inflater = streams[id]?.inflater else {
            // More streams than this end offered compress at once: the peer broke its word.
            statistics.protocolViolations += 1
            abortStream(id, .protocolViolation)
            return nil
        }
        switch inflater.decompress(bytes, limit: streams[id]!.receiveRemaining) {
        case .success(let plain):
            statistics.compressedBytesReceived += bytes.count
            statistics.compressedPayloadBytesReceived += plain.count
            return plain
        case .failure(.overLimit):
            statistics.creditViolations += 1
            abortStream(id, .creditExceeded)
            return nil
        case .failure(.corrupt):
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
