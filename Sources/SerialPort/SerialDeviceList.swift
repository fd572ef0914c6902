#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// One serial device as the system describes it: what `socket2ser ports` lists, and what a port
/// picker offers.
public struct SerialDeviceInfo: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable {
        /// A USB serial adapter (usb-serial drivers such as ftdi_sio, ch341-uart, cp210x).
        case usbSerial = "usb-serial"
        /// A USB CDC-ACM device (cdc_acm): boards that speak USB themselves.
        case usbACM = "usb-acm"
        /// A UART on the machine itself (serial8250 and the like).
        case builtIn = "built-in"
        /// A pseudo-terminal.
        case pseudoTerminal = "pty"
        /// One end of a `socket2ser cable` (a pseudo-terminal whose other side the cable holds).
        case virtualCable = "virtual-cable"
    }

    /// The device node, e.g. /dev/ttyUSB0.
    public var path: String
    public var kind: Kind
    public var driver: String?
    /// USB vendor and product IDs, lower-case hex, e.g. "0403" and "6001".
    public var vendorID: String?
    public var productID: String?
    public var manufacturer: String?
    public var product: String?
    public var serialNumber: String?
    /// Stable names of the device under /dev/serial/by-id and /dev/serial/by-path.
    public var byID: [String] = []
    public var byPath: [String] = []
    /// For a virtual cable's end: the cable's process ID.
    public var cableProcess: Int32?
    /// What to give `-com` to pick this device alone, wherever it is plugged in
    /// (`DeviceSelector.preferred`).
    public var selector: String?

    public init(path: String, kind: Kind) {
        self.path = path
        self.kind = kind
    }

    /// One line for people: path, what it is, and its stable name if it has one.
    public var summary: String {
        var parts = [path, kind.rawValue]
        if let vendorID, let productID { parts.append("\(vendorID):\(productID)") }
        let name = [manufacturer, product].compactMap { $0 }.joined(separator: " ")
        if !name.isEmpty { parts.append(name) }
        if let serialNumber { parts.append("serial \(serialNumber)") }
        if let driver { parts.append("(\(driver))") }
        if let cableProcess { parts.append("(socket2ser cable, pid \(cableProcess))") }
        var text = parts.joined(separator: "  ")
        if let selector, selector != path { text += "\n    -com \(selector)" }
        if let id = byID.first, id != selector { text += "\n    \(id)" }
        if let physical = byPath.first { text += "\n    \(physical)" }
        return text
    }
}

/// Lists serial devices from sysfs (`/sys/class/tty`), the stable names udev made for them
/// (`/dev/serial/by-id`, `/dev/serial/by-path`), and the pseudo-terminals in /dev/pts, telling
/// the ends of a running `socket2ser cable` apart. Every root is a parameter, so tests run it on a
/// fixture tree that copies the real layout.
public enum SerialDeviceList {
    public static func list(sysRoot: String = "/sys", devRoot: String = "/dev", procRoot: String = "/proc") -> [SerialDeviceInfo] {
        let manager = FileManager.default
        var devices: [SerialDeviceInfo] = []
        let classDirectory = sysRoot + "/class/tty"
        let names = ((try? manager.contentsOfDirectory(atPath: classDirectory)) ?? []).sorted(by: naturalOrder)
        for name in names {
            let entry = classDirectory + "/" + name
            let deviceLink = entry + "/device"
            // Virtual consoles, ptmx and the like have no device behind them.
            guard let device = resolved(deviceLink) else { continue }
            let driver = driverName(from: device)
            var info = SerialDeviceInfo(path: devRoot + "/" + name, kind: .builtIn)
            info.driver = driver
            if let usb = usbDevice(above: device) {
                info.kind = driver == "cdc_acm" ? .usbACM : .usbSerial
                info.vendorID = read(usb + "/idVendor")
                info.productID = read(usb + "/idProduct")
                info.manufacturer = read(usb + "/manufacturer")
                info.product = read(usb + "/product")
                info.serialNumber = read(usb + "/serial")
            } else {
                // A built-in UART slot the driver found no chip behind reports type 0 (unknown).
                if let type = read(entry + "/type"), type == "0" { continue }
            }
            devices.append(info)
        }
        addStableNames(to: &devices, devRoot: devRoot)
        devices += pseudoTerminals(devRoot: devRoot, procRoot: procRoot)
        let all = devices
        for index in devices.indices {
            devices[index].selector = DeviceSelector.preferred(for: devices[index], among: all)
        }
        return devices
    }

