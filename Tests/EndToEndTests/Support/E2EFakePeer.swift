#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
@testable import LinkCore
import SerialPort

/// A peer driven by the test itself: a real `Link` core on one end of the virtual cable, run on a
/// thread of its own, facing the real `socket2ser` executable on the other end.
///
/// It can misbehave while staying well-formed, the way a hostile peer would (issue 12):
/// - `rewriteIncoming` sees every whole frame (decoded, CRC included) that arrives from the line
///   and may return another one in its place, re-sealed with a valid CRC, for example to believe
///   in more credit than it was given (`inflatingInitialWindow`);
/// - `inject` writes SEQUENCED frames of its own making, in the core's sequence space, so the real
///   end delivers their messages in order: a flood of OPENs, CREDIT games, LISTENs;
/// - `freezeAcknowledgements` makes every frame it sends carry the same acknowledgement from then
///   on, as a peer that never acknowledges would.
///
/// Streams the real end opens are accepted; each gets `sendOnAccept` bytes, and with `echoes`
/// everything it sends is sent back (and its FIN answered with one). What arrives on any stream
/// is counted, and the first `keepsReceived` bytes kept.
final class E2EFakePeer: @unchecked Sendable {
    // @unchecked: `link`, `outgoing`, `pendingOut` and `frozenAck` are touched only on the
    // peer's thread; everything shared with the test is guarded by `lock`.
    private let fd: CInt
    private var link: Link
    private let rewriteIncoming: @Sendable ([UInt8]) -> [UInt8]
    private let sendOnAccept: [UInt8]
    private let echoes: Bool
    private let keepsReceived: Int
    private let lock = NSLock()
    private var stopping = false
    private var eventsSeen: [LinkEvent] = []
    private var receivedBytes: [StreamID: [UInt8]] = [:]
    private var receivedCounts: [StreamID: Int] = [:]
    /// Commands for the peer's thread, in order; one that needs `quiet` waits, and those after
    /// it with it, until the core has no frame open or unacknowledged.
    private var commands: [(needsQuiet: Bool, run: (E2EFakePeer) -> Void)] = []
    private var freezing = false
    private var injectedFrames = 0
    private var observedSoFar = Observed()
    private let finished = DispatchSemaphore(value: 0)
    /// Bytes each stream still has to send, and whether a FIN follows them.
    private var outgoing: [StreamID: (rest: ArraySlice<UInt8>, finish: Bool)] = [:]
    /// What the core handed over after the last frame delimiter: written with its frame's end.
    private var pendingOut: [UInt8] = []
    /// The acknowledgement every frame carries while frozen.
    private var frozenAck: UInt16?
    /// Injected frames the real end has not acknowledged yet, resent until it does: the core
    /// does not know them, and one lost (the real end was too busy to read, and the cable
    /// overran, as a UART would) would stall the real end's ARQ for good.
    private var injectedUnacknowledged: [(seq: SequenceNumber, frame: [UInt8], sentAt: LinkTime)] = []
    private static let injectedResendInterval = LinkDuration.milliseconds(250)

    init(path: String, usesOddStreamIDs: Bool, baud: Int, sendOnAccept: [UInt8] = [], echoes: Bool = false,
         keepsReceived: Int = 1 << 20,
         rewriteIncoming: @escaping @Sendable ([UInt8]) -> [UInt8] = { $0 }) throws {
        let port = try SerialPort.open(path: path, settings: SerialSettings(baudRate: baud))
        fd = port.takeFileDescriptor()
        // Never blocks, so the thread always sees `stop()` in time; and only that thread touches
        // and closes the descriptor: a number closed under another thread's feet could be reused
        // by some other test's socket before that thread's next read.
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        link = Link(configuration: LinkConfiguration(usesOddStreamIDs: usesOddStreamIDs,
                                                     lineBytesPerSecond: baud / 10, seed: 0x5EED))
        self.rewriteIncoming = rewriteIncoming
        self.sendOnAccept = sendOnAccept
        self.echoes = echoes
        self.keepsReceived = keepsReceived
        let thread = Thread { [self] in
            run()
            SerialPort.releaseExclusiveUse(fileDescriptor: fd)
            close(fd)
            finished.signal()
        }
        thread.name = "e2e fake peer"
        thread.start()
    }

    /// The core's events so far.
    var events: [LinkEvent] { lock.withLock { eventsSeen } }

    /// Whether the handshake with the real end has completed.
    var isEstablished: Bool {
        events.contains { if case .established = $0 { return true } else { return false } }
    }

    /// The first bytes received on a stream (up to `keepsReceived`).
    func received(on id: StreamID) -> [UInt8] { lock.withLock { receivedBytes[id] ?? [] } }

