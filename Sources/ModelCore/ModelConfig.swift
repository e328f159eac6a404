import JSON
import Foundation

/// The shape and hyperparameters of a Llama-family model, read from its `config.json`.
///
/// Guarantees: the architecture is one this runtime implements; sizes are positive;
/// `headCount` is a multiple of `kvHeadCount` (grouped-query attention); `headDim` is even
/// (RoPE rotates pairs). Fields that would change the computation but are not implemented
/// (another activation, MLP bias, sliding windows in Qwen2, RoPE scalings other than llama3,
/// partial rotary, quantization) are refused when loading, never ignored.
public struct ModelConfig: Sendable, Equatable {
    public enum Architecture: String, Sendable, CaseIterable {
        case llama = "LlamaForCausalLM"
        case mistral = "MistralForCausalLM"
        case qwen2 = "Qwen2ForCausalLM"
    }

    /// How rotary position embeddings turn positions into angles.
    public struct RoPE: Sendable, Equatable {
        public enum Scaling: Sendable, Equatable {
            /// Llama 3.1's frequency-dependent rescaling of the inverse frequencies.
            case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int)
        }
        public var theta: Double
        public var scaling: Scaling?
    }

    public var architecture: Architecture
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var rmsNormEps: Float
    public var vocabSize: Int
    public var tieWordEmbeddings: Bool
    public var rope: RoPE
    /// q/k/v projections carry a bias (Qwen2 always; Llama with `attention_bias`).
    public var qkvBias: Bool
    /// o_proj carries a bias (Llama with `attention_bias`).
    public var outputBias: Bool
    /// Mistral's sliding window: a query attends to at most this many most recent positions.
    public var slidingWindow: Int?
    public var maxPositionEmbeddings: Int
    public var bosTokenID: Int?
    public var eosTokenIDs: [Int]

    public var qDim: Int { headCount * headDim }
    public var kvDim: Int { kvHeadCount * headDim }

    /// Reads `config.json` from a model directory.
    public static func load(directory: URL) throws(ModelError) -> ModelConfig {
        let url = directory.appendingPathComponent("config.json")
        let bytes: [UInt8]
        do {
            bytes = Array(try Data(contentsOf: url))
        } catch {
            throw ModelError(.io, file: url.path, "cannot read: \(error.localizedDescription)")
        }
        return try parse(bytes, fileName: "config.json")
    }

    /// Parses the contents of a `config.json`.
    public static func parse(_ bytes: [UInt8], fileName: String = "config.json") throws(ModelError) -> ModelConfig {
        let root: JSON.Value
        do {
            root = try JSON.parse(bytes, duplicateKeys: .keep)
        } catch {
            let (line, column) = JSON.lineAndColumn(of: error.offset, in: bytes)
            throw ModelError(.syntax, file: fileName, "not valid JSON at line \(line), column \(column): \(error.message)")
        }
        let c = ConfigReader(root: root, file: fileName)
        guard case .object = root else { throw ModelError(.invalidField, file: fileName, "must hold a JSON object, found \(root.kindName)") }

        // Architecture: exactly one of the supported classes.
        guard let archValue = c.member("architectures") else {
            throw c.error(.invalidField, "architectures", "missing; expected e.g. [\"LlamaForCausalLM\"]")
        }
        guard case .array(let archItems) = archValue, archItems.count == 1, case .string(let archName) = archItems[0] else {
            throw c.error(.invalidField, "architectures", "expected an array of one class name, found \(archValue.kindName)")
        }
        guard let architecture = Architecture(rawValue: archName) else {
            throw c.error(.unsupported, "architectures", "unsupported architecture \"\(archName)\"; supported: \(Architecture.allCases.map(\.rawValue).joined(separator: ", "))")
        }

        let hidden = try c.positiveInt("hidden_size")
        let heads = try c.positiveInt("num_attention_heads")
        let kvHeads = try c.optionalPositiveInt("num_key_value_heads") ?? heads
        guard heads % kvHeads == 0 else {
            throw c.error(.invalidField, "num_key_value_heads", "\(kvHeads) does not divide num_attention_heads (\(heads))")
        }
        let headDim: Int
        if let d = try c.optionalPositiveInt("head_dim") {
            headDim = d
        } else {
            guard hidden % heads == 0 else {
                throw c.error(.invalidField, "head_dim", "missing, and hidden_size \(hidden) is not a multiple of num_attention_heads \(heads)")
            }
            headDim = hidden / heads
        }
        guard headDim % 2 == 0 else { throw c.error(.invalidField, "head_dim", "\(headDim) is odd; RoPE rotates pairs of dimensions") }

        // Fields that change the computation: refuse what is not implemented.
        if let act = try c.optionalString("hidden_act"), act != "silu" {
            throw c.error(.unsupported, "hidden_act", "unsupported activation \"\(act)\"; supported: silu")
        }
        if try c.optionalBool("mlp_bias") == true {
            throw c.error(.unsupported, "mlp_bias", "MLP biases are not supported")
        }
        if c.present("quantization_config") != nil {
            throw c.error(.unsupported, "quantization_config", "quantized checkpoints are not supported")
        }
        if let prf = try c.optionalDouble("partial_rotary_factor"), prf != 1 {
            throw c.error(.unsupported, "partial_rotary_factor", "partial rotary embeddings (\(prf)) are not supported")
        }

        var qkvBias = false, outputBias = false
        var slidingWindow: Int? = nil
        switch architecture {
        case .llama:
            if try c.optionalBool("attention_bias") == true { qkvBias = true; outputBias = true }
        case .mistral:
            if try c.optionalBool("attention_bias") == true {
                throw c.error(.unsupported, "attention_bias", "attention biases are not supported for MistralForCausalLM")
            }
            slidingWindow = try c.optionalPositiveInt("sliding_window")
        case .qwen2:
            qkvBias = true
            if try c.optionalBool("use_sliding_window") == true {
                throw c.error(.unsupported, "use_sliding_window", "Qwen2 sliding-window attention is not supported")
            }
        }

        let rope = try parseRoPE(c)
        let eos: [Int]
        switch c.member("eos_token_id") {
        case nil, .null?: eos = []
        case .array(let items)?:
            var ids: [Int] = []
            for (i, item) in items.enumerated() {
                guard case .number(let n) = item, let d = n.integer, d >= 0, let id = Int(exactly: d) else {
                    throw c.error(.invalidField, "eos_token_id[\(i)]", "expected a token id, found \(item.kindName)")
                }
                ids.append(id)
            }
            eos = ids
        case .some: eos = [try c.int("eos_token_id")]
        }

        let config = ModelConfig(
            architecture: architecture,
            hiddenSize: hidden,
            intermediateSize: try c.positiveInt("intermediate_size"),
            layerCount: try c.positiveInt("num_hidden_layers"),
            headCount: heads,
            kvHeadCount: kvHeads,
            headDim: headDim,
            rmsNormEps: Float(try c.optionalDouble("rms_norm_eps") ?? 1e-6),
            vocabSize: try c.positiveInt("vocab_size"),
            tieWordEmbeddings: try c.optionalBool("tie_word_embeddings") ?? false,
            rope: rope,
            qkvBias: qkvBias,
            outputBias: outputBias,
            slidingWindow: slidingWindow,
            maxPositionEmbeddings: try c.optionalPositiveInt("max_position_embeddings") ?? 2048,
            bosTokenID: try c.optionalInt("bos_token_id"),
            eosTokenIDs: eos
        )
        return config
    }

    /// RoPE in either spelling: transformers v5's `rope_parameters` {rope_theta, rope_type, …}
    /// or the legacy top-level `rope_theta` with an optional `rope_scaling` object.
    private static func parseRoPE(_ c: ConfigReader) throws(ModelError) -> RoPE {
        let (params, prefix): (ConfigReader, String)
        let theta: Double
        if let p = c.present("rope_parameters"), case .object = p {
            params = ConfigReader(root: p, file: c.file, path: "rope_parameters.")
            prefix = "rope_parameters."
            let legacy = try c.optionalDouble("rope_theta")
            theta = try params.optionalDouble("rope_theta") ?? legacy ?? 10000
        } else if let p = c.present("rope_scaling"), case .object = p {
            params = ConfigReader(root: p, file: c.file, path: "rope_scaling.")
            prefix = "rope_scaling."
            theta = try c.optionalDouble("rope_theta") ?? 10000
        } else {
            if let p = c.present("rope_parameters") { throw c.error(.invalidField, "rope_parameters", "expected an object, found \(p.kindName)") }
            if let p = c.present("rope_scaling") { throw c.error(.invalidField, "rope_scaling", "expected an object or null, found \(p.kindName)") }
            return RoPE(theta: try c.optionalDouble("rope_theta") ?? 10000, scaling: nil)
        }
        guard theta > 0 else { throw c.error(.invalidField, prefix + "rope_theta", "must be positive, found \(theta)") }
        // Older checkpoints spell the key "type".
        let typeField = params.member("rope_type") != nil ? "rope_type" : "type"
        let type = try params.optionalString(typeField) ?? "default"
        switch type {
        case "default":
            return RoPE(theta: theta, scaling: nil)
        case "llama3":
            let scaling = RoPE.Scaling.llama3(
                factor: try params.double("factor"),
                lowFreqFactor: try params.double("low_freq_factor"),
                highFreqFactor: try params.double("high_freq_factor"),
                originalMaxPositions: try params.positiveInt("original_max_position_embeddings"))
            if case .llama3(let f, let lo, let hi, _) = scaling, !(f > 0 && lo > 0 && hi > lo) {
                throw c.error(.invalidField, prefix + "factor", "llama3 scaling needs factor > 0 and high_freq_factor > low_freq_factor > 0")
            }
            return RoPE(theta: theta, scaling: scaling)
        default:
            throw c.error(.unsupported, prefix + typeField, "unsupported RoPE type \"\(type)\"; supported: default, llama3")
        }
    }
}

