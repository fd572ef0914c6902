@testable import LinkCore
import Testing

@Suite("Keepalive, outages and the grace period")
struct SupervisionTests {
    @Test("an idle link sends PING after keepaliveInterval of silence, is answered, and stays up")
    func keepalive() throws {
        let pair = Pair(seed: 71)
        #expect(pair.establish())
        #expect(pair.quiesce())
        var pings: [(Side, LinkTime)] = []
        var pongs: [(Side, LinkTime)] = []
        pair.filter = { side, frame, now in
            if let f = InspectedFrame(encoded: frame), f.isControl {
                for (_, m) in f.messages {
                    if case .ping = m { pings.append((side, now)) }
                    if case .pong = m { pongs.append((side, now)) }
                }
            }
            return .deliver
        }
        let quietSince = max(pair.a.inspection.lastHeardAt!, pair.b.inspection.lastHeardAt!)
        let interval = pair.a.configuration.keepaliveInterval
        pair.run(for: .seconds(10))
        let first = try #require(pings.first)
        #expect(first.1 == quietSince + interval)
        #expect(pings.count >= 9)
        #expect(pongs.count >= pings.count - 1)
        // Pings go out at the keepalive rate, not faster.
        let fromA = pings.filter { $0.0 == .a }.map(\.1)
        for (x, y) in zip(fromA, fromA.dropFirst()) { #expect(y - x >= interval) }
        #expect(!pair.has(.a, .linkDown) && !pair.has(.b, .linkDown))
        #expect(pair.a.isEstablished && pair.b.isEstablished)
    }

    @Test(".linkDown after silenceTimeout, .linkRestored when heard again; streams held")
    func linkDownAndRestored() throws {
        let pair = Pair(seed: 72)
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        #expect(pair.quiesce())
        let lastHeard = pair.a.inspection.lastHeardAt!
        pair.cut(for: .seconds(8))
        #expect(pair.run(timeLimit: .seconds(20)) { $0.has(.a, .linkDown) && $0.has(.b, .linkDown) })
        let downAt = try #require(pair.time(of: .linkDown, on: .a))
        #expect(downAt == lastHeard + pair.a.configuration.silenceTimeout)
        #expect(pair.a.inspection.stream(id) != nil)
        #expect(pair.run(timeLimit: .seconds(20)) { $0.has(.a, .linkRestored) && $0.has(.b, .linkRestored) })
        let restoredAt = try #require(pair.time(of: .linkRestored, on: .a))
        #expect(restoredAt >= pair.outage!.until)
        #expect(restoredAt <= pair.outage!.until + .seconds(2))
        // Nothing was reset; the stream still works.
        #expect(!pair.log.contains { if case .streamReset = $0.event { return true } else { return false } })
        pair.write(.a, id, pattern(10_000, seed: 1), finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(id)) })
        #expect(pair.receivedBytes(.b, id) == pattern(10_000, seed: 1))
    }

    @Test("after gracePeriod of silence: every stream reset with .linkLost, then .linkLost; the link comes back")
    func gracePeriodExpires() throws {
        let grace = LinkDuration.seconds(12)
        let pair = Pair(seed: 73) { _, c in c.gracePeriod = grace }
        #expect(pair.establish())
        let s1 = try pair.openAccepted(from: .a)
        let s2 = try pair.openAccepted(from: .b)
        pair.write(.a, s1, pattern(500_000, seed: 2))
        #expect(pair.run { $0.receivedCount(.b, s1) > 50_000 })
        let oldSessions = (pair.a.session, pair.b.session)
        let lastHeard = pair.a.inspection.lastHeardAt!
        pair.cut(for: .seconds(60))
        #expect(pair.run(timeLimit: .seconds(30)) { $0.has(.a, .linkLost) && $0.has(.b, .linkLost) })
        for side in Side.allCases {
            let events = pair.events(side)
            let lostIndex = try #require(events.firstIndex(of: .linkLost))
            #expect(events[..<lostIndex].contains(.streamReset(s1, .linkLost)))
            #expect(events[..<lostIndex].contains(.streamReset(s2, .linkLost)))
            #expect(events[..<lostIndex].contains(.linkDown))
            #expect(pair[side].inspection.streamIDs.isEmpty)
            #expect(!pair[side].isEstablished)
            #expect(pair[side].bufferedSendBytes == 0 && pair[side].bufferedReceiveBytes == 0)
        }
        #expect(pair.time(of: .linkLost, on: .a) == lastHeard + grace)
        // A new session each, so a returning peer resets its side too.
        #expect(pair.a.session != oldSessions.0 && pair.b.session != oldSessions.1)
        // While the cable is cut, each end keeps offering HELLO.
        let ok = pair.run(timeLimit: .seconds(60)) { $0.a.isEstablished && $0.b.isEstablished }
        #expect(ok)
        #expect(pair.now >= pair.outage!.until)
        let s3 = try pair.openAccepted(from: .a)
        pair.write(.a, s3, pattern(20_000, seed: 3), finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(s3)) })
        #expect(pair.receivedBytes(.b, s3) == pattern(20_000, seed: 3))
    }

    @Test("an outage shorter than the grace period loses nothing", arguments: [2.0, 9.0, 25.0])
    func shortOutage(seconds: Double) throws {
        let pair = Pair(seed: 74)
        #expect(pair.establish())
        let up = try pair.open(.a)
        let down = try pair.open(.b)
        let d1 = pattern(600_000, seed: 4)
        let d2 = pattern(300_000, seed: 5)
        pair.write(.a, up, d1, finish: true)
        pair.write(.b, down, d2, finish: true)
        #expect(pair.run { $0.receivedCount(.b, up) > 100_000 && $0.receivedCount(.a, down) > 50_000 })
        pair.cut(for: .seconds(seconds))
        #expect(pair.run { $0.has(.b, .remoteFinished(up)) && $0.has(.a, .remoteFinished(down)) })
        #expect(pair.now >= pair.outage!.until)
        #expect(pair.receivedBytes(.b, up) == d1)
        #expect(pair.receivedBytes(.a, down) == d2)
        #expect(!pair.log.contains { e in
            switch e.event {
            case .streamReset, .linkLost, .established: return e.time > .zero
            default: return false
            }
        })
        if seconds > 3 {
            #expect(pair.has(.a, .linkDown) && pair.has(.a, .linkRestored))
        }
        #expect(pair.a.statistics.timeoutRetransmissions > 0)
        // After the outage the line is probed at least every two seconds.
        let restored = pair.time(of: .linkRestored, on: .a) ?? pair.outage!.until
        #expect(restored <= pair.outage!.until + .seconds(2))
    }

    /// Only A→B is cut, for longer than the grace period: B hears nothing, gives up (its streams
    /// reset with .linkLost, a new session); A still hears B, so it learns of B's new session
    /// from B's HELLO and must treat it as a peer restart.
    @Test("one-way outage longer than the grace period: B loses the link, A sees a peer restart")
    func oneWayOutage() throws {
        let pair = Pair(seed: 75) { _, c in c.gracePeriod = .seconds(10) }
        #expect(pair.establish())
        let id = try pair.openAccepted(from: .a)
        pair.write(.a, id, pattern(300_000, seed: 6))
        #expect(pair.run { $0.receivedCount(.b, id) > 50_000 })
        let oldB = pair.b.session
        let healsAt = pair.now + .seconds(30)
        pair.filter = { side, _, now in side == .a && now < healsAt ? .drop : .deliver }
        #expect(pair.run(timeLimit: .seconds(60)) { $0.has(.b, .linkLost) && $0.has(.a, .streamReset(id, .peerRestarted)) })
        #expect(pair.has(.b, .streamReset(id, .linkLost)))
        #expect(!pair.has(.a, .linkDown))  // A heard B all along
        #expect(pair.b.session != oldB)
        #expect(pair.run(timeLimit: .seconds(60)) { $0.now >= healsAt && $0.a.isEstablished && $0.b.isEstablished })
        // B's new HELLO already echoes A's session, so A is established again within the same
        // handleHello call that detected the restart: that must still emit .established.
        #expect(pair.has(.a, .established(peerSession: pair.b.session, peerRestarted: true)), "A: \(summary(pair.events(.a)))")
        let next = try pair.openAccepted(from: .a)
        pair.write(.a, next, pattern(30_000, seed: 7), finish: true)
        #expect(pair.run { $0.has(.b, .remoteFinished(next)) })
        #expect(pair.receivedBytes(.b, next) == pattern(30_000, seed: 7))
    }
}
