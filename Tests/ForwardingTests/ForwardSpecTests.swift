import Forwarding
import Testing

/// `-L`, `-R` and `-D` read exactly as OpenSSH reads them.
@Suite("Forward specs")
struct ForwardSpecTests {
    @Test("-L forms", arguments: [
        ("2222:localhost:22", Forward.local(listen: Endpoint(host: "127.0.0.1", port: 2222), target: Endpoint(host: "localhost", port: 22))),
        ("0.0.0.0:8080:board:80", .local(listen: Endpoint(host: "0.0.0.0", port: 8080), target: Endpoint(host: "board", port: 80))),
        ("*:8080:board:80", .local(listen: Endpoint(host: "0.0.0.0", port: 8080), target: Endpoint(host: "board", port: 80))),
        (":8080:board:80", .local(listen: Endpoint(host: "0.0.0.0", port: 8080), target: Endpoint(host: "board", port: 80))),
        ("[::1]:8080:[fd00::2]:22", .local(listen: Endpoint(host: "::1", port: 8080), target: Endpoint(host: "fd00::2", port: 22))),
        ("localhost:0:10.0.0.5:502", .local(listen: Endpoint(host: "localhost", port: 0), target: Endpoint(host: "10.0.0.5", port: 502))),
    ])
    func local(text: String, expected: Forward) throws {
        #expect(try ForwardSpec.local(text) == expected)
    }

    @Test("-R and -D forms")
    func remoteAndDynamic() throws {
        #expect(try ForwardSpec.remote("9000:localhost:8000")
                == .remote(listen: Endpoint(host: "127.0.0.1", port: 9000), target: Endpoint(host: "localhost", port: 8000)))
        #expect(try ForwardSpec.dynamic("1080") == .dynamic(listen: Endpoint(host: "127.0.0.1", port: 1080)))
        #expect(try ForwardSpec.dynamic("[::1]:1080") == .dynamic(listen: Endpoint(host: "::1", port: 1080)))
        #expect(try ForwardSpec.dynamic("*:1080") == .dynamic(listen: Endpoint(host: "0.0.0.0", port: 1080)))
    }

    @Test("bad specs name the form", arguments: ["", "22", "a:b:c", "2222:localhost", "2222:localhost:0", "70000:h:22",
                                                  "2222::22", "[::1:2222:h:22", "[::1]x:2222:h:22", "1:2:3:4:5", "2222:two words:22"])
    func badLocal(text: String) {
        #expect(throws: ForwardSpecError.self) { try ForwardSpec.local(text) }
        do {
            _ = try ForwardSpec.local(text)
        } catch {
            #expect(error.description.contains("-L takes [bind_address:]port:host:hostport"), "\(error)")
        }
    }

    @Test("bad -D specs", arguments: ["", "x", "1:2:3", "65536"])
    func badDynamic(text: String) {
        #expect(throws: ForwardSpecError.self) { try ForwardSpec.dynamic(text) }
    }

    @Test("a forward prints the way it is typed")
    func descriptions() throws {
        #expect(try ForwardSpec.local("[::1]:8080:[fd00::2]:22").description == "-L [::1]:8080:[fd00::2]:22")
        #expect(try ForwardSpec.remote("9000:localhost:8000").description == "-R 127.0.0.1:9000:localhost:8000")
        #expect(try ForwardSpec.dynamic("1080").description == "-D 127.0.0.1:1080")
    }

    @Test("OPEN targets parse back", arguments: ["localhost:22", "[::1]:80", "10.0.0.1:502"])
    func endpoints(text: String) throws {
        let endpoint = try #require(Endpoint(parsing: text))
        #expect(endpoint.description == text)
        #expect(Endpoint(parsing: "nohost") == nil && Endpoint(parsing: ":22") == nil && Endpoint(parsing: "h:99999") == nil)
    }
}

