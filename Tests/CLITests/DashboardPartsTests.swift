#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
@testable import Dashboard
import Forwarding
import Foundation
import NIOPosix
import SerialPort
@testable import Socket2SerCLI
import Testing

/// The dashboard's pieces without a server: what a request from the page becomes, the address
/// and token options, the config file's keys, the event log's bounds.
@Suite("Dashboard parts")
struct DashboardPartsTests {
    private func request(_ role: String, device: String = "/dev/ttyUSB0", format: String? = nil, flow: String? = nil,
                         listen: String? = nil, target: String? = nil,
                         forwards: [(String, String)] = []) -> LinkRequest {
        LinkRequest(role: role, device: device, baud: 115_200, format: format, flow: flow, listen: listen, target: target,
                    forwards: forwards.map { LinkRequest.ForwardRequest(kind: $0.0, spec: $0.1) })
    }

    private func message(_ request: LinkRequest) -> String? {
        do {
            _ = try request.configuration()
            return nil
        } catch {
            return error.message
        }
    }

    @Test("A link request becomes the configuration the command line would make")
    func linkRequests() throws {
        let server = try request("S", format: "7E2", flow: "rtscts", target: "127.0.0.1:22").configuration()
        #expect(server.form == .server && server.defaultTarget == Endpoint(host: "127.0.0.1", port: 22))
        #expect(server.serial == SerialSettings(baudRate: 115_200, dataBits: 7, parity: .even, stopBits: 2, flowControl: .rtsCts))
        let client = try request("C", listen: "5000", forwards: [("D", "1080")]).configuration()
        #expect(client.form == .client)
        #expect(client.forwards == [.local(listen: Endpoint(host: "127.0.0.1", port: 5000), target: nil),
                                    .dynamic(listen: Endpoint(host: "127.0.0.1", port: 1080))])
        let open = try request("C", listen: "0.0.0.0:5000").configuration()
        #expect(open.forwards.first?.listen == Endpoint(host: "0.0.0.0", port: 5000))
    }

    @Test("Each mistake in a link request is one line, the command line's own where it has one")
    func linkRequestMistakes() throws {
        #expect(message(request("X")) == "the role is S or C, not \"X\"")
        #expect(message(request("S", device: "")) == "choose a serial device")
        #expect(message(request("S", device: "ttyUSB0"))?.contains("a device is a path") == true)
        #expect(message(request("C")) == "C needs a port to listen on (or a forward)")
        #expect(message(request("C", listen: "99999"))?.contains("[address:]port") == true)
        #expect(message(request("S", target: "nowhere"))?.contains("host:port") == true)
        #expect(message(request("S", flow: "xon"))?.contains("none or rtscts") == true)
        var serialMessage = ""
        do { _ = try SerialSettings.parse("115200,9N1") } catch { serialMessage = error.description }
        #expect(message(request("S", format: "9N1")) == serialMessage)
        var forwardMessage = ""
        do { _ = try ForwardSpec.local("nonsense") } catch { forwardMessage = error.description }
        #expect(message(request("C", forwards: [("L", "nonsense")])) == forwardMessage)
        #expect(message(request("C", forwards: [("Q", "1")])) == "a forward is L, R or D, not \"Q\"")
    }

    @Test("--ui takes [ADDR:]PORT, loopback by default")
    func uiAddress() throws {
        #expect(try DashboardAddress.parse("8080") == DashboardAddress(host: "127.0.0.1", port: 8080))
        #expect(try DashboardAddress.parse("0") == DashboardAddress(host: "127.0.0.1", port: 0))
        #expect(try DashboardAddress.parse("0.0.0.0:80") == DashboardAddress(host: "0.0.0.0", port: 80))
        #expect(try DashboardAddress.parse("[::1]:8080") == DashboardAddress(host: "::1", port: 8080))
        for bad in ["", "x", "70000", "host:", "-1"] {
            #expect(throws: CommandLineError.self, "\(bad)") { try DashboardAddress.parse(bad) }
        }
    }

    @Test("--ui and --ui-token-file on S, C, link and run; ui alone; the token file needs --ui")
    func uiOptions() throws {
        let server = try #require(try Socket2Ser.parseCommand(["S", "-port", "22", "-com", "/dev/ttyUSB0", "--ui", "8080"])
            as? ServerCommand)
        #expect(server.link.dashboard == DashboardOptions(address: DashboardAddress(host: "127.0.0.1", port: 8080)))
        let client = try #require(try Socket2Ser.parseCommand(["C", "-port", "2222", "-com", "/dev/ttyUSB0", "--ui",
                                                               "0.0.0.0:80", "--ui-token-file", "/t"]) as? ClientCommand)
        #expect(client.link.dashboard == DashboardOptions(address: DashboardAddress(host: "0.0.0.0", port: 80), tokenFile: "/t"))
        let link = try #require(try Socket2Ser.parseCommand(["link", "-com", "/dev/ttyUSB0", "--ui", "0"]) as? LinkCommand)
        #expect(link.link.dashboard?.address == DashboardAddress(host: "127.0.0.1", port: 0))
        let run = try #require(try Socket2Ser.parseCommand(["run", "--config", "f.yaml", "--ui", "9000"]) as? RunCommand)
        #expect(run.ui == DashboardAddress(host: "127.0.0.1", port: 9000))
        let ui = try #require(try Socket2Ser.parseCommand(["ui", "[::1]:8080"]) as? UICommand)
        #expect(ui.address == DashboardAddress(host: "::1", port: 8080))
        #expect(try (Socket2Ser.parseCommand(["ui"]) as? UICommand)?.address == DashboardAddress(host: "127.0.0.1", port: 0))
        #expect(throws: (any Error).self) { try Socket2Ser.parseCommand(["C", "-port", "1", "-com", "/dev/x", "--ui-token-file", "/t"]) }
        #expect(throws: (any Error).self) { try Socket2Ser.parseCommand(["S", "-port", "1", "-com", "/dev/x", "--ui", "nowhere"]) }
    }

    @Test("A link's id: the line's name, or the device's file name")
    func linkIDs() {
        #expect(DashboardHub.linkID(forDevice: "/dev/ttyUSB0") == "ttyUSB0")
        #expect(DashboardHub.linkID(forDevice: "/dev/pts/3") == "pts3")
        #expect(DashboardHub.linkID(forDevice: "/dev/serial/by-id/usb-FTDI_FT232R-if00-port0") == "usb-FTDI_FT232R-if00-port0")
    }

    @Test("The config file's ui: and ui-token-file:")
    func configKeys() throws {
        let lines = "lines:\n  one:\n    device: /dev/ttyUSB0\n    target: 127.0.0.1:22\n"
        let file = try ConfigFile.parse("ui: 127.0.0.1:8080\nui-token-file: /etc/socket2ser/token\n" + lines, path: "f.yaml")
        #expect(file.dashboard == DashboardOptions(address: DashboardAddress(host: "127.0.0.1", port: 8080),
                                                   tokenFile: "/etc/socket2ser/token"))
        #expect(try ConfigFile.parse(lines, path: "f.yaml").dashboard == nil)
        #expect(throws: ConfigError.self) { try ConfigFile.parse("ui: [1, 2]\n" + lines, path: "f.yaml") }
        #expect(throws: ConfigError.self) { try ConfigFile.parse("ui: nowhere:x\n" + lines, path: "f.yaml") }
        do {
            _ = try ConfigFile.parse("ui-token-file: /t\n" + lines, path: "f.yaml")
            Issue.record("a token file without ui: was taken")
        } catch {
            #expect(error.description == "f.yaml:1: 'ui-token-file' needs 'ui'")
        }
    }

    @Test("A token file must be the owner's alone and hold one word; comparison needs the exact token")
    func tokens() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("token-\(UUID().uuidString)").path
        defer { unlink(path) }
        try "correct-horse-battery-staple\n".write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o640)
        #expect(throws: DashboardError.self) { try DashboardToken.load(path: path) }
        chmod(path, 0o600)
        #expect(try DashboardToken.load(path: path) == "correct-horse-battery-staple")
        try "short\n".write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: DashboardError.self) { try DashboardToken.load(path: path) }
        let token = DashboardToken.generate()
        #expect(token.count == 64 && token.allSatisfy(\.isHexDigit) && token != DashboardToken.generate())
        #expect(DashboardToken.matches(token[...], token))
        #expect(!DashboardToken.matches(token.dropLast(), token))
        let oneCharacterOff = (token.first == "0" ? "1" : "0") + token.dropFirst()
        #expect(!DashboardToken.matches(oneCharacterOff[...], token))
    }

    @Test("The event log keeps the last 500 events, numbered, and answers what came after a number")
    func eventLog() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let hub = DashboardHub(eventLoopGroup: group, version: "test") { _, _ in .init(label: "test") }
        for n in 1...600 { hub.record(link: "one", level: n % 2 == 0 ? .warning : .info, kind: "log", message: "event \(n)") }
        let all = hub.events(after: 0)
        #expect(all.count == 500 && all.first?.seq == 101 && all.last?.seq == 600)
        #expect(all.last?.message == "event 600" && all.last?.level == "warning" && all.first?.level == "info")
        #expect(hub.events(after: 595).map(\.seq) == [596, 597, 598, 599, 600])
    }

    @Test("Forwards as the page shows them: kind, the full spec, and the command line's text")
    func forwardViews() throws {
        let local = ForwardView(try ForwardSpec.local("8080:example.com:80"))
        #expect(local.kind == "L" && local.spec == "127.0.0.1:8080:example.com:80" && local.text == "-L 127.0.0.1:8080:example.com:80")
        let port = ForwardView(.local(listen: Endpoint(host: "127.0.0.1", port: 5000), target: nil))
        #expect(port.spec == "127.0.0.1:5000" && port.text == "-L 127.0.0.1:5000 (the far end's default target)")
        let socks = ForwardView(try ForwardSpec.dynamic("[::1]:1080"))
        #expect(socks.kind == "D" && socks.spec == "[::1]:1080")
        // The full spec reads back as the same forward, as the page sends it to remove one.
        #expect(try LinkRequest.forward(kind: local.kind, spec: local.spec) == ForwardSpec.local("8080:example.com:80"))
    }
}
