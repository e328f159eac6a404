import ModelCore
import Foundation
import Safetensors

/// The weights of one decoder layer, as views into the checkpoint. Norm weights and biases
/// (a few KB per layer) are widened to f32 in each forward pass, after the layer's `ready`:
/// a cache-backed source's bytes must not be read before.
struct DecoderLayerWeights: Sendable {
    let inputNorm: WeightTensor
    let qProj, kProj, vProj, oProj: WeightTensor
    let qBias, kBias, vBias, oBias: WeightTensor?
    let postAttentionNorm: WeightTensor
    let gateProj, upProj, downProj: WeightTensor
    /// The `WeightSource` groups of this layer's tensors, awaited before the layer runs.
    let groups: [FetchPlan.Group]

    var tensors: [WeightTensor] {
        [inputNorm, qProj, kProj, vProj, oProj, postAttentionNorm, gateProj, upProj, downProj] + [qBias, kBias, vBias, oBias].compactMap { $0 }
    }

    /// The same layer with every tensor passed through `place`.
    func placed(_ place: (WeightTensor) -> WeightTensor) -> DecoderLayerWeights {
        DecoderLayerWeights(inputNorm: place(inputNorm), qProj: place(qProj), kProj: place(kProj), vProj: place(vProj), oProj: place(oProj),
                            qBias: qBias.map(place), kBias: kBias.map(place), vBias: vBias.map(place), oBias: oBias.map(place),
                            postAttentionNorm: place(postAttentionNorm), gateProj: place(gateProj), upProj: place(upProj),
                            downProj: place(downProj), groups: groups)
    }
}

/// A Llama-family decoder (Llama 2/3, Mistral, Qwen2, SmolLM): RMSNorm, rotary embeddings,
/// grouped-query attention with optional q/k/v bias, SwiGLU MLP, optionally tied embeddings.
///
/// Immutable once built, so it can run forward passes for several sequences at once (each with
/// its own `KVCache`). Tensors are read in place from the `WeightSource`, and only after it says
/// their group is ready: built from headers alone, the model can start a forward pass while the
/// weights still arrive, and layer i waits for layer i's bytes only.
public final class LlamaModel: Sendable {
    public let config: ModelConfig
    /// Worker threads per kernel.
    public let threads: Int
    /// The CPU kernel set its products run on (`CPUKernels.active` unless told otherwise).
    public let kernels: CPUKernelSet
    let source: any WeightSource
    let embedTokens: WeightTensor
    let layers: [DecoderLayerWeights]
    let finalNorm: WeightTensor
    /// `lm_head.weight`, or the embedding matrix when the embeddings are tied.
    let lmHead: WeightTensor
    let rotary: RotaryEmbedding
    /// Groups awaited before the embeddings are read, and before the final norm and LM head.
    let embeddingGroups: [FetchPlan.Group]
    let headGroups: [FetchPlan.Group]
    /// Where the weights are read from (see `WeightResidency`), and why.
    public let residency: WeightResidency.Choice
    /// The copies into huge-page memory still owed, when resident.
    let copies: ResidentCopies?

    /// Which positions' logits `forward` returns.
    public enum Logits: Sendable {
        case last
        case all
    }

    /// Loads `config.json` and maps the safetensors shards of a Hugging Face model directory.
    public convenience init(directory: URL, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                            kernels: CPUKernelSet = CPUKernels.active, residency: WeightResidency? = nil) throws(ModelError) {
        let config = try ModelConfig.load(directory: directory)
        let checkpoint = try SafetensorsCheckpoint(directory: directory)
        try self.init(config: config, weights: checkpoint, threads: threads, kernels: kernels, residency: residency)
    }

