import Foundation
@testable import SerialPort
import Testing

/// `SerialDeviceList` on a fixture tree that copies the real sysfs layout of three USB devices
/// (a CH340, an FTDI FT232R and a CDC-ACM board), a built-in UART, an empty UART slot and a
/// virtual console; and on this machine's real /sys.
@Suite("Serial device list")
struct SerialDeviceListTests {
    /// Builds the tree under a fresh temporary folder: sys/, dev/ and an empty proc/.
    final class Fixture {
        let root: String
        var sys: String { root + "/sys" }
        var dev: String { root + "/dev" }
        var proc: String { root + "/proc" }

        /// `twins`: also a CP2102 and a second FT232R, identical to the first but for its serial
        /// number, and latency_timer files (16 ms) on both FT232Rs.
        init(twins: Bool = false) throws {
            root = FileManager.default.temporaryDirectory.appendingPathComponent("sysfs-\(UUID().uuidString)").path
            // CH340 (usb-serial, ch341-uart): no manufacturer or serial number, as these chips ship.
            try usbSerial(name: "ttyUSB0", port: "1-2", driver: "ch341-uart",
                          attributes: ["idVendor": "1a86", "idProduct": "7523", "product": "USB Serial"], hub: hub)
            // FTDI FT232R (usb-serial, ftdi_sio).
            try usbSerial(name: "ttyUSB1", port: "1-3", driver: "ftdi_sio",
                          attributes: ["idVendor": "0403", "idProduct": "6001", "manufacturer": "FTDI",
                                       "product": "FT232R USB UART", "serial": "A9XYZ123"], hub: hub)
            // CDC-ACM (a board that speaks USB itself): the tty hangs off the interface directly.
            let acmDevice = "\(hub)/1-4"
            try files("\(sys)/\(acmDevice)", ["idVendor": "2e8a", "idProduct": "000a", "manufacturer": "Raspberry Pi",
                                                "product": "Pico", "serial": "E6605838833B4B2A"])
            try directory("\(sys)/\(acmDevice)/1-4:1.0/tty/ttyACM0")
            try directory("\(sys)/bus/usb/drivers/cdc_acm")
            try link("\(sys)/\(acmDevice)/1-4:1.0/driver", "../../../../../../bus/usb/drivers/cdc_acm")
            try link("\(sys)/\(acmDevice)/1-4:1.0/tty/ttyACM0/device", "../../../1-4:1.0")
            try classLink("ttyACM0", "../../\(acmDevice)/1-4:1.0/tty/ttyACM0")
            // A built-in 16550A (type 4) and an empty slot (type 0), behind the serial core's port device.
            for (index, type) in [(0, "4"), (1, "0")] {
                let port = "devices/pnp0/00:0\(index)/00:0\(index):0/00:0\(index):0.0"
                try files("\(sys)/\(port)/tty/ttyS\(index)", ["type": type])
                try directory("\(sys)/bus/pnp/drivers/serial")
                try link("\(sys)/devices/pnp0/00:0\(index)/driver", "../../../bus/pnp/drivers/serial")
                try directory("\(sys)/bus/serial-base/drivers/port")
                try link("\(sys)/\(port)/driver", "../../../../../bus/serial-base/drivers/port")
                try link("\(sys)/\(port)/tty/ttyS\(index)/device", "../../../00:0\(index):0.0")
                try classLink("ttyS\(index)", "../../\(port)/tty/ttyS\(index)")
            }
            // A virtual console: no device behind it.
            try directory("\(sys)/devices/virtual/tty/tty0")
            try classLink("tty0", "../../devices/virtual/tty/tty0")
            // udev's stable names, and two pseudo-terminals.
            try link("\(dev)/serial/by-id/usb-FTDI_FT232R_USB_UART_A9XYZ123-if00-port0", "../../ttyUSB1")
            try link("\(dev)/serial/by-path/pci-0000:00:14.0-usb-0:3:1.0-port0", "../../ttyUSB1")
            try link("\(dev)/serial/by-id/usb-Raspberry_Pi_Pico_E6605838833B4B2A-if00", "../../ttyACM0")
            try files("\(dev)/pts", ["3": "", "10": "", "ptmx": ""])
            try directory(proc)
            guard twins else { return }
            try usbSerial(name: "ttyUSB2", port: "1-5", driver: "cp210x",
                          attributes: ["idVendor": "10c4", "idProduct": "ea60", "manufacturer": "Silicon Labs",
                                       "product": "CP2102 USB to UART Bridge Controller", "serial": "0001"], hub: hub)
            try usbSerial(name: "ttyUSB3", port: "1-6", driver: "ftdi_sio",
                          attributes: ["idVendor": "0403", "idProduct": "6001", "manufacturer": "FTDI",
                                       "product": "FT232R USB UART", "serial": "B0TWIN42"], hub: hub)
            try link("\(dev)/serial/by-id/usb-FTDI_FT232R_USB_UART_B0TWIN42-if00-port0", "../../ttyUSB3")
            for (name, port) in [("ttyUSB1", "1-3"), ("ttyUSB3", "1-6")] {
                try files("\(sys)/\(hub)/\(port)/\(port):1.0/\(name)", ["latency_timer": "16"])
            }
            try files(dev, ["ttyUSB0": "", "ttyUSB1": "", "ttyUSB2": "", "ttyUSB3": "", "ttyACM0": ""])
        }

