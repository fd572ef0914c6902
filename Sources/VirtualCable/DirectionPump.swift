#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// A descriptor one thread may replace while others read it (the cable's end B, replugged).
final class SwitchableDescriptor: Sendable {
    private let value: Atomic<Int32>
    init(_ fd: Int32) { value = Atomic(fd) }
    var fd: Int32 { value.load(ordering: .acquiring) }
    func set(_ fd: Int32) { value.store(fd, ordering: .releasing) }
}

/// The two directions of the cable, used to file counters.
enum CableDirection: Sendable {
    case aToB, bToA
}

/// Shared, lock-protected counters: the pumps add to them after each batch, readers take
/// snapshots of both directions at once.
final class CounterStore: @unchecked Sendable {
    private let lock = NSLock()
    private var value = CableCounters()

    func add(_ delta: DirectionCounters, to direction: CableDirection) {
        lock.lock()
        defer { lock.unlock() }
        switch direction {
        case .aToB: value.aToB.add(delta)
        case .bToA: value.bToA.add(delta)
        }
    }

    func snapshot() -> CableCounters {
        lock.lock()
        defer { lock.unlock() }
        return value
    }
}

/// Moves bytes one way along the cable: from the master of the sending pty, through a modelled
/// UART, to the master of the receiving pty. Each direction has its own pump on its own thread,
/// so the two directions are paced independently, as on a full-duplex serial line.
///
/// All mutable state is confined to the pump's thread; the class is `@unchecked Sendable` only
/// so that it can be handed to that thread.
final class DirectionPump: @unchecked Sendable {
    private let direction: CableDirection
    /// The masters at either end; end B's changes when the cable replugs it under a new name.
    private let sourceEnd: SwitchableDescriptor
    private let destinationEnd: SwitchableDescriptor
    private var source: Int32 { sourceEnd.fd }
    private var destination: Int32 { destinationEnd.fd }
    private let stopSignal: Int32
    private let counters: CounterStore
    /// Monotonic time the cable started; outages are measured from here.
    private let origin: UInt64

    private var fifo: ByteFIFO
    private var pacer: LinePacer?
    private var faults: FaultInjector

    /// Counter changes since the last publish.
    private var delta = DirectionCounters()
    /// What the receiver should get from the current batch, after faults.
    private var outgoing: [UInt8] = []
    /// Scratch space for reads from the sending master.
    private var scratch: [UInt8]

    /// The last read from the source filled all the room asked for, so the sender's kernel
    /// buffer probably holds more: a FIFO that runs dry now was starved by us, not by the
    /// sender, and the busy period must go on without a gap.
    private var sourceBacklog = false
    /// When the source reported an error (no slave open), we leave it alone until this time
    /// instead of polling it: a hung-up master is always "readable" and would make us spin.
    private var sourceRestingUntil: UInt64?

    /// Bytes handed to the receiving pty at once while a burst goes on: a 16550's receive FIFO
    /// trigger level (8), or more at high rates, so that hand-overs come at most every 250 µs;
    /// or the configured `receiveBatch` (62 for an FTDI-like USB adapter).
    private var handOverBatch: UInt64 {
        guard let line = pacer else { return 1 }
        if let receiveBatch { return UInt64(receiveBatch) }
        return max(8, 250_000 / max(line.byteNanoseconds, 1))
    }
    private let receiveBatch: Int?

    /// A radio link's latency (`--delay`, `--jitter`): received bytes wait here, in order, until
    /// their time comes. Empty, and unused, on a plain cable.
    private var inFlight: [(due: UInt64, bytes: [UInt8])] = []
    private var inFlightHead = 0
    private let delayNanoseconds: UInt64
    private let jitterNanoseconds: UInt64
    private var jitterRandom: Xoshiro256StarStar

    /// On a cable that replugs an end, a pump never sleeps longer than this: it may be waiting
    /// on a master that was just replaced (`SwitchableDescriptor`), and must look at the new one.
    private let switchablePoll: UInt64?

    private func switchCheck(after now: UInt64) -> UInt64? { switchablePoll.map { now + $0 } }

    /// How long to rest the source after an error.
    private static let sourceRestNanoseconds: UInt64 = 50_000_000

    init(direction: CableDirection, source: SwitchableDescriptor, destination: SwitchableDescriptor, stopSignal: Int32,
         configuration: CableConfiguration, counters: CounterStore, origin: UInt64) {
        self.direction = direction
        sourceEnd = source
        destinationEnd = destination
        switchablePoll = configuration.unplugsOfB.isEmpty ? nil : 50_000_000
        self.stopSignal = stopSignal
        self.counters = counters
        self.origin = origin
        fifo = ByteFIFO(capacity: configuration.fifoBytes)
        receiveBatch = configuration.receiveBatch
        delayNanoseconds = UInt64((configuration.delay * 1e9).rounded())
        jitterNanoseconds = UInt64((configuration.jitter * 1e9).rounded())
        var mixer = SplitMix64(seed: configuration.seed ^ (direction == .aToB ? 0x5EED_A : 0x5EED_B))
        jitterRandom = Xoshiro256StarStar(seed: mixer.next())
        pacer = configuration.baud > 0
            ? LinePacer(baud: configuration.baud, bitsPerByte: configuration.bitsPerByte) : nil
        faults = FaultInjector(configuration: configuration, stream: direction == .aToB ? 1 : 2)
        // Unpaced, bytes only wait for the receiver, so larger reads are simply faster.
        scratch = [UInt8](repeating: 0, count: pacer == nil ? max(configuration.fifoBytes, 4096) : configuration.fifoBytes)
        outgoing.reserveCapacity(4096)
    }

