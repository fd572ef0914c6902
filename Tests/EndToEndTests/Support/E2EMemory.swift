import Foundation

/// What a process holds in memory, from /proc (Linux): its resident set now and at its peak,
/// and the private part of it (what the process itself wrote or mapped, not shared libraries).
struct E2EMemory: Sendable, CustomStringConvertible {
    /// VmRSS, in KiB.
    var resident: Int
    /// VmHWM: the most the resident set ever was, in KiB.
    var peak: Int
    /// Private_Clean + Private_Dirty of smaps_rollup, in KiB; 0 where the kernel lacks it.
    var privateBytes: Int
    /// Open file descriptors.
    var descriptors: Int

    var description: String {
        "RSS \(Self.text(resident)) (peak \(Self.text(peak))), private \(Self.text(privateBytes)), \(descriptors) descriptors"
    }

    static func text(_ kibibytes: Int) -> String {
        String(format: "%.1f MiB", Double(kibibytes) / 1024)
    }

    /// The figures of process `pid` now; nil if it is gone.
    static func of(pid: Int32) -> E2EMemory? {
        guard let status = read("/proc/\(pid)/status") else { return nil }
        func field(_ text: String, _ name: String) -> Int {
            for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
                return Int(line.dropFirst(name.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "") ?? 0
            }
            return 0
        }
        let rollup = read("/proc/\(pid)/smaps_rollup") ?? ""
        return E2EMemory(resident: field(status, "VmRSS"), peak: field(status, "VmHWM"),
                         privateBytes: field(rollup, "Private_Clean") + field(rollup, "Private_Dirty"),
                         descriptors: descriptors(pid: pid))
    }

    /// Open file descriptors of process `pid` (0 if it is gone): cheaper than `of(pid:)`, to sample.
    static func descriptors(pid: Int32) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
    }

    /// Read to the end by hand: procfs files report a size of 0, which some readers trust.
    private static func read(_ path: String) -> String? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        return String(decoding: file.readDataToEndOfFile(), as: UTF8.self)
    }
}
