#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import TestKit

/// A transfer whose reader stops in the middle, next to one that goes on, in each direction
/// (issue 11 §2). Until the stalled stream has used up what its window and the buffers below
/// let through, the two share the line; after that the other has it alone. Measured: the other
/// stream's share of the line from one second after the stall, and how much line time the
/// stalled stream took after its reader stopped.
enum BenchStall {
    static func run(_ run: BenchRun) throws {
        let rig = try run.rig()
        for direction in ["download", "upload"] {
            try measure(run, rig: rig, upload: direction == "upload")
        }
    }

    /// Seconds of the other stream's transfer measured after the stall's first second.
    private static func window(_ run: BenchRun) -> Double { run.settings.quick ? 1.5 : 4 }

    private static func measure(_ run: BenchRun, rig: BenchRig, upload: Bool) throws {
        let rate = run.settings.lineRate
        let name = upload ? "upload" : "download"
        // The stalled stream runs alone for a second first, so its window is in use when its
        // reader stops; the other starts then and runs past the measurement.
        let lead = max(4096, Int(rate))
        let otherSize = Int(rate * (window(run) + 3))
        let stalledID = run.newID(), otherID = run.newID()
        let progress = Locked(0)

        // The stalled stream: a download whose client stops reading, or an upload whose target
        // stops reading, after `lead` bytes.
        let stalledFD: Int32
        if upload {
            stalledFD = try BenchSocket.connect(port: rig.clientPort, timeout: run.settings.ioTimeout)
            try BenchSocket.writeAll(stalledFD, BenchRequest(mode: .stallingUpload, id: stalledID,
                                                             up: UInt32(lead), down: 0).bytes)
        } else {
            // The client's own receive buffer is not socket2ser's to size: the smallest the kernel
            // allows (about 2.3 KB), so that what is measured is what the link holds.
            stalledFD = try BenchSocket.connect(port: rig.clientPort, timeout: run.settings.ioTimeout, receiveBuffer: 1)
            try BenchSocket.writeAll(stalledFD, BenchRequest(mode: .transfer, id: stalledID, up: 0, down: UInt32.max).bytes)
        }
        var uploader: BenchThread?
        defer {
            // A reset, not a clean close: the stream must end now, not after its buffers drain.
            // The shutdown wakes the upload's writer, blocked in a send the link will never take
            // (closing the descriptor alone would not), so that it can be joined.
            var abort = linger(l_onoff: 1, l_linger: 0)
            setsockopt(stalledFD, SOL_SOCKET, SO_LINGER, &abort, socklen_t(MemoryLayout<linger>.size))
            shutdown(stalledFD, Int32(SHUT_RDWR))
            uploader?.join()
            close(stalledFD)
        }
        if upload {
            // Writes as long as the link takes it; the target stops reading after `lead` bytes
            // (and does not check what they are).
            uploader = BenchThread("bench stalled upload", stackSize: 256 << 10) {
                var block = [UInt8](repeating: 0x55, count: 4096)
                block[0] = 1
                while (try? BenchSocket.writeAll(stalledFD, block)) != nil {}
            }
            let deadline = BenchClock.deadline(after: 30)
            while (rig.target.peek(stalledID)?.upReceived ?? 0) < lead {
                guard BenchClock.now() < deadline else { throw BenchError("stalled upload: the target got less than \(lead) B in 30 s") }
                BenchClock.sleep(seconds: 0.01)
            }
        } else {
            var buffer = [UInt8](repeating: 0, count: 4096)
            var got = 0
            while got < lead {
                let n = try buffer.withUnsafeMutableBytes { try BenchSocket.readSome(stalledFD, into: $0) }
                guard n > 0 else { throw BenchError("stalled download: closed after \(got) B") }
                got += n
            }
        }
        let t0 = BenchClock.now()  // the reader stops here

        // The other stream, and its progress sampled every 50 ms.
        let outcome = Locked<TransferOutcome?>(nil)
        let transfer = BenchThread("bench other \(name)", stackSize: 256 << 10) { [rig] in
            let result = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: otherID,
                                              up: upload ? otherSize : 0, down: upload ? 0 : otherSize,
                                              ioTimeout: run.settings.ioTimeout,
                                              deadline: run.settings.deadline(bytes: otherSize, atLeast: 0.1),
                                              progress: upload ? nil : progress)
            outcome.withLock { $0 = result }
        }
        var samples: [(at: Double, bytes: Int)] = []
        let sampleUntil = t0 + UInt64((1 + window(run)) * 1e9)
        while BenchClock.now() < sampleUntil && outcome.current == nil {
            let bytes = upload ? (rig.target.peek(otherID)?.upReceived ?? 0) : progress.current
            samples.append((BenchClock.seconds(BenchClock.now() - t0), bytes))
            BenchClock.sleep(seconds: 0.05)
        }
        transfer.join()
        let other = outcome.current
        run.checkIntact("\(name): other stream intact", upload ? other?.up : other?.down, error: other?.error)

        // From one second after the stall to the end of the window.
        func bytes(at t: Double) -> Int? { samples.last(where: { $0.at <= t })?.bytes }
        let from = 1.0, to = min(1 + window(run), samples.last?.at ?? 0)
        if let a = bytes(at: from), let b = bytes(at: to), to > from {
            let rateAfter = Double(b - a) / (to - from)
            run.throughput("\(name): other stream, from 1 s after the stall / line rate", bytesPerSecond: rateAfter,
                           atLeast: run.settings.quick ? nil : 0.9)
            run.details["\(name)OtherAfterStall"] = rateAfter / rate
        }
        // The line time the stalled stream took after the stall: what the other stream did not
        // get of the line (frame overhead included, about 1 %), over the whole window.
        if let end = samples.last, end.at > 0.5 {
            let missing = max(0, end.at * rate - Double(end.bytes)) / rate
            run.info("\(name): line time the stalled stream took after the stall",
                     String(format: "%.2f s (%.0f B)", missing, missing * rate), value: missing, unit: "s")
            run.details["\(name)StalledLineSeconds"] = missing
        }
        // Each half-second: the other stream's share of the line, to see when it recovered.
        var shares: [String] = []
        var t = 0.0
        while t + 0.5 <= (samples.last?.at ?? 0) {
            if let a = bytes(at: t), let b = bytes(at: t + 0.5) { shares.append(String(format: "%.2f", Double(b - a) / 0.5 / rate)) }
            t += 0.5
        }
        run.info("\(name): other stream's share per half second after the stall", shares.joined(separator: " "))
    }
}
