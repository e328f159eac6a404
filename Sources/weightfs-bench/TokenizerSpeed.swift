import Diagnostics
import Foundation
import ObjectStore
import Tokenizers

/// `weightfs-bench tokenizer MODEL_DIR... [--bytes N]`: encode and decode throughput of each
/// model directory's tokenizer on about N bytes (default 1 MiB) of this repository's own prose
/// and code (docs, Sources, scripts), and how long loading its tokenizer.json takes. Run from
/// the repository root. One JSON line per model.
func runTokenizerSpeed(_ args: [String]) throws {
    let bytes = Int(argument("--bytes", default: String(1 << 20)))!
    var parts: [String] = []
    let fm = FileManager.default
    for dir in ["docs", "Sources", "scripts"] {
        guard let e = fm.enumerator(atPath: dir) else { continue }
        for case let path as String in e where path.hasSuffix(".md") || path.hasSuffix(".swift") || path.hasSuffix(".py") {
            if let s = try? String(contentsOfFile: "\(dir)/\(path)", encoding: .utf8) { parts.append(s) }
        }
    }
    guard !parts.isEmpty else { throw MessageError("no text found under docs/, Sources/, scripts/: run from the repository root") }
    var text = ""
    while text.utf8.count < bytes { for p in parts { text += p; text += "\n" } }
    let mb = Double(text.utf8.count) / 1e6
    let clock = ContinuousClock()
    for dir in args.dropFirst(2).prefix(while: { !$0.hasPrefix("--") }) {
        var tokenizer: Tokenizer?
        let load = try clock.measure { tokenizer = try Tokenizer(directory: URL(fileURLWithPath: dir)) }
        guard let tokenizer else { continue }
        var ids: [Int] = []
        let cold = clock.measure { ids = tokenizer.encode(text) }
        let warm = clock.measure { ids = tokenizer.encode(text) }
        let decode = clock.measure { _ = tokenizer.decode(ids) }
        print(String(format: #"{"model": "%@", "mb": %.2f, "ids": %d, "load_s": %.3f, "encode_cold_mb_s": %.2f, "encode_warm_mb_s": %.2f, "decode_mb_s": %.2f}"#,
                     dir, mb, ids.count, load.seconds, mb / cold.seconds, mb / warm.seconds, mb / decode.seconds))
    }
}
