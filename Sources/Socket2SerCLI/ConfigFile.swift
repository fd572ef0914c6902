#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Forwarding
import Foundation
import SerialPort
import Yams

/// A problem in a config file, located: `socket2ser.yaml:12: line 'board1': unknown key 'bauds'
/// (did you mean 'baud'?)`. Always one line.
struct ConfigError: Error, Equatable, CustomStringConvertible {
    let path: String
    let line: Int?
    let message: String

    var description: String { line.map { "\(path):\($0): \(message)" } ?? "\(path): \(message)" }
}

/// `socket2ser run --config FILE`: one process serving several serial lines, each with its own
/// serial settings, forwards and rules (docs/config.md).
///
/// Every command-line option has a key of the same name without its dashes (`-baudrate` is
/// `baudrate`, `--link-wait` is `link-wait`, `-L` is `local`, `-R` is `remote`, `-D` is
/// `dynamic`). Each value goes through the same check as on the command line, and any mistake is
/// reported with the file, the line and what is wrong.
struct ConfigFile: Equatable {
    struct Line: Equatable {
        var name: String
        var configuration: ForwarderConfiguration
    }

    var lines: [Line]
    /// `ui:` and `ui-token-file:`: the dashboard, if the file asks for one.
    var dashboard: DashboardOptions?

    /// The keys a line may have, for the "did you mean" of an unknown one.
    static let lineKeys = [
        "device", "role", "baud", "baudrate", "serial", "data-bits", "parity", "stop-bits", "flow", "target", "listen",
        "local", "remote", "dynamic", "allow", "allow-listen", "gateway-ports", "max-streams", "grace", "link-wait",
        "connect-timeout", "socks-timeout", "socks-username", "socks-password-file", "unpaced", "compress", "wire", "key-file", "protect", "debug",
    ]

    static func load(path: String) throws(ConfigError) -> ConfigFile {
        guard let data = FileManager.default.contents(atPath: path) else {
            let reason = access(path, F_OK) == 0 ? "cannot read it (permission denied?)" : "no such file"
            throw ConfigError(path: path, line: nil, message: reason)
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(path: path, line: nil, message: "not UTF-8 text")
        }
        return try parse(text, path: path)
    }

