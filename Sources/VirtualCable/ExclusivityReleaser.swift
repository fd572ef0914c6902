#if canImport(Glibc)
import Glibc
import SerialPort

/// Clears a slave's exclusive mode (`TIOCEXCL`) whenever some other process closes it.
///
/// Why: socket2ser opens its device and sets `TIOCEXCL`, as one should with a serial port.
/// On a real port the flag goes away with the last close. Here the cable keeps its own
/// descriptor open on each slave (so that the master never sees a hang-up), so the close of a
/// socket2ser process is never the last one and the flag would stay set: a restarted
/// socket2ser that is not root would then fail to open its device with EBUSY. Watching the
/// device with inotify and issuing `TIOCNXCL` on our own descriptor after each close restores
/// what a real port does.
///
/// Limitation: a close by some *other* process (for example a root process that opened the
/// device despite the flag) also clears it while the owner still has the device open, and a
/// close notice that arrives late could clear the flag of a successor that has just set it.
/// Both need a second opener racing the owner and only weaken a safety net; they cannot
/// corrupt data.
final class ExclusivityReleaser: @unchecked Sendable {
    private let inotify: Int32
    /// inotify watch descriptor → the cable's own descriptor on that slave.
    private let slaves: [Int32: Int32]
    private let stopSignal: Int32

    /// Returns `nil` if inotify is unavailable; the cable then works as before, only without
    /// the release, which matters only for non-root users.
    init?(watching devices: [(path: String, ownDescriptor: Int32)], stopSignal: Int32) {
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        var slaves: [Int32: Int32] = [:]
        for device in devices {
            let watch = inotify_add_watch(fd, device.path, UInt32(IN_CLOSE_WRITE | IN_CLOSE_NOWRITE))
            if watch >= 0 { slaves[watch] = device.ownDescriptor }
        }
        guard !slaves.isEmpty else {
            close(fd)
            return nil
        }
        inotify = fd
        self.slaves = slaves
        self.stopSignal = stopSignal
    }

    /// Runs until the stop descriptor becomes readable, then closes the inotify descriptor.
    func run() {
        defer { close(inotify) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let headerSize = MemoryLayout<inotify_event>.size
        while true {
            var fds = [
                pollfd(fd: stopSignal, events: Int16(POLLIN), revents: 0),
                pollfd(fd: inotify, events: Int16(POLLIN), revents: 0),
            ]
            pollDescriptors(&fds, timeoutMilliseconds: -1)
            if fds[0].revents != 0 { return }
            if fds[1].revents & Int16(POLLERR | POLLNVAL) != 0 { return }
            let n = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
            guard n > 0 else { continue }
            var offset = 0
            while offset + headerSize <= n {
                let event = buffer.withUnsafeBytes {
                    $0.loadUnaligned(fromByteOffset: offset, as: inotify_event.self)
                }
                if let slave = slaves[event.wd] {
                    SerialPort.releaseExclusiveUse(fileDescriptor: slave)
                }
                offset += headerSize + Int(event.len)
            }
        }
    }
}
#endif
