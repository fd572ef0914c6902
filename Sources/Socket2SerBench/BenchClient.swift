#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

/// One direction of one measured transfer, with both ends' view combined.
struct DirectionOutcome: Codable, Sendable {
    /// Payload bytes that should arrive.
    var expected: Int
    var received = 0
    /// Bytes that arrived different from what was sent (or beyond the expected length).
    var corrupt = 0
    /// SHA-256 of what the receiver got equals SHA-256 of what the sender sent.
    var digestsMatch = false
    /// Monotonic ns: first byte handed to the sending socket, last byte out of the receiving one.
    var firstSentAt: UInt64 = 0
    var lastReceivedAt: UInt64 = 0

    var intact: Bool { received == expected && corrupt == 0 && digestsMatch }

    var seconds: Double {
        lastReceivedAt > firstSentAt ? BenchClock.seconds(lastReceivedAt - firstSentAt) : 0
    }

    /// Payload bytes per second, first byte sent to last byte received.
    var bytesPerSecond: Double { seconds > 0 ? Double(received) / seconds : 0 }
}

/// A connection through C, the link and S to the target, as the client saw it.
struct TransferOutcome: Sendable {
    var id: UInt32
    /// Client → target; nil when nothing was uploaded.
    var up: DirectionOutcome?
    /// Target → client; nil when nothing was downloaded.
    var down: DirectionOutcome?
    var error: String?
    /// C refused or reset the connection before anything came back.
    var refused = false

    var intact: Bool { error == nil && (up?.intact ?? true) && (down?.intact ?? true) }
}

/// Latency samples of an echo connection.
struct EchoOutcome: Sendable {
    var milliseconds: [Double] = []
    var mismatches = 0
    var error: String?
}

