@testable import LinkCore
import Testing

/// One end of the pair.
enum Side: Int, CaseIterable, Sendable, CustomStringConvertible {
    case a = 0, b = 1
    var other: Side { self == .a ? .b : .a }
    var description: String { self == .a ? "A" : "B" }
}

/// What the cable does with one frame.
enum FrameFate {
    case deliver
    case drop
    /// Kept aside until `releaseHeld(from:)`.
    case hold
    /// Delivered as these bytes instead (a corrupted copy, say).
    case replace([UInt8])
}

struct TimedEvent {
    var time: LinkTime
    var side: Side
    var event: LinkEvent
}

/// Bytes an application wants to write on a stream, pushed as send space allows.
struct Outgoing {
    var data: [UInt8]
    var offset = 0
    var finish: Bool
    var finished = false
}

/// Two `Link`s joined by a perfect, instantaneous cable with a virtual clock, after quinn-proto's
/// test `Pair`. A allocates odd stream IDs, B even ones. Every complete frame passes through
/// `filter` (which may drop, hold or corrupt it) and the `outage` window (which drops it). When
/// nothing moves, the clock jumps to the earliest `nextDeadline`. A tiny application on each
/// side accepts streams, records what arrives and consumes it (unless the stream is stalled).
final class Pair {
    var a: Link
    var b: Link
    var now = LinkTime.zero

    /// Sees every complete encoded frame (including its 0x00) from `side`, at `now`.
    var filter: ((Side, [UInt8], LinkTime) -> FrameFate)?
    /// Frames sent in this window are lost (a cable cut), in both directions.
    var outage: (from: LinkTime, until: LinkTime)?
    /// Largest `maxBytes` for one `pollTransmit`.
    var pollLimit = 1 << 16
    /// When set, the line runs at this many bytes per second in each direction (full duplex):
    /// a step advances the clock by the time its longer chunk takes; use with `pollLimit`
    /// about `preferredQueueBelow`.
    var clockBytesPerSecond: Int?
    /// Raw bytes as they leave each Link, with their offset in that Link's output.
    var tap: ((Side, [UInt8], Int) -> Void)?
    /// Called after every step, for invariants that must hold throughout.
    var invariant: ((Pair) -> Void)?

    var autoAccept = true
    /// Streams whose reader does not consume: their bytes stay unconsumed in the Link.
    var stalled: [Set<StreamID>] = [[], []]
    var heldForConsume: [[StreamID: Int]] = [[:], [:]]
    /// Streams this side's application refused; data still queued for them is ignored.
    var refused: [Set<StreamID>] = [[], []]

    private(set) var log: [TimedEvent] = []
    /// Every event but `.received`, by side, for quick `has` checks.
    private var seen: [Set<String>] = [[], []]
    private(set) var received: [[StreamID: [UInt8]]] = [[:], [:]]
    private(set) var outbox: [[StreamID: Outgoing]] = [[:], [:]]
    private(set) var held: [[[UInt8]]] = [[], []]
    private(set) var dropped = [0, 0]
    private(set) var bytesSent = [0, 0]
    private var partial: [[UInt8]] = [[], []]
    private(set) var steps = 0

    init(a: Link, b: Link) {
        self.a = a
        self.b = b
    }

    /// A pair with unpaced lines (lineBytesPerSecond 0); `configure` adjusts either side.
    convenience init(seed: UInt64 = 1, configure: (Side, inout LinkConfiguration) -> Void = { _, _ in }) {
        var ca = LinkConfiguration(usesOddStreamIDs: true, lineBytesPerSecond: 0, seed: seed &* 2 &+ 1)
        var cb = LinkConfiguration(usesOddStreamIDs: false, lineBytesPerSecond: 0, seed: seed &* 2 &+ 2)
        configure(.a, &ca)
        configure(.b, &cb)
        self.init(a: Link(configuration: ca), b: Link(configuration: cb))
    }

    subscript(side: Side) -> Link {
        get { side == .a ? a : b }
        _modify {
            if side == .a { yield &a } else { yield &b }
        }
    }

    // MARK: Application

    func events(_ side: Side) -> [LinkEvent] { log.filter { $0.side == side }.map(\.event) }

    func timedEvents(_ side: Side) -> [TimedEvent] { log.filter { $0.side == side } }

    func has(_ side: Side, _ event: LinkEvent) -> Bool {
        if case .received = event { return log.contains { $0.side == side && $0.event == event } }
        return seen[side.rawValue].contains(String(describing: event))
    }

    func time(of event: LinkEvent, on side: Side) -> LinkTime? {
        log.first { $0.side == side && $0.event == event }?.time
    }

    func receivedBytes(_ side: Side, _ id: StreamID) -> [UInt8] { received[side.rawValue][id] ?? [] }

