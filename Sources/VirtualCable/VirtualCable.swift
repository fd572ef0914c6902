#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSerialShim
import SerialPort
import Foundation

/// A virtual null-modem cable: two pseudo-terminals whose slave ends (``pathA`` and ``pathB``)
/// behave like the two serial ports at either end of a real cable.
///
/// Whatever one end writes arrives at the other, paced like an 8N1 UART at the configured baud
/// rate, with optional bit errors, dropped bytes, junk bursts and outages. It lets two real
/// `socket2ser` processes talk without hardware, and lets tests and benchmarks see the same
/// timing and back-pressure a real line would give them:
///
/// * Each direction takes bytes from its sending pty only as fast as a small UART FIFO empties,
///   so a sender that writes faster than the line finds its data waiting in its own kernel
///   buffer, visible with `TIOCOUTQ`, exactly as on a serial port.
/// * The FIFO drains onto the receiving pty at exactly the line rate. If the receiver's buffer
///   is full, bytes are lost, as in a UART overrun.
/// * The cable keeps its own descriptor open on each slave, so an end that closes its device
///   and opens it again (a restarted process) finds the cable still working. Because that
///   keeps the tty alive, a `TIOCEXCL` set by the departed process would outlive it; the cable
///   clears it when the device is closed, as the last close of a real port would.
///
/// Lifecycle: `init` creates the devices (and links), ``start()`` starts the two pump threads,
/// ``stop()`` (or deinit) stops them and releases everything. Thread-safe.
public final class VirtualCable: @unchecked Sendable {
    /// The configuration the cable was made with.
    public let configuration: CableConfiguration
    /// Device path of end A (a pty slave, already in raw mode), e.g. `/dev/pts/3`.
    public let pathA: String
    /// Device path of end B.
    public let pathB: String

    private let masterA: Int32
    /// End B's master; replaced when the cable replugs end B (`unplugsOfB`).
    private let masterB: SwitchableDescriptor
    /// The cable's own descriptors on the slaves. While they are open the masters never see a
    /// hang-up, so bytes keep flowing (or queueing) when an end's process closes the device,
    /// and that process can open it again later.
    private let slaveA: Int32
    private var slaveB: Int32
    /// End B's device now: ``pathB`` until the first replug, then the new pty's path.
    private var currentB: String
    /// End B's descriptors from before a replug, closed by ``stop()`` (the pumps may still be
    /// touching them for a moment after the switch).
    private var retired: [Int32] = []
    /// Guards end B's state and the links while the unplug thread runs (not `lock`, which
    /// ``stop()`` holds while it waits for that thread).
    private let endLock = NSLock()
    /// Written once by ``stop()``; never read, so it stays readable and wakes both pumps.
    private let stopPipe: (read: Int32, write: Int32)
    private let counterStore = CounterStore()

    private enum Phase { case created, running, stopped }
    private let lock = NSLock()
    private var phase = Phase.created
    /// Signalled by each thread (two pumps, one ``ExclusivityReleaser``) as it finishes, so
    /// ``stop()`` can wait for all of them before closing the descriptors they use.
    private var threadsFinished: [DispatchSemaphore] = []
    /// Links this cable created and must remove again.
    private var createdLinks: [(path: String, target: String)] = []

    /// Creates the two pty pairs (and the links, if configured). Bytes do not flow until
    /// ``start()``.
    public init(configuration: CableConfiguration = CableConfiguration()) throws {
        try configuration.validate()
        self.configuration = configuration

        var opened: [Int32] = []
        func cleanUp() { opened.forEach { _ = close($0) } }

        func makePty() throws -> (master: Int32, slave: Int32, path: String) {
            guard let pty = SerialPort.openPseudoTerminal() else { throw VirtualCableError.openpty(errno: errno) }
            opened += [pty.master, pty.slave]
            guard setNonBlocking(pty.master) else {
                throw VirtualCableError.system(call: "fcntl(O_NONBLOCK)", errno: errno)
            }
            return pty
        }

        do {
            let a = try makePty()
            let b = try makePty()
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { throw VirtualCableError.system(call: "pipe", errno: errno) }
            opened += fds
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            (masterA, slaveA, pathA) = a
            (slaveB, pathB) = (b.slave, b.path)
            masterB = SwitchableDescriptor(b.master)
            currentB = b.path
            stopPipe = (fds[0], fds[1])
        } catch {
            cleanUp()
            throw error
        }

        do {
            if let link = configuration.linkA { try makeLink(at: link, to: pathA) }
            if let link = configuration.linkB { try makeLink(at: link, to: pathB) }
        } catch {
            removeLinks()
            cleanUp()
            // Every property is set by now, so `deinit` runs even though `init` throws: without
            // this it would close the same descriptors again, and by then their numbers may
            // belong to someone else's files.
            phase = .stopped
            throw error
        }
    }

    deinit {
        stop()
    }

    /// Starts carrying bytes, one thread per direction (plus one watching for closes, see
    /// ``ExclusivityReleaser``). Outage times count from here.
    /// Calling it again, or after ``stop()``, does nothing.
    public func start() {
        lock.lock()
        defer { lock.unlock() }
        guard phase == .created else { return }
        phase = .running
        let origin = monotonicNanoseconds()
        let endA = SwitchableDescriptor(masterA)
        let routes: [(CableDirection, SwitchableDescriptor, SwitchableDescriptor, String)] = [
            (.aToB, endA, masterB, "VirtualCable A->B"),
            (.bToA, masterB, endA, "VirtualCable B->A"),
        ]
        for (direction, source, destination, name) in routes {
            let pump = DirectionPump(
                direction: direction, source: source, destination: destination,
                stopSignal: stopPipe.read, configuration: configuration,
                counters: counterStore, origin: origin)
            spawn(name) { pump.run() }
        }
        #if canImport(Glibc)
        if let releaser = ExclusivityReleaser(
            watching: [(pathA, slaveA), (pathB, slaveB)], stopSignal: stopPipe.read) {
            spawn("VirtualCable exclusivity") { releaser.run() }
        }
        #endif
        if !configuration.unplugsOfB.isEmpty {
            spawn("VirtualCable unplugs") { self.runUnplugs(origin: origin) }
        }
    }

