#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

/// What a bench connection asks the target for, in its first byte.
///
/// - `E` (echo): that byte and every later one is written back until the client closes. One byte
///   of framing only, because short connections (churn, 1000 streams) must cost the line as
///   little as a real protocol's greeting would.
/// - `T` (transfer) and 15 more bytes: 3 zero bytes, then `id`, `up` and `down` as UInt32 big
///   endian. The target reads `up` payload bytes (checking each one) while it writes `down`
///   payload bytes, then closes. `down` of `UInt32.max` with a client that never reads is the
///   stalled-reader scenario.
struct BenchRequest: Sendable {
    enum Mode: UInt8, Sendable {
        case echo = 0x45  // "E"
        case transfer = 0x54  // "T"
        /// A transfer whose target stops reading the upload after `up` bytes and never reads
        /// again, until the connection is cut: a stalled reader at S.
        case stallingUpload = 0x55  // "U"
    }
    static let transferSize = 16

    var mode: Mode
    var id: UInt32 = 0
    var up: UInt32 = 0
    var down: UInt32 = 0

    var bytes: [UInt8] {
        guard mode != .echo else { return [mode.rawValue] }
        var out: [UInt8] = [mode.rawValue, 0, 0, 0]
        for value in [id, up, down] {
            withUnsafeBytes(of: value.bigEndian) { out += $0 }
        }
        return out
    }

    init(mode: Mode, id: UInt32 = 0, up: UInt32 = 0, down: UInt32 = 0) {
        self.mode = mode
        self.id = id
        self.up = up
        self.down = down
    }

    /// Parses a transfer header (all 16 bytes).
    init?(transferHeader bytes: [UInt8]) {
        guard bytes.count == Self.transferSize, let mode = Mode(rawValue: bytes[0]), mode != .echo else { return nil }
        func word(_ at: Int) -> UInt32 {
            bytes[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) }
        }
        self.init(mode: mode, id: word(4), up: word(8), down: word(12))
    }
}

/// What the target saw of one `transfer` connection: the far end of every measurement.
struct TargetRecord: Sendable {
    /// Upload (client → target): bytes that arrived, how many were wrong, when the last came.
    var upReceived = 0
    var upCorrupt = 0
    var upDigest: [UInt8] = []
    var upLastReceivedAt: UInt64 = 0
    /// Download (target → client): bytes written, when the first went, digest of all of them.
    var downSent = 0
    var downFirstSentAt: UInt64 = 0
    var downDigest: [UInt8] = []
    /// Both directions finished (successfully or not).
    var done = false
    var error: String?
}

/// The target service S connects every stream to, running inside the bench process so that both
/// ends of each measurement share one clock.
///
/// Plain blocking sockets and a thread per connection: simple to get exactly right, and the
/// thousand-stream scenario needs no more than a couple of thousand small threads.
final class BenchTarget: @unchecked Sendable {
    let seed: UInt64
    /// Bound on any single read or write; a link that stalls longer than this is a failure.
    let ioTimeout: Double

    /// The listener, accept loop and connection threads (the test kit's).
    private var service: TCPService?
    private let condition = NSCondition()
    // Guarded by `condition`:
    private var records: [UInt32: TargetRecord] = [:]
    /// Downloads wait until this many transfer requests have arrived (or `gateDeadline`), so
    /// that they start together: what a thousand clients connecting at once ask for reaches the
    /// target over a couple of seconds of line time, and the first would otherwise run alone.
    private var gate: (count: Int, deadline: UInt64)?
    private var requestsArrived = 0

    init(seed: UInt64, ioTimeout: Double) throws {
        self.seed = seed
        self.ioTimeout = ioTimeout
        do {
            service = try TCPService(name: "bench target") { [weak self] fd in self?.serve(fd) }
        } catch {
            throw BenchError("\(error)")
        }
    }

    var port: Int { service?.port ?? 0 }
    var accepted: Int { service?.accepted ?? 0 }

    /// Stops accepting and cuts every open connection; waits up to 2 s for the handler threads.
    func stop() {
        service?.stop(timeout: .seconds(2))
    }

