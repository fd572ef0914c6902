#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import LinkCore
import SerialPort

/// A peer driven by the test itself: a real `Link` core on one end of the virtual cable, run on a
/// thread of its own, facing the real `socket2ser` executable on the other end.
///
/// `rewriteIncoming` sees every whole frame (decoded, CRC included) that arrives from the line
/// and may return another one in its place, re-sealed with a valid CRC. That is how a test makes
/// a well-formed peer misbehave in a way its own core would never choose to, for example by
/// believing in more credit than it was given. Streams the real end opens are accepted, and each
/// gets `sendOnAccept` bytes.
final class E2EFakePeer: @unchecked Sendable {
    // @unchecked: `link` and the counters are touched only on the peer's thread, except the
    // counters, which are guarded by `lock`.
    private let fd: CInt
    private var link: Link
    private let rewriteIncoming: @Sendable ([UInt8]) -> [UInt8]
    private let sendOnAccept: [UInt8]
    private let lock = NSLock()
    private var stopping = false
    private var eventsSeen: [LinkEvent] = []
    private let finished = DispatchSemaphore(value: 0)

    init(path: String, usesOddStreamIDs: Bool, baud: Int, sendOnAccept: [UInt8] = [],
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

    private func now() -> LinkTime {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return LinkTime(nanoseconds: Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec))
    }

    private func run() {
        var partial: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var outgoing: [StreamID: ArraySlice<UInt8>] = [:]
        while !lock.withLock({ stopping }) {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, 2)
            let count = descriptor.revents & Int16(POLLIN) != 0 ? read(fd, &buffer, buffer.count) : 0
            let time = now()
            if count > 0 {
                partial += buffer[0..<count]
                while let end = partial.firstIndex(of: 0) {
                    let encoded = Array(partial[...end])
                    partial.removeFirst(end + 1)
                    link.receive(reseal(encoded), now: time)
                }
            }
            link.handleTimeout(now: time)
            while let event = link.pollEvent() {
                lock.withLock { eventsSeen.append(event) }
                if case .streamOpened(let id, _) = event {
                    try? link.accept(id)
                    outgoing[id] = sendOnAccept[...]
                }
                if case .streamReset(let id, _) = event { outgoing[id] = nil }
                if case .received(let id, let bytes) = event { link.consumed(bytes.count, on: id) }
            }
            for (id, rest) in outgoing where !rest.isEmpty {
                guard let taken = try? link.send(rest, on: id) else {
                    outgoing[id] = nil
                    continue
                }
                outgoing[id] = rest.dropFirst(taken)
            }
            // Paced by the line: never more than the line takes in a few milliseconds.
            let chunk = link.pollTransmit(maxBytes: 1024, now: time)
            // A full line buffer loses the chunk; the core resends what was lost (§4).
            if !chunk.isEmpty { _ = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } }
        }
    }

    /// One encoded frame, passed through `rewriteIncoming` when it decodes.
    private func reseal(_ encoded: [UInt8]) -> [UInt8] {
        guard let frame = COBSDecoder.decode(encoded), frame.count > 4 else { return encoded }
        let rewritten = rewriteIncoming(frame)
        guard rewritten != frame else { return encoded }
        var raw = Array(rewritten.dropLast(4))
        let crc = CRC32C.checksum(raw)
        raw += [UInt8(crc & 0xFF), UInt8(crc >> 8 & 0xFF), UInt8(crc >> 16 & 0xFF), UInt8(crc >> 24)]
        var sealed = COBSEncoder.encode(raw)
        if sealed.last != 0 { sealed.append(0) }
        return sealed
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
