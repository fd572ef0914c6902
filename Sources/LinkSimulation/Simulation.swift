import LinkCore

/// Which end of the simulated cable.
public enum Side: Int, Sendable, CaseIterable {
    case a = 0, b = 1
    var other: Side { self == .a ? .b : .a }
}

/// What one stream of a scenario does. The opener opens it at `openAt`; each side sends its
/// bytes (deterministic pseudo-random content), then half-closes, unless told otherwise.
public struct StreamPlan: Sendable {
    public var opener: Side
    public var openAt: Double
    /// Bytes from opener to acceptor, and back.
    public var bytesOut: Int
    public var bytesBack: Int
    /// The acceptor refuses the open.
    public var refuse = false
    /// The opener resets the stream after sending this many bytes.
    public var resetAfter: Int? = nil
    /// The reader on this side does not consume until this time (a stalled consumer).
    public var stallReaderUntil: (side: Side, time: Double)? = nil
    /// The acceptor sends its bytes only after the opener's FIN (request, then response).
    public var respondAfterFin = false
    /// Each side writes its bytes one at a time, this many seconds apart (someone typing).
    public var typingInterval: Double? = nil

    public init(opener: Side, openAt: Double, bytesOut: Int, bytesBack: Int) {
        self.opener = opener
        self.openAt = openAt
        self.bytesOut = bytesOut
        self.bytesBack = bytesBack
    }
}

/// A complete simulated run: the cable, its faults, the streams, and an optional restart.
public struct Scenario: Sendable {
    public var seed: UInt64
    public var bytesPerSecond = 11_520
    public var faults = FaultModel()
    public var streams: [StreamPlan] = []
    /// Side that restarts (a new core with a new session) at the given time.
    public var restart: (side: Side, at: Double)? = nil
    /// Give up at this virtual time.
    public var timeLimit = 120.0
    /// Simulation step in seconds.
    public var step = 0.001
    public var configure: @Sendable (inout LinkConfiguration) -> Void = { _ in }
    /// Streams carry text (`TextCorpus`) rather than random bytes, so that compression has
    /// something to shrink.
    public var text = false

    public init(seed: UInt64) { self.seed = seed }
}

/// What a run produced, for checks and figures.
public struct SimulationResult: Sendable {
    public var failures: [String] = []
    public var finishedAt = 0.0
    public var payloadDelivered = [0, 0]
    /// Per stream: the time its last byte arrived at each side, and bytes delivered.
    public var streamCompletion: [Double?] = []
    public var streamBytes: [Int] = []
    public var statistics: [LinkStatistics] = []
    public var cable: [CableCounters] = []
    /// Largest bytes held by either core at once (receive + send buffers).
    public var peakBufferedBytes = 0
    /// Per stream, first-byte arrival time at the acceptor.
    public var firstByteAt: [Double?] = []
    /// Per stream, when the acceptor received the opener's FIN (all its data).
    public var dataCompletion: [Double?] = []
    /// Simulation steps in which each direction had nothing queued.
    public var idleSteps = [0, 0]
    public var passed: Bool { failures.isEmpty }
}

/// Per-end application state for one stream.
struct EndState {
    var id: StreamID?
    var sent = 0
    var received = 0
    var finishedSending = false
    var gotFin = false
    var closed = false
    var reset = false
    var refused = false
    var accepted = false
    var pendingConsume = 0
    var lost = false
    /// When a typing stream may write its next byte.
    var nextKeystrokeAt = 0.0
}

/// Two cores joined by a simulated cable with a virtual clock.
public struct Simulation {
    public let scenario: Scenario
    /// The text each stream carries each way, when the scenario is of text.
    var texts: [[[UInt8]]]?
    var links: [Link]
    var lines: [SimulatedLine]
    var ends: [[EndState]]
    var idMaps: [[StreamID: Int]]
    var time = 0.0
    var result = SimulationResult()
    var restarted = false