/// `--allow` and the connect-side policy: secure by default, names as written, addresses checked
/// against what a name resolves to.
@Suite("Target policy")
struct TargetPolicyTests {
    @Test("rule forms", arguments: [
        ("localhost:22", "localhost:22"), ("db.local:*", "db.local:*"), ("*:443", "*:443"), ("any", "any"),
        ("10.0.0.0/8:22", "10.0.0.0/8:22"), ("[fd00::/8]:*", "[fd00::/8]:*"), ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("*:*", "any"), ("[::1]:22", "[::1]:22"),
    ])
    func forms(text: String, canonical: String) throws {
        #expect(try AllowRule.parse(text).description == canonical)
    }

    @Test("bad rules", arguments: ["", "host", "host:0", "host:http", "10.0.0.0/33:22", "10.0.0/8:22", "a b:22", ":22",
                                   "*.example.com:443"])
    func badRules(text: String) {
        #expect(throws: ForwardSpecError.self) { try AllowRule.parse(text) }
    }

    @Test("nothing is allowed by default")
    func denyByDefault() {
        #expect(TargetPolicy().verdict(for: Endpoint(host: "localhost", port: 22)) == .denied)
    }

    @Test("the default target and the targets of -R forwards are allowed, names as written")
    func ownTargets() {
        let policy = TargetPolicy(defaultTarget: Endpoint(host: "localhost", port: 22),
                                  forwardTargets: [Endpoint(host: "Web.Local.", port: 80)])
        #expect(policy.verdict(for: Endpoint(host: "LOCALHOST", port: 22)) == .allowed)
        #expect(policy.verdict(for: Endpoint(host: "web.local", port: 80)) == .allowed)
        #expect(policy.verdict(for: Endpoint(host: "localhost", port: 23)) == .denied)
        #expect(policy.verdict(for: Endpoint(host: "127.0.0.1", port: 22)) == .denied)  // as written
    }

    @Test("name, port and any rules")
    func rules() throws {
        let policy = TargetPolicy(rules: [try AllowRule.parse("db:*"), try AllowRule.parse("*:443")])
        #expect(policy.verdict(for: Endpoint(host: "db", port: 5432)) == .allowed)
        #expect(policy.verdict(for: Endpoint(host: "example.org", port: 443)) == .allowed)
        #expect(policy.verdict(for: Endpoint(host: "example.org", port: 80)) == .denied)
        #expect(TargetPolicy(rules: [.any]).verdict(for: Endpoint(host: "x", port: 1)) == .allowed)
    }

    @Test("address rules: literals are checked at once, names after resolving, and only matching addresses are used")
    func addresses() throws {
        let policy = TargetPolicy(rules: [try AllowRule.parse("10.0.0.0/8:22"), try AllowRule.parse("[fd00::/8]:*")])
        #expect(policy.verdict(for: Endpoint(host: "10.1.2.3", port: 22)) == .allowed)
        #expect(policy.verdict(for: Endpoint(host: "10.1.2.3", port: 23)) == .denied)
        #expect(policy.verdict(for: Endpoint(host: "192.168.1.1", port: 22)) == .denied)
        #expect(policy.verdict(for: Endpoint(host: "::ffff:10.9.9.9", port: 22)) == .allowed)
        #expect(policy.verdict(for: Endpoint(host: "fd00::5", port: 9)) == .allowed)
        // A name that merely looks like an allowed address is not one.
        let tricky = Endpoint(host: "10.0.0.1.evil.example", port: 22)
        #expect(policy.verdict(for: tricky) == .needsAddresses)
        let resolved = [IPAddress("203.0.113.7")!, IPAddress("10.0.0.9")!]
        #expect(policy.allowedAddresses(of: tricky, among: resolved) == [IPAddress("10.0.0.9")!])
        #expect(policy.allowedAddresses(of: tricky, among: [IPAddress("203.0.113.7")!]).isEmpty)
        #expect(TargetPolicy(rules: [try AllowRule.parse("db:22")]).verdict(for: tricky) == .denied)
    }

    @Test("IP addresses print and match by prefix")
    func ip() {
        #expect(IPAddress("10.1.2.3")?.description == "10.1.2.3")
        #expect(IPAddress("fd00::1")?.description == "fd00::1")
        #expect(IPAddress("::ffff:1.2.3.4")?.description == "1.2.3.4")
        #expect(IPAddress("host") == nil && IPAddress("1.2.3") == nil)
    }
}