    static func parse(_ text: String, path: String) throws(ConfigError) -> ConfigFile {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ConfigError(path: path, line: Self.line(of: error), message: "not valid YAML: \(Self.reason(of: error))")
        } catch {
            throw ConfigError(path: path, line: nil, message: "not valid YAML: \(error)")
        }
        guard let root, let top = root.mapping else {
            throw ConfigError(path: path, line: root?.mark?.line, message: "expected a mapping with the key 'lines'")
        }
        var lines: [Line] = []
        var sawLines = false
        var dashboardAddress: DashboardAddress?
        var tokenFile: (path: String, line: Int?)?
        for (key, value) in top {
            guard let name = key.string else { throw ConfigError(path: path, line: key.mark?.line, message: "a key must be text") }
            switch name {
            case "lines":
                sawLines = true
                guard let entries = value.mapping, !entries.isEmpty else {
                    throw ConfigError(path: path, line: value.mark?.line,
                                      message: "'lines' maps each line's name to its settings, e.g. 'board1: {device: /dev/ttyUSB0}'")
                }
                var names: Set<String> = []
                var devices: [String: String] = [:]
                for (lineKey, settings) in entries {
                    guard let lineName = lineKey.string, !lineName.isEmpty else {
                        throw ConfigError(path: path, line: lineKey.mark?.line, message: "a line's name must be text")
                    }
                    guard names.insert(lineName).inserted else {
                        throw ConfigError(path: path, line: lineKey.mark?.line, message: "line '\(lineName)' is declared twice")
                    }
                    let line = try parseLine(lineName, settings, path: path)
                    if let other = devices[line.configuration.devicePath] {
                        throw ConfigError(path: path, line: lineKey.mark?.line,
                                          message: "line '\(lineName)' uses \(line.configuration.devicePath), as line '\(other)' does")
                    }
                    devices[line.configuration.devicePath] = lineName
                    lines.append(line)
                }
            case "ui":
                guard let text = value.scalar?.string else {
                    throw ConfigError(path: path, line: value.mark?.line, message: "'ui' is [ADDR:]PORT, e.g. 8080")
                }
                do {
                    dashboardAddress = try DashboardAddress.parse(text)
                } catch {
                    throw ConfigError(path: path, line: value.mark?.line, message: "'ui': \(error)")
                }
            case "ui-token-file":
                guard let text = value.scalar?.string, !text.isEmpty else {
                    throw ConfigError(path: path, line: value.mark?.line, message: "'ui-token-file' is the path of a file")
                }
                tokenFile = (resolved(text, against: path), value.mark?.line)
            default:
                let hint = ArgumentCheck.suggestion(for: name, among: ["lines", "ui", "ui-token-file"]).map { " (did you mean '\($0)'?)" } ?? ""
                throw ConfigError(path: path, line: key.mark?.line, message: "unknown key '\(name)'\(hint)")
            }
        }
        guard sawLines else { throw ConfigError(path: path, line: root.mark?.line, message: "no 'lines' key: nothing to serve") }
        if let tokenFile, dashboardAddress == nil {
            throw ConfigError(path: path, line: tokenFile.line, message: "'ui-token-file' needs 'ui'")
        }
        return ConfigFile(lines: lines, dashboard: dashboardAddress.map { DashboardOptions(address: $0, tokenFile: tokenFile?.path) })
    }

    /// One line's settings, each checked as its command-line option is.
    static func parseLine(_ name: String, _ node: Node, path: String) throws(ConfigError) -> Line {
        guard let settings = node.mapping else {
            throw ConfigError(path: path, line: node.mark?.line, message: "line '\(name)': expected its settings as a mapping")
        }
        var values: [String: Node] = [:]
        var lineOf: [String: Int] = [:]
        for (key, value) in settings {
            guard let text = key.string else {
                throw ConfigError(path: path, line: key.mark?.line, message: "line '\(name)': a key must be text")
            }
            guard lineKeys.contains(text) else {
                let hint = ArgumentCheck.suggestion(for: text, among: lineKeys).map { " (did you mean '\($0)'?)" } ?? ""
                throw ConfigError(path: path, line: key.mark?.line, message: "line '\(name)': unknown key '\(text)'\(hint)")
            }
            guard values[text] == nil else {
                throw ConfigError(path: path, line: key.mark?.line, message: "line '\(name)': '\(text)' is given twice")
            }
            values[text] = value
            lineOf[text] = key.mark?.line
        }

        /// Runs a command-line value check on a scalar, turning its error into a located one.
        func value<T>(_ key: String, _ check: (String) throws -> T) throws(ConfigError) -> T? {
            guard let node = values[key] else { return nil }
            guard let text = node.scalar?.string else {
                throw ConfigError(path: path, line: lineOf[key], message: "line '\(name)': '\(key)' takes a single value")
            }
            do {
                return try check(text)
            } catch {
                throw ConfigError(path: path, line: lineOf[key], message: "line '\(name)': '\(key)': \(error)")
            }
        }
        /// A value or a list of values.
        func list<T>(_ key: String, _ check: (String) throws -> T) throws(ConfigError) -> [T] {
            guard let node = values[key] else { return [] }
            let items: [Node]
            if let sequence = node.sequence { items = Array(sequence) } else { items = [node] }
            var result: [T] = []
            for item in items {
                guard let text = item.scalar?.string else {
                    throw ConfigError(path: path, line: item.mark?.line ?? lineOf[key],
                                      message: "line '\(name)': '\(key)' takes text values")
                }
                do {
                    result.append(try check(text))
                } catch {
                    throw ConfigError(path: path, line: item.mark?.line ?? lineOf[key], message: "line '\(name)': '\(key)': \(error)")
                }
            }
            return result
        }
        func flag(_ key: String) throws(ConfigError) -> Bool {
            try value(key) { text -> Bool in
                switch text.lowercased() {
                case "true", "yes", "on": return true
                case "false", "no", "off": return false
                default: throw CommandLineError("give true or false")
                }
            } ?? false
        }

        guard let device = try value("device", ArgumentValues.devicePath) else {
            throw ConfigError(path: path, line: node.mark?.line, message: "line '\(name)': no 'device' (the serial device, e.g. /dev/ttyUSB0)")
        }
        var serial = try value("serial", parseSerialSpec) ?? SerialSettings()
        let baud = try value("baud", ArgumentValues.baudRate)
        let baudrate = try value("baudrate", ArgumentValues.baudRate)
        if let rate = baud ?? baudrate {
            if values["serial"] != nil, rate != serial.baudRate || (baud != nil && baudrate != nil && baud != baudrate) {
                throw ConfigError(path: path, line: lineOf["baud"] ?? lineOf["baudrate"],
                                  message: "line '\(name)': the baud rate disagrees with 'serial'; give it once")
            }
            serial.baudRate = rate
        }
        if let bits = try value("data-bits", ArgumentValues.dataBits) { serial.dataBits = bits }
        if let parity = try value("parity", ArgumentValues.parity) { serial.parity = parity }
        if let bits = try value("stop-bits", ArgumentValues.stopBits) { serial.stopBits = bits }
        if let flow = try value("flow", ArgumentValues.flowControl) { serial.flowControl = flow }

        let target = try value("target") { text -> Endpoint in
            guard let endpoint = Endpoint(parsing: text), endpoint.port > 0 else {
                throw CommandLineError("give host:port, e.g. localhost:22")
            }
            return endpoint
        }
        let listen = try value("listen") { text -> Endpoint in
            if let port = Int(text) { return Endpoint(host: ForwardSpec.defaultBind, port: try ArgumentValues.port("\(port)")) }
            guard let endpoint = Endpoint(parsing: text), endpoint.port > 0 else {
                throw CommandLineError("give [bind:]port, e.g. 2222 or 127.0.0.1:2222")
            }
            return endpoint
        }
        var forwards: [Forward] = listen.map { [.local(listen: $0, target: nil)] } ?? []
        forwards += try list("local", ForwardOptions.local)
        forwards += try list("remote", ForwardOptions.remote)
        forwards += try list("dynamic", ForwardOptions.dynamic)
        let role = try value("role") { text -> ForwarderConfiguration.Form in
            switch text {
            case "S", "s": return .server
            case "C", "c": return .client
            case "link": return .link
            default: throw CommandLineError("the role is S, C or link")
            }
        } ?? (target != nil ? .server : listen != nil ? .client : .link)

        var configuration = ForwarderConfiguration(
            form: role, forwards: forwards, defaultTarget: target, allowRules: try list("allow", ForwardOptions.rule),
            gatewayPorts: try flag("gateway-ports"), devicePath: device, serial: serial,
            maxStreams: try value("max-streams", ArgumentValues.maxStreams) ?? 4096,
            verbosity: try value("debug", ArgumentValues.debugLevel) ?? 0,
            gracePeriodSeconds: try value("grace", ArgumentValues.gracePeriod) ?? 30,
            linkWaitSeconds: try value("link-wait", ArgumentValues.linkWait) ?? 10,
            connectTimeoutSeconds: try value("connect-timeout", ArgumentValues.connectTimeout) ?? 5,
            unpaced: try flag("unpaced"))
        configuration.socksHandshakeTimeoutSeconds = try value("socks-timeout", ForwardOptions.socksTimeout) ?? 10
        configuration.listenRules = try list("allow-listen", ForwardOptions.rule)
        configuration.compression = try value("compress", ArgumentValues.compression) ?? .auto
        configuration.wire = try value("wire", ArgumentValues.wire) ?? .socket2ser
        if configuration.wire == .legacy {
            let problem: String? = if role == .link {
                "'wire: legacy' works with role S or C, as the original had them"
            } else if forwards.count != (listen == nil ? 0 : 1) {
                "'wire: legacy' carries only C's listen to S's target; local, remote and dynamic need the socket2ser wire on both ends"
            } else {
                nil
            }
            if let problem { throw ConfigError(path: path, line: lineOf["wire"], message: "line '\(name)': \(problem)") }
            if lineOf["key-file"] != nil {
                throw ConfigError(path: path, line: lineOf["wire"],
                                  message: "line '\(name)': 'key-file' needs the socket2ser wire: the legacy wire cannot protect the line")
            }
            // The original forces 8E1; so does the legacy wire unless the line says otherwise.
            let formatGiven = values["serial"]?.string?.contains(",") ?? false
            if lineOf["parity"] == nil && !formatGiven {
                configuration.serial.parity = .even
            }
        }
        let keyFile = try value("key-file") { text -> String in
            guard !text.isEmpty else { throw CommandLineError("give the path of a key file (socket2ser keygen makes one)") }
            return resolved(text, against: path)
        }
        let protect = try value("protect", ArgumentValues.protectionMode)
        if protect != nil && keyFile == nil {
            throw ConfigError(path: path, line: lineOf["protect"],
                              message: "line '\(name)': 'protect' needs 'key-file': protection is with a pre-shared key (socket2ser keygen makes one)")
        }
        do {
            configuration.protection = try KeyFile.protection(keyFile: keyFile, mode: protect)
        } catch {
            throw ConfigError(path: path, line: lineOf["key-file"], message: "line '\(name)': \(error)")
        }
        let username = try value("socks-username") { $0 }
        let passwordFile = try value("socks-password-file") { $0 }
        switch (username, passwordFile) {
        case (nil, nil):
            break
        case (let username?, let file?):
            do {
                configuration.socksCredentials = .init(username: username,
                                                       password: try SecretFile.read(resolved(file, against: path)))
            } catch {
                throw ConfigError(path: path, line: lineOf["socks-password-file"], message: "line '\(name)': \(error)")
            }
        default:
            throw ConfigError(path: path, line: lineOf["socks-username"] ?? lineOf["socks-password-file"],
                              message: "line '\(name)': give both 'socks-username' and 'socks-password-file', or neither")
        }
        return Line(name: name, configuration: configuration)
    }

    /// A path written in the file at `configPath` (`key-file`, `socks-password-file`,
    /// `ui-token-file`): a relative one is taken from the config file's folder, so the file means
    /// the same whatever directory `run` starts in (a service starts in /). `device` is used as
    /// written: devices are named from /dev.
    static func resolved(_ path: String, against configPath: String) -> String {
        guard !path.hasPrefix("/"), let slash = configPath.lastIndex(of: "/") else { return path }
        return configPath[...slash] + path
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        case .duplicatedKeysInMapping(_, let context): return context.mark.line
        default: return nil
        }
    }

    private static func reason(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): return problem
        case .duplicatedKeysInMapping(let duplicates, _): return "a key is given twice: \(duplicates.joined(separator: ", "))"
        default: return "\(error)".split(separator: "\n").first.map(String.init) ?? "\(error)"
        }
    }
}

/// A file holding one secret: it must belong to this user and be readable by nobody else, as
/// ssh requires of a private key. The secret itself never reaches a log.
/// A one-line secret (the SOCKS password) from a file that only this user may read; the same
/// checks as a key file's (`KeyFile.readPrivate`).
enum SecretFile {
    typealias Problem = KeyFile.Problem

    static func read(_ path: String) throws -> String {
        let bytes = try KeyFile.readPrivate(path, what: "password file")
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw Problem(description: "password file \(path) is not text")
        }
        let secret = text.trimmingCharacters(in: .newlines)
        guard !secret.isEmpty else { throw Problem(description: "password file \(path) is empty") }
        return secret
    }
}

enum PlainErrorsWords {
    static func errno() -> String { PlainErrors.phrase(errno: Glibc.errno) }
}
