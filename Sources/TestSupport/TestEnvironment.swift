import CCrypto
import Foundation
import ObjectStore

/// Where the real test services are. `scripts/test` starts the GCS emulator and exports
/// `WEIGHTFS_TEST_EMULATOR`; tests that need it fail with a clear message otherwise.
public enum TestEnvironment {
    public static var repoRoot: URL {
        // Sources/TestSupport/TestEnvironment.swift → repo root
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    public static var emulatorURL: String {
        get throws {
            guard let url = ProcessInfo.processInfo.environment["WEIGHTFS_TEST_EMULATOR"], !url.isEmpty else {
                throw TestSetupError("WEIGHTFS_TEST_EMULATOR is not set: run the tests with scripts/test, which starts fake-gcs-server")
            }
            return url
        }
    }

    public static var python: String {
        let venv = repoRoot.appendingPathComponent(".venv/bin/python").path
        return FileManager.default.isExecutableFile(atPath: venv) ? venv : "/usr/bin/python3"
    }

    /// The `weightfs` executable built by `swift build` (scripts/test exports WEIGHTFS_BIN).
    public static var weightfsBinary: String {
        if let bin = ProcessInfo.processInfo.environment["WEIGHTFS_BIN"], !bin.isEmpty { return bin }
        return repoRoot.appendingPathComponent(".build/debug/weightfs").path
    }

    /// A fresh scratch directory under the system temp dir.
    public static func scratchDirectory(_ label: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("weightfs-test-\(label)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// A bucket name no other test uses.
    public static func uniqueBucket(_ label: String) -> String {
        "t-\(label.lowercased())-\(UUID().uuidString.prefix(8).lowercased())"
    }
}

/// A loopback port where a connection is refused at once for as long as this lives: a socket
/// bound to it that never listens (no test assumes some fixed port, such as 9, is closed).
public final class RefusingPort: Sendable {
    public let port: Int
    private let fd: Int32
    public var hostAndPort: String { "127.0.0.1:\(port)" }

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        guard fd >= 0, bound == 0 else { throw TestSetupError("could not bind a loopback port: errno \(errno)") }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        self.fd = fd
    }

    deinit { close(fd) }
}

public struct TestSetupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failing test can be replayed.
public struct TestBytes {
    public static func generate(count: Int, seed: UInt64) -> Data {
        var data = Data(count: count)
        data.withUnsafeMutableBytes { fill($0, seed: seed, offset: 0) }
        return data
    }

    /// Writes `count` deterministic bytes to `path` in 8 MiB blocks.
    public static func writeFile(_ path: String, count: Int64, seed: UInt64) throws {
        FileManager.default.createFile(atPath: path, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? h.close() }
        let block = 8 << 20
        var buffer = Data(count: block)
        var done: Int64 = 0
        while done < count {
            let n = Int(min(Int64(block), count - done))
            buffer.withUnsafeMutableBytes { fill(UnsafeMutableRawBufferPointer(rebasing: $0[0..<n]), seed: seed, offset: done) }
            try h.write(contentsOf: buffer.prefix(n))
            done += Int64(n)
        }
    }

    /// Byte i is byte (i % 8) of word i / 8, a function of (seed, i / 8) only, so any block
    /// can be made alone. `offset` must be a multiple of 8.
    static func fill(_ buf: UnsafeMutableRawBufferPointer, seed: UInt64, offset: Int64) {
        precondition(offset % 8 == 0)
        let firstWord = UInt64(offset / 8)
        let words = buf.count / 8
        for w in 0..<words {
            buf.storeBytes(of: word(firstWord + UInt64(w), seed).littleEndian, toByteOffset: w * 8, as: UInt64.self)
        }
        let tail = word(firstWord + UInt64(words), seed)
        for i in (words * 8)..<buf.count { buf[i] = UInt8(truncatingIfNeeded: tail >> (UInt64(i % 8) * 8)) }
    }

    @inline(__always)
    static func word(_ index: UInt64, _ seed: UInt64) -> UInt64 {
        var x = index &+ seed &* 0x9E3779B97F4A7C15 &+ 1
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27
        return x &* 0x2545F4914F6CDD1D
    }
}

/// SHA-256 via libcrypto.
public enum SHA256 {
    public static func hex(_ data: Data) -> String {
        var ctx = Hasher256()
        data.withUnsafeBytes { ctx.update($0) }
        return ctx.finish()
    }

    public static func hex(file path: String) throws -> String {
        guard let h = FileHandle(forReadingAtPath: path) else { throw TestSetupError("cannot open \(path)") }
        defer { try? h.close() }
        var ctx = Hasher256()
        while let chunk = try h.read(upToCount: 8 << 20), !chunk.isEmpty {
            chunk.withUnsafeBytes { ctx.update($0) }
        }
        return ctx.finish()
    }

    struct Hasher256 {
        let ctx: OpaquePointer = EVP_MD_CTX_new()
        init() { EVP_DigestInit_ex(ctx, EVP_sha256(), nil) }
        func update(_ b: UnsafeRawBufferPointer) { EVP_DigestUpdate(ctx, b.baseAddress, b.count) }
        func finish() -> String {
            var out = [UInt8](repeating: 0, count: 32)
            var n: UInt32 = 0
            EVP_DigestFinal_ex(ctx, &out, &n)
            EVP_MD_CTX_free(ctx)
            return out.map { String(format: "%02x", $0) }.joined()
        }
    }
}

/// Tests/Fixtures: the reference models, tokenizers and chat templates with the scripts that made them.
public let fixtures = TestEnvironment.repoRoot.appendingPathComponent("Tests/Fixtures")

/// Polls `condition` until it holds; throws after `timeout` (a failure that fails the test
/// instead of hanging CI). Not a timed assertion: the bound is far above any expected wait.
public func waitUntil(_ what: String, timeout: Duration = .seconds(120), every poll: Duration = .milliseconds(20),
                      _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestSetupError("gave up after \(timeout) waiting for \(what)") }
        try await Task.sleep(for: poll)
    }
}
