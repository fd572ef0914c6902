#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// A thousand downloads nobody reads (issue 11, §2): what each end holds for them, and whether
/// the link still carries another stream. On an unpaced cable, because at 115200 baud every
/// stuck stream first takes its window of the line, and a thousand windows are twenty minutes
/// of it; unpaced they fill in seconds and the windows are the largest the ends offer (64 KiB).
enum BenchStalledMany {
    static func run(_ run: BenchRun) throws {
        let count = run.settings.quick ? 100 : 1000
        try requireDescriptors(for: count)
        let rig = try run.rig(cable: ["--baud", "0"], startForwarders: false)
        try rig.startUnpacedForwarders(settings: run.settings)
        let idle = rig.samples()
        var stuck: [Int32] = []
        defer { stuck.forEach { close($0) } }
        for _ in 0..<count {
            stuck.append(try BenchClient.openStalled(port: rig.clientPort, id: run.newID(), ioTimeout: run.settings.ioTimeout))
        }
        // Quiet for two seconds: a shorter look can fall into a pause of the link (a keepalive
        // round) while the windows are still filling.
        let quiet = rig.waitForQuietLine(below: 100_000, window: 2, deadline: BenchClock.deadline(after: 120))
        run.info("line quiet after \(count) stuck streams", quiet.map { String(format: "%.1f s", $0) } ?? "still busy after 120 s")
        let size = run.settings.size(full: 8 << 20, quick: 256 << 10)
        let other = BenchClient.transfer(port: rig.clientPort, target: rig.target, id: run.newID(), up: 0, down: size,
                                         ioTimeout: run.settings.ioTimeout, deadline: BenchClock.deadline(after: 120))
        // The stuck streams are still held: what each end keeps for them.
        let held = rig.samples()
        for (end, before, now) in [("S", idle.server, held.server), ("C", idle.client, held.client)] {
            guard let before, let now else { continue }
            let perStream = Double(now.rssAnonKiB - before.rssAnonKiB) * 1024 / Double(count)
            run.info("\(end) private memory, idle → \(count) stuck", String(
                format: "%.1f → %.1f MB (%.0f KB per stream; RSS %.1f MB)", ProcessSample.megabytes(before.rssAnonKiB),
                ProcessSample.megabytes(now.rssAnonKiB), perStream / 1000, ProcessSample.megabytes(now.rssKiB)))
            run.details["\(end)PrivateKiBStuck"] = Double(now.rssAnonKiB)
        }
        run.checkIntact("another download beside them: bytes intact", other.down, error: other.error)
        run.throughput("another download beside them", bytesPerSecond: other.down?.bytesPerSecond ?? 0, atLeast: nil)
        run.stopRigs()
    }
}
