#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CSerialShim
import Forwarding
import Foundation
import TestKit
import LinkCore
import Logging
import NIOCore
import NIOPosix
import SerialPort
import Testing
import VirtualCable

/// Two `Forwarder`s (S and C) in this process, joined by two real pseudo-terminals whose masters
/// a small pump thread connects back to back, with real TCP clients and target servers on
/// 127.0.0.1. The line is unpaced, so these tests measure correctness, not speed.
@Suite(.serialized, .timeLimit(.minutes(2)), .tags(.timing))
struct ForwarderInProcessTests {
    @Test func transfers200KBBothWaysByteForByte() async throws {
        try await withTargetServer(.echo) { targetPort in
            try await withForwarderPair(targetPort: targetPort) { pair in
                let data = Payload.bytes(200_000, seed: 1)
                let client = try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup)
                try await client.send(data)
                try await client.shutdownOutput()
                let result = try await client.result(within: 20)
                expectSameBytes(result.bytes, data, "echo of 200 KB")
            }
        }
    }

    @Test func halfCloseStillDeliversTheReply() async throws {
        try await withTargetServer(.replyAfterEndOfInput) { targetPort in
            try await withForwarderPair(targetPort: targetPort) { pair in
                let data = Payload.bytes(10_000, seed: 2)
                let client = try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup)
                try await client.send(data)
                // The server replies only once it has seen our end of input.
                try await client.shutdownOutput()
                let result = try await client.result(within: 10)
                expectSameBytes(result.bytes, ReplyAfterEndOfInput.reply(to: data), "reply after half-close")
                #expect(result.error == nil)
            }
        }
    }

    @Test func refusedTargetClosesTheClientWithinOneSecond() async throws {
        let closedPort = try freeLoopbackPort()
        try await withForwarderPair(targetPort: closedPort) { pair in
            let started = ContinuousClock.now
            // Reset at once: on this unpaced cable the reset may even beat the end of the connect.
            do {
                let client = try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup)
                try? await client.send(Array("hello?".utf8))
                let result = try await client.result(within: 1.0)
                #expect(result.bytes.isEmpty)
            } catch {
                #expect("\(error)".contains("reset"), "\(error)")
            }
            let elapsed = ContinuousClock.now - started
            #expect(elapsed < .seconds(1))
            // Both ends forget the stream.
            try await waitUntil("streams released") {
                let s = await pair.server.status()
                let c = await pair.client.status()
                return s.streamsOpen == 0 && c.streamsOpen == 0 && c.connectionsOpen == 0
            }
        }
    }

    @Test func fiftyConcurrentConnections() async throws {
        try await withTargetServer(.echo) { targetPort in
            try await withForwarderPair(targetPort: targetPort) { pair in
                let payloads = (0..<50).map { Payload.bytes(4_000 + $0 * 100, seed: UInt64(100 + $0)) }
                var clients: [TestClient] = []
                for _ in payloads {
                    clients.append(try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup))
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (client, payload) in zip(clients, payloads) {
                        group.addTask {
                            try await client.send(payload)
                            try await client.shutdownOutput()
                        }
                    }
                    try await group.waitForAll()
                }
                for (index, (client, payload)) in zip(clients, payloads).enumerated() {
                    let result = try await client.result(within: 20)
                    expectSameBytes(result.bytes, payload, "connection \(index)")
                }
                try await waitUntil("all streams closed") {
                    let s = await pair.server.status()
                    let c = await pair.client.status()
                    return s.streamsOpen == 0 && c.streamsOpen == 0 && s.connectionsOpen == 0 && c.connectionsOpen == 0
                }
                let c = await pair.client.status()
                #expect(c.connectionsTotal == 50)
            }
        }
    }

    @Test func streamsSurviveTheDeviceDisappearingAndComingBack() async throws {
        try await withTargetServer(.echo) { targetPort in
            try await withForwarderPair(targetPort: targetPort) { pair in
                let client = try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup)
                let first = Payload.bytes(3_000, seed: 3)
                try await client.send(first)
                try await waitUntil("first echo") { try await client.receivedCount() == first.count }

                pair.cable.unplugA()
                try await waitUntil("S notices the device is gone") { await !pair.server.status().deviceOpen }
                try pair.cable.plugA()
                try await waitUntil("S reopens the device") { await pair.server.status().deviceOpen }

                let second = Payload.bytes(5_000, seed: 4)
                try await client.send(second)
                try await client.shutdownOutput()
                let result = try await client.result(within: 10)
                expectSameBytes(result.bytes, first + second, "echo across the outage")
            }
        }
    }

    @Test func connectionsBeyondTheStreamLimitAreClosedAtOnce() async throws {
        try await withTargetServer(.echo) { targetPort in
            try await withForwarderPair(targetPort: targetPort, clientMaxStreams: 2) { pair in
                var open: [TestClient] = []
                for i in 0..<2 {
                    let client = try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup)
                    try await client.send([UInt8(i)])
                    try await waitUntil("echo on connection \(i)") { try await client.receivedCount() == 1 }
                    open.append(client)
                }
                // Reset at once: the reset may even beat the end of the client's connect.
                do {
                    let third = try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup)
                    let refused = try await third.result(within: 1)
                    #expect(refused.bytes.isEmpty)
                } catch {
                    #expect("\(error)".contains("reset"), "\(error)")
                }

                // Room again once one closes.
                try await open[0].shutdownOutput()
                _ = try await open[0].result(within: 5)
                try await waitUntil("stream released") { await pair.client.status().streamsOpen == 1 }
                let fourth = try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup)
                try await fourth.send(Array("again".utf8))
                try await fourth.shutdownOutput()
                expectSameBytes(try await fourth.result(within: 5).bytes, Array("again".utf8), "after the limit")
            }
        }
    }

    @Test func aStalledReaderStopsOnlyItsOwnStream() async throws {
        try await withTargetServer(.floodOrEcho) { targetPort in
            try await withForwarderPair(targetPort: targetPort) { pair in
                // A client asks for 2 MB and does not read them.
                let stalled = try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup, stalled: true)
                try await stalled.send(FloodOrEcho.floodRequest)
                try await waitUntil("the flood to reach the stalled client's window") {
                    await pair.client.status().bufferedReceiveBytes > 0
                }
                // Another connection goes through meanwhile.
                let data = Payload.bytes(100_000, seed: 5)
                let other = try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup)
                try await other.send(data)
                try await other.shutdownOutput()
                let result = try await other.result(within: 10)
                expectSameBytes(result.bytes, data, "echo beside a stalled stream")

                // The stalled stream is held, not broken, and its memory is bounded by its window.
                let c = await pair.client.status()
                let s = await pair.server.status()
                #expect(c.streamsOpen == 1)
                #expect(c.bufferedReceiveBytes <= 65_536)
                #expect(s.bufferedSendBytes <= 2 * 65_536 + 16_384)
                #expect(try await stalled.receivedCount() == 0)

                // Once it reads again, every byte arrives.
                try await stalled.startReading()
                try await stalled.shutdownOutput()
                let flood = try await stalled.result(within: 20)
                expectSameBytes(flood.bytes, FloodOrEcho.flood, "flood after the stall")
            }
        }
    }

    /// Over a UART-paced cable, a bulk transfer must not delay a keystroke by more than a few
    /// frames: the writer keeps only ~12 ms of line time queued in the kernel (TIOCOUTQ, or the
    /// modelled queue for a pty), instead of the pty's whole buffer (~1 s at this rate).
    @Test func pacedLineKeepsInteractiveTrafficResponsiveDuringBulk() async throws {
        try await withTargetServer(.echo) { targetPort in
            try await withForwarderPair(targetPort: targetPort, cable: .paced(baud: 230_400)) { pair in
                let bulkData = Payload.bytes(60_000, seed: 6)
                let bulk = try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup)
                let started = ContinuousClock.now
                try await bulk.send(bulkData)
                try await waitUntil("bulk under way") { try await bulk.receivedCount() > 2_000 }

                let keys = try await TestClient.connect(port: pair.listeningPort, on: pair.clientGroup)
                var worst = Duration.zero
                for i in 0..<5 {
                    let sent = ContinuousClock.now
                    try await keys.send([UInt8(65 + i)])
                    try await waitUntil("keystroke echo", timeout: .seconds(5)) { try await keys.receivedCount() == i + 1 }
                    worst = max(worst, ContinuousClock.now - sent)
                }
                let bulkReceived = try await bulk.receivedCount()
                #expect(bulkReceived < bulkData.count, "the bulk transfer should still be running")
                // Measured ~0.25 s; an unpaced writer that fills the pty's buffer gives ~1.6 s.
                #expect(worst < .milliseconds(700), "worst keystroke round trip \(worst) during bulk")

                try await bulk.shutdownOutput()
                let result = try await bulk.result(within: 20)
                expectSameBytes(result.bytes, bulkData, "bulk over the paced line")
                let elapsed = ContinuousClock.now - started
                if ProcessInfo.processInfo.environment["FORWARDER_TEST_LOG"] != nil {
                    let c = await pair.client.status()
                    let s = await pair.server.status()
                    print("paced: worst keystroke \(worst), bulk \(elapsed)\nC \(c.statistics)\nS \(s.statistics)")
                }
                // 60 KB each way at 23 KB/s: ~2.6 s of line time; framing and acks add a little.
                #expect(elapsed < .seconds(4.5), "bulk took \(elapsed)")
            }
        }
    }

    @Test func missingDeviceIsAFatalStartupError() async throws {
        let configuration = ForwarderConfiguration(
            role: .client(bindHost: "127.0.0.1", port: 0), devicePath: "/dev/does-not-exist-sfs", unpaced: true)
        let forwarder = Forwarder(configuration: configuration, logger: testLogger("C"))
        await #expect(throws: SerialPortError.noSuchDevice(path: "/dev/does-not-exist-sfs")) {
            try await forwarder.run()
        }
        await #expect(throws: ForwarderError.self) { _ = try await forwarder.waitUntilListening() }
    }
}

