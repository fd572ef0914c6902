import ArgumentParser
import Foundation
import SerialPort

/// `socket2ser check -com DEVICE`: what a real cable does, before trusting it with a link.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a serial device: the settings its driver applied, who holds it, and with a loopback plug what the line carries.",
        discussion: """
            Opens the device as socket2ser would and shows the settings the driver really applied \
            (a USB CDC-ACM device ignores the baud rate; a radio carries less than its serial \
            rate). With a loopback plug (TX joined to RX) it measures throughput, bit errors and \
            round trip:
              socket2ser check -com /dev/ttyUSB0 --baud 115200
            """)

    @OptionGroup var device: DeviceOptions

    @Option(name: .customLong("seconds"),
            help: ArgumentHelp("How long to send through a loopback (default 3).", valueName: "seconds"),
            transform: CheckCommand.seconds)
    var seconds: Double = 3

    @Flag(help: "Measure against the far end instead of a loopback: run 'socket2ser check --peer' on both ends at once.")
    var peer = false

    static func seconds(_ text: String) throws -> Double {
        guard let value = Double(text), value > 0, value <= 600 else {
            throw CommandLineError("give the seconds to measure, more than 0 and at most 600")
        }
        return value
    }

    func run() throws {
        let com = device.com
        var settings = device.serial?.settings ?? SerialSettings()
        if let rate = device.baudRate { settings.baudRate = rate }
        let port: SerialPort
        do {
            port = try SerialPort.open(device: com, settings: settings)
        } catch SerialPortError.busy(let path) {
            let holders = LineCheck.holders(of: path)
            let who = holders.isEmpty ? "another process (not visible to this user)" : holders.joined(separator: ", ")
            throw CommandLineError("\(path): device is in use by \(who)")
        }
        let path = port.path
        let device = SerialDeviceList.list().first { $0.path == path || $0.byID.contains(path) }
        var lines = ["\(com == path ? path : "\(com) is \(path)"): opened; no other process holds it"]
        if let device { lines.append("  device: \(device.summary.split(separator: "\n").first ?? "")") }
        let fd = port.takeFileDescriptor()
        defer { close(fd) }
        if peer {
            print(lines.joined(separator: "\n"))
            print(Self.describe(LineCheck.runWithPeer(fd: fd, seconds: seconds, lineBytesPerSecond: settings.bytesPerSecond), settings: settings, path: path))
            return
        }
        let report = LineCheck.run(fd: fd, seconds: seconds)
        if let applied = report.applied {
            var note = ""
            if applied != settings { note = " (asked for \(settings))" }
            lines.append("  driver applied: \(applied)\(note)")
        }
        if device?.driver == "cdc_acm" {
            lines.append("  note: a USB CDC-ACM device ignores the baud rate; what it carries is measured below")
        }
        if device?.kind == .pseudoTerminal || device?.kind == .virtualCable || (device == nil && path.hasPrefix("/dev/pts/")) {
            lines.append("  note: a pseudo-terminal has no baud rate; the line runs as fast as the processes at its ends")
        }
        guard report.loopback else {
            lines.append("""
                  loopback: none (nothing sent came back within 1 s); join TX to RX (pins 2 and 3 of a DB9) \
                to measure the line
                """)
            print(lines.joined(separator: "\n"))
            return
        }
        lines.append("  loopback: yes (what was sent came back)")
        let rate = report.bytesPerSecond
        let line = settings.bytesPerSecond
        let share = path.hasPrefix("/dev/pts/") ? "" : String(format: " (%.3f of %d B/s, the line rate of %@)", rate / Double(line), line, "\(settings)")
        lines.append(String(format: "  throughput: %.0f B/s%@", rate, share))
        let ber = report.bitsCompared > 0 ? Double(report.bitErrors) / Double(report.bitsCompared) : 0
        let bound = report.bitErrors == 0 && report.bitsCompared > 0
            ? String(format: " (bit error rate below %.1e)", 3.0 / Double(report.bitsCompared))
            : String(format: " (bit error rate %.1e)", ber)
        lines.append("  bit errors: \(report.bitErrors) in \(report.bitsCompared) bits\(bound)"
                     + (report.bytesLost > 0 ? "; \(report.bytesLost) bytes did not come back" : ""))
        if let median = report.medianRoundTrip, let low = report.roundTrips.first, let high = report.roundTrips.last {
            lines.append(String(format: "  round trip of 16 bytes: %.2f ms median (%d probes, %.2f-%.2f ms)",
                                median * 1000, report.roundTrips.count, low * 1000, high * 1000))
        }
        print(lines.joined(separator: "\n"))
    }

    /// What `--peer` measured, for people.
    static func describe(_ report: LineCheck.PeerReport, settings: SerialSettings, path: String) -> String {
        var lines: [String] = []
        if let applied = report.applied { lines.append("  driver applied: \(applied)") }
        guard report.peerHeard else {
            lines.append("  peer: none heard within 10 s; run 'socket2ser check --peer' on the far end's device at the same time")
            return lines.joined(separator: "\n")
        }
        lines.append("  peer: heard (the far end runs check --peer)")
        let rate = report.bytesPerSecond
        let share = path.hasPrefix("/dev/pts/") || settings.bytesPerSecond == 0 ? ""
            : String(format: " (%.3f of %d B/s, the line rate of %@)", rate / Double(settings.bytesPerSecond), settings.bytesPerSecond, "\(settings)")
        lines.append(String(format: "  throughput from the far end: %.0f B/s%@", rate, share))
        let bound = report.bitErrors == 0 && report.bitsCompared > 0
            ? String(format: " (bit error rate below %.1e)", 3.0 / Double(report.bitsCompared))
            : String(format: " (bit error rate %.1e)", report.bitsCompared > 0 ? Double(report.bitErrors) / Double(report.bitsCompared) : 0)
        lines.append("  bit errors: \(report.bitErrors) in \(report.bitsCompared) bits\(bound)"
                     + (report.blocksLost > 0 ? "; \(report.blocksLost) blocks of 64 bytes lost" : ""))
        if let median = report.medianRoundTrip, let low = report.roundTrips.first, let high = report.roundTrips.last {
            lines.append(String(format: "  round trip to the far end: %.1f ms median (%d probes, %.1f-%.1f ms)",
                                median * 1000, report.roundTrips.count, low * 1000, high * 1000))
        }
        return lines.joined(separator: "\n")
    }
}
