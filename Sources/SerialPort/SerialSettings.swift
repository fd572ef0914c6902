/// Line settings of a UART: rate, character format and flow control.
public struct SerialSettings: Sendable, Equatable, CustomStringConvertible {
    public enum Parity: Sendable, Equatable { case none, even, odd }
    public enum FlowControl: Sendable, Equatable { case none, rtsCts }

    public var baudRate: Int
    /// 5 to 8.
    public var dataBits: Int
    public var parity: Parity
    /// 1 or 2.
    public var stopBits: Int
    public var flowControl: FlowControl

    public init(baudRate: Int = 115_200, dataBits: Int = 8, parity: Parity = .none, stopBits: Int = 1,
                flowControl: FlowControl = .none) {
        self.baudRate = baudRate
        self.dataBits = dataBits
        self.parity = parity
        self.stopBits = stopBits
        self.flowControl = flowControl
    }
}

extension SerialSettings {
    /// Bits on the wire per character: start bit, data bits, parity bit, stop bits.
    public var bitsPerCharacter: Int { 1 + dataBits + (parity == .none ? 0 : 1) + stopBits }

    /// Payload bytes per second the line can carry (11,520 at 115200 8N1).
    public var bytesPerSecond: Int { baudRate / bitsPerCharacter }

    public var description: String {
        let p: String
        switch parity {
        case .none: p = "N"
        case .even: p = "E"
        case .odd: p = "O"
        }
        return "\(baudRate),\(dataBits)\(p)\(stopBits)" + (flowControl == .rtsCts ? " rtscts" : "")
    }
}
