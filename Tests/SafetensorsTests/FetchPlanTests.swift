import Foundation
import Testing

@testable import Safetensors

struct FetchPlanTests {
    func shardedFixture() throws -> (index: SafetensorsIndex, headers: [SafetensorsHeader]) {
        let index = try SafetensorsIndex.parse(fileName: "model.safetensors.index.json", data: fixtureBytes("sharded/model.safetensors.index.json"))
        let headers = try index.shards.map { try SafetensorsHeader.read(path: fixturesDirectory.appendingPathComponent("sharded/" + $0).path) }
        return (index, headers)
    }

    /// Each shard's steps, sorted by offset, tile the whole file exactly once, and each step's
    /// range is exactly the union of its tensors' ranges.
    func checkCoverage(_ plan: FetchPlan, _ headers: [SafetensorsHeader], sourceLocation: SourceLocation = #_sourceLocation) {
        for h in headers {
            let steps = plan.steps.filter { $0.shard == h.fileName }.sorted { ($0.range.lowerBound, $0.range.upperBound) < ($1.range.lowerBound, $1.range.upperBound) }
            var cursor: Int64 = 0
            for s in steps {
                #expect(s.range.lowerBound == cursor, "\(h.fileName): step \(s.group) starts at \(s.range.lowerBound), expected \(cursor)", sourceLocation: sourceLocation)
                cursor = s.range.upperBound
                if s.group == .headers {
                    #expect(s.tensors.isEmpty && s.range == 0..<h.dataStart, sourceLocation: sourceLocation)
                } else {
                    let ranges = s.tensors.compactMap { h.tensor(named: $0)?.fileRange }
                    #expect(ranges.count == s.tensors.count, sourceLocation: sourceLocation)
                    #expect(ranges.map(\.lowerBound).min() == s.range.lowerBound && ranges.map(\.upperBound).max() == s.range.upperBound, sourceLocation: sourceLocation)
                    #expect(s.tensors.allSatisfy { FetchPlan.Group(tensorName: $0) == s.group }, sourceLocation: sourceLocation)
                }
            }
            #expect(cursor == h.expectedFileSize, "\(h.fileName)", sourceLocation: sourceLocation)
        }
        let names = plan.steps.flatMap(\.tensors)
        #expect(names.count == Set(names).count, "a tensor is in two steps", sourceLocation: sourceLocation)
        #expect(names.count == headers.reduce(0) { $0 + $1.tensors.count }, sourceLocation: sourceLocation)
        #expect(plan.totalBytes == headers.reduce(0) { $0 + $1.expectedFileSize }, sourceLocation: sourceLocation)
    }

