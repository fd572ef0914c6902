import Logging

/// What a log line reports, for readers that sort them (the dashboard's event log): carried as
/// the `event` metadata of the line. Lines without it are plain log lines.
public enum ActivityKind: String, Sendable, CaseIterable {
    case linkUp = "link-up"
    case linkDown = "link-down"
    case linkRestored = "link-restored"
    case linkLost = "link-lost"
    case streamOpened = "stream-opened"
    case streamClosed = "stream-closed"
    /// A connection or a stream this end or the peer would not carry.
    case refused

    public static let metadataKey = "event"

    public var metadata: Logger.Metadata { [Self.metadataKey: .string(rawValue)] }

    /// The event a log line's metadata names, if any.
    public init?(metadata: Logger.Metadata?) {
        guard case .string(let name)? = metadata?[Self.metadataKey] else { return nil }
        self.init(rawValue: name)
    }
}