/// Typed access to the members of one JSON object of config.json, with errors naming the field.
struct ConfigReader {
    let root: JSON.Value
    let file: String
    var path: String = ""

    func member(_ key: String) -> JSON.Value? {
        guard case .object(let members) = root else { return nil }
        return members.last(where: { $0.key.utf8.elementsEqual(key.utf8) })?.value
    }

    func error(_ kind: ModelError.Kind, _ key: String, _ message: String) -> ModelError {
        ModelError(kind, file: file, field: key.hasPrefix(path) ? key : path + key, message)
    }

    /// The member, or nil when absent or null.
    func present(_ key: String) -> JSON.Value? {
        guard let v = member(key) else { return nil }
        if case .null = v { return nil }
        return v
    }

    func optionalDouble(_ key: String) throws(ModelError) -> Double? {
        guard let v = present(key) else { return nil }
        guard case .number(let n) = v else { throw error(.invalidField, key, "expected a number, found \(v.kindName)") }
        return n.double
    }

    func double(_ key: String) throws(ModelError) -> Double {
        guard let d = try optionalDouble(key) else { throw error(.invalidField, key, "missing") }
        return d
    }

    func optionalInt(_ key: String) throws(ModelError) -> Int? {
        guard let v = present(key) else { return nil }
        guard case .number(let n) = v, let i = n.exactInteger.flatMap({ Int(exactly: $0) }) else { throw error(.invalidField, key, "expected an integer, found \(v.kindName)") }
        return i
    }