    func receivedCount(_ side: Side, _ id: StreamID) -> Int { received[side.rawValue][id]?.count ?? 0 }

    /// Queues `data` for `id` on `side`; the pair pushes it into the Link as space allows, then
    /// finishes the stream if asked.
    func write(_ side: Side, _ id: StreamID, _ data: [UInt8], finish: Bool = false) {
        var o = outbox[side.rawValue][id] ?? Outgoing(data: [], finish: false)
        o.data += data
        o.finish = o.finish || finish
        outbox[side.rawValue][id] = o
        push(side)
    }

    func allWritten(_ side: Side, _ id: StreamID) -> Bool {
        guard let o = outbox[side.rawValue][id] else { return true }
        return o.offset == o.data.count && (!o.finish || o.finished)
    }

    func open(_ side: Side, target: String = "") throws -> StreamID {
        try self[side].openStream(target: target)
    }

    /// Consumes what a stalled reader held, and un-stalls it.
    func resume(_ side: Side, _ id: StreamID) {
        stalled[side.rawValue].remove(id)
        if let n = heldForConsume[side.rawValue].removeValue(forKey: id), n > 0 {
            self[side].consumed(n, on: id)
        }
    }

    func refuse(_ side: Side, _ id: StreamID, _ reason: OpenRefusal) throws {
        try self[side].refuse(id, reason: reason)
        refused[side.rawValue].insert(id)
    }

    /// Replaces one side by another Link (a restart); its application state is forgotten.
    func replace(_ side: Side, with link: Link) {
        self[side] = link
        received[side.rawValue] = [:]
        outbox[side.rawValue] = [:]
        stalled[side.rawValue] = []
        heldForConsume[side.rawValue] = [:]
        partial[side.rawValue] = []
    }

    private func push(_ side: Side) {
        let s = side.rawValue
        for id in outbox[s].keys.sorted() {
            guard var o = outbox[s][id] else { continue }
            guard self[side].inspection.stream(id) != nil else {
                outbox[s][id] = nil
                continue
            }
            if o.offset < o.data.count {
                guard let n = try? self[side].send(o.data[o.offset...], on: id) else {
                    outbox[s][id] = nil
                    continue
                }
                o.offset += n
            }
            if o.offset == o.data.count && o.finish && !o.finished {
                try? self[side].finish(id)
                o.finished = true
            }
            outbox[s][id] = o
        }
    }

    private func drainEvents(_ side: Side) {
        let s = side.rawValue
        while let event = self[side].pollEvent() {
            log.append(TimedEvent(time: now, side: side, event: event))
            if case .received = event {} else { seen[s].insert(String(describing: event)) }
            switch event {
            case .streamOpened(let id, _):
                if autoAccept { try? self[side].accept(id) }
            case .received(let id, let bytes):
                if refused[s].contains(id) { continue }
                received[s][id, default: []] += bytes
                if stalled[s].contains(id) {
                    heldForConsume[s][id, default: 0] += bytes.count
                } else {
                    self[side].consumed(bytes.count, on: id)
                }
            default:
                break
            }
        }
    }

    // MARK: The cable

    private func carry(_ bytes: [UInt8], from side: Side) {
        let s = side.rawValue
        partial[s] += bytes
        guard let last = partial[s].lastIndex(of: 0) else { return }
        let complete = Array(partial[s][...last])
        partial[s].removeFirst(last + 1)
        if filter == nil && outage == nil {
            self[side.other].receive(complete, now: now)
            return
        }
        var deliver: [UInt8] = []
        for (_, frame) in splitFrames(complete) {
            if let o = outage, now >= o.from, now < o.until {
                dropped[s] += 1
                continue
            }
            switch filter?(side, frame, now) ?? .deliver {
            case .deliver: deliver += frame
            case .drop: dropped[s] += 1
            case .hold: held[s].append(frame)
            case .replace(let other): deliver += other
            }
        }
        if !deliver.isEmpty { self[side.other].receive(deliver, now: now) }
    }

    /// Delivers the frames held from `side`, in order.
    func releaseHeld(from side: Side) {
        let frames = held[side.rawValue]
        held[side.rawValue] = []
        for f in frames { self[side.other].receive(f, now: now) }
        drainEvents(side.other)
    }

    /// Cuts the cable for `duration` from now.
    func cut(for duration: LinkDuration) {
        outage = (now, now + duration)
    }

    // MARK: Driving