    /// End B's device now (it changes when the cable replugs it).
    public var currentPathB: String {
        endLock.lock()
        defer { endLock.unlock() }
        return currentB
    }

    /// Unplugs end B at each scheduled time and plugs it back in under a new name. The thread
    /// holds the cable until its last replug or ``stop()``. A replugged end is not watched for
    /// closes (``ExclusivityReleaser`` knows the first pty only), so a process that reopens it
    /// after closing it may find it exclusive still.
    private func runUnplugs(origin: UInt64) {
        for unplug in configuration.unplugsOfB.sorted(by: { $0.start < $1.start }) {
            guard waitUntil(origin + UInt64(unplug.start * 1e9)) else { return }
            unplugB()
            guard waitUntil(origin + UInt64((unplug.start + unplug.seconds) * 1e9)) else { return }
            replugB()
        }
    }

    /// Sleeps until the monotonic time `deadline`; false when the cable is being stopped.
    private func waitUntil(_ deadline: UInt64) -> Bool {
        while true {
            let now = monotonicNanoseconds()
            guard now < deadline else { return true }
            var fds = [pollfd(fd: stopPipe.read, events: Int16(POLLIN), revents: 0)]
            pollDescriptors(&fds, timeoutMilliseconds: millisecondsUntil(deadline, from: now))
            if fds[0].revents != 0 { return false }
        }
    }

    /// The adapter is pulled: its name goes, then every descriptor on its tty hangs up.
    private func unplugB() {
        endLock.lock()
        defer { endLock.unlock() }
        for link in [configuration.linkB, configuration.replugLinkB].compactMap({ $0 }) {
            removeLink(at: link, to: currentB)
        }
        SerialPort.hangUp(fileDescriptor: slaveB)
    }

    /// The adapter comes back as a new pty (a new name, since the old one is still held), and
    /// the link moves to it.
    private func replugB() {
        guard let (master, slave, path) = SerialPort.openPseudoTerminal() else { return }
        guard setNonBlocking(master) else {
            _ = close(master)
            _ = close(slave)
            return
        }
        endLock.lock()
        defer { endLock.unlock() }
        retired += [masterB.fd, slaveB]
        masterB.set(master)
        slaveB = slave
        currentB = path
        if let link = configuration.replugLinkB ?? configuration.linkB { try? makeLink(at: link, to: path) }
    }

    /// Runs `body` on a new thread whose end ``stop()`` can wait for. Called with `lock` held.
    private func spawn(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let finished = DispatchSemaphore(value: 0)
        threadsFinished.append(finished)
        let thread = Thread {
            body()
            finished.signal()
        }
        thread.name = name
        // Pacing is only as good as the wake-ups: ask for prompt scheduling.
        thread.qualityOfService = .userInteractive
        thread.start()
    }

    /// Stops both directions, waits for the pump threads, closes every descriptor and removes
    /// the links. Bytes still in a FIFO are discarded, as when a cable is unplugged.
    /// Safe to call more than once.
    public func stop() {
        lock.lock()
        defer { lock.unlock() }
        guard phase != .stopped else { return }
        phase = .stopped
        var byte: UInt8 = 1
        _ = write(stopPipe.write, &byte, 1)
        for finished in threadsFinished { finished.wait() }
        threadsFinished = []
        // The names go first, as a USB adapter's node goes when it is unplugged: a program that
        // reopens a link must find nothing, never a pseudo-terminal that reuses the number.
        removeLinks()
        for fd in [masterA, masterB.fd, slaveA, slaveB, stopPipe.read, stopPipe.write] + retired {
            _ = close(fd)
        }
    }

    /// A consistent snapshot of what the cable has done so far.
    public var counters: CableCounters {
        counterStore.snapshot()
    }

    // MARK: - Links

    /// Creates a symlink `path` → `target`, replacing an existing symlink (a stale one from an
    /// earlier run is the usual case) but never a real file.
    private func makeLink(at path: String, to target: String) throws {
        var info = stat()
        if lstat(path, &info) == 0 {
            guard info.st_mode & S_IFMT == S_IFLNK else {
                throw VirtualCableError.link(path: path, reason: "it exists and is not a symlink")
            }
            guard unlink(path) == 0 else {
                throw VirtualCableError.link(path: path, reason: errorText(errno))
            }
        }
        guard symlink(target, path) == 0 else {
            throw VirtualCableError.link(path: path, reason: errorText(errno))
        }
        createdLinks.append((path, target))
    }

    /// Removes the link at `path` if it still points at `target`.
    private func removeLink(at path: String, to target: String) {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count - 1)
        if n >= 0 && stringFromCBuffer(buffer) == target { _ = unlink(path) }
        createdLinks.removeAll { $0.path == path }
    }

    /// Removes the links this cable made, unless someone has since pointed them elsewhere.
    private func removeLinks() {
        for link in createdLinks {
            var buffer = [CChar](repeating: 0, count: 4096)
            let n = readlink(link.path, &buffer, buffer.count - 1)
            if n >= 0 && stringFromCBuffer(buffer) == link.target {
                _ = unlink(link.path)
            }
        }
        createdLinks = []
    }
}