    func int(_ key: String) throws(ModelError) -> Int {
        guard let i = try optionalInt(key) else { throw error(.invalidField, key, "missing") }
        return i
    }

    func optionalPositiveInt(_ key: String) throws(ModelError) -> Int? {
        guard let i = try optionalInt(key) else { return nil }
        guard i > 0 else { throw error(.invalidField, key, "must be positive, found \(i)") }
        let limit = Self.limits[key] ?? Self.defaultLimit
        guard i <= limit else {
            throw error(.invalidField, key, "\(i) is more than this runtime accepts (\(limit)); no released model comes near it, so the file is likely wrong")
        }
        return i
    }

    /// The largest value each size may have: far above every released model (hidden 16384,
    /// intermediate 53248, 128 heads, 126 layers, a 262144-token vocabulary, 10M positions)
    /// and small enough that products of three sizes (tensor shapes, KV memory) cannot
    /// overflow 64 bits, which would stop the process instead of naming the field.
    static let limits: [String: Int] = [
        "num_attention_heads": 1 << 16, "num_key_value_heads": 1 << 16, "num_hidden_layers": 1 << 16,
        "vocab_size": 1 << 24, "max_position_embeddings": 1 << 30, "original_max_position_embeddings": 1 << 30,
        "sliding_window": 1 << 30,
    ]
    /// hidden_size, intermediate_size, head_dim.
    static let defaultLimit = 1 << 20

    func positiveInt(_ key: String) throws(ModelError) -> Int {
        guard let i = try optionalPositiveInt(key) else { throw error(.invalidField, key, "missing") }
        return i
    }

    func optionalBool(_ key: String) throws(ModelError) -> Bool? {
        guard let v = present(key) else { return nil }
        guard case .bool(let b) = v else { throw error(.invalidField, key, "expected true or false, found \(v.kindName)") }
        return b
    }

    func optionalString(_ key: String) throws(ModelError) -> String? {
        guard let v = present(key) else { return nil }
        guard case .string(let s) = v else { throw error(.invalidField, key, "expected a string, found \(v.kindName)") }
        return s
    }
}
