import Forwarding

// What the JSON API (docs/api.md) answers: plain values, encoded as they are.

/// Out and in: what this end sends on the line, and what it receives.
public struct Directions<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    public var out: Value
    public var `in`: Value

    public init(out: Value, in incoming: Value) {
        self.out = out
        self.in = incoming
    }
}

public struct ForwardView: Codable, Sendable, Equatable {
    public var kind: String
    public var spec: String
    public var text: String

    init(_ forward: Forward) {
        let (kind, spec) = forward.kindAndSpec
        self.kind = kind
        self.spec = spec
        if case .local(_, nil) = forward {
            text = "-L \(spec) (the far end's default target)"
        } else {
            text = "-\(kind) \(spec)"
        }
    }
}

public struct LinkView: Codable, Sendable, Equatable {
    public var id: String
    public var origin: String
    public var role: String
    public var device: String
    public var serial: String
    public var lineRate: Int
    public var state: String
    public var stateSince: Int64
    public var deviceOpen: Bool
    public var error: String?
    /// nil before the first measurement.
    public var rttMs: Double?
    public var utilisation: Directions<Double>
    public var lineRates: Directions<Int>
    public var goodput: Directions<Int>
    public var lineBytes: Directions<Int>
    public var payloadBytes: Directions<Int>
    public var retransmissions: Int
    public var crcErrors: Int
    /// Frames that passed the CRC but not the key (docs/protocol.md §11.3): altered, replayed or
    /// from a device with another key; 0 on a line without a key.
    public var unauthenticatedFrames: Int
    public var frameSize: Int
    public var bitErrorRate: Double
    public var streamsOpen: Int
    public var connectionsTotal: Int
    public var forwards: [ForwardView]
    public var canStop: Bool

    /// `error` is written as `null` when there is none, as docs/api.md shows it.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(origin, forKey: .origin)
        try container.encode(role, forKey: .role)
        try container.encode(device, forKey: .device)
        try container.encode(serial, forKey: .serial)
        try container.encode(lineRate, forKey: .lineRate)
        try container.encode(state, forKey: .state)
        try container.encode(stateSince, forKey: .stateSince)
        try container.encode(deviceOpen, forKey: .deviceOpen)
        try container.encode(error, forKey: .error)
        try container.encode(rttMs, forKey: .rttMs)
        try container.encode(utilisation, forKey: .utilisation)
        try container.encode(lineRates, forKey: .lineRates)
        try container.encode(goodput, forKey: .goodput)
        try container.encode(lineBytes, forKey: .lineBytes)
        try container.encode(payloadBytes, forKey: .payloadBytes)
        try container.encode(retransmissions, forKey: .retransmissions)
        try container.encode(crcErrors, forKey: .crcErrors)
        try container.encode(unauthenticatedFrames, forKey: .unauthenticatedFrames)
        try container.encode(frameSize, forKey: .frameSize)
        try container.encode(bitErrorRate, forKey: .bitErrorRate)
        try container.encode(streamsOpen, forKey: .streamsOpen)
        try container.encode(connectionsTotal, forKey: .connectionsTotal)
        try container.encode(forwards, forKey: .forwards)
        try container.encode(canStop, forKey: .canStop)
    }
}

public struct StreamView: Codable, Sendable, Equatable {
    public var id: Int
    public var forward: String
    public var client: String
    public var target: String
    public var bytesOut: Int
    public var bytesIn: Int
    public var rateOut: Int
    public var rateIn: Int
    public var ageSeconds: Double
    public var state: String
}

public struct EventView: Codable, Sendable, Equatable {
    public var seq: Int
    public var time: Int64
    public var link: String?
    public var level: String
    public var kind: String
    public var message: String
}

public struct SampleView: Codable, Sendable, Equatable {
    public var time: Int64
    public var out: Int
    public var `in`: Int
    public var utilisationOut: Double
    public var utilisationIn: Double
}

struct OverviewView: Codable, Sendable {
    var version: String
    var links: [LinkView]
    var readsNeedToken: Bool
}

struct SnapshotView: Codable, Sendable {
    var time: Int64
    var links: [LinkView]
    var streams: [String: [StreamView]]
    var samples: [String: SampleView]
}

/// `POST /api/links`.
public struct LinkRequest: Codable, Sendable, Equatable {
    public struct ForwardRequest: Codable, Sendable, Equatable {
        public var kind: String
        public var spec: String
    }

    public var role: String
    public var device: String
    public var baud: Int?
    public var format: String?
    public var flow: String?
    public var listen: String?
    public var target: String?
    public var forwards: [ForwardRequest]?
}

/// A request the API cannot carry out, with the status it answers and one line for the user.
public struct DashboardError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    public var message: String

    public init(_ status: Int, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { message }

    static func badRequest(_ message: String) -> DashboardError { DashboardError(400, message) }
    static func notFound(_ message: String) -> DashboardError { DashboardError(404, message) }
    static func conflict(_ message: String) -> DashboardError { DashboardError(409, message) }
}
