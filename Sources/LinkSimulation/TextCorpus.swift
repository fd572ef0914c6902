import LinkCore

/// Text of the kinds people carry over a serial link and that compress (docs/protocol.md §5.7):
/// log lines, JSON records, HTML rows and source code, mixed in runs, with numbers, ids and
/// words drawn at random so that it shrinks about as much as real text does (3–5× with deflate),
/// not as much as a repeated line would. Deterministic for a seed, so a receiver can regenerate
/// what it should get.
public enum TextCorpus {
    public static func generate(count: Int, seed: UInt64) -> [UInt8] {
        var g = Generator(state: seed &* 0x9E37_79B9_7F4A_7C15 &+ 0x2545_F491_4F6C_DD1D)
        var out: [UInt8] = []
        out.reserveCapacity(count + 512)
        var line = 0
        while out.count < count {
            let kind = g.below(4)
            for _ in 0..<(4 + g.below(20)) {
                switch kind {
                case 0: logLine(&g, line, into: &out)
                case 1: jsonRecord(&g, line, into: &out)
                case 2: htmlRow(&g, line, into: &out)
                default: codeLine(&g, into: &out)
                }
                line += 1
            }
        }
        return Array(out.prefix(count))
    }

    static let words = ["sensor", "gateway", "request", "battery", "north", "south", "roof", "pump", "valve",
                        "relay", "modem", "station", "buffer", "window", "frame", "packet", "signal", "level",
                        "alarm", "status", "config", "update", "device", "channel", "reading", "offset"]
    static let levels = ["INFO ", "DEBUG", "WARN ", "INFO ", "INFO ", "ERROR"]
    static let paths = ["/api/v1/items", "/api/v1/sensors", "/status", "/api/v2/readings", "/login", "/static/app.js"]
    static let code = [
        "    let %w = try await client.fetch(%w: %n)",
        "    guard let %w = %wMap[id] else { return nil }",
        "    for %w in %ws where %w.isActive {",
        "        total += %w.count * %n",
        "    }",
        "    // Keep the %w until the %w has been read.",
        "func %w(_ %w: Int, %w: String) -> Bool {",
        "    return %w.%w(%n) == %w",
        "}",
        "    if %w > %n { %w = %w - %n }",
        "struct %W: Codable { var %w: Int; var %w: String }",
    ]

    static func logLine(_ g: inout Generator, _ n: Int, into out: inout [UInt8]) {
        let s = n % 60, ms = g.below(1000)
        out.append(contentsOf: "2026-12-01T17:\(two((n / 60) % 60)):\(two(s)).\(three(ms))Z ".utf8)
        out.append(contentsOf: levels[g.below(levels.count)].utf8)
        out.append(contentsOf: " [worker-\(g.below(8))] \(g.pick(words)) id=\(hex(&g)) ".utf8)
        out.append(contentsOf: "path=\(g.pick(paths))/\(g.below(5000)) status=\([200, 200, 200, 304, 404, 500][g.below(6)]) ".utf8)
        out.append(contentsOf: "duration_ms=\(g.below(400)).\(g.below(10)) bytes=\(g.below(20000))\n".utf8)
    }

    static func jsonRecord(_ g: inout Generator, _ n: Int, into out: inout [UInt8]) {
        out.append(contentsOf: "{\"id\": \(n), \"name\": \"\(g.pick(words))-\(g.below(100))\", ".utf8)
        out.append(contentsOf: "\"temperature\": \(g.below(40)).\(g.below(10)), \"humidity\": 0.\(two(g.below(100))), ".utf8)
        out.append(contentsOf: "\"tags\": [\"\(g.pick(words))\", \"\(g.pick(words))\"], ".utf8)
        out.append(contentsOf: "\"ok\": \(g.below(5) != 0 ? "true" : "false"), \"seq\": \"\(hex(&g))\"},\n".utf8)
    }

    static func htmlRow(_ g: inout Generator, _ n: Int, into out: inout [UInt8]) {
        out.append(contentsOf: "<tr class=\"\(n % 2 == 0 ? "even" : "odd")\"><td class=\"name\">".utf8)
        out.append(contentsOf: "\(g.pick(words).capitalized) \(g.below(10000))</td><td class=\"price\">".utf8)
        out.append(contentsOf: "\(g.below(500)).\(two(g.below(100)))</td><td><a href=\"/items/\(g.below(10000))\">".utf8)
        out.append(contentsOf: "view</a></td></tr>\n".utf8)
    }

    static func codeLine(_ g: inout Generator, into out: inout [UInt8]) {
        var text = ""
        var rest = Substring(code[g.below(code.count)])
        while let i = rest.firstIndex(of: "%") {
            text += rest[..<i]
            let kind = rest[rest.index(after: i)]
            rest = rest[rest.index(i, offsetBy: 2)...]
            switch kind {
            case "w": text += g.pick(words)
            case "W": text += g.pick(words).capitalized
            default: text += String(g.below(1000))
            }
        }
        text += rest
        out.append(contentsOf: text.utf8)
        out.append(10)
    }

    static func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
    static func three(_ v: Int) -> String { v < 10 ? "00\(v)" : v < 100 ? "0\(v)" : "\(v)" }
    static func hex(_ g: inout Generator) -> String {
        let v = g.next() & 0xFFFF_FFFF
        let digits = String(v, radix: 16)
        return String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// The core's SplitMix64, with the two draws the corpus needs.
    struct Generator {
        var random: SplitMix64
        init(state: UInt64) { random = SplitMix64(seed: state) }
        mutating func next() -> UInt64 { random.next() }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick(_ items: [String]) -> String { items[below(items.count)] }
    }
}

private extension String {
    var capitalized: String { prefix(1).uppercased() + dropFirst() }
}
