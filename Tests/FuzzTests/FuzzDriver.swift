#if canImport(Glibc)
import Glibc
#endif
import Foundation
import LinkCore

/// A seeded mutation fuzzer: starts from a target's corpus (Tests/FuzzTests/corpus/NAME, in the
/// repo), mutates inputs at random (bit flips, interesting bytes, inserts, deletions, repeats,
/// splices of two inputs, truncation) and feeds each to the target for a bounded time. The
/// same seed and corpus give the same inputs, so a failure replays with `FUZZ_SEED`.
///
/// A crash ends the process, so before each input the driver writes it to
/// `.build/fuzz-crash-NAME`: after a crash that file holds the input, which then becomes a
/// regression file in the corpus (every file there is run first, unmutated, on every run).
///
/// Not coverage-guided. libFuzzer does work with this toolchain (`-sanitize=fuzzer`, linked with
/// lld, driven through `LLVMFuzzerRunDriver`), but every module, swift-crypto's and NIO's
/// included, must be rebuilt with it: minutes more than CI's budget. A coverage-guided harness
/// is left for later.
struct Fuzzer {
    let name: String
    var rng: SplitMix64
    var corpus: [[UInt8]]
    let seed: UInt64

    static var seconds: Double { Double(ProcessInfo.processInfo.environment["FUZZ_SECONDS"] ?? "") ?? 2 }

    init(_ name: String, seeds: [[UInt8]]) {
        self.name = name
        seed = UInt64(ProcessInfo.processInfo.environment["FUZZ_SEED"] ?? "") ?? 1
        rng = SplitMix64(seed: seed ^ UInt64(truncatingIfNeeded: name.hashValueStable))
        corpus = Self.corpusFiles(name) + seeds
        precondition(!corpus.isEmpty, "fuzz target \(name) has no corpus")
    }

    static var corpusFolder: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("corpus")
    }

    static func corpusFiles(_ name: String) -> [[UInt8]] {
        let folder = corpusFolder.appendingPathComponent(name)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder.path))?.sorted() ?? []
        return files.compactMap { FileManager.default.contents(atPath: folder.appendingPathComponent($0).path).map { Array($0) } }
    }

    mutating func int(_ n: Int) -> Int { n <= 1 ? 0 : Int(rng.next() % UInt64(n)) }

    mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var out = input
        for _ in 0...int(4) {
            switch int(9) {
            case 0 where !out.isEmpty: out[int(out.count)] ^= UInt8(1 << int(8))
            case 1 where !out.isEmpty: out[int(out.count)] = [0, 0xFF, 0x7F, 0x80, 1, 0xFE][int(6)]
            case 2: out.insert(UInt8(truncatingIfNeeded: rng.next()), at: int(out.count + 1))
            case 3 where !out.isEmpty: out.remove(at: int(out.count))
            case 4 where out.count > 2:
                let a = int(out.count), b = min(out.count, a + 1 + int(16))
                out.insert(contentsOf: out[a..<b], at: int(out.count + 1))
            case 5:
                let other = corpus[int(corpus.count)]
                out = Array(out.prefix(int(out.count + 1))) + other.suffix(int(other.count + 1))
            case 6 where !out.isEmpty: out.removeLast(int(out.count))
            case 7 where out.count >= 2:
                let i = int(out.count - 1)
                let v = UInt16(truncatingIfNeeded: rng.next() % 4 == 0 ? 0xFFFF : rng.next() % 300)
                out[i] = UInt8(v >> 8); out[i + 1] = UInt8(v & 0xFF)
            default: if !out.isEmpty { out[int(out.count)] = UInt8(truncatingIfNeeded: rng.next()) }
            }
        }
        return Array(out.prefix(1 << 16))
    }

    /// Runs the corpus, then mutations until the time is up. Returns how many inputs ran.
    @discardableResult
    mutating func run(seconds: Double = Fuzzer.seconds, _ target: ([UInt8]) -> Void) -> Int {
        let crashFile = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../.build/fuzz-crash-\(name)").standardizedFileURL.path
        let fd = open(crashFile, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { if fd >= 0 { close(fd); unlink(crashFile) } }
        func note(_ input: [UInt8]) {
            guard fd >= 0 else { return }
            _ = ftruncate(fd, 0)
            _ = input.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        }
        var count = 0
        for input in corpus {
            note(input)
            target(input)
            count += 1
        }
        let deadline = Date().addingTimeInterval(seconds)
        var added = 0
        while Date() < deadline {
            for _ in 0..<64 {
                let input = mutate(corpus[int(corpus.count)])
                note(input)
                target(input)
                count += 1
                // Keep a few mutants as parents, so mutations compound.
                if int(50) == 0 && added < 200 { corpus.append(input); added += 1 }
            }
        }
        print("fuzz \(name): \(count) inputs in \(seconds) s (FUZZ_SEED=\(seed); a crash leaves its input in \(crashFile))")
        return count
    }
}

extension String {
    /// A hash that does not change between runs (Swift's `hashValue` is seeded per process).
    var hashValueStable: UInt64 {
        utf8.reduce(14_695_981_039_346_656_037) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }
    }
}