    /// Runs until the stop descriptor becomes readable.
    func run() {
        if pacer != nil { runPaced() } else { runUnpaced() }
    }

    // MARK: - Paced: a UART at the line rate

    private func runPaced() {
        while true {
            let now = monotonicNanoseconds()
            // Deliver first, then read: a byte that turns up now must not be treated as if it
            // had been waiting while the line was idle, or it would go out "in the past".
            deliverDueBytes(at: now)
            releaseDelayed(at: now)
            if fifo.room > 0 { fillFIFO(at: now) }
            publish()

            var fds = [pollfd(fd: stopSignal, events: Int16(POLLIN), revents: 0)]
            let watchSource = fifo.room > 0 && sourceIsAwake(at: now)
            if watchSource { fds.append(pollfd(fd: source, events: Int16(POLLIN), revents: 0)) }
            // Idle line and empty FIFO: sleep until the sender writes (or a resting source wakes).
            let wake = [nextHandOver(), sourceRestingUntil, nextDelayedRelease, switchCheck(after: now)].compactMap { $0 }.min()
            pollDescriptors(&fds, until: wake, now: now)
            if fds[0].revents != 0 { return }
            if watchSource { noteSourceErrors(fds[1].revents) }
        }
    }

    /// When received bytes are next handed to the receiving pty, as a UART's receive side does:
    /// every `handOverBatch` bytes while more are on the wire (its FIFO trigger level), and the
    /// last few of a burst four character times after the final stop bit (its receive timeout).
    /// Nil while the line is idle.
    private func nextHandOver() -> UInt64? {
        guard let line = pacer, !line.isIdle else { return nil }
        let onTheWire = UInt64(fifo.count)
        if onTheWire > handOverBatch || sourceBacklog {
            return line.endOfByte(line.sentInPeriod + min(handOverBatch, max(onTheWire, 1)))
        }
        guard let last = line.endOfByte(line.sentInPeriod + max(onTheWire, 1)) else { return nil }
        return last + 4 * line.byteNanoseconds
    }

    /// Takes every byte whose stop bit has left the wire by `now` off the FIFO, through the
    /// fault injector, and onto the receiving master.
    private func deliverDueBytes(at now: UInt64) {
        guard let idle = pacer?.isIdle, !idle else { return }
        while let line = pacer {
            let due = line.bytesDue(at: now)
            let count = min(due, UInt64(fifo.count))
            for i in 0..<count {
                // Outages are judged at the instant each byte finishes, not at the batch time,
                // so that an outage window cuts the stream at the right byte.
                let end = line.endOfByte(line.sentInPeriod + i + 1) ?? now
                faults.carry(fifo.removeFirst(), at: secondsSinceOrigin(end), into: &outgoing, counters: &delta)
            }
            pacer?.didSend(count)
            guard fifo.isEmpty else { break }
            // The FIFO ran dry. If the sender's kernel buffer held more all along, a real UART
            // driver would have topped the FIFO up in time: refill and keep the line busy.
            if sourceBacklog && fillFIFO(at: now) > 0 {
                if count < due { continue }
                break
            }
            pacer?.becomeIdle()
            break
        }
        guard delayNanoseconds > 0 || jitterNanoseconds > 0 else {
            flushOutgoing(losingWhatDoesNotFit: true)
            return
        }
        guard !outgoing.isEmpty else { return }
        // Off the wire now; at the far end after the link's latency, never before what went first.
        let extra = jitterNanoseconds > 0 ? jitterRandom.next() % (jitterNanoseconds + 1) : 0
        var due = now + delayNanoseconds + extra
        if inFlightHead < inFlight.count, let last = inFlight.last?.due { due = max(due, last) }
        inFlight.append((due, outgoing))
        outgoing.removeAll(keepingCapacity: true)
    }

    /// When the oldest delayed bytes are due; nil when none wait.
    private var nextDelayedRelease: UInt64? {
        inFlightHead < inFlight.count ? inFlight[inFlightHead].due : nil
    }

    /// Hands over the delayed bytes whose time has come (a receiver that does not read loses
    /// them, as without a delay).
    private func releaseDelayed(at now: UInt64) {
        while inFlightHead < inFlight.count, inFlight[inFlightHead].due <= now {
            outgoing = inFlight[inFlightHead].bytes
            inFlightHead += 1
            flushOutgoing(losingWhatDoesNotFit: true)
        }
        if inFlightHead == inFlight.count {
            inFlight.removeAll(keepingCapacity: true)
            inFlightHead = 0
        } else if inFlightHead > 1024 {
            inFlight.removeFirst(inFlightHead)
            inFlightHead = 0
        }
    }