    /// Looks up every tensor the architecture needs, with the shapes `config` implies.
    ///
    /// `residency` nil chooses by the environment and the machine (`WeightResidency.choose`).
    public init(config: ModelConfig, weights: any WeightSource, threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                kernels: CPUKernelSet = CPUKernels.active, residency: WeightResidency? = nil) throws(ModelError) {
        self.config = config
        self.threads = max(1, threads)
        self.kernels = kernels
        self.source = weights
        let h = config.hiddenSize, i = config.intermediateSize, q = config.qDim, kv = config.kvDim
        let embedTokens = try weights.tensor("model.embed_tokens.weight", shape: [config.vocabSize, h])
        var layers: [DecoderLayerWeights] = []
        for l in 0..<config.layerCount {
            let p = "model.layers.\(l)."
            var used: [WeightTensor] = []
            func matrix(_ name: String, _ shape: [Int]) throws(ModelError) -> WeightTensor {
                let t = try weights.tensor(p + name, shape: shape)
                used.append(t)
                return t
            }
            func vector(_ name: String, _ n: Int) throws(ModelError) -> WeightTensor { try matrix(name, [n]) }
            let inputNorm = try vector("input_layernorm.weight", h)
            let qProj = try matrix("self_attn.q_proj.weight", [q, h]), kProj = try matrix("self_attn.k_proj.weight", [kv, h])
            let vProj = try matrix("self_attn.v_proj.weight", [kv, h]), oProj = try matrix("self_attn.o_proj.weight", [h, q])
            let qBias = config.qkvBias ? try vector("self_attn.q_proj.bias", q) : nil
            let kBias = config.qkvBias ? try vector("self_attn.k_proj.bias", kv) : nil
            let vBias = config.qkvBias ? try vector("self_attn.v_proj.bias", kv) : nil
            let oBias = config.outputBias ? try vector("self_attn.o_proj.bias", h) : nil
            let postAttentionNorm = try vector("post_attention_layernorm.weight", h)
            let gateProj = try matrix("mlp.gate_proj.weight", [i, h]), upProj = try matrix("mlp.up_proj.weight", [i, h])
            let downProj = try matrix("mlp.down_proj.weight", [h, i])
            layers.append(DecoderLayerWeights(
                inputNorm: inputNorm, qProj: qProj, kProj: kProj, vProj: vProj, oProj: oProj,
                qBias: qBias, kBias: kBias, vBias: vBias, oBias: oBias, postAttentionNorm: postAttentionNorm,
                gateProj: gateProj, upProj: upProj, downProj: downProj, groups: Self.groups(of: used)))
        }
        let finalNorm = try weights.tensor("model.norm.weight", shape: [h])
        let lmHead = config.tieWordEmbeddings ? embedTokens : try weights.tensor("lm_head.weight", shape: [config.vocabSize, h])
        rotary = RotaryEmbedding(headDim: config.headDim, rope: config.rope)
        embeddingGroups = Self.groups(of: [embedTokens])
        headGroups = Self.groups(of: [finalNorm, lmHead])

        let all = [embedTokens] + layers.flatMap(\.tensors) + [finalNorm, lmHead]
        var names = Set<String>()
        let modelBytes = all.filter { names.insert($0.name).inserted }.reduce(0) { $0 + $1.elementCount * $1.dtype.byteSize }
        var choice: WeightResidency.Choice
        if let residency {
            choice = WeightResidency.Choice(residency: residency, reason: "asked for")
        } else {
            do { choice = try WeightResidency.choose(modelBytes: modelBytes) } catch {
                throw ModelError(.invalidInput, file: WeightResidency.environmentVariable, error.description)
            }
        }
        var copies: ResidentCopies? = nil
        if choice.residency == .resident {
            copies = ResidentCopies(tensors: all, threads: self.threads)
            if copies == nil { choice = WeightResidency.Choice(residency: .mapped, reason: "no memory could be mapped for a copy of \(modelBytes) bytes") }
        }
        self.residency = choice
        self.copies = copies
        let place: (WeightTensor) -> WeightTensor = { t in copies?.resident(t) ?? t }
        self.embedTokens = place(embedTokens)
        self.layers = layers.map { $0.placed(place) }
        self.finalNorm = place(finalNorm)
        self.lmHead = place(lmHead)
    }

