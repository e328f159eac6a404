import Foundation
import Testing

import TestSupport
@testable import ModelCore

@Suite struct ModelConfigTests {
    func parse(_ json: String) throws(ModelError) -> ModelConfig { try ModelConfig.parse(Array(json.utf8)) }

    static let minimal = """
        "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 514
        """

    @Test func readsTheFixtureConfigsInBothRoPESpellings() throws {
        let llama = try ModelConfig.load(directory: fixtures.appendingPathComponent("tiny-llama-f32"))
        #expect(llama.architecture == .llama && llama.layerCount == 3 && llama.headDim == 16 && llama.kvHeadCount == 2)
        #expect(llama.rope == .init(theta: 10000, scaling: nil))  // transformers v5 rope_parameters
        #expect(!llama.tieWordEmbeddings && !llama.qkvBias && llama.rmsNormEps == 1e-5 && llama.eosTokenIDs == [1])

        let qwen = try ModelConfig.load(directory: fixtures.appendingPathComponent("tiny-qwen2-f32"))
        #expect(qwen.architecture == .qwen2 && qwen.qkvBias && !qwen.outputBias && qwen.tieWordEmbeddings)
        #expect(qwen.rope.theta == 1e6 && qwen.rmsNormEps == 1e-6)

        let llama3 = try ModelConfig.load(directory: fixtures.appendingPathComponent("tiny-llama3rope-f32"))
        #expect(llama3.rope == .init(theta: 10000, scaling: .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64)))

        let demo = try ModelConfig.load(directory: fixtures.appendingPathComponent("demo"))  // rope_scaling: null
        #expect(demo.rope == .init(theta: 100000, scaling: nil) && demo.headCount == 9 && demo.kvHeadCount == 3 && demo.bosTokenID == 1)
    }

    @Test func defaultsAndOptionalFields() throws {
        let c = try parse(#"{"architectures": ["MistralForCausalLM"], \#(Self.minimal), "eos_token_id": [1, 7], "sliding_window": 4096}"#)
        #expect(c.architecture == .mistral && c.headDim == 16 && c.rope.theta == 10000 && c.eosTokenIDs == [1, 7] && c.slidingWindow == 4096)
        let rp = try parse(#"{"architectures": ["LlamaForCausalLM"], \#(Self.minimal), "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}"#)
        #expect(rp.rope == .init(theta: 500000, scaling: .llama3(factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192)))
    }

    @Test(arguments: [
        (#"{"architectures": ["GPT2LMHeadModel"], \#(minimal)}"#, ModelError.Kind.unsupported, "architectures"),
        (#"{\#(minimal)}"#, .invalidField, "architectures"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}"#, .unsupported, "rope_scaling.rope_type"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "rope_parameters": {"rope_type": "dynamic", "rope_theta": 1.0}}"#, .unsupported, "rope_parameters.rope_type"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "rope_scaling": {"type": "linear", "factor": 2.0}}"#, .unsupported, "rope_scaling.type"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}"#, .invalidField, "rope_scaling.low_freq_factor"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "hidden_act": "gelu"}"#, .unsupported, "hidden_act"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "mlp_bias": true}"#, .unsupported, "mlp_bias"),
        (#"{"architectures": ["Qwen2ForCausalLM"], \#(minimal), "use_sliding_window": true}"#, .unsupported, "use_sliding_window"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "quantization_config": {"quant_method": "gptq"}}"#, .unsupported, "quantization_config"),
        (#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 514}"#, .invalidField, "intermediate_size"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "num_key_value_heads": 3}"#, .invalidField, "num_key_value_heads"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "hidden_size": "64"}"#, .invalidField, "hidden_size"),
        // Sizes whose products (shapes, KV memory) would overflow: refused, not a trap later.
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "head_dim": 4611686018427387904}"#, .invalidField, "head_dim"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "num_hidden_layers": 9223372036854775807}"#, .invalidField, "num_hidden_layers"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "vocab_size": 4294967296}"#, .invalidField, "vocab_size"),
        (#"{"architectures": ["LlamaForCausalLM"], \#(minimal), "intermediate_size": 1099511627776}"#, .invalidField, "intermediate_size"),
    ])
    func refusesWhatItCannotRunNamingTheField(json: String, kind: ModelError.Kind, field: String) {
        do {
            _ = try parse(json)
            Issue.record("accepted \(json)")
        } catch {
            #expect(error.kind == kind && error.field == field && error.file == "config.json", "\(error)")
            #expect(error.description.contains("config.json") && error.description.contains(field))
        }
    }

    @Test func notJSONIsASyntaxError() {
        #expect(throws: ModelError.self) { try parse("{\"architectures\": [") }
    }
}