/// The TCP clients of the bench: each connects to C like any user of socket2ser would.
enum BenchClient {
    /// Connects, asks the target for a transfer, uploads `up` bytes while downloading `down`,
    /// checks both, and closes. Blocks until done, failed, or `deadline` (monotonic ns).
    /// With `socks`, `port` is a SOCKS5 proxy (-D) and the connection asks it for the target.
    /// `progress`, if given, follows the bytes downloaded so far.
    static func transfer(port: Int, target: BenchTarget, id: UInt32, up: Int, down: Int,
                         ioTimeout: Double, deadline: UInt64, socks: Bool = false,
                         progress: Locked<Int>? = nil) -> TransferOutcome {
        var outcome = TransferOutcome(id: id)
        let fd: Int32
        do {
            fd = socks ? try BenchSocket.connect(port: port, timeout: ioTimeout, throughSOCKSTo: target.port)
                : try BenchSocket.connect(port: port, timeout: ioTimeout)
            try BenchSocket.writeAll(fd, BenchRequest(mode: .transfer, id: id, up: UInt32(up), down: UInt32(down)).bytes)
        } catch let error as BenchError {
            outcome.error = "\(error)"
            outcome.refused = [ECONNREFUSED, ECONNRESET, EPIPE].contains(error.code)
            return outcome
        } catch {
            outcome.error = "\(error)"
            return outcome
        }
        defer { close(fd) }

        // Upload on a thread of its own, download here: both directions at once.
        struct UploadResult: Sendable {
            var sent = 0
            var firstSentAt: UInt64 = 0
            var digest: [UInt8] = []
            var error: String?
        }
        let upload = Locked(UploadResult())
        let seed = target.seed
        let writer: BenchThread? = up == 0 ? nil : BenchThread("bench client writer", stackSize: 256 << 10) {
            var sender = PayloadSender(payload: BenchPayload(seed: seed, connection: id, direction: 1), total: up)
            var failure: String?
            do { try sender.run(fd: fd) } catch { failure = "upload: \(error)" }
            let result = UploadResult(sent: sender.sent, firstSentAt: sender.firstSentAt, digest: sender.digest,
                                      error: failure)
            upload.withLock { $0 = result }
        }

        var verifier = PayloadVerifier(payload: BenchPayload(seed: seed, connection: id, direction: 2), total: down)
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while !verifier.isComplete {
            do {
                let n = try buffer.withUnsafeMutableBytes { try BenchSocket.readSome(fd, into: $0) }
                if n == 0 {
                    outcome.error = "download: connection closed after \(verifier.received) of \(down) bytes"
                    if verifier.received == 0 { outcome.refused = true }
                    break
                }
                buffer.withUnsafeBytes { verifier.consume(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                progress?.withLock { $0 = verifier.received }
            } catch let error as BenchError {
                outcome.error = "download: \(error) after \(verifier.received) of \(down) bytes"
                if verifier.received == 0 && [ECONNRESET, ECONNREFUSED].contains(error.code) { outcome.refused = true }
                break
            } catch {
                outcome.error = "download: \(error)"
                break
            }
            if BenchClock.now() > deadline {
                outcome.error = "download: deadline passed after \(verifier.received) of \(down) bytes"
                break
            }
        }
        if outcome.error != nil { shutdown(fd, Int32(SHUT_RDWR)) }
        if let writer, !writer.join(deadline: deadline) {
            shutdown(fd, Int32(SHUT_RDWR))
            writer.join()
            outcome.error = outcome.error ?? "upload: deadline passed"
        }
        let sent = upload.current
        if let failure = sent.error { outcome.error = outcome.error ?? failure }

        // The target's side: when the upload's last byte arrived, when the download's first left.
        let record = target.record(id, deadline: outcome.error == nil ? deadline : BenchClock.deadline(after: 1))
        if record?.done != true { outcome.error = outcome.error ?? "the target did not finish before the deadline" }
        if let failure = record?.error { outcome.error = outcome.error ?? "target: \(failure)" }

        if up > 0 {
            var direction = DirectionOutcome(expected: up)
            direction.received = record?.upReceived ?? 0
            direction.corrupt = record?.upCorrupt ?? 0
            direction.digestsMatch = record.map { !$0.upDigest.isEmpty && $0.upDigest == sent.digest } ?? false
            direction.firstSentAt = sent.firstSentAt
            direction.lastReceivedAt = record?.upLastReceivedAt ?? 0
            outcome.up = direction
        }
        if down > 0 {
            var direction = DirectionOutcome(expected: down)
            direction.received = verifier.received
            direction.corrupt = verifier.corrupt
            direction.digestsMatch = record.map { !$0.downDigest.isEmpty && $0.downDigest == verifier.digest } ?? false
            direction.firstSentAt = record?.downFirstSentAt ?? 0
            direction.lastReceivedAt = verifier.lastReceivedAt
            outcome.down = direction
        }
        return outcome
    }

    /// Opens a connection that asks for an endless download and never reads it. Returns the
    /// descriptor; closing it ends the stream.
    static func openStalled(port: Int, id: UInt32, ioTimeout: Double) throws -> Int32 {
        // A small receive buffer, set before connecting so the window offered is small from the
        // start: what the stuck reader absorbs is then mostly what C's side holds.
        let fd = try BenchSocket.connect(port: port, timeout: ioTimeout, receiveBuffer: 4096)
        do {
            try BenchSocket.writeAll(fd, BenchRequest(mode: .transfer, id: id, up: 0, down: UInt32.max).bytes)
        } catch {
            close(fd)
            throw error
        }
        return fd
    }

    /// Round trips of one byte on one echo connection: `count` of them, or until `keepGoing`
    /// returns false, `interval` seconds apart (0: back to back).
    static func echoRoundTrips(port: Int, count: Int, interval: Double, ioTimeout: Double, deadline: UInt64,
                               keepGoing: () -> Bool = { true }) -> EchoOutcome {
        var outcome = EchoOutcome()
        let fd: Int32
        do {
            fd = try BenchSocket.connect(port: port, timeout: ioTimeout)
        } catch {
            outcome.error = "\(error)"
            return outcome
        }
        defer { close(fd) }
        // The first round trip carries the mode byte and opens the stream end to end; it is not
        // a latency sample.
        var byte = BenchRequest.Mode.echo.rawValue
        var reply: UInt8 = 0
        var warmedUp = false
        while outcome.milliseconds.count < count && keepGoing() && BenchClock.now() < deadline {
            if warmedUp { byte &+= 1 }
            let started = BenchClock.now()
            do {
                try withUnsafeBytes(of: byte) { try BenchSocket.writeAll(fd, $0) }
                let n = try withUnsafeMutableBytes(of: &reply) { try BenchSocket.readSome(fd, into: $0) }
                if n == 0 {
                    outcome.error = "echo connection closed after \(outcome.milliseconds.count) round trips"
                    return outcome
                }
            } catch {
                outcome.error = "echo: \(error) after \(outcome.milliseconds.count) round trips"
                return outcome
            }
            let elapsed = BenchClock.now() - started
            if reply != byte { outcome.mismatches += 1 }
            if warmedUp { outcome.milliseconds.append(Double(elapsed) / 1e6) } else { warmedUp = true }
            if interval > 0 { BenchClock.sleep(seconds: interval) }
        }
        return outcome
    }

    /// One short echo connection: connect, send `size` bytes (the mode byte first), read them
    /// back, close. Returns nil on success, or the reason it failed (with whether C refused it).
    static func shortEcho(port: Int, size: Int, salt: UInt32, ioTimeout: Double, socksTarget: Int? = nil,
                          beforeClose: () -> Void = {}) -> (error: String, refused: Bool)? {
        let fd: Int32
        do {
            fd = try socksTarget.map { try BenchSocket.connect(port: port, timeout: ioTimeout, throughSOCKSTo: $0) }
                ?? BenchSocket.connect(port: port, timeout: ioTimeout)
        } catch let error as BenchError {
            return ("\(error)", error.code == ECONNREFUSED)
        } catch {
            return ("\(error)", false)
        }
        defer { close(fd) }
        var message = BenchRequest(mode: .echo).bytes
        for i in 1..<max(1, size) { message.append(UInt8(truncatingIfNeeded: Int(salt) &* 31 &+ i)) }
        do {
            try BenchSocket.writeAll(fd, message)
            let reply = try BenchSocket.readExactly(fd, count: message.count)
            guard reply == message else { return ("echo came back different", false) }
        } catch let error as BenchError {
            return ("\(error)", [ECONNRESET, ECONNREFUSED, EPIPE].contains(error.code))
        } catch {
            return ("\(error)", false)
        }
        beforeClose()
        return nil
    }

    /// Waits until a byte echoes end to end: C listens, the link is up, S reaches the target.
    /// Polls with a fresh connection each time, until `deadline`.
    static func waitUntilReady(port: Int, deadline: UInt64) throws {
        var lastError = "nothing tried"
        while BenchClock.now() < deadline {
            let remaining = BenchClock.seconds(deadline - BenchClock.now())
            if let failure = shortEcho(port: port, size: 1, salt: 7, ioTimeout: max(0.2, min(3, remaining))) {
                lastError = failure.error
                BenchClock.sleep(seconds: 0.02)
            } else {
                return
            }
        }
        throw BenchError("the link did not carry an echo in time (last attempt: \(lastError))")
    }
}
