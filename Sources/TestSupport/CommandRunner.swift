import Foundation

/// Runs the built `weightfs` binary as a user would.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: String
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

public enum CommandRunner {
    /// Runs `weightfs args…` with `environment` added to this process's, and waits (at most
    /// `timeout` seconds: a command that hangs is killed and the test fails, CI goes on).
    public static func weightfs(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 300) throws -> CommandResult {
        try run(TestEnvironment.weightfsBinary, arguments, environment: environment, timeout: timeout)
    }

    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:], timeout: Double = 300) throws -> CommandResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let dir = try TestEnvironment.scratchDirectory("cmd")
        defer { try? FileManager.default.removeItem(at: dir) }
        // Files, not pipes: a chatty child can never block on a full pipe.
        let outPath = dir.appendingPathComponent("stdout"), errPath = dir.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: outPath.path, contents: nil)
        FileManager.default.createFile(atPath: errPath.path, contents: nil)
        let out = try FileHandle(forWritingTo: outPath), err = try FileHandle(forWritingTo: errPath)
        p.standardOutput = out
        p.standardError = err
        let ended = DispatchSemaphore(value: 0)
        p.terminationHandler = { _ in ended.signal() }
        try p.run()
        if ended.wait(timeout: .now() + timeout) == .timedOut {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            let said = String(decoding: (try? Data(contentsOf: errPath)) ?? Data(), as: UTF8.self)
            throw TestSetupError("\(executable) \(arguments.joined(separator: " ")) did not finish in \(Int(timeout)) s (killed); its stderr: \(said.suffix(2000))")
        }
        p.waitUntilExit()
        try out.close()
        try err.close()
        return CommandResult(status: p.terminationStatus, stdout: try Data(contentsOf: outPath),
                             stderr: String(decoding: try Data(contentsOf: errPath), as: UTF8.self))
    }
}

/// A child started with `posix_spawn` that inherits this process's open descriptors (Foundation's
/// `Process` closes them), as a driver passing a pre-opened /dev/fuse to a daemon does.
public struct SpawnedChild: Sendable {
    public let pid: pid_t

    /// Starts `executable`; with `stderrPath`, its standard error goes to that file.
    public init(_ executable: String, _ arguments: [String], environment: [String: String], stderrPath: String? = nil) throws {
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { (argv + env).forEach { free($0) } }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stderrPath { posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644) }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, nil, argv, env)
        guard rc == 0 else { throw TestSetupError("posix_spawn \(executable): \(String(cString: strerror(rc)))") }
        self.pid = pid
    }

    /// Sends `signal` and waits up to 10 s; returns the exit status, or nil if it did not exit.
    public func stop(_ signal: Int32 = SIGTERM) -> Int32? {
        kill(pid, signal)
        for _ in 0..<200 {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid { return status }
            usleep(50_000)
        }
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        return nil
    }
}
