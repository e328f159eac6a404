import Foundation

/// The project's link proxy (scripts/linkproxy.py) between a client and the emulator: rate cap
/// per connection, latency per request, and injected faults. Stopped by PID on `stop()`.
public final class LinkProxy: @unchecked Sendable {  // Process is not Sendable; only start/stop touch it
    public let url: String
    private let process: Process

    /// Starts the proxy in front of `upstream` with extra CLI `arguments` (e.g. `--rate 100MB`,
    /// `--fault reset=0.1`) and waits for its LISTENING line.
    public init(upstream: String, arguments: [String] = []) throws {
        let script = TestEnvironment.repoRoot.appendingPathComponent("scripts/linkproxy.py").path
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestEnvironment.python)
        p.arguments = [script, "--listen", "127.0.0.1:0", "--upstream", upstream] + arguments
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.standardError
        try p.run()
        process = p
        // First stdout line: "LISTENING 127.0.0.1:PORT".
        var line = Data()
        while true {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("LISTENING ") else {
            p.terminate()
            throw TestSetupError("link proxy did not start (said: \(text.isEmpty ? "nothing" : text))")
        }
        url = "http://" + text.dropFirst("LISTENING ".count)
        // Drain further output so the proxy never blocks on a full pipe.
        out.fileHandleForReading.readabilityHandler = { h in _ = h.availableData }
    }

    /// The proxy's counters: requests, media_requests, bytes_down, faults{kind: n}, connections.
    public func stats() async throws -> [String: Any] {
        let r = try await HTTPClientForTests.get("\(url)/__proxy/stats")
        return (try JSONSerialization.jsonObject(with: r) as? [String: Any]) ?? [:]
    }

    /// One media request as the proxy saw it.
    public struct MediaRequest: Sendable, CustomStringConvertible {
        /// The object path, decoded.
        public var path: String
        /// The Range header (nil without one).
        public var range: String?
        /// For a request the proxy cut (truncate, reset, stall): the body bytes it sent first.
        public var cutAfter: Int64?
        /// For a request the proxy answered itself (408, 429, 503): that status.
        public var injectedStatus: Int?

        /// The Range header's first and last byte.
        public var bounds: (first: Int64, last: Int64)? {
            guard let spec = range?.split(separator: "=").last else { return nil }
            let b = spec.split(separator: "-").compactMap { Int64($0) }
            return b.count == 2 ? (b[0], b[1]) : nil
        }

        public var description: String { "\(path) \(range ?? "-")\(cutAfter.map { " cut after \($0)" } ?? "")\(injectedStatus.map { " answered \($0)" } ?? "")" }
    }

    /// Every media request since the last reset, in arrival order.
    public func mediaLog() async throws -> [MediaRequest] {
        let r = try await HTTPClientForTests.get("\(url)/__proxy/media-log")
        let entries = (try JSONSerialization.jsonObject(with: r) as? [[String: Any]]) ?? []
        return entries.map {
            MediaRequest(path: $0["path"] as? String ?? "", range: $0["range"] as? String,
                         cutAfter: ($0["cut_after"] as? NSNumber)?.int64Value, injectedStatus: ($0["status"] as? NSNumber)?.intValue)
        }
    }

    /// Zeroes the counters and the media log.
    public func resetStats() async throws {
        _ = try await HTTPClientForTests.post("\(url)/__proxy/reset-stats", json: [:])
    }

    public func faultCount() async throws -> Int {
        let faults = try await stats()["faults"] as? [String: Any] ?? [:]
        return faults.values.compactMap { ($0 as? NSNumber)?.intValue }.reduce(0, +)
    }

    /// Replaces the shaping and fault settings (JSON: rate, latency_ms, faults, match).
    public func configure(_ settings: [String: Any]) async throws {
        _ = try await HTTPClientForTests.post("\(url)/__proxy/config", json: settings)
    }

    /// SIGTERM, then SIGKILL if it has not exited within 5 s; reaps the process.
    public func stop() {
        guard process.isRunning else { return }
        let pid = process.processIdentifier
        kill(pid, SIGTERM)
        for _ in 0..<100 where process.isRunning { usleep(50_000) }
        if process.isRunning { kill(pid, SIGKILL) }
        for _ in 0..<100 where process.isRunning { usleep(50_000) }
    }

    deinit { stop() }
}