    @Test func shardedLlamaIsFetchedHeadersThenForwardOrder() throws {
        let (_, headers) = try shardedFixture()
        let plan = FetchPlan.forwardOrder(headers: headers)
        let shardNumber = Dictionary(uniqueKeysWithValues: headers.enumerated().map { ($1.fileName, $0 + 1) })
        let order = plan.steps.map { "\($0.group)@\(shardNumber[$0.shard]!)" }
        // Layers 5 and 10 straddle shards; shard 2 stores layer 10 before layer 5 (names sort
        // lexically in the file), yet layer 10 comes after layer 9.
        #expect(order == [
            "headers@1", "headers@2", "headers@3", "embeddings@1",
            "layer 0@1", "layer 1@1", "layer 2@1", "layer 3@1", "layer 4@1", "layer 5@1", "layer 5@2",
            "layer 6@2", "layer 7@2", "layer 8@2", "layer 9@2", "layer 10@2", "layer 10@3", "layer 11@3",
            "final norm@3", "lm_head@3", "other@3",
        ])
        #expect(zip(plan.steps, plan.steps.dropFirst()).allSatisfy { $0.group <= $1.group })
        // A layer's nine tensors are adjacent within a shard, so they are one step there.
        let layer3 = plan.steps.filter { $0.group == .layer(3) }
        #expect(layer3.count == 1 && layer3[0].tensors.count == 9)
        #expect(layer3[0].tensors == layer3[0].tensors.sorted { headers[0].tensor(named: $0)!.fileRange.lowerBound < headers[0].tensor(named: $1)!.fileRange.lowerBound })
        #expect(plan.steps.first { $0.group == .other }?.tensors == ["model.rotary_emb.inv_freq"])
        checkCoverage(plan, headers)
    }

    @Test func adjacentTensorsMergeAndInterleavedOnesDoNot() throws {
        // File order: layer 1, layer 0, layer 0, layer 1, layer 1, lm_head, embed.
        let entries = [
            Entry("model.layers.1.a", shape: [1], offsets: (0, 4)),
            Entry("model.layers.0.a", shape: [1], offsets: (4, 8)),
            Entry("model.layers.0.b", shape: [2], offsets: (8, 16)),
            Entry("model.layers.1.b", shape: [1], offsets: (16, 20)),
            Entry("model.layers.1.c", shape: [0], offsets: (20, 20)),
            Entry("model.layers.1.d", shape: [1], offsets: (20, 24)),
            Entry("lm_head.weight", shape: [1], offsets: (24, 28)),
            Entry("model.embed_tokens.weight", shape: [1], offsets: (28, 32)),
        ]
        let h = try parseShard(shard(json: headerJSON(entries.reversed()), dataSize: 32), name: "one.safetensors")
        let plan = FetchPlan.forwardOrder(headers: [h])
        let d = h.dataStart
        #expect(plan.steps == [
            .init(shard: "one.safetensors", range: 0..<d, tensors: [], group: .headers),
            .init(shard: "one.safetensors", range: (d + 28)..<(d + 32), tensors: ["model.embed_tokens.weight"], group: .embeddings),
            .init(shard: "one.safetensors", range: (d + 4)..<(d + 16), tensors: ["model.layers.0.a", "model.layers.0.b"], group: .layer(0)),
            .init(shard: "one.safetensors", range: d..<(d + 4), tensors: ["model.layers.1.a"], group: .layer(1)),
            .init(shard: "one.safetensors", range: (d + 16)..<(d + 24), tensors: ["model.layers.1.b", "model.layers.1.c", "model.layers.1.d"], group: .layer(1)),
            .init(shard: "one.safetensors", range: (d + 24)..<(d + 28), tensors: ["lm_head.weight"], group: .lmHead),
        ])
        checkCoverage(plan, [h])
    }

    @Test func shardsWithTheSameTensorGroupDoNotMergeAcrossFiles() throws {
        let one = try parseShard(shard(json: headerJSON([Entry("layers.0.x", shape: [1], offsets: (0, 4))]), dataSize: 4), name: "a.safetensors")
        let two = try parseShard(shard(json: headerJSON([Entry("layers.0.y", shape: [1], offsets: (0, 4))]), dataSize: 4), name: "b.safetensors")
        let plan = FetchPlan.forwardOrder(headers: [two, one])
        #expect(plan.steps.map(\.shard) == ["b.safetensors", "a.safetensors", "b.safetensors", "a.safetensors"])
        #expect(plan.steps.filter { $0.group == .layer(0) }.count == 2)
        #expect(FetchPlan.forwardOrder(headers: []).steps.isEmpty)
    }

    @Test(arguments: [
        ("model.embed_tokens.weight", FetchPlan.Group.embeddings),
        ("model.language_model.embed_tokens.weight", .embeddings),
        ("tok_embeddings.weight", .embeddings),
        ("transformer.wte.weight", .embeddings),
        ("transformer.wpe.weight", .embeddings),
        ("gpt_neox.embed_in.weight", .embeddings),
        ("model.layers.0.self_attn.q_proj.weight", .layer(0)),
        ("model.layers.10.mlp.down_proj.weight", .layer(10)),
        ("layers.31.attention.wq.weight", .layer(31)),
        ("transformer.h.11.attn.c_attn.weight", .layer(11)),
        ("blocks.7.ffn.weight", .layer(7)),
        ("encoder.layer.3.output.dense.weight", .layer(3)),
        ("model.layers.2.embed_tokens.weight", .layer(2)),  // inside a layer wins
        ("model.norm.weight", .finalNorm),
        ("norm.weight", .finalNorm),
        ("transformer.ln_f.bias", .finalNorm),
        ("model.final_layernorm.weight", .finalNorm),
        ("gpt_neox.final_layer_norm.weight", .finalNorm),
        ("lm_head.weight", .lmHead),
        ("output.weight", .lmHead),
        ("gpt_neox.embed_out.weight", .lmHead),
        ("model.rotary_emb.inv_freq", .other),
        ("model.layers.x.weight", .other),
        ("model.layers.-1.weight", .other),
        ("model.layers.99999999999999999999.weight", .other),  // no overflow, just not a layer
        ("model.layers.", .other),
        ("", .other),
        ("output", .other),
        ("vision.layers", .other),
    ])
    func groupsTensorsByName(_ name: String, _ group: FetchPlan.Group) {
        #expect(FetchPlan.Group(tensorName: name) == group, "\(name)")
    }

    @Test func groupsSortInForwardOrder() {
        let shuffled: [FetchPlan.Group] = [.other, .layer(10), .lmHead, .layer(2), .headers, .finalNorm, .embeddings, .layer(0)]
        #expect(shuffled.sorted() == [.headers, .embeddings, .layer(0), .layer(2), .layer(10), .finalNorm, .lmHead, .other])
    }

    /// A 70B-scale checkpoint: 3,600 tensors over 8 shards. Parsing and planning must be fast
    /// (Swift Testing prints the duration; this is not a timed assertion).
    @Test func planForSeventyBScaleCheckpoint() throws {
        let layers = 400, shards = 8
        let perLayer = ["input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                        "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
        var names = ["model.embed_tokens.weight"]
        for l in 0..<layers { names += perLayer.map { "model.layers.\(l).\($0).weight" } }
        names += ["model.norm.weight", "lm_head.weight"]
        let perShard = (names.count + shards - 1) / shards
        var files: [[UInt8]] = []
        for s in 0..<shards {
            // Sorted by name within the file, as the writer does: layer 10 before layer 2.
            let chunk = names[(s * perShard)..<min(names.count, (s + 1) * perShard)].sorted()
            let entries = chunk.enumerated().map { Entry($1, dtype: "BF16", shape: [16, 8], offsets: (Int64($0) * 256, Int64($0 + 1) * 256)) }
            files.append(shard(json: headerJSON(entries, metadata: "{\"format\":\"pt\"}"), dataSize: chunk.count * 256))
        }
        let headers = try files.enumerated().map { try parseShard($1, name: "model-\($0 + 1).safetensors") }
        #expect(headers.reduce(0) { $0 + $1.tensors.count } == names.count)
        let plan = FetchPlan.forwardOrder(headers: headers)
        let layerSteps = plan.steps.compactMap { if case .layer(let n) = $0.group { return n } else { return nil } }
        #expect(layerSteps == layerSteps.sorted())
        #expect(Set(layerSteps).count == layers)
        // One step per layer, plus one more for each layer split across two shards.
        #expect(layerSteps.count < layers + shards)
        checkCoverage(plan, headers)
    }
}
