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
