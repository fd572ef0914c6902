import LinkCore

/// The books of the bridge between sockets and streams: which connection carries which stream,
/// every connection whose socket is still open (its stream may have ended first), the sockets
/// written to in this service pass, and how many connections there have been.
///
/// A stream ID is free for reuse once its stream ended, though the connection that had it may
/// still be writing its last bytes: hence two tables, and a connection leaves the second only
/// when both its stream and its socket are gone.
struct ConnectionTable {
    private(set) var byStream: [StreamID: Connection] = [:]
    private var all: [ObjectIdentifier: Connection] = [:]
    private var toFlush: [Connection] = []
    /// Connections accepted or made, for status.
    private(set) var total = 0

    subscript(id: StreamID) -> Connection? { byStream[id] }

    /// Connections whose stream the core still holds.
    var streamCount: Int { byStream.count }
    /// Every connection not yet released.
    var count: Int { all.count }
    var connections: [Connection] { Array(all.values) }
    var streamConnections: [Connection] { Array(byStream.values) }

    /// A socket was accepted or connected.
    mutating func counted() { total += 1 }

    /// `connection` now carries its stream.
    mutating func add(_ connection: Connection) {
        byStream[connection.id] = connection
        all[ObjectIdentifier(connection)] = connection
    }

    /// The core no longer has the connection's stream; its ID may be reused from now on.
    /// Returns false if that was known already.
    @discardableResult
    mutating func streamEnded(_ connection: Connection) -> Bool {
        guard connection.streamAlive else { return false }
        connection.streamAlive = false
        connection.toLink = .done
        if case .connecting = connection.socket { connection.socket = .connecting(held: []) }
        if byStream[connection.id] === connection { byStream[connection.id] = nil }
        return true
    }

    /// Forgets a connection whose stream and socket are both gone; true if it was still here.
    mutating func releaseIfDone(_ connection: Connection) -> Bool {
        guard !connection.streamAlive, connection.isSocketGone else { return false }
        return all.removeValue(forKey: ObjectIdentifier(connection)) != nil
    }

    /// The connection's socket was written to: flush it once at the end of the pass.
    mutating func needsFlush(_ connection: Connection) {
        guard !connection.needsFlush else { return }
        connection.needsFlush = true
        toFlush.append(connection)
    }

    /// The sockets written to since the last call, to flush now. Taken out first: a flush can
    /// close a channel at once, and its callbacks change this table.
    mutating func takeFlushList() -> [Connection] {
        guard !toFlush.isEmpty else { return [] }
        defer { toFlush.removeAll(keepingCapacity: true) }
        return toFlush
    }
}