        var hub: String { "devices/pci0000:00/0000:00:14.0/usb1" }

        deinit { try? FileManager.default.removeItem(atPath: root) }

        private func usbSerial(name: String, port: String, driver: String, attributes: [String: String], hub: String) throws {
            let usb = "\(hub)/\(port)"
            let interface = "\(usb)/\(port):1.0"
            try files("\(sys)/\(usb)", attributes)
            try directory("\(sys)/\(interface)/\(name)/tty/\(name)")
            try directory("\(sys)/bus/usb-serial/drivers/\(driver)")
            try link("\(sys)/\(interface)/\(name)/driver", "../../../../../../../bus/usb-serial/drivers/\(driver)")
            try link("\(sys)/\(interface)/\(name)/tty/\(name)/device", "../../../\(name)")
            try classLink(name, "../../\(interface)/\(name)/tty/\(name)")
        }

        private func classLink(_ name: String, _ target: String) throws { try link("\(sys)/class/tty/\(name)", target) }

        private func directory(_ path: String) throws {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }

        private func files(_ folder: String, _ contents: [String: String]) throws {
            try directory(folder)
            for (name, text) in contents {
                try (text.isEmpty ? "" : text + "\n").write(toFile: "\(folder)/\(name)", atomically: false, encoding: .utf8)
            }
        }

        private func link(_ path: String, _ target: String) throws {
            try directory((path as NSString).deletingLastPathComponent)
            try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
        }
    }

    @Test("USB adapters with their IDs, names and stable paths; a built-in UART; ptys; no empty slots or consoles")
    func fixtureTree() throws {
        let fixture = try Fixture()
        let devices = SerialDeviceList.list(sysRoot: fixture.sys, devRoot: fixture.dev, procRoot: fixture.proc)
        #expect(devices.map(\.path) == ["ttyACM0", "ttyS0", "ttyUSB0", "ttyUSB1"].map { fixture.dev + "/" + $0 }
            + [fixture.dev + "/pts/3", fixture.dev + "/pts/10"])
        let byName = Dictionary(uniqueKeysWithValues: devices.map { (($0.path as NSString).lastPathComponent, $0) })

        let ch340 = try #require(byName["ttyUSB0"])
        #expect(ch340.kind == .usbSerial && ch340.driver == "ch341-uart")
        #expect(ch340.vendorID == "1a86" && ch340.productID == "7523" && ch340.product == "USB Serial")
        #expect(ch340.manufacturer == nil && ch340.serialNumber == nil && ch340.byID.isEmpty)

        let ftdi = try #require(byName["ttyUSB1"])
        #expect(ftdi.kind == .usbSerial && ftdi.driver == "ftdi_sio")
        #expect(ftdi.vendorID == "0403" && ftdi.productID == "6001" && ftdi.serialNumber == "A9XYZ123")
        #expect(ftdi.manufacturer == "FTDI" && ftdi.product == "FT232R USB UART")
        #expect(ftdi.byID == [fixture.dev + "/serial/by-id/usb-FTDI_FT232R_USB_UART_A9XYZ123-if00-port0"])
        #expect(ftdi.byPath == [fixture.dev + "/serial/by-path/pci-0000:00:14.0-usb-0:3:1.0-port0"])
        #expect(ftdi.summary.contains("0403:6001  FTDI FT232R USB UART  serial A9XYZ123  (ftdi_sio)"))

        let acm = try #require(byName["ttyACM0"])
        #expect(acm.kind == .usbACM && acm.driver == "cdc_acm" && acm.vendorID == "2e8a" && acm.product == "Pico")
        #expect(acm.byID.count == 1)

        let uart = try #require(byName["ttyS0"])
        #expect(uart.kind == .builtIn && uart.driver == "serial" && uart.vendorID == nil)
        #expect(byName["3"]?.kind == .pseudoTerminal)
    }

    @Test("this machine's /sys: UART slots listed exactly when a chip is there; every device listed exists and has a device behind it")
    func realSystem() {
        let devices = SerialDeviceList.list()
        let listed = Set(devices.map { ($0.path as NSString).lastPathComponent })
        // Built-in UART slots: listed exactly when the driver found a chip behind them.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: "/sys/class/tty")) ?? [] where name.hasPrefix("ttyS") {
            guard let type = SerialDeviceList.read("/sys/class/tty/\(name)/type") else { continue }
            #expect(listed.contains(name) == (type != "0"), "\(name) type \(type)")
        }
        for device in devices {
            #expect(FileManager.default.fileExists(atPath: device.path), "\(device.path)")
            if device.kind != .pseudoTerminal && device.kind != .virtualCable {
                let name = (device.path as NSString).lastPathComponent
                #expect(SerialDeviceList.resolved("/sys/class/tty/\(name)/device") != nil, "\(name)")
            }
        }
    }
}
