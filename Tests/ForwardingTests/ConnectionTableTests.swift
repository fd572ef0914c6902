@testable import Forwarding
import LinkCore
import Testing

/// The bridge's books, alone: a stream ID is free once its stream ends, while the connection
/// that had it stays until its socket is gone too.
@Suite("Connection table")
struct ConnectionTableTests {
    @Test("a stream's end frees its ID at once; the connection is released only when the socket is gone as well")
    func streamThenSocket() {
        var table = ConnectionTable()
        let first = Connection(id: StreamID(3), openedAt: .zero, peerDescription: "a")
        table.counted()
        table.add(first)
        #expect(table[StreamID(3)] === first && table.count == 1 && table.streamCount == 1)
        let ended = table.streamEnded(first)
        let again = table.streamEnded(first)
        #expect(ended && !again)  // once
        #expect(table[StreamID(3)] == nil && table.count == 1)
        if case .done = first.toLink {} else { Issue.record("nothing more goes in after the stream ended") }
        // The ID is reused by a new connection while the old one still writes its last bytes.
        let second = Connection(id: StreamID(3), openedAt: .zero, peerDescription: "b")
        table.counted()
        table.add(second)
        #expect(table[StreamID(3)] === second && table.count == 2)
        // The old one's socket is still open: not released.
        let whileOpen = table.releaseIfDone(first)
        #expect(!whileOpen)
        first.socket = .gone
        let released = table.releaseIfDone(first)
        let twice = table.releaseIfDone(first)
        #expect(released && !twice)
        #expect(table.count == 1 && table.total == 2)
        // Ending the old stream again must not unmap the new one.
        let late = table.streamEnded(first)
        #expect(!late)
        #expect(table[StreamID(3)] === second)
    }

    @Test("bytes held for a connect that never completes are dropped when the stream ends")
    func heldBytesDropped() {
        var table = ConnectionTable()
        let connection = Connection(id: StreamID(4), openedAt: .zero, peerDescription: "t")
        connection.socket = .connecting(held: [.init(bytes: [1, 2, 3])])
        table.add(connection)
        table.streamEnded(connection)
        if case .connecting(let held) = connection.socket { #expect(held.isEmpty) } else { Issue.record("still connecting") }
    }

    @Test("a connection written to twice in a pass is on the flush list once")
    func flushOnce() {
        var table = ConnectionTable()
        let connection = Connection(id: StreamID(5), openedAt: .zero, peerDescription: "f")
        table.add(connection)
        table.needsFlush(connection)
        table.needsFlush(connection)
        #expect(connection.needsFlush)
        let list = table.takeFlushList()
        #expect(list.count == 1 && list[0] === connection)
        #expect(table.takeFlushList().isEmpty)
    }
}