    /// One line for logs: where the weights are read from and why.
    public var residencySummary: String {
        residency.residency == .resident
            ? "weights: resident, copied into huge-page memory as each layer arrives (\(residency.reason); \(WeightResidency.environmentVariable)=mapped reads them in place)"
            : "weights: mapped in place (\(residency.reason); \(WeightResidency.environmentVariable)=resident copies them into huge pages)"
    }

    /// The distinct groups (as the fetch plan classifies tensor names) of `tensors`.
    private static func groups(of tensors: [WeightTensor?]) -> [FetchPlan.Group] {
        var seen: [FetchPlan.Group] = []
        for t in tensors.compactMap({ $0 }) {
            let g = FetchPlan.Group(tensorName: t.name)
            if !seen.contains(g) { seen.append(g) }
        }
        return seen
    }

    private func ready(_ groups: [FetchPlan.Group]) async throws(ModelError) {
        for g in groups {
            try await source.ready(g)
            copies?.copy(g)
        }
    }

    /// A cache for one sequence of up to `capacity` positions (a request's prompt plus its
    /// tokens, or `--max-model-len`; never the model's maximum by default: 128k positions of an
    /// 8B model are 34 GB of zeros).
    public func makeCache(capacity: Int) -> KVCache {
        KVCache(config: config, capacity: min(capacity, config.maxPositionEmbeddings))
    }

    /// Runs `tokens` at `positions` (default: right after what `cache` holds) through the
    /// model, storing their keys and values in `cache`, and returns next-token logits:
    /// `vocabSize` floats for the last token, or for every token one after another. Positions
    /// before `cache.count` are run again: what the cache held from there on is dropped.
    ///
    /// One sequence through the same path as a batch (`forward(_:kv:)`).
    public func forward(tokens: [Int], positions: [Int]? = nil, cache: KVCache, logits: Logits = .last) async throws(ModelError) -> [Float] {
        let positions = positions ?? Array(cache.count..<(cache.count + tokens.count))
        guard positions.count == tokens.count else {
            throw ModelError(.invalidInput, file: "forward", "\(tokens.count) tokens but \(positions.count) positions")
        }
        guard let start = positions.first, start >= 0, start <= cache.count else {
            throw ModelError(.invalidInput, file: "forward",
                             "positions must start at or before \(cache.count), the number of cached positions (got \(tokens.isEmpty ? "no tokens" : String(positions[0])))")
        }
        guard start + tokens.count <= cache.capacity else {
            throw ModelError(.invalidInput, file: "forward",
                             "positions up to \(start + tokens.count - 1) exceed the cache capacity of \(cache.capacity)")
        }
        var batch = Batch.single(tokens: tokens, start: start, blockTable: cache.blockTable, allLogits: logits == .all)
        batch.positions = positions  // checked to be consecutive by the batch path
        let result = try await forward(batch, kv: cache.memory)
        // Positions past the last one run now hold keys of a sequence that is no longer this one.
        cache.count = start + tokens.count
        return result
    }

