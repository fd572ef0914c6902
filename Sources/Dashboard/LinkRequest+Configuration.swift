import Foundation
import Forwarding
import SerialPort

extension LinkRequest {
    /// The end the page asks for, read with the command line's own rules (`--serial`, `-port`,
    /// `-ip`, `-L`/`-R`/`-D`); a mistake is a 400 with the command line's message.
    public func configuration() throws(DashboardError) -> ForwarderConfiguration {
        let device = device.trimmingCharacters(in: .whitespaces)
        guard !device.isEmpty else { throw .badRequest("choose a serial device") }
        guard device.hasPrefix("/") else { throw .badRequest("\(device): a device is a path such as /dev/ttyUSB0") }

        var spec = "\(baud ?? 115_200),\(format ?? "8N1")"
        switch flow ?? "none" {
        case "none": break
        case "rtscts": spec += ",rtscts"
        case let other: throw .badRequest("flow control is none or rtscts, not \"\(other)\"")
        }
        let serial: SerialSettings
        do { serial = try SerialSettings.parse(spec) } catch { throw .badRequest(error.description) }

        var forwards: [Forward] = []
        for forward in self.forwards ?? [] {
            forwards.append(try Self.forward(kind: forward.kind, spec: forward.spec))
        }

        var configuration: ForwarderConfiguration
        switch role {
        case "S":
            var defaultTarget: Endpoint?
            if let target = target?.trimmingCharacters(in: .whitespaces), !target.isEmpty {
                guard let endpoint = Endpoint(parsing: target), endpoint.port > 0 else {
                    throw .badRequest("the target is host:port, e.g. 127.0.0.1:22, not \"\(target)\"")
                }
                defaultTarget = endpoint
            }
            configuration = ForwarderConfiguration(form: .server, forwards: forwards, defaultTarget: defaultTarget,
                                                   devicePath: device, serial: serial)
        case "C":
            if let listen = listen?.trimmingCharacters(in: .whitespaces), !listen.isEmpty {
                forwards.insert(.local(listen: try Self.listenEndpoint(listen), target: nil), at: 0)
            }
            guard !forwards.isEmpty else {
                throw .badRequest("C needs a port to listen on (or a forward)")
            }
            configuration = ForwarderConfiguration(form: .client, forwards: forwards, devicePath: device, serial: serial)
        default:
            throw .badRequest("the role is S or C, not \"\(role)\"")
        }
        return configuration
    }

    /// `-L`, `-R` or `-D` with what follows it, as on the command line.
    public static func forward(kind: String, spec: String) throws(DashboardError) -> Forward {
        let spec = spec.trimmingCharacters(in: .whitespaces)
        do {
            switch kind.uppercased() {
            case "L": return try ForwardSpec.local(spec)
            case "R": return try ForwardSpec.remote(spec)
            case "D": return try ForwardSpec.dynamic(spec)
            default: throw DashboardError.badRequest("a forward is L, R or D, not \"\(kind)\"")
            }
        } catch let error as ForwardSpecError {
            throw .badRequest(error.description)
        } catch let error as DashboardError {
            throw error
        } catch {
            throw .badRequest("\(error)")
        }
    }

    /// C's `[ADDR:]PORT`: loopback unless an address is given.
    static func listenEndpoint(_ text: String) throws(DashboardError) -> Endpoint {
        let expected = "the port to listen on is [address:]port, e.g. 5000 or 0.0.0.0:5000, not \"\(text)\""
        if let port = Int(text) {
            guard (1...65_535).contains(port) else { throw .badRequest(expected) }
            return Endpoint(host: ForwardSpec.defaultBind, port: port)
        }
        guard let endpoint = Endpoint(parsing: text), (1...65_535).contains(endpoint.port) else { throw .badRequest(expected) }
        return endpoint
    }
}
