@testable import LinkCore
import Testing

/// LISTEN, LISTEN-OK, LISTEN-REFUSED and UNLISTEN (docs/protocol.md §5.6): one end asks the
/// other to listen for it, as `ssh -R` does.
@Suite("Remote listeners")
struct RemoteListenTests {
    @Test("request, grant, then streams the far end opens ask for the requested target")
    func granted() throws {
        let pair = Pair(seed: 71)
        #expect(pair.establish())
        let id = try pair.a.requestListen(bind: "127.0.0.1", port: 8080, target: "localhost:80")
        #expect(pair.run { $0.has(.b, .listenRequested(id, bind: "127.0.0.1", port: 8080, target: "localhost:80")) })
        try pair.b.acceptListen(id, port: 8080)
        #expect(pair.run { $0.has(.a, .listenAccepted(id, port: 8080)) })
        #expect(pair.a.listenRequests == [id: true])
        // What B does with it is the application's business; a stream to the target works.
        let stream = try pair.open(.b, target: "localhost:80")
        pair.write(.b, stream, pattern(5_000, seed: 1), finish: true)
        #expect(pair.run { $0.has(.a, .remoteFinished(stream)) })
        #expect(pair.has(.a, .streamOpened(stream, target: "localhost:80")))
    }

    @Test("a refusal reaches the requester with its reason",
          arguments: [ListenRefusal.notAllowed, .addressInUse, .cannotListen, .tooMany])
    func refused(reason: ListenRefusal) throws {
        let pair = Pair(seed: 72)
        #expect(pair.establish())
        let id = try pair.a.requestListen(bind: "0.0.0.0", port: 22, target: "x:1")
        #expect(pair.run { $0.has(.b, .listenRequested(id, bind: "0.0.0.0", port: 22, target: "x:1")) })
        try pair.b.refuseListen(id, reason: reason)
        #expect(pair.run { $0.has(.a, .listenRefused(id, reason)) })
        #expect(pair.a.listenRequests.isEmpty)
    }

    @Test("the requester cancels: the far end is told to close its listener")
    func cancelled() throws {
        let pair = Pair(seed: 73)
        #expect(pair.establish())
        let id = try pair.a.requestListen(bind: "127.0.0.1", port: 0, target: "t:1")
        #expect(pair.run { $0.has(.b, .listenRequested(id, bind: "127.0.0.1", port: 0, target: "t:1")) })
        try pair.b.acceptListen(id, port: 40_000)
        #expect(pair.run { $0.has(.a, .listenAccepted(id, port: 40_000)) })
        try pair.a.cancelListen(id)
        #expect(pair.run { $0.has(.b, .listenCancelled(id)) })
        #expect(throws: LinkError.unknownListen(id)) { try pair.b.acceptListen(id, port: 1) }
    }

    @Test("listeners belong to the session: a restart ends them on both sides")
    func restart() throws {
        let pair = Pair(seed: 74)
        #expect(pair.establish())
        let id = try pair.a.requestListen(bind: "127.0.0.1", port: 9000, target: "t:1")
        #expect(pair.run { $0.has(.b, .listenRequested(id, bind: "127.0.0.1", port: 9000, target: "t:1")) })
        try pair.b.acceptListen(id, port: 9000)
        #expect(pair.run { $0.has(.a, .listenAccepted(id, port: 9000)) })
        var configuration = pair.b.configuration
        configuration.seed &+= 5
        pair.replace(.b, with: Link(configuration: configuration))
        #expect(pair.run { $0.has(.a, .listenRefused(id, .sessionEnded)) })
        #expect(pair.a.listenRequests.isEmpty)
        // The old B held it; the new B never heard of it. A asks again on the new session.
        #expect(pair.establish())
        let again = try pair.a.requestListen(bind: "127.0.0.1", port: 9000, target: "t:1")
        #expect(pair.run { $0.has(.b, .listenRequested(again, bind: "127.0.0.1", port: 9000, target: "t:1")) })
    }

    @Test("a peer that asks for more than maxPeerListens is refused with tooMany")
    func flood() throws {
        let pair = Pair(seed: 75) { side, configuration in
            if side == .b { configuration.maxPeerListens = 4 }
        }
        #expect(pair.establish())
        let ids = try (0..<6).map { try pair.a.requestListen(bind: "127.0.0.1", port: UInt16(1000 + $0), target: "t:1") }
        #expect(pair.run { run in ids.suffix(2).allSatisfy { run.has(.a, .listenRefused($0, .tooMany)) } })
        #expect(pair.b.inspection.peerListens.count == 4)
    }

    @Test("a LISTEN for an ID already held is a protocol violation")
    func duplicate() throws {
        let pair = Pair(seed: 76)
        #expect(pair.establish())
        let id = try pair.a.requestListen(bind: "127.0.0.1", port: 1, target: "t:1")
        #expect(pair.run { $0.has(.b, .listenRequested(id, bind: "127.0.0.1", port: 1, target: "t:1")) })
        // A second request under the same number, as a broken or hostile peer would send it.
        pair.a.control.append(.listen(id, bind: "127.0.0.1", port: 2, target: "t:2"))
        #expect(pair.run { $0.b.statistics.protocolViolations > 0 })
    }

    @Test("before the handshake, or towards a peer that lacks the capability, a request is refused locally")
    func unavailable() throws {
        let pair = Pair(seed: 77)
        #expect(throws: LinkError.notEstablished) { try pair.a.requestListen(bind: "127.0.0.1", port: 1, target: "t:1") }
        pair.filter = { side, frame, _ in
            // B plays an older peer whose HELLO offers no capabilities.
            if side == .b, let f = InspectedFrame(encoded: frame), f.isHello,
               case .success(var hello) = Hello.decode(f.content[1..<(f.content.count - 4)]) {
                hello.capabilities = 0
                return .replace(helloFrame(hello))
            }
            return .deliver
        }
        #expect(pair.establish())
        #expect(throws: LinkError.peerLacks("remote forwards (-R)")) {
            try pair.a.requestListen(bind: "127.0.0.1", port: 1, target: "t:1")
        }
    }

    @Test("the messages round-trip through the codec")
    func codec() throws {
        let messages: [Message] = [
            .listen(ListenID(7), bind: "::1", port: 2222, target: "board.local:22"),
            .listen(ListenID(0xFFFF), bind: "", port: 0, target: ""),
            .listenOK(ListenID(7), port: 41_000), .listenRefused(ListenID(7), .addressInUse), .unlisten(ListenID(7)),
        ]
        var body: [UInt8] = []
        for message in messages {
            let before = body.count
            message.encode(into: &body)
            #expect(body.count - before == message.encodedLength)
        }
        var parser = MessageParser(body[...])
        var parsed: [Message] = []
        while let message = try parser.next() { parsed.append(message) }
        #expect(parsed == messages)
    }
}