    /// Runs one step for every sequence of `batch` (see `Batch`): their new tokens' keys and
    /// values go into `kv` through their block tables, and the logits of `batch.logitRows` come
    /// back, `vocabSize` floats each, in that order.
    ///
    /// The matrix products run once over all tokens of all sequences (many tokens: a prefill or a
    /// batched decode runs as matrix-matrix products); attention runs per token over its own
    /// sequence. Each group of weights is awaited (`WeightSource.ready`) just before its first use.
    public func forward(_ batch: Batch, kv: KVMemory) async throws(ModelError) -> [Float] {
        let rowSequence = try check(batch, kv: kv)
        let tokens = batch.tokens, positions = batch.positions
        let tables = batch.sequences.map { $0.blockTable.map(\.index) }
        let n = tokens.count, hidden = config.hiddenSize
        let qDim = config.qDim, kvDim = config.kvDim, inter = config.intermediateSize

        let x = Buffer(n * hidden)        // the residual stream
        let normed = Buffer(n * hidden)
        let q = Buffer(n * qDim), k = Buffer(n * kvDim), v = Buffer(n * kvDim)
        let attended = Buffer(n * qDim)
        let projected = Buffer(n * hidden)
        let gate = Buffer(n * inter), up = Buffer(n * inter)
        let cos = Buffer(config.headDim / 2 * n), sin = Buffer(config.headDim / 2 * n)

        // x = embed(tokens)
        try await ready(embeddingGroups)
        for (t, id) in tokens.enumerated() { embed(id, into: x.p + t * hidden) }
        for (t, pos) in positions.enumerated() {
            rotary.angles(position: pos, cos: cos.p + t * config.headDim / 2, sin: sin.p + t * config.headDim / 2)
        }

        for (l, layer) in layers.enumerated() {
            try await ready(layer.groups)
            let qBias = layer.qBias?.toFloats(), kBias = layer.kBias?.toFloats(), vBias = layer.vBias?.toFloats()
            // Attention block: x += o_proj(attention(rope(q), rope(k), v))
            RMSNorm.run(x.p, weight: layer.inputNorm.toFloats(), eps: config.rmsNormEps, n: hidden, tokens: n, out: normed.p)
            linear([(layer.qProj, q, qBias), (layer.kProj, k, kBias), (layer.vProj, v, vBias)], normed, tokens: n)
            for t in 0..<n {
                let c = cos.p + t * config.headDim / 2, s = sin.p + t * config.headDim / 2
                rotary.apply(q.p + t * qDim, heads: config.headCount, cos: c, sin: s)
                rotary.apply(k.p + t * kvDim, heads: config.kvHeadCount, cos: c, sin: s)
            }
            store(keys: k, values: v, positions: positions, rowSequence: rowSequence, tables: tables, layer: l, kv: kv)
            Attention.run(q: q.p, positions: positions, rowSequence: rowSequence, tables: tables, heads: config.headCount,
                          kv: kv, layer: l, window: config.slidingWindow, out: attended.p, threads: threads)
            linear(layer.oProj, attended, tokens: n, out: projected, bias: layer.oBias?.toFloats())
            add(projected, to: x)

            // MLP block: x += down_proj(silu(gate_proj(h)) ⊙ up_proj(h))
            RMSNorm.run(x.p, weight: layer.postAttentionNorm.toFloats(), eps: config.rmsNormEps, n: hidden, tokens: n, out: normed.p)
            linear([(layer.gateProj, gate, nil), (layer.upProj, up, nil)], normed, tokens: n)
            Activation.siluMultiply(gate.p, up.p, count: n * inter, threads: threads)
            linear(layer.downProj, gate, tokens: n, out: projected)
            add(projected, to: x)
        }

        // logits = lm_head(norm(x)) for the rows asked for
        let rows = batch.logitRows.count
        guard rows > 0 else { return [] }
        try await ready(headGroups)
        let finalWeight = finalNorm.toFloats()
        for (i, r) in batch.logitRows.enumerated() {
            RMSNorm.run(x.p + r * hidden, weight: finalWeight, eps: config.rmsNormEps, n: hidden, tokens: 1, out: normed.p + i * hidden)
        }
        var result = [Float](repeating: 0, count: rows * config.vocabSize)
        result.withUnsafeMutableBufferPointer { out in
            Matmul.run(lmHead, normed.p, tokens: rows, out: out.baseAddress!, threads: threads, kernels: kernels)
        }
        return result
    }

    // MARK: Steps

