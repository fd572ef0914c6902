#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SerialPort
import Testing
import TestKit

/// `socket2ser check` with the real executable on a pseudo-terminal: a loopback (the test echoes
/// the master side back, as a plug joining TX to RX would), no loopback, and a device held by
/// another process.
@Suite("check", .serialized)
struct CheckCommandTests {
    /// Echoes (or swallows) whatever the tested end writes, until stopped.
    final class Plug: @unchecked Sendable {
        // @unchecked: `stopped` is guarded by `lock`; the descriptor is only read and written.
        let terminal: PseudoTerminal
        private let lock = NSLock()
        private var stopped = false
        private let done = DispatchSemaphore(value: 0)

        init(echo: Bool) throws {
            terminal = try PseudoTerminal()
            let master = terminal.master
            Thread { [self] in
                var buffer = [UInt8](repeating: 0, count: 65_536)
                while !lock.withLock({ stopped }) {
                    var fds = [pollfd(fd: master, events: Int16(POLLIN), revents: 0)]
                    guard poll(&fds, 1, 20) > 0 else { continue }
                    let n = buffer.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
                    guard n > 0, echo else { continue }
                    var offset = 0
                    while offset < n {
                        let w = buffer[offset..<n].withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
                        if w > 0 {
                            offset += w
                        } else {
                            var out = [pollfd(fd: master, events: Int16(POLLOUT), revents: 0)]
                            _ = poll(&out, 1, 20)  // until the tested end reads
                        }
                    }
                }
                done.signal()
            }.start()
        }

        func stop() {
            lock.withLock { stopped = true }
            done.wait()
        }
    }

    @Test("a loopback: the applied settings, throughput, no bit errors, round trips")
    func loopback() throws {
        let plug = try Plug(echo: true)
        defer { plug.stop() }
        let result = try Socket2SerProcess.run(["check", "-com", plug.terminal.devicePath, "--seconds", "0.5"])
        #expect(result.exitCode == 0, "\(result.standardError)")
        let text = result.standardOutput
        #expect(text.hasPrefix("\(plug.terminal.devicePath): opened; no other process holds it"), "\(text)")
        #expect(text.contains("  driver applied: 115200,8N1\n"), "\(text)")
        #expect(text.contains("  note: a pseudo-terminal has no baud rate"), "\(text)")
        #expect(text.contains("  loopback: yes"), "\(text)")
        #expect(text.contains("  bit errors: 0 in "), "\(text)")
        #expect(text.contains("  round trip of 16 bytes: ") && text.contains("(20 probes"), "\(text)")
        let throughput = text.split(separator: "\n").first { $0.hasPrefix("  throughput: ") }
            .flatMap { Double($0.dropFirst("  throughput: ".count).prefix { $0.isNumber }) } ?? 0
        #expect(throughput > 10_000, "\(text)")
    }

    @Test("no loopback: says so and how to make one, exit 0")
    func noLoopback() throws {
        let plug = try Plug(echo: false)
        defer { plug.stop() }
        let result = try Socket2SerProcess.run(["check", "-com", plug.terminal.devicePath])
        #expect(result.exitCode == 0, "\(result.standardError)")
        #expect(result.standardOutput.contains("  loopback: none (nothing sent came back within 1 s); join TX to RX"),
                "\(result.standardOutput)")
    }

    @Test("a device another process holds: one line naming that process, exit 1")
    func busy() throws {
        let plug = try Plug(echo: false)
        defer { plug.stop() }
        let holder = try SerialPort.open(path: plug.terminal.devicePath, settings: SerialSettings())
        defer { holder.close() }
        let result = try Socket2SerProcess.run(["check", "-com", plug.terminal.devicePath])
        #expect(result.exitCode == 1)
        #expect(result.errorLines == ["socket2ser: \(plug.terminal.devicePath): device is in use by \(getpid()) (\(Self.command))"],
                "\(result.standardError)")
    }

    static var command: String {
        ((try? String(contentsOfFile: "/proc/self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// `check --peer` at both ends of a virtual cable at once.
@Suite("check --peer", .serialized)
struct CheckPeerTests {
    static func bothEnds(cable options: [String]) throws -> (a: Socket2SerProcess.Result, b: Socket2SerProcess.Result) {
        let cable = try CableProcess(["--baud", "115200"] + options)
        defer { cable.process.terminate() }
        let a = try Socket2SerProcess(["check", "--peer", "-com", cable.pathA, "--seconds", "2"])
        let b = try Socket2SerProcess(["check", "--peer", "-com", cable.pathB, "--seconds", "2"])
        return (try a.waitForExit(timeout: 30), try b.waitForExit(timeout: 30))
    }

    static func throughput(_ text: String) -> Double {
        text.split(separator: "\n").first { $0.hasPrefix("  throughput from the far end: ") }
            .flatMap { Double($0.dropFirst("  throughput from the far end: ".count).prefix { $0.isNumber }) } ?? 0
    }

    @Test("a clean line: each end hears the other, measures its rate and round trip, no bit errors")
    func cleanLine() throws {
        let (a, b) = try Self.bothEnds(cable: [])
        for result in [a, b] {
            #expect(result.exitCode == 0, "\(result.standardError)")
            let text = result.standardOutput
            #expect(text.contains("  peer: heard"), "\(text)")
            #expect(text.contains("  bit errors: 0 in "), "\(text)")
            #expect(text.contains("  round trip to the far end: "), "\(text)")
            // 115200 baud carries 11,520 B/s; a loaded machine may deliver less, never more.
            let rate = Self.throughput(text)
            #expect(rate > 3_000 && rate < 11_600, "\(text)")
        }
    }

    @Test("a noisy line (bit error rate 1e-4 on the cable): the errors are counted")
    func noisyLine() throws {
        let (a, b) = try Self.bothEnds(cable: ["--ber", "0.0001", "--seed", "5"])
        for result in [a, b] {
            #expect(result.standardOutput.contains("  peer: heard"), "\(result.standardOutput)")
            #expect(!result.standardOutput.contains("  bit errors: 0 in "), "\(result.standardOutput)")
        }
    }
}
