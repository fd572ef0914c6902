import Forwarding
import LinkCore
import NIOCore
import Testing

/// The SOCKS5 handshake as a value (RFC 1928, RFC 1929): every request form, and every way a
/// client can get it wrong.
@Suite("SOCKS5 negotiation")
struct SOCKS5Tests {
    /// Feeds `chunks` one after another and collects the steps that are not `.needMore`.
    private func run(_ chunks: [[UInt8]], credentials: SOCKS5Negotiation.Credentials? = nil)
        -> (steps: [SOCKS5Negotiation.Step], rest: [UInt8])
    {
        var negotiation = SOCKS5Negotiation(credentials: credentials)
        var buffer = ByteBuffer()
        var steps: [SOCKS5Negotiation.Step] = []
        for chunk in chunks {
            buffer.writeBytes(chunk)
            while true {
                let step = negotiation.feed(&buffer)
                if step == .needMore { break }
                steps.append(step)
                if case .fail = step { return (steps, buffer.readableBytesView.map { $0 }) }
                if case .connect = step { return (steps, buffer.readableBytesView.map { $0 }) }
            }
        }
        return (steps, buffer.readableBytesView.map { $0 })
    }

    static let greeting: [UInt8] = [5, 1, 0]

    @Test("CONNECT by IPv4, IPv6 and name; bytes after the request are kept for the stream")
    func connect() {
        let v4 = run([Self.greeting, [5, 1, 0, 1, 10, 0, 0, 7, 0x1F, 0x90, 0xAA]])
        #expect(v4.steps == [.reply([5, 0]), .connect(Endpoint(host: "10.0.0.7", port: 8080))])
        #expect(v4.rest == [0xAA])
        let v6 = run([Self.greeting, [5, 1, 0, 4] + [UInt8](repeating: 0, count: 15) + [1, 0, 22]])
        #expect(v6.steps.last == .connect(Endpoint(host: "::1", port: 22)))
        let name = run([Self.greeting, [5, 1, 0, 3, 9] + Array("board.lan".utf8) + [0, 80]])
        #expect(name.steps.last == .connect(Endpoint(host: "board.lan", port: 80)))
        #expect(Endpoint(host: "::1", port: 22).description == "[::1]:22")
    }

    @Test("byte by byte, and greeting and request in one piece, give the same answer")
    func fragmentation() {
        let whole = Self.greeting + [5, 1, 0, 3, 4] + Array("host".utf8) + [0x01, 0xBB]
        let oneByOne = run(whole.map { [$0] })
        let together = run([whole])
        #expect(oneByOne.steps == together.steps)
        #expect(together.steps == [.reply([5, 0]), .connect(Endpoint(host: "host", port: 443))])
    }

    @Test("BIND and UDP ASSOCIATE are refused with reply 0x07", arguments: [UInt8(2), 3])
    func unsupportedCommands(command: UInt8) {
        let result = run([Self.greeting, [5, command, 0, 1, 127, 0, 0, 1, 0, 80]])
        guard case .fail(let reply, let reason) = result.steps.last else {
            Issue.record("not refused: \(result.steps)")
            return
        }
        #expect(reply == SOCKS5Negotiation.reply(.commandNotSupported))
        #expect(reason.contains("only CONNECT"))
    }

    @Test("a name too long for an OPEN is refused at once, not cut off later")
    func longName() {
        let name = String(repeating: "a", count: 250)
        let result = run([Self.greeting, [5, 1, 0, 3, 250] + Array(name.utf8) + [0, 80]])
        #expect(result.steps.last == .fail(SOCKS5Negotiation.reply(.generalFailure), reason: "a host name longer than 249 bytes"))
    }

    @Test("an unknown address type gets 0x08")
    func addressType() {
        let result = run([Self.greeting, [5, 1, 0, 9, 1, 2, 3, 4, 0, 80]])
        #expect(result.steps.last == .fail(SOCKS5Negotiation.reply(.addressTypeNotSupported),
                                           reason: "address type 9 is not supported"))
    }

    @Test("malformed requests fail, with no crash and no connect",
          arguments: [[[4, 1, 0, 80, 127, 0, 0, 1, 0]], [[5, 0]], [[5, 1, 0], [4, 1, 0, 1]], [[5, 1, 0], [5, 1, 0, 3, 0, 0, 80]],
                      [[5, 1, 0], [5, 1, 0, 1, 1, 2, 3, 4, 0, 0]], [[5, 1, 0], [5, 1, 0, 3, 2, 0x20, 0x41, 0, 80]],
                      [[5, 1, 2]]] as [[[UInt8]]])
    func malformed(chunks: [[UInt8]]) {
        let result = run(chunks)
        #expect(!result.steps.contains { if case .connect = $0 { true } else { false } })
        #expect(result.steps.contains { if case .fail = $0 { true } else { false } }, "\(result.steps)")
    }

    @Test("username and password (RFC 1929): the right pair passes, anything else is refused")
    func authentication() {
        let credentials = SOCKS5Negotiation.Credentials(username: "board", password: "s3cret")
        func login(_ user: String, _ password: String) -> [UInt8] {
            [1, UInt8(user.utf8.count)] + Array(user.utf8) + [UInt8(password.utf8.count)] + Array(password.utf8)
        }
        let good = run([[5, 2, 0, 2], login("board", "s3cret"), [5, 1, 0, 1, 127, 0, 0, 1, 0, 22]], credentials: credentials)
        #expect(good.steps == [.reply([5, 2]), .reply([1, 0]), .connect(Endpoint(host: "127.0.0.1", port: 22))])
        let bad = run([[5, 1, 2], login("board", "guess")], credentials: credentials)
        #expect(bad.steps.last == .fail([1, 1], reason: "wrong username or password"))
        // A client that offers only "no authentication" to a server that requires a password.
        let none = run([[5, 1, 0]], credentials: credentials)
        #expect(none.steps.last == .fail([5, 0xFF], reason: "the client does not offer username/password authentication"))
    }

    @Test("OPEN refusals map to the reply codes")
    func replyCodes() {
        #expect(SOCKS5Negotiation.replyCode(for: .connectionRefused) == .connectionRefused)
        #expect(SOCKS5Negotiation.replyCode(for: .notAllowed) == .notAllowed)
        #expect(SOCKS5Negotiation.replyCode(for: .unreachable) == .hostUnreachable)
        #expect(SOCKS5Negotiation.replyCode(for: .timeout) == .ttlExpired)
        #expect(SOCKS5Negotiation.reply(.succeeded) == [5, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    }
}
