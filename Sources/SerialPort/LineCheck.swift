#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSerialShim
import Foundation

/// What `socket2ser check` measures on an open port: the settings the driver really applied
/// and, with a loopback plug (TX joined to RX), what the line carries (throughput, bit errors,
/// round trip). Blocking; runs on the port's descriptor alone.
public enum LineCheck {
    public struct Report: Sendable {
        /// What the driver holds now, read back from it (the rate as the driver reports it).
        public var applied: SerialSettings?
        /// Whether bytes sent came back: a loopback plug, or a device that echoes.
        public var loopback: Bool
        /// Round trips of a 16-byte probe, in seconds, sorted.
        public var roundTrips: [Double] = []
        /// Bytes that came back during the bulk phase, and over how long.
        public var bulkBytes = 0
        public var bulkSeconds = 0.0
        /// Bits compared, and how many differed.
        public var bitsCompared = 0
        public var bitErrors = 0
        /// Bytes sent in the bulk phase that never came back.
        public var bytesLost = 0

        public var bytesPerSecond: Double { bulkSeconds > 0 ? Double(bulkBytes) / bulkSeconds : 0 }
        public var medianRoundTrip: Double? { roundTrips.isEmpty ? nil : roundTrips[roundTrips.count / 2] }
    }

    /// The settings in force on `fd`, read back from the driver.
    public static func appliedSettings(_ fd: CInt) -> SerialSettings? {
        var tio = termios()
        guard tcgetattr(fd, &tio) == 0 else { return nil }
        var settings = SerialSettings()
        switch tio.c_cflag & tcflag_t(CSIZE) {
        case tcflag_t(CS5): settings.dataBits = 5
        case tcflag_t(CS6): settings.dataBits = 6
        case tcflag_t(CS7): settings.dataBits = 7
        default: settings.dataBits = 8
        }
        if tio.c_cflag & tcflag_t(PARENB) != 0 { settings.parity = tio.c_cflag & tcflag_t(PARODD) != 0 ? .odd : .even }
        settings.stopBits = tio.c_cflag & tcflag_t(CSTOPB) != 0 ? 2 : 1
        settings.flowControl = tio.c_cflag & tcflag_t(CRTSCTS) != 0 ? .rtsCts : .none
        let rate = sfs_get_baud(fd)
        if rate > 0 { settings.baudRate = Int(rate) }
        return settings
    }