// MARK: - Forwarder pair

struct ForwarderPair: Sendable {
    let server: Forwarder
    let client: Forwarder
    let listeningPort: Int
    /// The pump cable, when the pair runs over one (it can unplug end A).
    let ptyCable: PtyCable?
    let clientGroup: EventLoopGroup

    var cable: PtyCable { ptyCable! }
}

enum CableKind {
    /// Two ptys joined by `PtyCable`, unpaced: as fast as the CPU allows.
    case unpacedPump
    /// `VirtualCable` paced like a UART at this rate; the forwarders pace their writes to it.
    case paced(baud: Int)
}

func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: "forwarder-test.\(label)")
    switch ProcessInfo.processInfo.environment["FORWARDER_TEST_LOG"] {
    case "trace": logger.logLevel = .trace
    case "debug": logger.logLevel = .debug
    case "info": logger.logLevel = .info
    default: logger.logLevel = .error
    }
    return logger
}

/// Starts S (next to the target) and C (listening on an ephemeral port) over a fresh pty cable,
/// waits until the link is up, runs `body`, then cancels both and checks they stop within 2 s.
func withForwarderPair(targetPort: Int, cable kind: CableKind = .unpacedPump, clientMaxStreams: Int = 4096,
                       _ body: (ForwarderPair) async throws -> Void) async throws {
    let ptyCable: PtyCable?
    let virtualCable: VirtualCable?
    let server: Forwarder
    let client: Forwarder
    func adjust(_ configuration: inout ForwarderConfiguration, isServer: Bool) {
        if isServer { configuration.connectTimeoutSeconds = 2 } else { configuration.maxStreams = clientMaxStreams }
    }
    switch kind {
    case .unpacedPump:
        let cable = try PtyCable()
        (ptyCable, virtualCable) = (cable, nil)
        let serial = SerialSettings(baudRate: 115_200)
        var serverConfiguration = ForwarderConfiguration(
            role: .server(targetHost: "127.0.0.1", targetPort: targetPort), devicePath: cable.pathA, serial: serial,
            unpaced: true)
        adjust(&serverConfiguration, isServer: true)
        var clientConfiguration = ForwarderConfiguration(
            role: .client(bindHost: "127.0.0.1", port: 0), devicePath: cable.pathB, serial: serial, unpaced: true)
        adjust(&clientConfiguration, isServer: false)
        server = Forwarder(configuration: serverConfiguration, logger: testLogger("S"))
        client = Forwarder(configuration: clientConfiguration, logger: testLogger("C"))
    case .paced(let baud):
        // The demo's rig (TestKit), paced like a UART.
        let link = try InProcessLink(baud: baud, targetPort: targetPort, adjust: adjust, logger: testLogger)
        (ptyCable, virtualCable) = (nil, link.cable)
        (server, client) = (link.server, link.client)
    }
    defer {
        ptyCable?.stop()
        virtualCable?.stop()
    }
    let clientGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

    let serverTask = Task { try await server.run() }
    let clientTask = Task { try await client.run() }

    func stopBoth() async -> Duration {
        let started = ContinuousClock.now
        serverTask.cancel()
        clientTask.cancel()
        _ = await serverTask.result
        _ = await clientTask.result
        return ContinuousClock.now - started
    }

    do {
        let port = try await client.waitUntilListening()
        try await waitUntil("link up", timeout: .seconds(10)) {
            let s = await server.status()
            let c = await client.status()
            return s.linkUp && c.linkUp
        }
        try await body(ForwarderPair(server: server, client: client, listeningPort: port, ptyCable: ptyCable,
                                     clientGroup: clientGroup))
    } catch {
        _ = await stopBoth()
        try? await clientGroup.shutdownGracefully()
        throw error
    }
    let shutdown = await stopBoth()
    try? await clientGroup.shutdownGracefully()
    #expect(shutdown < .seconds(2), "shutdown took \(shutdown)")
    if case .failure(let error) = await serverTask.result { Issue.record("S failed: \(error)") }
    if case .failure(let error) = await clientTask.result { Issue.record("C failed: \(error)") }
    #expect(await server.status().linkState == .stopped)
}

