import Forwarding
import Logging

/// Feeds a link's log lines, from `info` up, into the dashboard's event log. Put it beside the
/// terminal's handler with `MultiplexLogHandler`: each keeps its own level.
public struct DashboardLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let hub: DashboardHub
    let link: String?

    public init(hub: DashboardHub, link: String?) {
        self.hub = hub
        self.link = link
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let kind: String
        if let activity = ActivityKind(metadata: event.metadata) {
            kind = activity.rawValue
        } else if event.level >= .error {
            kind = "error"
        } else {
            kind = "log"
        }
        hub.record(link: link, level: event.level, kind: kind, message: "\(event.message)")
    }
}
