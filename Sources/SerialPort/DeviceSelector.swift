/// What `-com` names: a path (including a `/dev/serial/by-id/...` name, which udev moves with
/// the device), or a device by what it is: `usb:VID:PID`, `usb:VID:PID:SERIAL` or `serial=SERIAL`.
/// A selector is resolved to a path each time the device is opened, so a device that comes back
/// under another name (ttyUSB0 as ttyUSB1) is found again.
public enum DeviceSelector: Sendable, Equatable, CustomStringConvertible {
    case path(String)
    /// USB vendor and product IDs (lower-case hex, 4 digits), and the serial number if given.
    case usb(vendorID: String, productID: String, serialNumber: String?)
    case serialNumber(String)

    public struct Failure: Error, Equatable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Parses what the user typed; a text that is neither `usb:` nor `serial=` is a path.
    public init(parsing text: String) throws(Failure) {
        if text.hasPrefix("usb:") {
            let parts = text.dropFirst(4).split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
            func hex(_ part: String) -> String? {
                part.count == 4 && part.allSatisfy(\.isHexDigit) ? part.lowercased() : nil
            }
            guard parts.count >= 2, let vendor = hex(parts[0]), let product = hex(parts[1]) else {
                throw Failure("a USB selector is usb:VID:PID or usb:VID:PID:SERIAL, with 4 hex digits each, e.g. usb:0403:6001")
            }
            let serial = parts.count == 3 ? parts[2] : nil
            if serial?.isEmpty == true { throw Failure("the serial number after usb:\(vendor):\(product): is empty") }
            self = .usb(vendorID: vendor, productID: product, serialNumber: serial)
        } else if text.hasPrefix("serial=") {
            let serial = String(text.dropFirst("serial=".count))
            guard !serial.isEmpty else { throw Failure("serial= needs the adapter's serial number, e.g. serial=A9XYZ123") }
            self = .serialNumber(serial)
        } else {
            self = .path(text)
        }
    }

    public var description: String {
        switch self {
        case .path(let path): path
        case .usb(let vendor, let product, let serial?): "usb:\(vendor):\(product):\(serial)"
        case .usb(let vendor, let product, nil): "usb:\(vendor):\(product)"
        case .serialNumber(let serial): "serial=\(serial)"
        }
    }

    /// Whether `device` is one this selector picks.
    public func matches(_ device: SerialDeviceInfo) -> Bool {
        switch self {
        case .path(let path):
            return device.path == path || device.byID.contains(path) || device.byPath.contains(path)
        case .usb(let vendor, let product, let serial):
            return device.vendorID == vendor && device.productID == product
                && (serial == nil || device.serialNumber == serial)
        case .serialNumber(let serial):
            return device.serialNumber == serial
        }
    }

    /// The path to open now (a failure's text follows "SELECTOR: "). A path is used as it is (whether or not it is listed: a pty, a
    /// device sysfs does not know); a selector must match exactly one of `devices`.
    public func resolve(in devices: [SerialDeviceInfo]) throws(Failure) -> String {
        if case .path(let path) = self { return path }
        let matching = devices.filter(matches)
        guard let first = matching.first else {
            let usb = devices.filter { $0.vendorID != nil }
            let present = usb.isEmpty ? "no USB serial device is connected"
                : "connected: " + usb.map { "\($0.path) (\(Self.preferred(for: $0, among: devices)))" }.joined(separator: ", ")
            throw Failure("no device matches it; \(present)")
        }
        guard matching.count == 1 else {
            let candidates = matching.map { device in
                "\(device.path) (\(Self.preferred(for: device, among: devices)))"
            }.joined(separator: ", ")
            throw Failure("it matches \(matching.count) devices: \(candidates); give one of those selectors")
        }
        return first.path
    }

    /// The shortest selector that picks `device` alone among `devices`: `usb:VID:PID` when no
    /// other device has those IDs, with the serial number when one does, else its by-id or
    /// by-path name, else its path (a built-in UART or a pty, which do not move).
    public static func preferred(for device: SerialDeviceInfo, among devices: [SerialDeviceInfo]) -> String {
        if let vendor = device.vendorID, let product = device.productID {
            let short = DeviceSelector.usb(vendorID: vendor, productID: product, serialNumber: nil)
            if devices.filter(short.matches).count == 1 { return short.description }
            if let serial = device.serialNumber {
                let long = DeviceSelector.usb(vendorID: vendor, productID: product, serialNumber: serial)
                if devices.filter(long.matches).count == 1 { return long.description }
            }
        }
        return device.byID.first ?? device.byPath.first ?? device.path
    }
}