    /// Probes for a loopback (a probe must come back within `probeTimeout`), then times 20 probe
    /// round trips and sends pseudo-random bytes for `seconds`, comparing what comes back.
    public static func run(fd: CInt, seconds: Double, probeTimeout: Double = 1) -> Report {
        var report = Report(applied: appliedSettings(fd), loopback: false)
        var generator = UInt64(0x5EED_1234_ABCD_0001)
        func nextBytes(_ count: Int) -> [UInt8] {
            (0..<count).map { _ in
                generator = generator &* 6364136223846793005 &+ 1442695040888963407
                return UInt8(truncatingIfNeeded: generator >> 33)
            }
        }
        for attempt in 0..<21 {
            let probe = nextBytes(16)
            let start = now()
            guard writeAll(fd, probe, until: start + probeTimeout),
                  let back = read(fd, count: probe.count, until: start + probeTimeout), back == probe else {
                if attempt == 0 { return report }
                break
            }
            report.loopback = true
            if attempt > 0 { report.roundTrips.append(now() - start) }  // the first wakes the line up
        }
        report.roundTrips.sort()

        // Bulk: write ahead while reading back, for `seconds`, then wait for the tail.
        let pattern = nextBytes(1 << 16)
        var sent = 0
        var received = 0
        var buffer = [UInt8](repeating: 0, count: 4096)
        let start = now()
        var first: Double?
        var last = start
        let stopSending = start + seconds
        var drainDeadline = stopSending + 1
        while true {
            let time = now()
            if time >= drainDeadline || (time >= stopSending && received >= sent) { break }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN) | (time < stopSending ? Int16(POLLOUT) : 0), revents: 0)]
            _ = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, 1, 20) }
            if fds[0].revents & Int16(POLLOUT) != 0, time < stopSending, sent - received < 8192 {
                let offset = sent % pattern.count
                let n = pattern[offset...].prefix(1024).withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if n > 0 { sent += n }
            }
            if fds[0].revents & Int16(POLLIN) != 0 {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                guard n > 0 else { continue }
                for i in 0..<n {
                    let expected = pattern[(received + i) % pattern.count]
                    report.bitErrors += (expected ^ buffer[i]).nonzeroBitCount
                }
                received += n
                report.bitsCompared += 8 * n
                let arrived = now()
                if first == nil { first = arrived }
                last = arrived
                drainDeadline = max(drainDeadline, arrived + 0.5)
            }
        }
        report.bulkBytes = received
        report.bulkSeconds = first.map { last - $0 } ?? 0
        report.bytesLost = max(0, sent - received)
        return report
    }

    private static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private static func writeAll(_ fd: CInt, _ bytes: [UInt8], until deadline: Double) -> Bool {
        var offset = 0
        while offset < bytes.count {
            guard now() < deadline else { return false }
            let n = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n > 0 { offset += n; continue }
            if n < 0 && errno != EAGAIN && errno != EINTR { return false }
            var fds = [pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)]
            _ = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, 1, 10) }
        }
        return true
    }

    private static func read(_ fd: CInt, count: Int, until deadline: Double) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: count)
        while out.count < count {
            let remaining = deadline - now()
            guard remaining > 0 else { return nil }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
            _ = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, 1, Int32(max(1, remaining * 1000))) }
            guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, count - out.count) }
            if n > 0 { out += buffer[0..<n] } else if n == 0 || (errno != EAGAIN && errno != EINTR) { return nil }
        }
        return out
    }

    /// Processes other than this one that hold `path` open (from /proc), as "PID (command)".
    public static func holders(of path: String) -> [String] {
        guard let real = realpath(path, nil) else { return [] }
        let target = String(cString: real)
        free(real)
        let me = getpid()
        let manager = FileManager.default
        var found: [String] = []
        for entry in (try? manager.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), pid != me else { continue }
            let folder = "/proc/\(entry)/fd"
            let fds = (try? manager.contentsOfDirectory(atPath: folder)) ?? []
            guard fds.contains(where: { (try? manager.destinationOfSymbolicLink(atPath: "\(folder)/\($0)")) == target }) else { continue }
            let command = (try? String(contentsOfFile: "/proc/\(entry)/comm", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            found.append("\(pid) (\(command))")
        }
        return found
    }
}

// MARK: - With a peer: `check --peer` at both ends at once

extension LineCheck {
    /// What one end of `check --peer` measured of the line from the far end to it.
    public struct PeerReport: Sendable {
        public var applied: SerialSettings?
        /// The far end's blocks were heard.
        public var peerHeard = false
        /// Bytes of the far end's blocks that came (data, probes and replies), and over how long.
        public var bytesReceived = 0
        public var seconds = 0.0
        public var bitsCompared = 0
        public var bitErrors = 0
        /// Blocks lost or too damaged to place (their header was hit).
        public var blocksLost = 0
        /// Round trips of a probe to the far end and back, in seconds, sorted.
        public var roundTrips: [Double] = []

        /// From the first block's arrival to the last's: the first block's bytes came before.
        public var bytesPerSecond: Double { seconds > 0 ? Double(bytesReceived - Block.size) / seconds : 0 }
        public var medianRoundTrip: Double? { roundTrips.isEmpty ? nil : roundTrips[roundTrips.count / 2] }
    }

    /// The blocks both ends send (docs: README, "Checking a real cable"): 64 bytes, a marker, a
    /// kind, a 16-bit sequence number, then 60 bytes: a pattern both ends can compute from the
    /// sequence number (data), or a send time to be echoed (probe, reply).
    enum Block {
        static let size = 64
        static let marker: UInt8 = 0xC5
        static let data: UInt8 = 0x01, probe: UInt8 = 0x02, reply: UInt8 = 0x03

        static func pattern(_ sequence: UInt16) -> [UInt8] {
            var state = UInt64(sequence) &* 0x9E37_79B9_7F4A_7C15 | 1
            return (0..<(size - 4)).map { _ in
                state ^= state << 13; state ^= state >> 7; state ^= state << 17
                return UInt8(truncatingIfNeeded: state)
            }
        }

        static func make(_ kind: UInt8, _ sequence: UInt16, _ body: [UInt8]) -> [UInt8] {
            [marker, kind, UInt8(sequence >> 8), UInt8(sequence & 0xFF)] + body + [UInt8](repeating: 0, count: max(0, size - 4 - body.count))
        }
    }

