import Foundation
import Testing

import TestSupport
import Tokenizers
@testable import CPUBackend
@testable import ModelCore

/// Damaged checkpoints (copies of fixtures broken on purpose) give errors naming the file and
/// tensor or field, never a crash.
@Suite struct BadModelDirectoryTests {
    func loadError(_ dir: URL) -> ModelError? {
        do {
            _ = try LlamaModel(directory: dir, threads: 1)
            return nil
        } catch {
            return error
        }
    }

    @Test func missingTensor() throws {
        let dir = try copyOfFixture("tiny-qwen2-f32")
        defer { try? FileManager.default.removeItem(at: dir) }
        try rewriteSafetensors(dir.appendingPathComponent("model.safetensors")) { tensors in
            tensors.removeAll { $0.name == "model.layers.1.self_attn.k_proj.bias" }
        }
        let e = try #require(loadError(dir))
        #expect(e.kind == .missingTensor && e.tensor == "model.layers.1.self_attn.k_proj.bias" && e.file == "model.safetensors", "\(e)")
    }

    @Test func missingLMHeadWhenNotTied() throws {
        let dir = try copyOfFixture("tiny-llama-bf16")
        defer { try? FileManager.default.removeItem(at: dir) }
        try rewriteSafetensors(dir.appendingPathComponent("model.safetensors")) { $0.removeAll { $0.name == "lm_head.weight" } }
        let e = try #require(loadError(dir))
        #expect(e.kind == .missingTensor && e.tensor == "lm_head.weight", "\(e)")
    }

    @Test func wrongShape() throws {
        let dir = try copyOfFixture("tiny-qwen2-f32")
        defer { try? FileManager.default.removeItem(at: dir) }
        try rewriteSafetensors(dir.appendingPathComponent("model.safetensors")) { tensors in
            let i = tensors.firstIndex { $0.name == "model.layers.0.mlp.down_proj.weight" }!
            tensors[i].shape = [160, 64]  // transposed: same bytes, wrong layout
        }
        let e = try #require(loadError(dir))
        #expect(e.kind == .shape && e.tensor == "model.layers.0.mlp.down_proj.weight" && e.field == "shape", "\(e)")
        #expect(e.description.contains("[160, 64]") && e.description.contains("[64, 160]"))
    }

    @Test func unsupportedDType() throws {
        let dir = try copyOfFixture("tiny-qwen2-f32")
        defer { try? FileManager.default.removeItem(at: dir) }
        try rewriteSafetensors(dir.appendingPathComponent("model.safetensors")) { tensors in
            let i = tensors.firstIndex { $0.name == "model.embed_tokens.weight" }!
            tensors[i].dtype = "I32"
        }
        let e = try #require(loadError(dir))
        #expect(e.kind == .dtype && e.tensor == "model.embed_tokens.weight" && e.description.contains("I32"), "\(e)")
    }

    @Test func unsupportedArchitecture() throws {
        let dir = try copyOfFixture("tiny-llama-bf16")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("config.json")
        let text = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "LlamaForCausalLM", with: "GemmaForCausalLM")
        try text.write(to: url, atomically: true, encoding: .utf8)
        let e = try #require(loadError(dir))
        #expect(e.kind == .unsupported && e.file == "config.json" && e.field == "architectures" && e.description.contains("GemmaForCausalLM"), "\(e)")
    }

    @Test func truncatedShard() throws {
        let dir = try copyOfFixture("tiny-llama-f32")
        defer { try? FileManager.default.removeItem(at: dir) }
        let shard = dir.appendingPathComponent("model-00003-of-00005.safetensors")
        let handle = try FileHandle(forWritingTo: shard)
        try handle.truncate(atOffset: try handle.seekToEnd() - 1000)
        try handle.close()
        let e = try #require(loadError(dir))
        #expect(e.kind == .checkpoint && e.file == "model-00003-of-00005.safetensors", "\(e)")
    }

    @Test func missingShard() throws {
        let dir = try copyOfFixture("tiny-llama-f32")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model-00005-of-00005.safetensors"))
        let e = try #require(loadError(dir))
        #expect(e.kind == .checkpoint && e.description.contains("model-00005-of-00005.safetensors"), "\(e)")
    }

    @Test func noWeightsAtAll() throws {
        let dir = try copyOfFixture("tiny-llama-bf16")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model.safetensors"))
        let e = try #require(loadError(dir))
        #expect(e.kind == .io && e.description.contains("safetensors"), "\(e)")
    }

    @Test func missingConfig() throws {
        let e = try #require(loadError(fixtures.appendingPathComponent("tokenizer")))
        #expect(e.kind == .io && e.file.hasSuffix("config.json"), "\(e)")
    }
}
