@testable import Forwarding
import LinkCore
import Logging
import NIOCore
import NIOEmbedded
import Testing

/// The SOCKS5 server handler and the runtime's wait for the link, on NIO's embedded event loop:
/// every timeout is checked on virtual time, to the millisecond, with no real clock and no sleep.
@Suite("SOCKS5 handler (embedded event loop, virtual time)")
struct SOCKS5HandlerTests {
    /// A runtime that never starts its line: what it does with a connection before the link is up.
    static func runtime(on loop: EmbeddedEventLoop, linkWait: Double = 2) -> LinkRuntime {
        var configuration = ForwarderConfiguration(form: .link, devicePath: "/dev/null-not-opened",
                                                   linkWaitSeconds: linkWait)
        configuration.socksHandshakeTimeoutSeconds = 1
        return LinkRuntime(configuration: configuration, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() },
                           loop: loop)
    }

    static func client(_ loop: EmbeddedEventLoop, _ runtime: LinkRuntime, timeout: TimeAmount = .seconds(1)) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(handler: SOCKS5ServerHandler(runtime: runtime, credentials: nil, handshakeTimeout: timeout),
                                      loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 40_000)).wait()
        return channel
    }

    static func outbound(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { bytes += buffer.readableBytesView }
        return bytes
    }

    @Test("a client that never sends its request is dropped when the handshake timeout runs out, not before")
    func stalledClient() throws {
        let loop = EmbeddedEventLoop()
        let runtime = Self.runtime(on: loop)
        let channel = try Self.client(loop, runtime)
        try channel.writeInbound(ByteBuffer(bytes: [5, 1, 0]))  // the greeting, then nothing
        #expect(try Self.outbound(channel) == [5, 0])
        loop.advanceTime(by: .milliseconds(999))
        #expect(channel.isActive)
        loop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    @Test("a request before the link is up waits, without a reply, for the link wait; then the client is cut off")
    func requestWaitsForLink() throws {
        let loop = EmbeddedEventLoop()
        let runtime = Self.runtime(on: loop, linkWait: 2)
        let channel = try Self.client(loop, runtime)
        try channel.writeInbound(ByteBuffer(bytes: [5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 7, 0x1F, 0x90]))
        #expect(try Self.outbound(channel) == [5, 0])  // the method; the reply waits for the far end
        // The handshake timeout no longer applies: the request was complete.
        loop.advanceTime(by: .milliseconds(1_999))
        #expect(channel.isActive)
        #expect(runtime.waitingForLink.count == 1)
        #expect(runtime.link.streamCount == 0)  // no stream, so no line bytes, while it waits
        loop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
        #expect(runtime.waitingForLink.isEmpty)
        // The client learns why: reply 0x03, network unreachable (there is no link).
        let reply = try Self.outbound(channel)
        #expect(reply.count == 10 && reply[0] == 5 && reply[1] == 0x03, "\(reply)")
    }
}