    /// One round: applications write, each side transmits, timers that are due fire, events are
    /// handled. Returns whether any bytes moved.
    @discardableResult
    func step() -> Bool {
        steps += 1
        var moved = false
        if let rate = clockBytesPerSecond, rate > 0 {
            // A full-duplex line of finite speed: both ends transmit at once, and the bytes
            // arrive when the longer of the two chunks has been sent.
            var chunks: [[UInt8]] = []
            for side in Side.allCases {
                push(side)
                chunks.append(self[side].pollTransmit(maxBytes: pollLimit, now: now))
            }
            let longest = max(chunks[0].count, chunks[1].count)
            now = now + LinkDuration(nanoseconds: Int64(longest) * 1_000_000_000 / Int64(rate))
            for side in Side.allCases where !chunks[side.rawValue].isEmpty {
                moved = true
                let bytes = chunks[side.rawValue]
                tap?(side, bytes, bytesSent[side.rawValue])
                bytesSent[side.rawValue] += bytes.count
                carry(bytes, from: side)
            }
            drainEvents(.a)
            drainEvents(.b)
        } else {
            // An instantaneous line: what one end sends, the other has at once and may answer
            // within the same step.
            for side in Side.allCases {
                push(side)
                let bytes = self[side].pollTransmit(maxBytes: pollLimit, now: now)
                if !bytes.isEmpty {
                    moved = true
                    tap?(side, bytes, bytesSent[side.rawValue])
                    bytesSent[side.rawValue] += bytes.count
                    carry(bytes, from: side)
                }
                drainEvents(.a)
                drainEvents(.b)
            }
        }
        fireTimers()
        invariant?(self)
        return moved
    }

    func fireTimers() {
        for side in Side.allCases {
            if let d = self[side].nextDeadline, d <= now {
                self[side].handleTimeout(now: now)
            }
        }
        drainEvents(.a)
        drainEvents(.b)
    }

    var earliestDeadline: LinkTime? {
        [a.nextDeadline, b.nextDeadline].compactMap { $0 }.min()
    }

    /// Runs until `condition` holds, jumping the clock to the next deadline when idle. Gives up
    /// (returning false) after `timeLimit` of virtual time or when nothing can happen any more.
    @discardableResult
    func run(timeLimit: LinkDuration = .seconds(300), maxSteps: Int = 2_000_000,
             until condition: (Pair) -> Bool) -> Bool {
        let limit = now + timeLimit
        var stuck = 0
        var taken = 0
        while !condition(self) {
            taken += 1
            if taken > maxSteps {
                Issue.record("Pair.run: no progress after \(maxSteps) steps at \(now)")
                return false
            }
            if step() {
                stuck = 0
                continue
            }
            if condition(self) { return true }
            // Idle: jump to the next deadline, or give up at the limit.
            guard let next = earliestDeadline else {
                if now >= limit { return false }
                // Nothing will ever happen on its own; only a time-based outage may end.
                if let o = outage, o.until > now, o.until <= limit {
                    now = o.until
                    continue
                }
                return false
            }
            if next > now {
                if next > limit {
                    now = max(now, limit)
                    return condition(self)
                }
                now = next
                fireTimers()
            } else {
                stuck += 1
                if stuck > 1000 {
                    Issue.record("Pair.run: a deadline at \(next) stays due at \(now) but nothing happens")
                    return false
                }
            }
        }
        return true
    }

    /// Runs for `duration` of virtual time (or until `stop` holds).
    func run(for duration: LinkDuration) {
        let end = now + duration
        _ = run(timeLimit: duration) { $0.now >= end }
        if now < end { now = end }
        fireTimers()
    }

    /// Runs the handshake; returns whether both ends are established.
    @discardableResult
    func establish(timeLimit: LinkDuration = .seconds(30)) -> Bool {
        run(timeLimit: timeLimit) { $0.a.isEstablished && $0.b.isEstablished }
    }

    /// Runs until every stream written with `finish` has been fully delivered and both Links are
    /// quiescent.
    @discardableResult
    func settle(timeLimit: LinkDuration = .seconds(300)) -> Bool {
        run(timeLimit: timeLimit) { p in
            Side.allCases.allSatisfy { side in
                p.outbox[side.rawValue].keys.allSatisfy { p.allWritten(side, $0) } && p[side].isQuiescent
            }
        }
    }
}

extension Pair {
    /// Opens a stream from `side` and runs until the opener knows it was accepted.
    func openAccepted(from side: Side, target: String = "") throws -> StreamID {
        let id = try open(side, target: target)
        let ok = run(timeLimit: .seconds(30)) { $0.has(side, .openAccepted(id)) }
        #expect(ok, "stream \(id) from \(side) not accepted")
        return id
    }

    /// Runs until both Links have nothing left to send or acknowledge.
    @discardableResult
    func quiesce(timeLimit: LinkDuration = .seconds(30)) -> Bool {
        run(timeLimit: timeLimit) { p in
            Side.allCases.allSatisfy { p[$0].isQuiescent && p[$0].inspection.outstandingFrames.isEmpty }
        }
    }
}