    /// Sends blocks to the far end (which runs the same) for `seconds` once it is heard (waiting
    /// up to `waitForPeer`), answers its probes, and compares what it sends with what the pattern
    /// says. Each end measures the direction towards it.
    /// Blocks go out at `lineBytesPerSecond` (the rate asked for), never faster, so that a probe
    /// waits behind at most a block or two and the round trip is the line's, not a queue's.
    public static func runWithPeer(fd: CInt, seconds: Double, lineBytesPerSecond: Int, waitForPeer: Double = 10) -> PeerReport {
        var report = PeerReport(applied: appliedSettings(fd))
        let start = now()
        var heardAt: Double?
        var sequence: UInt16 = 0
        var nextProbe = start
        var pending: [UInt8] = []
        var replies: [[UInt8]] = []
        var input: [UInt8] = []
        var expectedSequence: UInt16?
        var buffer = [UInt8](repeating: 0, count: 4096)
        var firstData: Double?
        var lastData = start
        var written = 0
        let rate = Double(max(1, lineBytesPerSecond))
        while true {
            let time = now()
            // What the line can have taken by now, plus two blocks in hand.
            let allowance = Int((time - start) * rate) + 2 * Block.size
            if heardAt == nil && time > start + waitForPeer { return report }
            // After our own time is up, keep answering for a second: the far end may have heard
            // us later than we heard it.
            if let heard = heardAt, time > heard + seconds + 1 { break }
            let sending = heardAt.map { time < $0 + seconds } ?? true
            if pending.isEmpty {
                if let reply = replies.first {
                    pending = reply
                    replies.removeFirst()
                } else if sending, time >= nextProbe {
                    // Probes only while sending: the rate is measured over the blocks that come,
                    // and a tail of lone probes would stretch it.
                    var stamp = time.bitPattern
                    pending = Block.make(Block.probe, 0, withUnsafeBytes(of: &stamp) { Array($0) })
                    nextProbe = time + 0.1
                } else if sending, written + Block.size <= allowance {
                    pending = Block.make(Block.data, sequence, Block.pattern(sequence))
                    sequence &+= 1
                }
            }
            var fds = [pollfd(fd: fd, events: Int16(POLLIN) | (pending.isEmpty ? 0 : Int16(POLLOUT)), revents: 0)]
            _ = fds.withUnsafeMutableBufferPointer { poll($0.baseAddress, 1, 10) }
            if fds[0].revents & Int16(POLLOUT) != 0, !pending.isEmpty {
                let n = pending.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    pending.removeFirst(n)
                    written += n
                }
            }
            guard fds[0].revents & Int16(POLLIN) != 0 else { continue }
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            guard n > 0 else { continue }
            input += buffer[0..<n]
            // Blocks start with the marker; a damaged or lost byte loses sync until the next
            // marker whose block is followed by another marker.
            while input.count >= Block.size {
                guard input[0] == Block.marker, input.count < 2 * Block.size || input[Block.size] == Block.marker else {
                    input.removeFirst()
                    continue
                }
                let block = Array(input[0..<Block.size])
                input.removeFirst(Block.size)
                let arrived = now()
                if heardAt == nil { heardAt = arrived }
                report.peerHeard = true
                // Every block counts for the rate the line carried; only data is compared.
                report.bytesReceived += Block.size
                if firstData == nil { firstData = arrived }
                lastData = arrived
                let kind = block[1]
                let blockSequence = UInt16(block[2]) << 8 | UInt16(block[3])
                switch kind {
                case Block.probe:
                    replies.append(Block.make(Block.reply, 0, Array(block[4..<12])))
                case Block.reply:
                    let stamp = block[4..<12].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                    let sent = Double(bitPattern: stamp)
                    if sent > start, sent <= arrived { report.roundTrips.append(arrived - sent) }
                case Block.data:
                    if let expected = expectedSequence, blockSequence != expected {
                        // A gap of a few blocks was lost; a wild jump is a damaged header.
                        let gap = Int(blockSequence &- expected)
                        report.blocksLost += gap < 1000 ? gap : 1
                    }
                    expectedSequence = blockSequence &+ 1
                    let pattern = Block.pattern(blockSequence)
                    for (byte, want) in zip(block[4...], pattern) { report.bitErrors += (byte ^ want).nonzeroBitCount }
                    report.bitsCompared += 8 * pattern.count
                default:
                    report.blocksLost += 1
                }
            }
        }
        report.seconds = firstData.map { lastData - $0 } ?? 0
        report.roundTrips.sort()
        return report
    }
}