    // MARK: sysfs

    /// Where a symlink finally leads, as an absolute path with every link on the way resolved
    /// (sysfs links are relative to the real directory, not to the path they were reached by);
    /// nil if it is no link or dangles.
    static func resolved(_ link: String) -> String? {
        guard (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) != nil,
              let real = realpath(link, nil) else { return nil }
        defer { free(real) }
        return String(cString: real)
    }

    /// The driver of `device`, or of the nearest parent when it is the serial core's own
    /// port/ctrl device (newer kernels put one between a UART and its driver).
    static func driverName(from device: String) -> String? {
        var current = device
        while current.count > 1 {
            if let driver = resolved(current + "/driver").map({ ($0 as NSString).lastPathComponent }),
               driver != "port", driver != "ctrl" {
                return driver
            }
            current = (current as NSString).deletingLastPathComponent
        }
        return nil
    }

    /// The USB device directory (the one with idVendor) at or above `path`, if any.
    static func usbDevice(above path: String) -> String? {
        var current = path
        while current.count > 1 {
            if FileManager.default.fileExists(atPath: current + "/idVendor") { return current }
            current = (current as NSString).deletingLastPathComponent
        }
        return nil
    }

    static func read(_ path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    // MARK: /dev

    static func addStableNames(to devices: inout [SerialDeviceInfo], devRoot: String) {
        for (folder, keyPath) in [("by-id", \SerialDeviceInfo.byID), ("by-path", \SerialDeviceInfo.byPath)] {
            let directory = devRoot + "/serial/" + folder
            for name in ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted() {
                let link = directory + "/" + name
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link) else { continue }
                let node = devRoot + "/" + (target as NSString).lastPathComponent
                if let index = devices.firstIndex(where: { $0.path == node }) { devices[index][keyPath: keyPath].append(link) }
            }
        }
    }

    /// /dev/pts/N, with the ends of a running `socket2ser cable` marked as such.
    static func pseudoTerminals(devRoot: String, procRoot: String) -> [SerialDeviceInfo] {
        let directory = devRoot + "/pts"
        let numbers = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).compactMap(Int.init).sorted()
        guard !numbers.isEmpty else { return [] }
        let cables = cableEnds(procRoot: procRoot)
        return numbers.map { number in
            var info = SerialDeviceInfo(path: "\(directory)/\(number)", kind: .pseudoTerminal)
            if let pid = cables[number] {
                info.kind = .virtualCable
                info.cableProcess = pid
            }
            return info
        }
    }

    /// Pty numbers whose master a `socket2ser cable` (or `demo`) process holds, from
    /// /proc/PID/fdinfo's `tty-index` of its /dev/ptmx descriptors.
    static func cableEnds(procRoot: String) -> [Int: Int32] {
        var ends: [Int: Int32] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: procRoot)) ?? [] {
            guard let pid = Int32(entry),
                  let command = try? Data(contentsOf: URL(fileURLWithPath: "\(procRoot)/\(entry)/cmdline")) else { continue }
            let arguments = command.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard arguments.count >= 2, (arguments[0] as NSString).lastPathComponent == "socket2ser",
                  arguments[1] == "cable" || arguments[1] == "demo" else { continue }
            let fdDirectory = "\(procRoot)/\(entry)/fd"
            for fd in (try? FileManager.default.contentsOfDirectory(atPath: fdDirectory)) ?? [] {
                guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: fdDirectory + "/" + fd),
                      target.hasSuffix("ptmx"),
                      let info = read("\(procRoot)/\(entry)/fdinfo/\(fd)"),
                      let line = info.split(separator: "\n").first(where: { $0.hasPrefix("tty-index:") }),
                      let index = Int(line.dropFirst("tty-index:".count).trimmingCharacters(in: .whitespaces))
                else { continue }
                ends[index] = pid
            }
        }
        return ends
    }

    /// ttyS2 before ttyS10, ttyUSB0 after ttyS*: names compared with their numbers as numbers.
    static func naturalOrder(_ a: String, _ b: String) -> Bool {
        a.compare(b, options: .numeric) == .orderedAscending
    }
}