    /// How many bytes arrived on a stream.
    func receivedCount(on id: StreamID) -> Int { lock.withLock { receivedCounts[id] ?? 0 } }

    /// Bytes received on all streams together.
    var receivedTotal: Int { lock.withLock { receivedCounts.values.reduce(0, +) } }

    /// Frames this peer made itself with `inject` and wrote.
    var injected: Int { lock.withLock { injectedFrames } }

    /// What the real end said about streams and listeners, including those this peer's core
    /// never heard of because `inject` opened them: read from every SEQUENCED frame the core
    /// delivered, once each.
    struct Observed: Sendable {
        var accepted: Set<StreamID> = []
        var refused: [StreamID: OpenRefusal] = [:]
        var resets: [StreamID: ResetReason] = [:]
        var listensGranted: [ListenID: UInt16] = [:]
        var listensRefused: [ListenID: ListenRefusal] = [:]

        func refusals(_ reason: OpenRefusal) -> Int { refused.values.filter { $0 == reason }.count }
        func listenRefusals(_ reason: ListenRefusal) -> Int { listensRefused.values.filter { $0 == reason }.count }
    }

    var observed: Observed { lock.withLock { observedSoFar } }

    /// Stops the peer's thread and waits until it has closed the device.
    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopping = true }
            return !stopping
        }
        guard first else { return }
        finished.wait()
    }

    deinit { stop() }

    // MARK: Commands, run on the peer's thread between frames

    /// Runs `body` on the peer's thread, between two frames on the line, and returns its result.
    /// Blocking.
    func perform<T: Sendable>(_ what: String = "a command", timeout: Duration = .seconds(20), needsQuiet: Bool = false,
                              _ body: @escaping (E2EFakePeer, inout Link) throws -> T) throws -> T {
        let done = DispatchSemaphore(value: 0)
        let result = E2EBox<Result<T, Error>>()
        lock.withLock {
            commands.append((needsQuiet, { peer in
                result.value = Result { try body(peer, &peer.link) }
                done.signal()
            }))
        }
        guard done.wait(timeout: .now() + .nanoseconds(Int(timeout.inSeconds * 1e9))) == .success else {
            throw E2EFailure("the fake peer did not run \(what) within \(timeout)")
        }
        return try result.value!.get()
    }

    /// Writes `messages` as SEQUENCED frames of this peer's own making, `perFrame` to a frame,
    /// numbered in its core's sequence space so the real end delivers them in order. Blocking
    /// until they are on the line; returns how many frames they took.
    ///
    /// They go out only while the core has no frame open or unacknowledged: the core takes an
    /// acknowledgement only of what it has in flight (one that reaches beyond is ignored), so
    /// numbers it skipped in the middle of its own frames would hide every later acknowledgement
    /// from it, and its frames would be resent for ever.
    @discardableResult
    func inject(_ messages: [Message], perFrame: Int = 100) throws -> Int {
        try perform("an injection of \(messages.count) messages", needsQuiet: true) { peer, link in
            var bytes: [UInt8] = []
            var frames = 0
            var start = 0
            while start < messages.count {
                let chunk = messages[start..<min(start + perFrame, messages.count)]
                start += chunk.count
                let seq = link.nextSequence
                var content: [UInt8] = [Wire.FrameType.sequenced.rawValue, UInt8(seq.rawValue >> 8), UInt8(seq.rawValue & 0xFF)]
                for message in chunk { message.encode(into: &content) }
                let ack = link.expectedSequence.rawValue
                content += [UInt8(ack >> 8), UInt8(ack & 0xFF), 0, 0, 0, 0]
                link.nextSequence = seq + 1
                let frame = Self.seal(content)
                peer.injectedUnacknowledged.append((seq, frame, peer.now()))
                bytes += peer.rewritingOutgoing(frame)
                frames += 1
            }
            peer.writeAll(bytes)
            peer.lock.withLock { peer.injectedFrames += frames }
            return frames
        }
    }

    /// From now on every frame this peer sends acknowledges no more than the first one did:
    /// the real end never learns that anything it sent after that arrived.
    func freezeAcknowledgements() {
        lock.withLock { freezing = true }
    }

    /// Opens a stream to `target` (empty: the real end's default target), queues `bytes` and,
    /// with `finish`, a FIN after them. Blocking until the core has taken the command.
    func open(target: String = "", sending bytes: [UInt8] = [], finish: Bool = false) throws -> StreamID {
        try perform("an OPEN") { peer, link in
            let id = try link.openStream(target: target)
            peer.outgoing[id] = (bytes[...], finish)
            return id
        }
    }

    /// Queues `bytes` on a stream of this peer, and with `finish` a FIN after them.
    func send(_ bytes: [UInt8], on id: StreamID, finish: Bool = false) throws {
        try perform("a send") { peer, _ in
            let rest = peer.outgoing[id]?.rest ?? []
            peer.outgoing[id] = (rest + bytes, finish)
        }
    }

    // MARK: The thread

    private func now() -> LinkTime {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return LinkTime(nanoseconds: Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec))
    }

    private func run() {
        var partial: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !lock.withLock({ stopping }) {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, 2)
            let count = descriptor.revents & Int16(POLLIN) != 0 ? read(fd, &buffer, buffer.count) : 0
            let time = now()
            if count > 0 {
                partial += buffer[0..<count]
                while let end = partial.firstIndex(of: 0) {
                    let encoded = reseal(Array(partial[...end]))
                    partial.removeFirst(end + 1)
                    let expected = link.expectedSequence
                    link.receive(encoded, now: time)
                    if link.expectedSequence == expected + 1 { observe(encoded, seq: expected) }
                    if let ack = Self.acknowledgement(in: encoded) {
                        injectedUnacknowledged.removeAll { ack - $0.seq > 0 }
                    }
                }
            }
            link.handleTimeout(now: time)
            handleEvents()
            // What is on the line always ends with a whole frame (the core's output is written
            // frame by frame, below), so an injected frame never lands inside one of the core's;
            // one the core is still building only goes out after it, with its lower number.
            let quiet = link.inspection.outstandingFrames.isEmpty && !link.inspection.isFrameOpen
            let ready = lock.withLock { () -> [(E2EFakePeer) -> Void] in
                let count = quiet ? commands.count : commands.firstIndex { $0.needsQuiet } ?? commands.count
                defer { commands.removeFirst(count) }
                return commands.prefix(count).map(\.run)
            }
            for command in ready { command(self) }
            handleEvents()
            for index in injectedUnacknowledged.indices
            where time - injectedUnacknowledged[index].sentAt > Self.injectedResendInterval {
                writeAll(rewritingOutgoing(injectedUnacknowledged[index].frame))
                injectedUnacknowledged[index].sentAt = time
            }
            for (id, queued) in outgoing {
                if !queued.rest.isEmpty {
                    guard let taken = try? link.send(queued.rest, on: id) else {
                        outgoing[id] = nil
                        continue
                    }
                    outgoing[id]!.rest = queued.rest.dropFirst(taken)
                }
                if outgoing[id]!.rest.isEmpty {
                    if queued.finish { try? link.finish(id) }
                    outgoing[id] = nil
                }
            }
            // Paced by the line: never more than the line takes in a few milliseconds.
            let chunk = link.pollTransmit(maxBytes: 1024, now: time)
            guard !chunk.isEmpty else { continue }
            // Written in whole frames, so an injected frame always starts on a frame boundary.
            pendingOut += chunk
            guard let last = pendingOut.lastIndex(of: 0) else { continue }
            let whole = Array(pendingOut[...last])
            pendingOut.removeFirst(last + 1)
            writeAll(rewritingOutgoing(whole))
        }
    }

    private func handleEvents() {
        while let event = link.pollEvent() {
            lock.withLock { eventsSeen.append(event) }
            switch event {
            case .streamOpened(let id, _):
                try? link.accept(id)
                outgoing[id] = (sendOnAccept[...], false)
            case .streamReset(let id, _):
                outgoing[id] = nil
            case .received(let id, let bytes):
                lock.withLock {
                    receivedCounts[id, default: 0] += bytes.count
                    let kept = receivedBytes[id, default: []]
                    if kept.count < keepsReceived {
                        receivedBytes[id] = kept + bytes.prefix(keepsReceived - kept.count)
                    }
                }
                link.consumed(bytes.count, on: id)
                if echoes {
                    let rest = outgoing[id]?.rest ?? []
                    outgoing[id] = (rest + bytes, outgoing[id]?.finish ?? false)
                }
            case .remoteFinished(let id):
                if echoes {
                    outgoing[id] = (outgoing[id]?.rest ?? [], true)
                }
            default:
                break
            }
        }
    }

    /// Writes all of `bytes` to the line, waiting while the pty's buffer is full: a frame cut
    /// short would swallow the next one.
    private func writeAll(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count, !lock.withLock({ stopping }) {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                offset += n
                continue
            }
            guard n < 0, errno == EAGAIN || errno == EINTR else { return }
            var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&descriptor, 1, 10)
        }
    }

    /// Whole encoded frames, with the acknowledgement frozen if `freezeAcknowledgements` was called.
    private func rewritingOutgoing(_ encoded: [UInt8]) -> [UInt8] {
        guard lock.withLock({ freezing }) else { return encoded }
        var out: [UInt8] = []
        var start = 0
        while let end = encoded[start...].firstIndex(of: 0) {
            let one = Array(encoded[start...end])
            start = end + 1
            guard let frame = COBSDecoder.decode(one), frame.count > 4 else {
                out += one
                continue
            }
            let type = frame[0] & ~Wire.compactTrailerFlag
            guard type == Wire.FrameType.sequenced.rawValue || type == Wire.FrameType.control.rawValue
                    || type == Wire.FrameType.fragment.rawValue else {
                out += one
                continue
            }
            let compact = frame[0] & Wire.compactTrailerFlag != 0
            let trailer = frame.count - 4 - (compact ? 2 : 6)
            var content = Array(frame.dropLast(4))
            let ack = frozenAck ?? (UInt16(content[trailer]) << 8 | UInt16(content[trailer + 1]))
            frozenAck = ack
            content[trailer] = UInt8(ack >> 8)
            content[trailer + 1] = UInt8(ack & 0xFF)
            if !compact { content[(trailer + 2)...(trailer + 5)] = [0, 0, 0, 0] }  // no SACK either
            out += Self.seal(content)
        }
        return out + encoded[start...]
    }

    /// Notes the stream and listener answers in a SEQUENCED frame the core just delivered.
    private func observe(_ encoded: [UInt8], seq: SequenceNumber) {
        guard let frame = COBSDecoder.decode(encoded), frame.count > 4 + 3,
              frame[0] & ~Wire.compactTrailerFlag == Wire.FrameType.sequenced.rawValue,
              UInt16(frame[1]) << 8 | UInt16(frame[2]) == seq.rawValue else { return }
        let trailer = frame[0] & Wire.compactTrailerFlag != 0 ? 2 : 6
        guard frame.count - 4 - trailer >= 3 else { return }
        var parser = MessageParser(frame[3..<(frame.count - 4 - trailer)])
        lock.withLock {
            while let message = try? parser.next() {
                switch message {
                case .openOK(let id): observedSoFar.accepted.insert(id)
                case .openRefused(let id, let reason): observedSoFar.refused[id] = reason
                case .reset(let id, let reason): observedSoFar.resets[id] = reason
                case .listenOK(let id, let port): observedSoFar.listensGranted[id] = port
                case .listenRefused(let id, let reason): observedSoFar.listensRefused[id] = reason
                default: break
                }
            }
        }
    }

    // MARK: Frames

    /// The cumulative acknowledgement in the trailer of an encoded SEQUENCED, CONTROL or
    /// FRAGMENT frame whose CRC holds.
    private static func acknowledgement(in encoded: [UInt8]) -> SequenceNumber? {
        guard let frame = COBSDecoder.decode(encoded), frame.count > 4 + 3 else { return nil }
        let type = frame[0] & ~Wire.compactTrailerFlag
        guard type == Wire.FrameType.sequenced.rawValue || type == Wire.FrameType.control.rawValue
                || type == Wire.FrameType.fragment.rawValue else { return nil }
        let content = frame.dropLast(4)
        let crc = CRC32C.checksum(Array(content))
        guard frame.suffix(4).elementsEqual([UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)])
        else { return nil }
        let trailer = frame.count - 4 - (frame[0] & Wire.compactTrailerFlag != 0 ? 2 : 6)
        guard trailer >= 1 else { return nil }
        return SequenceNumber(UInt16(frame[trailer]) << 8 | UInt16(frame[trailer + 1]))
    }

    /// `content` (type … trailer) with its CRC-32C, COBS-encoded and delimited.
    static func seal(_ content: [UInt8]) -> [UInt8] {
        let crc = CRC32C.checksum(content)
        let raw = content + [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)]
        var sealed = COBSEncoder.encode(raw)
        if sealed.last != 0 { sealed.append(0) }
        return sealed
    }

    /// One encoded frame, passed through `rewriteIncoming` when it decodes.
    private func reseal(_ encoded: [UInt8]) -> [UInt8] {
        guard let frame = COBSDecoder.decode(encoded), frame.count > 4 else { return encoded }
        let rewritten = rewriteIncoming(frame)
        guard rewritten != frame else { return encoded }
        return Self.seal(Array(rewritten.dropLast(4)))
    }

    /// A rewrite that raises the initial window in the real end's HELLO, so this peer believes
    /// it may send `window` bytes on a stream before any CREDIT, more than it was really given.
    static func inflatingInitialWindow(to window: UInt32) -> @Sendable ([UInt8]) -> [UInt8] {
        { frame in
            guard frame.first == Wire.FrameType.hello.rawValue,
                  case .success(var hello) = Hello.decode(frame[1..<(frame.count - 4)]) else { return frame }
            hello.initialWindow = window
            var out: [UInt8] = [Wire.FrameType.hello.rawValue]
            hello.encode(into: &out)
            return out + [0, 0, 0, 0]  // the CRC is recomputed by `reseal`
        }
    }
}
