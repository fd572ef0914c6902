/// One line of text for one frame, for a decoded trace of the line (`-d 4`).
///
/// It reads a frame the way `Link` does (docs/protocol.md §2–5) but only to describe it: it keeps
/// no state, checks the CRC, and never throws on junk; a frame it cannot read is described as
/// such. DATA is shown by length, never by content, so the trace stays short and private.
public enum FrameDescription {
    /// Describes a frame as COBS-decoded from the line (CRC included, delimiter removed).
    public static func describe(_ frame: [UInt8]) -> String {
        let n = frame.count
        guard n >= 1 + Wire.crcLength else { return "runt frame (\(n) B)" }
        let stored = UInt32(frame[n - 1]) << 24 | UInt32(frame[n - 2]) << 16 | UInt32(frame[n - 3]) << 8 | UInt32(frame[n - 4])
        guard CRC32C.checksum(frame[..<(n - 4)]) == stored else { return "damaged frame (\(n) B, CRC mismatch)" }
        let compact = frame[0] & Wire.compactTrailerFlag != 0
        guard let type = Wire.FrameType(rawValue: frame[0] & ~Wire.compactTrailerFlag) else {
            return "unknown frame type 0x\(hex(frame[0])) (\(n) B)"
        }
        let body = frame[1..<(n - 4)]
        switch type {
        case .hello:
            switch Hello.decode(body) {
            case .success(let hello): return describe(hello)
            case .failure(.versionMismatch(let version)): return "HELLO of protocol version \(version)"
            case .failure(.notHello): return "malformed HELLO (\(n) B)"
            }
        case .sequenced, .control, .fragment:
            let header = type == .sequenced ? Wire.sequencedHeaderLength : type == .fragment ? Wire.fragmentHeaderLength : 1
            let trailer = compact ? Wire.compactAckTrailerLength : Wire.ackTrailerLength
            guard n >= header + trailer + Wire.crcLength else { return "truncated \(type) frame (\(n) B)" }
            let t = n - 4 - trailer
            var acknowledgement = "ack \(UInt16(frame[t]) << 8 | UInt16(frame[t + 1]))"
            if !compact {
                let sack = UInt32(frame[t + 2]) << 24 | UInt32(frame[t + 3]) << 16 | UInt32(frame[t + 4]) << 8 | UInt32(frame[t + 5])
                if sack != 0 { acknowledgement += " sack 0x\(String(sack, radix: 16))" }
            }
            let messages = frame[header..<t]
            switch type {
            case .sequenced:
                let sequence = UInt16(frame[1]) << 8 | UInt16(frame[2])
                return "SEQ \(sequence) \(acknowledgement): \(describe(messages: messages))"
            case .fragment:
                let sequence = UInt16(frame[1]) << 8 | UInt16(frame[2])
                return "FRAGMENT of \(sequence), piece \(Int(frame[3]) + 1)/\(frame[4]), \(messages.count) B, \(acknowledgement)"
            default:
                return messages.isEmpty ? "CONTROL \(acknowledgement)" : "CONTROL \(acknowledgement): \(describe(messages: messages))"
            }
        }
    }

    static func describe(_ hello: Hello) -> String {
        "HELLO v\(hello.version) session \(String(hello.session, radix: 16)) echo \(String(hello.echo, radix: 16))"
            + (hello.usesOddStreamIDs ? " odd" : " even") + (hello.needsReply ? " reply-wanted" : "")
            + " max-frame \(hello.maxFrame) max-streams \(hello.maxStreams) window \(hello.initialWindow)"
            + " capabilities 0x\(String(hello.capabilities, radix: 16))"
            + (hello.extensions.isEmpty ? "" : " extensions "
                + hello.extensions.map { "0x\(String($0.type, radix: 16)):\($0.value.count)B" }.joined(separator: ","))
    }

    static func describe(messages body: ArraySlice<UInt8>) -> String {
        var parser = MessageParser(body)
        var parts: [String] = []
        while true {
            let message: Message?
            do {
                message = try parser.next()
            } catch {
                parts.append("unreadable (\(error))")
                break
            }
            guard let message else { break }
            parts.append(describe(message))
        }
        return parts.isEmpty ? "empty" : parts.joined(separator: "; ")
    }

    static func describe(_ message: Message) -> String {
        switch message {
        case .open(let id, let target): return "OPEN \(id) \"\(target)\""
        case .openOK(let id): return "OPEN-OK \(id)"
        case .openRefused(let id, let reason): return "OPEN-REFUSED \(id) (\(reason))"
        case .data(let id, let bytes): return "DATA \(id) \(bytes.count) B"
        case .compressedData(let id, let bytes): return "DATA-COMPRESSED \(id) \(bytes.count) B"
        case .fin(let id): return "FIN \(id)"
        case .reset(let id, let reason): return "RESET \(id) (\(reason))"
        case .credit(let id, let increment): return "CREDIT \(id) +\(increment)"
        case .ping(let token): return "PING \(token)"
        case .pong(let token): return "PONG \(token)"
        case .listen(let id, let bind, let port, let target): return "LISTEN \(id.rawValue) \(bind):\(port) for \"\(target)\""
        case .listenOK(let id, let port): return "LISTEN-OK \(id.rawValue) port \(port)"
        case .listenRefused(let id, let reason): return "LISTEN-REFUSED \(id.rawValue) (\(reason))"
        case .unlisten(let id): return "UNLISTEN \(id.rawValue)"
        }
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0xF)]])
    }
}
