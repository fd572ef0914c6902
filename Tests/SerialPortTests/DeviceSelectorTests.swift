import Foundation
@testable import SerialPort
import Testing

/// `-com` by what the device is: selectors parsed, matched against fixture sysfs trees (a CH340,
/// two identical FT232Rs told apart by serial number, a CP2102, a CDC-ACM board), and the
/// selector `socket2ser ports` shows for each; and the FTDI latency_timer check.
@Suite("Device selectors")
struct DeviceSelectorTests {
    typealias Fixture = SerialDeviceListTests.Fixture

    static func devices(_ fixture: Fixture) -> [SerialDeviceInfo] {
        SerialDeviceList.list(sysRoot: fixture.sys, devRoot: fixture.dev, procRoot: fixture.proc)
    }

    @Test("parsing: paths, usb:VID:PID[:SERIAL], serial=, and one clear line for a malformed one")
    func parsing() throws {
        #expect(try DeviceSelector(parsing: "/dev/ttyUSB0") == .path("/dev/ttyUSB0"))
        #expect(try DeviceSelector(parsing: "usb:1A86:7523") == .usb(vendorID: "1a86", productID: "7523", serialNumber: nil))
        #expect(try DeviceSelector(parsing: "usb:0403:6001:A9XYZ123")
            == .usb(vendorID: "0403", productID: "6001", serialNumber: "A9XYZ123"))
        #expect(try DeviceSelector(parsing: "serial=A9XYZ123") == .serialNumber("A9XYZ123"))
        for bad in ["usb:403:6001", "usb:0403", "usb:04g3:6001", "usb:0403:6001:", "serial="] {
            #expect(throws: DeviceSelector.Failure.self, "\(bad)") { _ = try DeviceSelector(parsing: bad) }
        }
    }

    @Test("each adapter is found by its selector, whatever its name")
    func resolving() throws {
        let fixture = try Fixture(twins: true)
        let devices = Self.devices(fixture)
        let cases: [(String, String)] = [
            ("usb:1a86:7523", "ttyUSB0"),                      // CH340: no serial number; unique IDs
            ("usb:0403:6001:A9XYZ123", "ttyUSB1"),             // the first FT232R
            ("serial=B0TWIN42", "ttyUSB3"),                    // its twin
            ("usb:10c4:ea60", "ttyUSB2"),                      // CP2102
            ("usb:2e8a:000a", "ttyACM0"),                      // CDC-ACM
            (fixture.dev + "/serial/by-id/usb-FTDI_FT232R_USB_UART_B0TWIN42-if00-port0",
             fixture.dev + "/serial/by-id/usb-FTDI_FT232R_USB_UART_B0TWIN42-if00-port0"),  // a path is used as given
        ]
        for (text, expected) in cases {
            let path = try DeviceSelector(parsing: text).resolve(in: devices)
            #expect(path == (expected.hasPrefix("/") ? expected : fixture.dev + "/" + expected), "\(text)")
        }
    }

    @Test("two identical adapters: the bare IDs are ambiguous, and the error lists both with their selectors")
    func ambiguous() throws {
        let fixture = try Fixture(twins: true)
        #expect {
            _ = try DeviceSelector(parsing: "usb:0403:6001").resolve(in: Self.devices(fixture))
        } throws: { error in
            "\(error)" == "it matches 2 devices: \(fixture.dev)/ttyUSB1 (usb:0403:6001:A9XYZ123), "
                + "\(fixture.dev)/ttyUSB3 (usb:0403:6001:B0TWIN42); give one of those selectors"
        }
        #expect {
            _ = try DeviceSelector(parsing: "serial=NOPE").resolve(in: Self.devices(fixture))
        } throws: { error in
            "\(error)".hasPrefix("no device matches it; connected: ") && "\(error)".contains("\(fixture.dev)/ttyUSB0 (usb:1a86:7523)")
        }
    }

    @Test("socket2ser ports shows the shortest selector that picks each device alone")
    func portsSelectors() throws {
        let fixture = try Fixture(twins: true)
        let selectors = Dictionary(uniqueKeysWithValues: Self.devices(fixture).map {
            (($0.path as NSString).lastPathComponent, $0.selector ?? "")
        })
        #expect(selectors["ttyUSB0"] == "usb:1a86:7523")
        #expect(selectors["ttyUSB1"] == "usb:0403:6001:A9XYZ123")
        #expect(selectors["ttyUSB3"] == "usb:0403:6001:B0TWIN42")
        #expect(selectors["ttyUSB2"] == "usb:10c4:ea60")
        #expect(selectors["ttyS0"] == fixture.dev + "/ttyS0")
        let ftdi = try #require(Self.devices(fixture).first { $0.path.hasSuffix("ttyUSB1") })
        #expect(ftdi.summary.contains("\n    -com usb:0403:6001:A9XYZ123"))
        // Without the twin, the FT232R's IDs alone pick it.
        let single = try Fixture()
        #expect(Self.devices(single).first { $0.path.hasSuffix("ttyUSB1") }?.selector == "usb:0403:6001")
    }

    @Test("FTDI latency_timer above 1 ms is set to 1 where permitted, and otherwise a warning gives the fix")
    func latencyTimer() throws {
        let fixture = try Fixture(twins: true)
        let file = "\(fixture.sys)/class/tty/ttyUSB1/device/latency_timer"
        let set = try #require(AdapterQuirks.checkLatencyTimer(device: fixture.dev + "/ttyUSB1", sysRoot: fixture.sys))
        #expect(!set.needsAction && set.message.contains("was 16 ms") && set.message.hasSuffix("set to 1 ms"))
        #expect(try String(contentsOfFile: file, encoding: .utf8).hasPrefix("1"))
        #expect(AdapterQuirks.checkLatencyTimer(device: fixture.dev + "/ttyUSB1", sysRoot: fixture.sys) == nil)
        // Not writable, as for a user without the permission: the fix instead. Root writes any
        // file, so the timer is pointed at a number the kernel lets nobody write.
        let other = "\(fixture.sys)/class/tty/ttyUSB3/device/latency_timer"
        let readOnly = "/proc/sys/kernel/ngroups_max"
        if FileManager.default.isReadableFile(atPath: readOnly) {
            try FileManager.default.removeItem(atPath: other)
            try FileManager.default.createSymbolicLink(atPath: other, withDestinationPath: readOnly)
            let warned = try #require(AdapterQuirks.checkLatencyTimer(device: fixture.dev + "/ttyUSB3", sysRoot: fixture.sys))
            #expect(warned.needsAction && warned.message.contains("so each small read waits up to"))
            #expect(warned.message.contains("echo 1 > \(other)"))
        }
        // A CH340 has no such timer; a pty is no adapter.
        #expect(AdapterQuirks.checkLatencyTimer(device: fixture.dev + "/ttyUSB0", sysRoot: fixture.sys) == nil)
    }
}
