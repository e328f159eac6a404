/// The order in which to fetch a checkpoint's bytes so a forward pass can start early.
///
/// First the header of every shard (bytes 0..<dataStart), then tensors in the order a forward
/// pass touches them: embeddings, layer 0, layer 1, … (by the number in the name, so layer 10
/// comes after layer 2), the final norm, the LM head, then everything else. Tensors of one group
/// that lie back to back in one shard form a single step, so a plan is a short list of large
/// ranges. Guarantees: every byte of every shard (header and data) is in exactly one step; the
/// steps are sorted by `group`, then by shard (in the order the headers were given), then by offset.
public struct FetchPlan: Sendable, Hashable {
    /// Where a tensor is needed in a forward pass. Cases are declared in forward order, so
    /// the synthesized `<` is that order (layers by number).
    public enum Group: Comparable, Hashable, Sendable, CustomStringConvertible {
        case headers
        case embeddings
        case layer(Int)
        case finalNorm
        case lmHead
        case other

        /// Classifies a tensor by its name, for the layouts of Llama-family (HF and Meta), GPT-2,
        /// GPT-NeoX, Falcon and similar checkpoints.
        ///
        /// - layer N: a name component `layers`, `layer`, `h` or `blocks` followed by the
        ///   component N (`model.layers.N.…`, `layers.N.…`, `transformer.h.N.…`, `blocks.N.…`);
        /// - embeddings: a component containing `embed_tokens`, or one of `wte`, `wpe`,
        ///   `tok_embeddings`, `word_embeddings`, `embed_in`;
        /// - lm head: a component `lm_head` or `embed_out`, or a name starting `output.`;
        /// - final norm: a component `norm`, `ln_f`, `final_layernorm`, `final_layer_norm`, `final_norm`.
        public init(tensorName name: String) {
            let parts = name.split(separator: ".", omittingEmptySubsequences: false)
            for k in parts.indices.dropLast() where Self.layerContainers.contains(parts[k]) {
                let number = parts[k + 1]
                // At most 9 digits: Int() cannot overflow, and no model has a billion layers.
                if !number.isEmpty, number.count <= 9, number.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(number) {
                    self = .layer(n)
                    return
                }
            }
            if parts.contains(where: { $0.contains("embed_tokens") || Self.embeddingNames.contains($0) }) {
                self = .embeddings
            } else if parts.contains(where: { $0 == "lm_head" || $0 == "embed_out" }) || (parts.first == "output" && parts.count > 1) {
                self = .lmHead
            } else if parts.contains(where: { Self.finalNormNames.contains($0) }) {
                self = .finalNorm
            } else {
                self = .other
            }
        }

        static let layerContainers: Set<Substring> = ["layers", "layer", "h", "blocks"]
        static let embeddingNames: Set<Substring> = ["wte", "wpe", "tok_embeddings", "word_embeddings", "embed_in"]
        static let finalNormNames: Set<Substring> = ["norm", "ln_f", "final_layernorm", "final_layer_norm", "final_norm"]

        public var description: String {
            switch self {
            case .headers: return "headers"
            case .embeddings: return "embeddings"
            case .layer(let n): return "layer \(n)"
            case .finalNorm: return "final norm"
            case .lmHead: return "lm_head"
            case .other: return "other"
            }
        }
    }

    /// One contiguous byte range of one shard. Its range is empty only when all its tensors are
    /// (shape with a 0); there is nothing to fetch then, and an HTTP range cannot express it.
    public struct Step: Sendable, Hashable {
        public var shard: String
        /// Absolute, in the shard file.
        public var range: Range<Int64>
        /// The tensors the range holds, in offset order; empty for a header step.
        public var tensors: [String]
        public var group: Group

        public var byteCount: Int64 { range.upperBound - range.lowerBound }

        public init(shard: String, range: Range<Int64>, tensors: [String], group: Group) {
            self.shard = shard
            self.range = range
            self.tensors = tensors
            self.group = group
        }
    }

    public var steps: [Step]

    public init(steps: [Step]) { self.steps = steps }

    /// Bytes over all steps: the sum of the shards' sizes.
    public var totalBytes: Int64 { steps.reduce(0) { $0 + $1.byteCount } }

    /// The forward-pass order for a checkpoint. Pass the headers in shard order (as
    /// `SafetensorsIndex.shards` lists them); a single-file model is one header.
    public static func forwardOrder(headers: [SafetensorsHeader]) -> FetchPlan {
        var steps = headers.map { Step(shard: $0.fileName, range: 0..<$0.dataStart, tensors: [], group: .headers) }

        struct Item {
            var group: Group
            var shardRank: Int
            var position: Int  // index in the header's offset-sorted tensors
        }
        var items: [Item] = []
        items.reserveCapacity(headers.reduce(0) { $0 + $1.tensors.count })
        for (rank, header) in headers.enumerated() {
            for (position, tensor) in header.tensors.enumerated() {
                items.append(Item(group: Group(tensorName: tensor.name), shardRank: rank, position: position))
            }
        }
        // The headers' tensors are already in offset order, so position orders by offset.
        items.sort { ($0.group, $0.shardRank, $0.position) < ($1.group, $1.shardRank, $1.position) }

        var lastRank = -1
        for item in items {
            let tensor = headers[item.shardRank].tensors[item.position]
            if lastRank == item.shardRank, let last = steps.last, last.group == item.group, last.range.upperBound == tensor.fileRange.lowerBound {
                steps[steps.count - 1].range = last.range.lowerBound..<tensor.fileRange.upperBound
                steps[steps.count - 1].tensors.append(tensor.name)
            } else {
                steps.append(Step(shard: tensor.shard, range: tensor.fileRange, tensors: [tensor.name], group: item.group))
                lastRank = item.shardRank
            }
        }
        return FetchPlan(steps: steps)
    }
}
