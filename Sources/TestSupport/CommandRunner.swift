import Foundation

/// Runs the built `weightfs` binary as a user would.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: String
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

public enum CommandRunner {
    /// Runs `weightfs args…` with `environment` added to this process's, and waits.
    public static func weightfs(_ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        try run(TestEnvironment.weightfsBinary, arguments, environment: environment)
    }

    public static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
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
        try p.run()
        p.waitUntilExit()
        try out.close()
        try err.close()
        return CommandResult(status: p.terminationStatus, stdout: try Data(contentsOf: outPath),
                             stderr: String(decoding: try Data(contentsOf: errPath), as: UTF8.self))
    }
}