    /// Waits until the `transfer` connection `id` has finished, or the deadline passes.
    func record(_ id: UInt32, deadline: UInt64) -> TargetRecord? {
        condition.lock()
        defer { condition.unlock() }
        while records[id]?.done != true {
            let now = BenchClock.now()
            if now >= deadline { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(deadline - now) / 1e9))
        }
        return records[id]
    }

    /// The record as it is now, finished or not.
    func peek(_ id: UInt32) -> TargetRecord? {
        condition.lock()
        defer { condition.unlock() }
        return records[id]
    }

    /// Holds every download until `count` transfer requests have arrived or `seconds` passed.
    func holdDownloads(untilRequests count: Int, seconds: Double) {
        condition.lock()
        gate = (count, BenchClock.deadline(after: seconds))
        requestsArrived = 0
        condition.unlock()
    }

    /// A transfer request arrived; returns once downloads may start.
    private func passGate() {
        condition.lock()
        defer { condition.unlock() }
        requestsArrived += 1
        condition.broadcast()
        while let gate, requestsArrived < gate.count {
            let now = BenchClock.now()
            if now >= gate.deadline { break }
            _ = condition.wait(until: Date(timeIntervalSinceNow: Double(gate.deadline - now) / 1e9))
        }
    }

    private func update(_ id: UInt32, _ body: (inout TargetRecord) -> Void) {
        condition.lock()
        body(&records[id, default: TargetRecord()])
        condition.broadcast()
        condition.unlock()
    }

    private func serve(_ fd: Int32) {
        BenchSocket.setNoDelay(fd)
        BenchSocket.setTimeouts(fd, seconds: ioTimeout)
        guard let first = try? BenchSocket.readExactly(fd, count: 1) else { return }
        switch first[0] {
        case BenchRequest.Mode.echo.rawValue:
            echo(fd, first: first[0])
        case BenchRequest.Mode.transfer.rawValue, BenchRequest.Mode.stallingUpload.rawValue:
            guard let rest = try? BenchSocket.readExactly(fd, count: BenchRequest.transferSize - 1),
                  let request = BenchRequest(transferHeader: first + rest)
            else { return }
            transfer(fd, request)
        default:
            return
        }
    }

    private func echo(_ fd: Int32, first: UInt8) {
        guard (try? BenchSocket.writeAll(fd, [first])) != nil else { return }
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { (try? BenchSocket.readSome(fd, into: $0)) ?? 0 }
            if n == 0 { return }
            do {
                try buffer.withUnsafeBytes { try BenchSocket.writeAll(fd, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            } catch {
                return
            }
        }
    }

    private func transfer(_ fd: Int32, _ request: BenchRequest) {
        let id = request.id
        update(id) { $0 = TargetRecord() }
        passGate()
        let down = Int(request.down)
        // The endless download is meant to stay stuck for the whole scenario: its writer must not
        // give up (and end the stream) after the usual I/O timeout.
        if request.down == UInt32.max { BenchSocket.setTimeouts(fd, seconds: 3600) }
        let writer: BenchThread? = down == 0 ? nil : BenchThread("bench target writer", stackSize: 256 << 10) {
            [self] in
            var sender = PayloadSender(payload: BenchPayload(seed: seed, connection: id, direction: 2), total: down)
            var failure: String?
            do {
                // Small writes for the stream that is never read, so the target does not hold a
                // large buffer of its own; normal ones in whole blocks.
                try sender.run(fd: fd, chunk: request.down == UInt32.max ? 4096 : BenchPayload.blockSize)
            } catch {
                failure = "download: \(error)"
            }
            let digest = sender.digest
            update(id) { record in
                record.downSent = sender.sent
                record.downFirstSentAt = sender.firstSentAt
                record.downDigest = digest
                if let failure, record.error == nil { record.error = failure }
            }
        }
        var verifier = PayloadVerifier(payload: BenchPayload(seed: seed, connection: id, direction: 1),
                                       total: Int(request.up))
        var failure: String?
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while !verifier.isComplete {
            do {
                let n = try buffer.withUnsafeMutableBytes { try BenchSocket.readSome(fd, into: $0) }
                if n == 0 {
                    failure = "upload: connection closed after \(verifier.received) of \(verifier.total) bytes"
                    break
                }
                buffer.withUnsafeBytes { verifier.consume(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            } catch {
                failure = "upload: \(error) after \(verifier.received) of \(verifier.total) bytes"
                break
            }
            // Publish progress now and then, for the scenarios that watch a transfer mid-way.
            update(id) { $0.upReceived = verifier.received }
        }
        let digest = verifier.digest
        update(id) { record in
            record.upReceived = verifier.received
            record.upCorrupt = verifier.corrupt
            record.upDigest = digest
            record.upLastReceivedAt = verifier.lastReceivedAt
            if let failure, record.error == nil { record.error = failure }
        }
        if failure != nil { shutdown(fd, Int32(SHUT_RDWR)) }
        if request.mode == .stallingUpload && failure == nil {
            // Reads nothing more, with a small receive buffer, until the client cuts the
            // connection (its reset reaches here through the link) or the bench stops.
            var small: Int32 = 4096
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            let peerClosed: Int16 = 0x2000  // POLLRDHUP, which Glibc's Swift overlay does not export
            var descriptor = pollfd(fd: fd, events: peerClosed, revents: 0)
            let until = BenchClock.deadline(after: 600)
            while BenchClock.now() < until {
                let ready = poll(&descriptor, 1, 1000)
                if ready > 0 && descriptor.revents & (peerClosed | Int16(POLLHUP | POLLERR)) != 0 { break }
            }
        }
        writer?.join()
        update(id) { $0.done = true }
    }
}
