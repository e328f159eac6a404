import ArgumentParser
import Diagnostics
import Foundation
import ObjectStore

struct ListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List objects under gs://BUCKET[/PREFIX] (or file:///DIR): name, size, generation, updated."
    )

    @Argument(help: "gs://BUCKET[/PREFIX] or file:///DIR")
    var url: String

    @Flag(name: [.short, .long], help: "List every object below the prefix, not just one level.")
    var recursive = false

    @Flag(name: .long, help: "One JSON object per line: name, size, generation, updated, crc32c.")
    var json = false

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let target = try parseStoreURL(url)
        let s = try await store.open(target)
        // A prefix that names a "directory" lists its contents.
        var prefix = target.path
        if !prefix.isEmpty, !prefix.hasSuffix("/"), !recursive {
            if (try? await s.stat(prefix)) == nil { prefix += "/" }
        }
        var token: String? = nil
        var pages = ListingGuard(location: "\(s.location)/\(prefix)")
        repeat {
            let page = try await s.list(prefix: prefix, delimiter: recursive ? nil : "/", pageToken: token)
            token = try pages.next(page)
            for dir in page.prefixes {
                writeStdout(json ? jsonLine(["name": dir, "type": "directory"]) : "\(pad("DIR", 14))  \(pad("", 20))  \(pad("", 24))  \(dir.terminalSafe)\n")
            }
            for o in page.objects {
                if json {
                    writeStdout(jsonLine(jsonFields(o)))
                } else {
                    writeStdout("\(pad(String(o.size), 14))  \(pad(String(o.generation.rawValue), 20))  \(pad(iso8601(o.updated), 24))  \(o.name.terminalSafe)\n")
                }
            }
        } while token != nil
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
    }
}

/// An object's metadata as `ls --json` and `stat --json` print it.
func jsonFields(_ o: ObjectInfo) -> [String: Any] {
    var fields: [String: Any] = ["name": o.name, "size": o.size, "generation": String(o.generation.rawValue), "updated": iso8601(o.updated)]
    if let c = o.crc32c { fields["crc32c"] = String(format: "%08x", c) }
    return fields
}

func jsonLine(_ fields: [String: Any]) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
    return String(decoding: data, as: UTF8.self) + "\n"
}