    /// Checks `batch` against the model and `kv`; returns each row's sequence.
    private func check(_ batch: Batch, kv: KVMemory) throws(ModelError) -> [Int] {
        func bad(_ message: String) -> ModelError { ModelError(.invalidInput, file: "forward", message) }
        let n = batch.tokens.count
        guard n > 0 else { throw bad("no tokens to run") }
        guard batch.positions.count == n else { throw bad("\(n) tokens but \(batch.positions.count) positions") }
        if let id = batch.tokens.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw bad("token id \(id) is outside the vocabulary (0..<\(config.vocabSize))")
        }
        guard kv.layerCount == config.layerCount, kv.kvHeadCount == config.kvHeadCount, kv.headDim == config.headDim else {
            throw bad("the KV memory was made for another model shape")
        }
        var rowSequence = [Int](repeating: -1, count: n)
        for (s, seq) in batch.sequences.enumerated() {
            guard !seq.rows.isEmpty, seq.rows.lowerBound >= 0, seq.rows.upperBound <= n else {
                throw bad("sequence \(s): rows \(seq.rows) are empty or outside the batch's \(n) tokens")
            }
            let start = batch.positions[seq.rows.lowerBound]
            for (i, r) in seq.rows.enumerated() {
                guard rowSequence[r] == -1 else { throw bad("row \(r) belongs to two sequences") }
                rowSequence[r] = s
                guard batch.positions[r] == start + i, start >= 0 else {
                    throw bad("sequence \(s): positions must be consecutive and non-negative")
                }
            }
            let last = start + seq.rows.count - 1
            guard last < seq.blockTable.count * kv.blockSize else {
                throw bad("sequence \(s): position \(last) is past its \(seq.blockTable.count) blocks of \(kv.blockSize)")
            }
            if let b = seq.blockTable.first(where: { $0.index < 0 || $0.index >= kv.blockCount }) {
                throw bad("sequence \(s): \(b) is not one of the \(kv.blockCount) blocks of the KV memory")
            }
        }
        if let r = rowSequence.firstIndex(of: -1) { throw bad("row \(r) belongs to no sequence") }
        if let r = batch.logitRows.first(where: { $0 < 0 || $0 >= n }) { throw bad("logit row \(r) is outside the batch's \(n) tokens") }
        return rowSequence
    }

    private func embed(_ id: Int, into out: UnsafeMutablePointer<Float>) {
        let row = id * config.hiddenSize
        for j in 0..<config.hiddenSize { out[j] = embedTokens.element(row + j) }
    }

    private func linear(_ w: WeightTensor, _ x: Buffer, tokens: Int, out: Buffer, bias: [Float]? = nil) {
        linear([(w, out, bias)], x, tokens: tokens)
    }

    /// Products of the same input as one job (q/k/v, gate/up; `Matmul.run(_:_:tokens:threads:)`).
    private func linear(_ products: [(WeightTensor, Buffer, [Float]?)], _ x: Buffer, tokens: Int) {
        let targets = products.map { w, out, bias in Matmul.Target(w: w, out: out.p, bias: bias) }
        Matmul.run(targets, x.p, tokens: tokens, threads: threads, kernels: kernels)
    }

    /// Each token's keys and values into its sequence's block for its position.
    private func store(keys k: Buffer, values v: Buffer, positions: [Int], rowSequence: [Int], tables: [[Int]], layer: Int, kv: KVMemory) {
        let d = config.headDim, kvDim = config.kvDim, bs = kv.blockSize
        for (t, pos) in positions.enumerated() {
            let block = tables[rowSequence[t]][pos / bs], slot = pos % bs
            for g in 0..<config.kvHeadCount {
                let dst = kv.offset(layer: layer, block: block, head: g) + slot * d
                (kv.keys + dst).update(from: k.p + t * kvDim + g * d, count: d)
                (kv.values + dst).update(from: v.p + t * kvDim + g * d, count: d)
            }
        }
    }

    private func add(_ y: Buffer, to x: Buffer) {
        for i in 0..<x.count { x.p[i] += y.p[i] }
    }
}

/// Scratch activations for one forward pass.
final class Buffer {
    let p: UnsafeMutablePointer<Float>
    let count: Int
    init(_ count: Int) {
        self.count = count
        p = .allocate(capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
    }
    deinit { p.deallocate() }
}
