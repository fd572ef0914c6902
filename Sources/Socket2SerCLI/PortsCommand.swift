import ArgumentParser
import Foundation
import SerialPort

/// `socket2ser ports`: the serial devices of this machine, by what they are.
struct PortsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ports",
        abstract: "List serial devices: USB adapters with vendor, product and serial number, built-in UARTs, pseudo-terminals.",
        discussion: """
            Read from /sys/class/tty, /dev/serial/by-id and /dev/serial/by-path. Pseudo-terminals \
            are listed too, and the ends of a running 'socket2ser cable' are marked as such. \
            Prefer a by-id name for -com: it stays the same when the adapter is plugged in \
            elsewhere.
            """)

    @Flag(help: "Print JSON (an array of objects), for scripts.")
    var json = false

    @Option(name: .customLong("sys-root"), help: ArgumentHelp("Read sysfs from here instead of /sys (for tests).",
                                                              visibility: .hidden))
    var sysRoot = "/sys"

    @Option(name: .customLong("dev-root"), help: ArgumentHelp("Read devices from here instead of /dev (for tests).",
                                                              visibility: .hidden))
    var devRoot = "/dev"

    func run() throws {
        let devices = SerialDeviceList.list(sysRoot: sysRoot, devRoot: devRoot)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(devices)
            print(String(decoding: data, as: UTF8.self))
            return
        }
        if devices.isEmpty {
            print("no serial devices found (looked in \(sysRoot)/class/tty and \(devRoot)/pts)")
            return
        }
        for device in devices { print(device.summary) }
    }
}
