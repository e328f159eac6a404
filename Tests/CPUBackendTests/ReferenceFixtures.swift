import Foundation
import Testing

import TestSupport
import Tokenizers
@testable import CPUBackend
@testable import ModelCore

/// One case of `Tests/Fixtures/reference/<model>.json`: what transformers computed.
struct ReferenceCase {
    var name: String
    var inputIDs: [Int]
    /// Next-token logits after each prefix `inputIDs[0...t]`.
    var logits: [[Float]]
    var greedyIDs: [Int]
    /// top1 − top2 logit at each greedy step.
    var greedyMargins: [Float]
}

struct ReferenceRun {
    var computeDType: String
    var cases: [ReferenceCase]
}

struct ReferenceFile {
    var runs: [ReferenceRun]
    var maxAbsDiffBF16VsUpcast: Float?

    init(model: String) throws {
        let root = try readJSON(fixtures.appendingPathComponent("reference/\(model).json"))
        runs = root["runs"].arrayValue.map { run in
            ReferenceRun(computeDType: run["compute_dtype"].stringValue, cases: run["cases"].arrayValue.map { c in
                ReferenceCase(name: c["name"].stringValue, inputIDs: c["input_ids"].intArray,
                              logits: c["logits"].arrayValue.map(\.floats),
                              greedyIDs: c["greedy"]["new_ids"].intArray,
                              greedyMargins: c["greedy"]["top1_minus_top2"].floats)
            })
        }
        if let d = root["max_abs_diff_bf16_vs_f32_upcast"].doubleValue { maxAbsDiffBF16VsUpcast = Float(d) }
    }
}


func maxAbsDifference(_ a: some Collection<Float>, _ b: some Collection<Float>) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count) values")
    return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
}

/// A fresh copy of a fixture model directory to break on purpose; removed by the caller.
func copyOfFixture(_ name: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("weightfs-model-\(UUID().uuidString)")
    try FileManager.default.copyItem(at: fixtures.appendingPathComponent(name), to: dir)
    return dir
}

/// Rewrites a safetensors file: `edit` gets every tensor (name, dtype, shape, bytes) in file order.
func rewriteSafetensors(_ url: URL, _ edit: (inout [(name: String, dtype: String, shape: [Int], bytes: Data)]) -> Void) throws {
    let data = try Data(contentsOf: url)
    let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
    let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as! [String: Any]
    var tensors: [(name: String, dtype: String, shape: [Int], bytes: Data, begin: Int)] = []
    for (name, value) in header where name != "__metadata__" {
        let info = value as! [String: Any]
        let offsets = info["data_offsets"] as! [Int]
        tensors.append((name, info["dtype"] as! String, info["shape"] as! [Int],
                        data.subdata(in: (8 + n + offsets[0])..<(8 + n + offsets[1])), offsets[0]))
    }
    tensors.sort { $0.begin < $1.begin }
    var list = tensors.map { (name: $0.name, dtype: $0.dtype, shape: $0.shape, bytes: $0.bytes) }
    edit(&list)
    var newHeader: [String: Any] = [:]
    var body = Data()
    for t in list {
        newHeader[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [body.count, body.count + t.bytes.count]]
        body.append(t.bytes)
    }
    var json = try JSONSerialization.data(withJSONObject: newHeader, options: [.sortedKeys])
    while json.count % 8 != 0 { json.append(0x20) }
    var out = Data()
    withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
    out.append(json)
    out.append(body)
    try out.write(to: url)
}
