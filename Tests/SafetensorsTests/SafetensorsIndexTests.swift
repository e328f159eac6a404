import Foundation
import Testing
import TestSupport

import JSON
@testable import Safetensors

struct SafetensorsIndexTests {
    func parse(_ json: String) throws(SafetensorsError) -> SafetensorsIndex {
        try SafetensorsIndex.parse(fileName: "model.safetensors.index.json", data: Array(json.utf8))
    }

    func expectRejected(_ json: String, tensor: String? = nil, field: String?, mentions: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try parse(json)
            Issue.record("accepted \(json)", sourceLocation: sourceLocation)
        } catch {
            #expect(error.kind == .index, sourceLocation: sourceLocation)
            #expect(error.file == "model.safetensors.index.json", sourceLocation: sourceLocation)
            #expect(error.tensor == tensor && error.field == field, "\(error)", sourceLocation: sourceLocation)
            #expect(error.message.contains(mentions), "\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func readsMapShardsAndMetadata() throws {
        let index = try parse(#"""
            {"metadata": {"total_size": 1234, "format": "pt", "nested": {"a": [1, true]}},
             "weight_map": {"b": "model-00002-of-00002.safetensors", "a": "model-00001-of-00002.safetensors",
                            "c": "model-00002-of-00002.safetensors"}}
            """#)
        #expect(index.weightMap["a"] == "model-00001-of-00002.safetensors")
        #expect(index.shards == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"])
        #expect(index.totalSize == 1234)
        #expect(index.metadata == ["total_size": "1234", "format": "pt", "nested": #"{"a":[1,true]}"#])
        #expect(try parse(#"{"weight_map":{"a":"sub/dir/x.safetensors"}}"#).shards == ["sub/dir/x.safetensors"])
    }

    @Test func rejectsAMissingOrMalformedWeightMap() {
        expectRejected(#"{"metadata":{}}"#, field: "weight_map", mentions: "missing")
        expectRejected(#"{"weight_map":["a"]}"#, field: "weight_map", mentions: "found an array")
        expectRejected(#"{"weight_map":{}}"#, field: "weight_map", mentions: "empty")
        expectRejected(#"{"weight_map":{"a":"x.safetensors","b":3}}"#, tensor: "b", field: "weight_map", mentions: "found the number 3")
        expectRejected(#"{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}"#, tensor: "a", field: "weight_map", mentions: "twice")
        expectRejected(#"{"weight_map":{"a":"x"},"weight_map":{"a":"x"}}"#, field: "weight_map", mentions: "twice")
        expectRejected(#"{"metadata":"pt","weight_map":{"a":"x"}}"#, field: "metadata", mentions: "must be an object")
        expectRejected(#"[]"#, field: nil, mentions: "must be a JSON object")
        expectRejected(#"{"weight_map":{"a":"x"}} trailing"#, field: nil, mentions: "invalid JSON")
    }

    @Test(arguments: [
        ("../model.safetensors", "\"..\""), ("/etc/passwd", "absolute"), ("a/../../b", "\"..\""), ("./x", "\".\""),
        ("a//b", "empty path component"), ("", "is empty"), ("x\\y", "backslash"), ("x\u{0}y", "NUL"), ("dir/", "empty path component"),
    ])
    func rejectsShardNamesThatLeaveTheDirectory(_ shard: String, _ mention: String) {
        expectRejected("{\"weight_map\":{\"t\":\(JSON.quoted(shard))}}", tensor: "t", field: "weight_map", mentions: mention)
    }

    @Test func checkFindsTensorsMissingFromTheirShard() throws {
        let headers = try ["model-00001-of-00003", "model-00002-of-00003", "model-00003-of-00003"].map {
            try SafetensorsHeader.read(path: fixturesDirectory.appendingPathComponent("sharded/\($0).safetensors").path)
        }
        let moved = try parse(#"{"weight_map":{"lm_head.weight":"model-00001-of-00003.safetensors","model.norm.weight":"model-00003-of-00003.safetensors"}}"#)
        #expect {
            try moved.check(against: headers)
        } throws: { error in
            let e = error as! SafetensorsError
            return e.tensor == "lm_head.weight" && e.kind == .index && e.message.contains("(it is in model-00003-of-00003.safetensors)")
        }
        let missingShard = try parse(#"{"weight_map":{"lm_head.weight":"model-00004-of-00003.safetensors"}}"#)
        #expect(throws: SafetensorsError.self) { try missingShard.check(against: headers) }
        // Tensors the index leaves out are not an error: loaders never look them up.
        let partial = try parse(#"{"weight_map":{"lm_head.weight":"model-00003-of-00003.safetensors"}}"#)
        try partial.check(against: headers)
    }

    @Test func randomMutationsOfTheFixtureIndexAreRejectedOrValid() throws {
        let original = try fixtureBytes("sharded/model.safetensors.index.json")
        var rng = SplitMix64(seed: 7)
        var outcomes = (accepted: 0, rejected: 0)
        for _ in 0..<1500 {
            let bytes = MalformedHeaderTests.mutate([0, 0, 0, 0, 0, 0, 0, 0] + original, &rng).dropFirst(8)
            do {
                let index = try SafetensorsIndex.parse(fileName: "i.json", data: bytes)
                #expect(!index.weightMap.isEmpty && index.shards == Set(index.weightMap.values).sorted())
                #expect(index.shards.allSatisfy { SafetensorsIndex.shardNameProblem($0) == nil })
                outcomes.accepted += 1
            } catch {
                #expect(error.kind == .index && error.file == "i.json")
                outcomes.rejected += 1
            }
        }
        #expect(outcomes.accepted > 0 && outcomes.rejected > 0, "\(outcomes)")
    }
}
