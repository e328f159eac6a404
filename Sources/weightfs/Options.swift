import Diagnostics
import ArgumentParser
import Fetcher
import Foundation
import ObjectStore

/// How to reach the store: shared by every command that reads one.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Service account or authorized_user JSON key file (else GOOGLE_APPLICATION_CREDENTIALS, then the metadata server).", valueName: "FILE"))
    var credentials: String?

    @Flag(name: .long, help: "Use HTTP/2 instead of a pool of HTTP/1.1 connections.")
    var http2 = false

    func open(_ url: StoreURL) async throws -> any ObjectStore {
        try await url.open(credentialsFile: credentials, httpVersion: http2 ? .http2 : .http1_1)
    }
}

/// Parallel download settings.
struct FetchArguments: ParsableArguments {
    @Option(name: .long, help: "Ranged reads in flight at once (default 16; 32 on 16 cores or more, except for mount).")
    var concurrency: Int?

    /// 16 streams; 32 where there are 16 cores to drive them: on the 16-core device machine one
    /// process moved 13.5 GB/s at 32 against 10.6 at 16 (docs/BENCHMARKS.md, 2026-12-04).
    static let defaultConcurrency = ProcessInfo.processInfo.activeProcessorCount >= 16 ? 32 : 16

    @Option(name: .customLong("chunk-size"), help: ArgumentHelp("Bytes per ranged read, e.g. 8MiB, 512KiB, 1048576.", valueName: "SIZE"))
    var chunkSize: ByteSize = ByteSize(8 << 20)

    @Flag(name: .customLong("no-verify"), help: "Skip the whole-object CRC32C check.")
    var noVerify = false

    func validate() throws {
        if let concurrency, !(1...1024).contains(concurrency) {
            throw ValidationError("--concurrency must be 1...1024, got \(concurrency)")
        }
        guard chunkSize.bytes >= 4096 else { throw ValidationError("--chunk-size must be at least 4KiB, got \(chunkSize.bytes) bytes") }
    }

    var options: FetchOptions { options(defaultConcurrency: Self.defaultConcurrency) }

    /// With another default stream count (the mount keeps 16: its reads are bound by FUSE
    /// delivery, and its memory target was measured at 16).
    func options(defaultConcurrency: Int) -> FetchOptions {
        FetchOptions(concurrency: concurrency ?? defaultConcurrency, chunkSize: chunkSize.bytes, verifyChecksum: !noVerify)
    }
}

/// A byte count written like `8MiB`, `1.5GB`, `4096`.
struct ByteSize: ExpressibleByArgument, Sendable {
    let bytes: Int64
    init(_ bytes: Int64) { self.bytes = bytes }

    init?(argument: String) {
        guard let b = ByteSize.parse(argument) else { return nil }
        bytes = b
    }

    static func parse(_ text: String) -> Int64? {
        let t = text.trimmingCharacters(in: .whitespaces)
        let digits = t.prefix { $0.isNumber || $0 == "." }
        guard let value = Double(digits), value >= 0 else { return nil }
        let units: [String: Double] = [
            "": 1, "b": 1,
            "k": 1024, "kb": 1000, "kib": 1024,
            "m": Double(1 << 20), "mb": 1e6, "mib": Double(1 << 20),
            "g": Double(1 << 30), "gb": 1e9, "gib": Double(1 << 30),
            "t": Double(1 << 40), "tb": 1e12, "tib": Double(1 << 40),
        ]
        guard let unit = units[t.dropFirst(digits.count).lowercased()] else { return nil }
        return Int64(value * unit)
    }

    static var defaultCompletionKind: CompletionKind { .default }

    /// How `--help` shows a default: `8MiB`, not the struct.
    var defaultValueDescription: String {
        for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] where bytes > 0 && bytes % (Int64(1) << shift) == 0 {
            return "\(bytes >> shift)\(unit)"
        }
        return "\(bytes)"
    }
}

func parseStoreURL(_ text: String) throws -> StoreURL {
    do { return try StoreURL(text) } catch let e as StoreError { throw ValidationError(e.description) }
}


func formatBytes(_ n: Int64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var i = 0
    while v >= 1024, i < units.count - 1 { v /= 1024; i += 1 }
    return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
}

func iso8601(_ date: Date?) -> String {
    guard let date else { return "-" }
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f.string(from: date)
}

func writeStdout(_ s: String) {
    FileHandle.standardOutput.write(Data(s.utf8))
}
