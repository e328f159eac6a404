import ArgumentParser
import Diagnostics
import Foundation
import ObjectStore

struct StatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stat",
        abstract: "Show one object's metadata: size, generation, updated, crc32c, md5."
    )

    @Argument(help: "gs://BUCKET/OBJECT or file:///PATH")
    var url: String

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let target = try parseStoreURL(url)
        guard !target.path.isEmpty else { throw ValidationError("\(url) names a bucket, not an object") }
        let info = try await store.open(target).stat(target.path)
        let crc = info.crc32c.map { String(format: "%08x", $0) }
        if json {
            var fields = jsonFields(info)
            if let md5 = info.md5Hash { fields["md5Hash"] = md5 }
            writeStdout(jsonLine(fields))
        } else {
            writeStdout("""
            name:       \(info.name.terminalSafe)
            size:       \(info.size) (\(formatBytes(info.size)))
            generation: \(info.generation)
            updated:    \(iso8601(info.updated))
            crc32c:     \(crc ?? "-")
            md5Hash:    \(info.md5Hash?.terminalSafe ?? "-")

            """)
        }
    }
}
