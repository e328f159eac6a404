import ArgumentParser
import Diagnostics
import Foundation
import Logging

@main
struct WeightFS: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weightfs",
        abstract: "Model weights from object storage, usable before the download has finished.",
        version: "0.1.0",
        subcommands: [ListCommand.self, StatCommand.self, CopyCommand.self, PreloadCommand.self, MountCommand.self, InspectCommand.self, GenerateCommand.self, ServeCommand.self]
    )

    static func main() async {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = ProcessInfo.processInfo.environment["WEIGHTFS_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .warning
            return handler
        }
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // As ArgumentParser's exit(withError:) does, but what reaches a terminal is made safe:
            // an error can quote an object name or a field of a file from the bucket.
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { print(message) }
            } else if !message.isEmpty {
                FileHandle.standardError.write(Data((message.terminalSafe + "\n").utf8))
            }
            Foundation.exit(code.rawValue)
        }
    }
}