/// Compares byte arrays without dumping them: the sizes and the first difference.
func expectSameBytes(_ actual: [UInt8], _ expected: [UInt8], _ what: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual != expected else { return }
    let firstDifference = (0..<min(actual.count, expected.count)).first { actual[$0] != expected[$0] } ?? min(actual.count, expected.count)
    Issue.record("\(what): got \(actual.count) B, expected \(expected.count) B; first difference at \(firstDifference)",
                 sourceLocation: sourceLocation)
}

// MARK: - Target servers

enum TargetBehaviour: Sendable {
    /// Echoes everything; shuts down its output after the client's end of input.
    case echo
    /// Collects everything until the client's end of input, then answers (`ReplyAfterEndOfInput`).
    case replyAfterEndOfInput
    /// Echoes, except that a connection whose first bytes are `FloodOrEcho.floodRequest` gets
    /// `FloodOrEcho.floodSize` bytes of `Payload.bytes(_, seed: 7)` instead.
    case floodOrEcho
}

func withTargetServer(_ behaviour: TargetBehaviour, _ body: (Int) async throws -> Void) async throws {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let channel = try await ServerBootstrap(group: group)
        .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                switch behaviour {
                case .echo: try channel.pipeline.syncOperations.addHandler(EchoHandler())
                case .replyAfterEndOfInput: try channel.pipeline.syncOperations.addHandler(ReplyAfterEndOfInput())
                case .floodOrEcho: try channel.pipeline.syncOperations.addHandler(FloodOrEcho())
                }
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    do {
        try await body(channel.localAddress!.port!)
    } catch {
        try? await channel.close()
        try? await group.shutdownGracefully()
        throw error
    }
    try? await channel.close()
    try? await group.shutdownGracefully()
}

