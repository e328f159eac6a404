import Foundation

/// A real `weightfs mount --foreground` child process and its mountpoint.
public final class MountProcess: @unchecked Sendable {  // Process is not Sendable; only start/stop touch it
    public let mountpoint: String
    public let cacheDir: String
    public let logPath: String
    private let process: Process

    /// Mounts `url` (through `endpoint` as STORAGE_EMULATOR_HOST) and waits until the kernel lists the mount.
    public init(url: String, endpoint: String, arguments: [String] = [], environment: [String: String] = [:]) throws {
        let dir = try TestEnvironment.scratchDirectory("mount")
        mountpoint = dir.appendingPathComponent("mnt").path
        cacheDir = dir.appendingPathComponent("cache").path
        logPath = dir.appendingPathComponent("mount.log").path
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: TestEnvironment.weightfsBinary)
        p.arguments = ["mount", url, mountpoint, "--foreground", "--cache-dir", cacheDir, "--log-file", logPath] + arguments
        p.environment = ProcessInfo.processInfo.environment.merging(["STORAGE_EMULATOR_HOST": endpoint, "WEIGHTFS_LOG": "info"].merging(environment) { $1 }) { $1 }
        try p.run()
        process = p
        for _ in 0..<600 {
            if Self.isMounted(mountpoint) { return }
            guard p.isRunning else { break }
            usleep(50_000)
        }
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        stop()
        throw TestSetupError("mount of \(url) at \(mountpoint) did not come up: \(log)")
    }

    public var pid: Int32 { process.processIdentifier }
    /// The exit status once it has exited (a signal's number when a signal ended it).
    public var terminationStatus: Int32 { process.terminationStatus }
    public var exitedNormally: Bool { !process.isRunning && process.terminationReason == .exit }
    public var isRunning: Bool { process.isRunning }

    public static func isMounted(_ path: String) -> Bool {
        guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return false }
        return mounts.split(separator: "\n").contains { $0.split(separator: " ").dropFirst().first.map(String.init) == path }
    }

    /// `signal` (SIGTERM unless given) and wait (up to 10 s); returns whether it exited by itself.
    @discardableResult
    public func stop(_ signal: Int32 = SIGTERM) -> Bool {
        guard process.isRunning else { return true }
        kill(process.processIdentifier, signal)
        for _ in 0..<200 where process.isRunning { usleep(50_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            for _ in 0..<100 where process.isRunning { usleep(50_000) }
            _ = try? CommandRunner.run("/bin/fusermount3", ["-u", "-z", mountpoint])
            return false
        }
        return true
    }

    deinit { stop() }
}