    public init(_ scenario: Scenario) {
        self.scenario = scenario
        var rng = SplitMix64(seed: scenario.seed)
        links = []
        for side in Side.allCases {
            var config = LinkConfiguration(usesOddStreamIDs: side == .a, lineBytesPerSecond: scenario.bytesPerSecond,
                                           seed: rng.next())
            scenario.configure(&config)
            links.append(Link(configuration: config))
        }
        lines = [SimulatedLine(bytesPerSecond: scenario.bytesPerSecond, faults: scenario.faults, seed: rng.next()),
                 SimulatedLine(bytesPerSecond: scenario.bytesPerSecond, faults: scenario.faults, seed: rng.next())]
        ends = Array(repeating: Array(repeating: EndState(), count: scenario.streams.count), count: 2)
        idMaps = [[:], [:]]
        result.streamCompletion = Array(repeating: nil, count: scenario.streams.count)
        result.firstByteAt = Array(repeating: nil, count: scenario.streams.count)
        result.dataCompletion = Array(repeating: nil, count: scenario.streams.count)
        result.streamBytes = Array(repeating: 0, count: scenario.streams.count)
        if scenario.text {
            texts = scenario.streams.indices.map { i in
                let plan = scenario.streams[i]
                return [plan.bytesOut, plan.bytesBack].enumerated().map { dir, count in
                    TextCorpus.generate(count: count, seed: scenario.seed &* 31 &+ UInt64(i * 2 + dir))
                }
            }
        }
    }

    /// Byte `index` of stream `stream` in direction `direction`: text or pseudo-random.
    func content(stream: Int, direction: Int, index: Int) -> UInt8 {
        if let texts { return texts[stream][direction][index] }
        return Simulation.contentByte(seed: scenario.seed, stream: stream, direction: direction, index: index)
    }