final class ReplyAfterEndOfInput: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private var received: [UInt8] = []

    static func reply(to data: [UInt8]) -> [UInt8] {
        Array("GOT \(data.count)\n".utf8) + data.reversed()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += Self.unwrapInboundIn(data).readableBytesView
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.writeAndFlush(Self.wrapOutboundOut(ByteBuffer(bytes: Self.reply(to: received))), promise: nil)
            context.close(mode: .output, promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

final class FloodOrEcho: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    static let floodRequest = Array("FLOOD\n".utf8)
    static let floodSize = 2_000_000
    static let flood = Payload.bytes(floodSize, seed: 7)
    private var decided = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        if !decided {
            decided = true
            if Array(buffer.readableBytesView.prefix(Self.floodRequest.count)) == Self.floodRequest {
                var offset = 0
                while offset < Self.flood.count {
                    let end = min(offset + 65_536, Self.flood.count)
                    context.write(Self.wrapOutboundOut(ByteBuffer(bytes: Self.flood[offset..<end])), promise: nil)
                    offset = end
                }
                context.flush()
                context.close(mode: .output, promise: nil)
                return
            }
        }
        context.writeAndFlush(data, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(mode: .output, promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

// MARK: - Test client

struct ClientResult: Sendable {
    var bytes: [UInt8]
    var error: String?
}

/// A TCP client that collects everything it receives until the server ends its output.
final class TestClient: Sendable {
    let channel: Channel
    private let collector: NIOLoopBound<Collector>
    private let done: EventLoopPromise<ClientResult>

    private init(channel: Channel, collector: NIOLoopBound<Collector>, done: EventLoopPromise<ClientResult>) {
        self.channel = channel
        self.collector = collector
        self.done = done
    }

    /// `stalled`: the client does not read until `startReading()`, with a small receive buffer,
    /// like a consumer that stopped reading.
    static func connect(port: Int, on group: EventLoopGroup, stalled: Bool = false) async throws -> TestClient {
        let loop = group.next()
        let done = loop.makePromise(of: ClientResult.self)
        // The collector is taken when it is added: a connection the forwarder resets at once may
        // have lost its pipeline by the time `connect` returns.
        let added = loop.makePromise(of: NIOLoopBound<Collector>.self)
        do {
            let channel = try await ClientBootstrap(group: loop)
                .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                .channelOption(ChannelOptions.autoRead, value: !stalled)
                .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: stalled ? 4096 : 131_072)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let collector = Collector(done: done)
                        try channel.pipeline.syncOperations.addHandler(collector)
                        added.succeed(NIOLoopBound(collector, eventLoop: channel.eventLoop))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            return TestClient(channel: channel, collector: try await added.futureResult.get(), done: done)
        } catch {
            // Every promise is completed, whatever happened.
            done.fail(error)
            added.fail(error)
            throw error
        }
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    func shutdownOutput() async throws {
        try await channel.close(mode: .output).get()
    }

    func startReading() async throws {
        try await channel.setOption(ChannelOptions.autoRead, value: true).get()
        channel.read()
    }

    func receivedCount() async throws -> Int {
        let collector = self.collector
        return try await channel.eventLoop.submit { collector.value.received.count }.get()
    }

    /// Everything received, once the server ended its output or the connection closed; fails
    /// after `seconds`.
    func result(within seconds: Double) async throws -> ClientResult {
        let done = self.done
        let timeout = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) {
            done.fail(E2EFailure("no end of the connection within \(seconds) s"))
        }
        defer { timeout.cancel() }
        let result = try await done.futureResult.get()
        channel.close(promise: nil)
        return result
    }
}

final class Collector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var received: [UInt8] = []
    private var error: String?
    private var finished = false
    private let done: EventLoopPromise<ClientResult>

    init(done: EventLoopPromise<ClientResult>) {
        self.done = done
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += Self.unwrapInboundIn(data).readableBytesView
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed { finish() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        self.error = "\(error)"
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        done.succeed(ClientResult(bytes: received, error: error))
    }
}

// MARK: - A cable of two pseudo-terminals

/// Two ptys whose masters a pump thread joins back to back, so the slaves behave like the two
/// ends of a null-modem cable. The forwarders open the slaves through symlinks, so end A can be
/// "unplugged" (its pty destroyed: the forwarder's descriptor hangs up) and "plugged in" again
/// (a new pty behind the same path).
final class PtyCable: @unchecked Sendable {
    // @unchecked: the mutable state is guarded by `lock`.
    struct End {
        var master: Int32
        var slave: Int32
    }

    let pathA: String
    let pathB: String
    private let directory: String
    private let lock = NSLock()
    private var endA: End?
    private var endB: End?
    private var running = true
    private var stopped = false
    private let finished = DispatchSemaphore(value: 0)

    init() throws {
        var template = Array("/tmp/sfs-e2e-XXXXXX".utf8CString)
        guard let dir = mkdtemp(&template) else { throw E2EFailure("mkdtemp failed") }
        directory = String(cString: dir)
        pathA = directory + "/a"
        pathB = directory + "/b"
        endA = try Self.makeEnd(link: pathA)
        endB = try Self.makeEnd(link: pathB)
        let thread = Thread { [self] in
            pump()
            finished.signal()
        }
        thread.name = "PtyCable pump"
        thread.start()
    }

    private static func makeEnd(link: String) throws -> End {
        var master: Int32 = -1
        var slave: Int32 = -1
        var name = [CChar](repeating: 0, count: 128)
        guard sfs_openpty(&master, &slave, &name, name.count) == 0 else {
            throw E2EFailure("openpty failed: errno \(errno)")
        }
        _ = fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK)
        let path = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        unlink(link)
        guard symlink(path, link) == 0 else { throw E2EFailure("symlink failed: errno \(errno)") }
        return End(master: master, slave: slave)
    }

    /// Destroys end A's pty: whoever has it open sees a hang-up, and bytes for it are lost.
    func unplugA() {
        lock.withLock {
            if let end = endA {
                close(end.master)
                close(end.slave)
            }
            endA = nil
            unlink(pathA)
        }
    }

    /// A new pty behind end A's path.
    func plugA() throws {
        try lock.withLock {
            endA = try Self.makeEnd(link: pathA)
        }
    }

    func stop() {
        lock.withLock { running = false }
        finished.wait()
        lock.withLock {
            guard !stopped else { return }
            stopped = true
            for end in [endA, endB].compactMap({ $0 }) {
                close(end.master)
                close(end.slave)
            }
            endA = nil
            endB = nil
            unlink(pathA)
            unlink(pathB)
            rmdir(directory)
        }
    }

    private func pump() {
        var aToB: [UInt8] = []
        var bToA: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let limit = 1 << 16

        func readInto(_ queue: inout [UInt8], from fd: Int32) {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, min($0.count, limit - queue.count)) }
            if n > 0 { queue += buffer[0..<n] }
        }
        func writeFrom(_ queue: inout [UInt8], to fd: Int32) {
            let n = queue.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n > 0 { queue.removeFirst(n) }
        }

        while true {
            // Held for one short poll, so unplugging never closes a descriptor under our feet.
            lock.lock()
            guard running else {
                lock.unlock()
                return
            }
            var fds: [pollfd] = []
            var indexA: Int?
            var indexB: Int?
            if let a = endA {
                var events: Int16 = 0
                if aToB.count < limit { events |= Int16(POLLIN) }
                if !bToA.isEmpty { events |= Int16(POLLOUT) }
                indexA = fds.count
                fds.append(pollfd(fd: a.master, events: events, revents: 0))
            } else {
                bToA.removeAll()  // nobody at end A: the bytes fall on the floor
            }
            if let b = endB {
                var events: Int16 = 0
                if bToA.count < limit { events |= Int16(POLLIN) }
                if !aToB.isEmpty { events |= Int16(POLLOUT) }
                indexB = fds.count
                fds.append(pollfd(fd: b.master, events: events, revents: 0))
            } else {
                aToB.removeAll()
            }
            _ = poll(&fds, nfds_t(fds.count), 2)
            if let i = indexA, let a = endA {
                if fds[i].revents & Int16(POLLIN) != 0 { readInto(&aToB, from: a.master) }
                if fds[i].revents & Int16(POLLOUT) != 0 { writeFrom(&bToA, to: a.master) }
            }
            if let i = indexB, let b = endB {
                if fds[i].revents & Int16(POLLIN) != 0 { readInto(&bToA, from: b.master) }
                if fds[i].revents & Int16(POLLOUT) != 0 { writeFrom(&aToB, to: b.master) }
            }
            lock.unlock()
        }
    }
}