    /// Reads from the sending master into the FIFO, as much as there is room for.
    /// Returns the number of bytes read.
    @discardableResult
    private func fillFIFO(at now: UInt64) -> Int {
        guard fifo.room > 0, sourceIsAwake(at: now) else { return 0 }
        let wanted = fifo.room
        let result = scratch.withUnsafeMutableBytes {
            readSome(source, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<wanted]))
        }
        switch result {
        case .moved(let n):
            scratch.withUnsafeBytes { _ = fifo.append(contentsOf: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            delta.bytesAccepted += UInt64(n)
            sourceBacklog = n == wanted
            if pacer?.isIdle == true { pacer?.becomeBusy(at: now) }
            return n
        case .wouldBlock:
            sourceBacklog = false
            return 0
        case .failed:
            sourceBacklog = false
            sourceRestingUntil = now + Self.sourceRestNanoseconds
            return 0
        }
    }

    // MARK: - Unpaced: as fast as the receiver takes the bytes

    /// With no line rate there is no such thing as "the receiver was too slow for the line",
    /// so instead of overrunning we wait for the receiving master to have room: an infinitely
    /// fast cable with flow control. Faults still apply byte by byte.
    private func runUnpaced() {
        while true {
            let now = monotonicNanoseconds()
            if !outgoing.isEmpty { flushOutgoing(losingWhatDoesNotFit: false) }
            var readAny = false
            if outgoing.isEmpty && sourceIsAwake(at: now) {
                let result = scratch.withUnsafeMutableBytes { readSome(source, into: $0) }
                switch result {
                case .moved(let n):
                    delta.bytesAccepted += UInt64(n)
                    let t = secondsSinceOrigin(now)
                    for i in 0..<n {
                        faults.carry(scratch[i], at: t, into: &outgoing, counters: &delta)
                    }
                    readAny = true
                case .wouldBlock:
                    break
                case .failed:
                    sourceRestingUntil = now + Self.sourceRestNanoseconds
                }
            }
            publish()
            if readAny { continue }  // try to hand it over straight away

            var fds = [pollfd(fd: stopSignal, events: Int16(POLLIN), revents: 0)]
            var timeout: Int32 = -1
            var watchingSource = false
            if !outgoing.isEmpty {
                fds.append(pollfd(fd: destination, events: Int16(POLLOUT), revents: 0))
                // POLLOUT on a pty master is reliable, but a bounded wait costs nothing and
                // guarantees progress should a wake-up ever be missed.
                timeout = 50
            } else if sourceIsAwake(at: now) {
                fds.append(pollfd(fd: source, events: Int16(POLLIN), revents: 0))
                watchingSource = true
            } else if let resting = sourceRestingUntil {
                timeout = millisecondsUntil(resting, from: now)
            }
            if let check = switchCheck(after: now) {
                let bound = millisecondsUntil(check, from: now)
                timeout = timeout < 0 ? bound : min(timeout, bound)
            }
            pollDescriptors(&fds, timeoutMilliseconds: timeout)
            if fds[0].revents != 0 { return }
            if watchingSource { noteSourceErrors(fds[1].revents) }
        }
    }

    // MARK: - Shared helpers

    /// Hands the batch in `outgoing` to the receiving master. Paced, whatever does not fit is
    /// lost — a UART overrun, because the line does not wait for the receiver. Unpaced, the
    /// rest is kept for the next try.
    private func flushOutgoing(losingWhatDoesNotFit: Bool) {
        guard !outgoing.isEmpty else { return }
        let result = outgoing.withUnsafeBytes { writeSome(destination, from: $0) }
        var written = 0
        switch result {
        case .moved(let n): written = n
        case .wouldBlock: written = 0
        case .failed:
            // Cannot happen while the cable holds its own slave descriptor; if it does, do not
            // let an unusable receiver wedge the pump.
            delta.bytesOverrun += UInt64(outgoing.count)
            outgoing.removeAll(keepingCapacity: true)
            return
        }
        delta.bytesDelivered += UInt64(written)
        if losingWhatDoesNotFit {
            delta.bytesOverrun += UInt64(outgoing.count - written)
            outgoing.removeAll(keepingCapacity: true)
        } else {
            outgoing.removeFirst(written)
        }
    }

    private func sourceIsAwake(at now: UInt64) -> Bool {
        if let resting = sourceRestingUntil {
            if now < resting { return false }
            sourceRestingUntil = nil
        }
        return true
    }

    /// A hang-up or error on the source means no slave is open; rest it rather than spin.
    private func noteSourceErrors(_ revents: Int16) {
        if revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 && revents & Int16(POLLIN) == 0 {
            sourceRestingUntil = monotonicNanoseconds() + Self.sourceRestNanoseconds
        }
    }

    private func secondsSinceOrigin(_ t: UInt64) -> Double {
        t > origin ? Double(t - origin) / 1e9 : 0
    }

    private func publish() {
        if delta != DirectionCounters() {
            counters.add(delta, to: direction)
            delta = DirectionCounters()
        }
    }
}