    /// Byte `i` of stream `s` in direction `dir` (0 = opener to acceptor).
    static func contentByte(seed: UInt64, stream: Int, direction: Int, index: Int) -> UInt8 {
        var x = seed &+ UInt64(stream) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(direction) &* 0xD1B5_4A32_D192_ED03
        x &+= UInt64(index / 8) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 31)) &* 0x94D0_49BB_1331_11EB
        x ^= x >> 29
        return UInt8(truncatingIfNeeded: x >> (8 * UInt64(index % 8)))
    }

    func now() -> LinkTime { LinkTime(nanoseconds: Int64((time * 1e9).rounded())) }

    func direction(of side: Side, stream i: Int) -> Int { scenario.streams[i].opener == side ? 0 : 1 }

    /// Runs to completion (or the time limit) and checks every stream.
    public mutating func run(observe: (SimulationResult) -> Void = { _ in }) -> SimulationResult {
        let faultEnd = max(scenario.faults.lastFaultEnds, scenario.restart?.at ?? 0)
        while time < scenario.timeLimit {
            stepOnce()
            observe(result)
            if allDone() && time > faultEnd { break }
        }
        result.finishedAt = time
        verifyOutcome()
        result.statistics = links.map(\.statistics)
        result.cable = lines.map(\.counters)
        return result
    }

    mutating func stepOnce() {
        // Restart: a fresh core on one side; its application state is gone.
        if let r = scenario.restart, !restarted, time >= r.at {
            restarted = true
            let s = r.side.rawValue
            var config = links[s].configuration
            config.seed = config.seed &+ 0x1234_5678
            links[s] = Link(configuration: config)
            for i in ends[s].indices where ends[s][i].id != nil || ends[1 - s][i].id != nil {
                ends[s][i].lost = true
                ends[1 - s][i].lost = true
            }
            idMaps[s] = [:]
        }
        // Applications act: open due streams, write what they can.
        for side in Side.allCases { appStep(side) }
        // Cores fill the lines up to what they want queued below.
        for side in Side.allCases {
            let s = side.rawValue
            let want = links[s].preferredQueueBelow - lines[s].queued
            if want > 0 {
                let bytes = links[s].pollTransmit(maxBytes: want, now: now())
                lines[s].enqueue(bytes)
            }
            if lines[s].queued == 0 { result.idleSteps[s] += 1 }
        }
        // Time passes: the lines carry bytes, timers fire.
        let dt = scenario.step
        time += dt
        for side in Side.allCases {
            var delivered: [UInt8] = []
            lines[side.rawValue].advance(by: dt, at: time, into: &delivered)
            if !delivered.isEmpty {
                links[side.other.rawValue].receive(delivered, now: now())
            }
        }
        for s in 0..<2 {
            if let d = links[s].nextDeadline, d <= now() { links[s].handleTimeout(now: now()) }
            drainEvents(Side(rawValue: s)!)
        }
        let buffered = links.map { $0.bufferedReceiveBytes + $0.bufferedSendBytes }.max() ?? 0
        result.peakBufferedBytes = max(result.peakBufferedBytes, buffered)
    }

    mutating func appStep(_ side: Side) {
        let s = side.rawValue
        for (i, plan) in scenario.streams.enumerated() {
            var e = ends[s][i]
            if e.lost { continue }
            // Opener opens at its time.
            if plan.opener == side && e.id == nil && !e.refused && time >= plan.openAt {
                if let id = try? links[s].openStream(target: "plan:\(i)") {
                    e.id = id
                    idMaps[s][id] = i
                }
            }
            guard let id = e.id, !e.reset, !e.refused, !e.closed else {
                ends[s][i] = e
                continue
            }
            // Consume held bytes once a stall ends.
            if e.pendingConsume > 0, !isStalled(plan, side) {
                links[s].consumed(e.pendingConsume, on: id)
                e.pendingConsume = 0
            }
            let dir = direction(of: side, stream: i)
            let total = dir == 0 ? plan.bytesOut : plan.bytesBack
            let mayStart = dir == 0 || !plan.respondAfterFin || e.gotFin
            if mayStart && !e.finishedSending && (dir == 1 ? e.accepted : true) {
                let limit = dir == 0 ? (plan.resetAfter ?? total) : total
                if e.sent < limit, plan.typingInterval == nil || time >= e.nextKeystrokeAt {
                    if let interval = plan.typingInterval { e.nextKeystrokeAt = time + interval }
                    let chunk = min(limit - e.sent, links[s].sendSpace(on: id), plan.typingInterval == nil ? 8192 : 1)
                    if chunk > 0 {
                        var bytes = [UInt8](repeating: 0, count: chunk)
                        for k in 0..<chunk {
                            bytes[k] = content(stream: i, direction: dir, index: e.sent + k)
                        }
                        let taken = (try? links[s].send(bytes, on: id)) ?? 0
                        e.sent += taken
                    }
                }
                if e.sent >= limit {
                    if dir == 0, plan.resetAfter != nil {
                        try? links[s].reset(id)
                        e.reset = true
                    } else {
                        try? links[s].finish(id)
                        e.finishedSending = true
                    }
                }
            }
            ends[s][i] = e
        }
    }

    func isStalled(_ plan: StreamPlan, _ side: Side) -> Bool {
        guard let st = plan.stallReaderUntil else { return false }
        return st.side == side && time < st.time
    }

    mutating func drainEvents(_ side: Side) {
        let s = side.rawValue
        while let event = links[s].pollEvent() {
            switch event {
            case .streamOpened(let id, let target):
                guard target.hasPrefix("plan:"), let i = Int(target.dropFirst(5)), i < scenario.streams.count else {
                    try? links[s].refuse(id, reason: .notAllowed)
                    result.failures.append("unexpected target \(target)")
                    continue
                }
                if scenario.streams[i].refuse {
                    try? links[s].refuse(id, reason: .connectionRefused)
                } else {
                    try? links[s].accept(id)
                    ends[s][i].accepted = true
                }
                ends[s][i].id = id
                idMaps[s][id] = i
            case .openAccepted(let id):
                if let i = idMaps[s][id] { ends[s][i].accepted = true }
            case .openRefused(let id, _):
                if let i = idMaps[s][id] {
                    ends[s][i].refused = true
                    if !scenario.streams[i].refuse { result.failures.append("stream \(i) refused unexpectedly") }
                }
            case .received(let id, let bytes):
                guard let i = idMaps[s][id] else {
                    result.failures.append("data for unknown stream \(id) at \(side)")
                    continue
                }
                let dir = 1 - direction(of: side, stream: i)
                let start = ends[s][i].received
                for (k, b) in bytes.enumerated()
                where start + k >= (dir == 0 ? scenario.streams[i].bytesOut : scenario.streams[i].bytesBack)
                    || b != content(stream: i, direction: dir, index: start + k) {
                    result.failures.append("stream \(i) dir \(dir): corrupt byte at offset \(start + k)")
                    break
                }
                if ends[s][i].received == 0 && dir == 0 { result.firstByteAt[i] = time }
                ends[s][i].received += bytes.count
                result.payloadDelivered[s] += bytes.count
                result.streamBytes[i] += bytes.count
                let expected = dir == 0 ? scenario.streams[i].bytesOut : scenario.streams[i].bytesBack
                if ends[s][i].received > expected {
                    result.failures.append("stream \(i) dir \(dir): \(ends[s][i].received) bytes, more than \(expected)")
                }
                if isStalled(scenario.streams[i], side) {
                    ends[s][i].pendingConsume += bytes.count
                } else {
                    links[s].consumed(bytes.count, on: id)
                }
            case .remoteFinished(let id):
                guard let i = idMaps[s][id] else { continue }
                ends[s][i].gotFin = true
                let dir = 1 - direction(of: side, stream: i)
                let expected = dir == 0 ? scenario.streams[i].bytesOut : scenario.streams[i].bytesBack
                if ends[s][i].received != expected {
                    result.failures.append("stream \(i) dir \(dir): FIN after \(ends[s][i].received) of \(expected) bytes")
                }
                if result.streamCompletion[i] == nil || result.streamCompletion[i]! < time { result.streamCompletion[i] = time }
                if dir == 0 { result.dataCompletion[i] = time }
            case .streamClosed(let id):
                if let i = idMaps[s][id] { ends[s][i].closed = true }
            case .streamReset(let id, let reason):
                guard let i = idMaps[s][id] else { continue }
                ends[s][i].reset = true
                if reason == .peerRestarted {
                    // Opened before this end learned of the restart: legitimately gone.
                    ends[s][i].lost = true
                    ends[1 - s][i].lost = true
                }
                let expected = scenario.streams[i].resetAfter != nil || ends[s][i].lost || reason == .peerRestarted
                if !expected { result.failures.append("stream \(i) reset unexpectedly at \(side): \(reason)") }
            case .writable, .established, .linkDown, .linkRestored:
                break
            case .listenRequested, .listenAccepted, .listenRefused, .listenCancelled:
                result.failures.append("unexpected \(event) at \(side): the simulation requests no listeners")
            case .linkLost:
                result.failures.append("link lost at \(side) (grace period ran out)")
            case .versionMismatch, .roleConflict, .protectionMismatch:
                result.failures.append("handshake failure \(event)")
            case .protocolViolation(let what):
                result.failures.append("protocol violation at \(side): \(what)")
            }
        }
    }

    /// Every stream has reached its end state at both sides, and the cores are quiet.
    func allDone() -> Bool {
        for (i, plan) in scenario.streams.enumerated() {
            if time < plan.openAt { return false }
            let o = ends[plan.opener.rawValue][i]
            let a = ends[plan.opener.other.rawValue][i]
            if o.lost || a.lost { continue }
            if plan.refuse { if !o.refused { return false } else { continue } }
            if plan.resetAfter != nil { if !(o.reset && (a.reset || a.id == nil)) { return false } else { continue } }
            if !(o.closed && a.closed) { return false }
        }
        return links.allSatisfy(\.isQuiescent)
    }

    mutating func verifyOutcome() {
        for (i, plan) in scenario.streams.enumerated() {
            let o = ends[plan.opener.rawValue][i]
            let a = ends[plan.opener.other.rawValue][i]
            if o.lost || a.lost { continue }
            if plan.refuse {
                if !o.refused { result.failures.append("stream \(i): refusal never reported") }
                continue
            }
            if plan.resetAfter != nil {
                if !o.reset { result.failures.append("stream \(i): reset not done") }
                continue
            }
            if !(o.closed && a.closed) || a.received != plan.bytesOut || o.received != plan.bytesBack {
                result.failures.append("stream \(i) stuck: out \(a.received)/\(plan.bytesOut) back \(o.received)/\(plan.bytesBack) closed \(o.closed)/\(a.closed)")
            }
        }
        for s in 0..<2 where !links[s].isQuiescent && result.failures.isEmpty && time >= scenario.timeLimit {
            result.failures.append("side \(s) not quiescent at the end")
        }
    }
}

