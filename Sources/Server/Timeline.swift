import Foundation
import Logging
import Prometheus
import Synchronization

/// The cold start as it happens: listening, headers parsed, each weight group ready, first
/// token; each event once, in seconds since the server started, logged and exported as
/// `weightfs_cold_start_seconds{event=…}`.
public final class ColdStartTimeline: Sendable {
    let started = ContinuousClock.now
    private let events = Mutex<[(name: String, seconds: Double)]>([])
    private let registry: PrometheusCollectorRegistry
    private let labels: [(String, String)]
    private let logger: Logger

    init(registry: PrometheusCollectorRegistry, labels: [(String, String)], logger: Logger) {
        self.registry = registry
        self.labels = labels
        self.logger = logger
    }

    /// Records `event` the first time it happens; later ones are ignored.
    public func record(_ event: String) {
        let seconds = (ContinuousClock.now - started).seconds
        let first = events.withLock { list -> Bool in
            guard !list.contains(where: { $0.name == event }) else { return false }
            list.append((event, seconds))
            return true
        }
        guard first else { return }
        registry.makeGauge(name: "weightfs_cold_start_seconds", labels: labels + [("event", event)],
                           help: "Seconds from the server's start to each cold-start event.").set(to: seconds)
        logger.info("cold start: \(event) at \(String(format: "%.3f", seconds)) s")
    }

    /// The events so far, in order.
    public var recorded: [(name: String, seconds: Double)] { events.withLock { $0 } }
}
