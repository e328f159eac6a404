import Diagnostics

/// Why a model directory could not be loaded or run.
///
/// Every error names the file (`config.json`, a shard, the index) and, where one applies, the
/// tensor and the field; `message` says what was found and `description` adds what to do.
public typealias ModelError = FileError<ModelProblem>

/// Which kind of problem a model directory or a request has.
public enum ModelProblem: String, FileProblemKind {
    /// A file could not be opened, read or mapped.
    case io
    /// `config.json` is not JSON.
    case syntax
    /// A required field is missing or has the wrong JSON type or an impossible value.
    case invalidField
    /// An architecture, or a field value, this runtime does not implement.
    case unsupported
    /// A tensor the architecture needs is in no shard.
    case missingTensor
    /// A tensor has a different shape than the config implies.
    case shape
    /// A tensor has an element type the kernels cannot read.
    case dtype
    /// A shard or the index is damaged (bad header, truncated, disagreeing with the index).
    case checkpoint
    /// A request the model cannot serve (a token id out of range, a sequence past the cache).
    case invalidInput

    public var advice: String {
        switch self {
        case .io: return "check that the model directory holds the checkpoint files and that they are readable"
        case .syntax, .invalidField: return "the file does not look like a Hugging Face config.json; re-export the model with save_pretrained"
        case .unsupported: return "this runtime runs LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM checkpoints in f32, f16 or bf16"
        case .missingTensor, .shape: return "the weights do not match config.json; check that both come from the same checkpoint"
        case .dtype: return "convert the checkpoint to f32, f16 or bf16 (e.g. save_pretrained after model.to(torch.bfloat16))"
        case .checkpoint: return "the checkpoint is incomplete or damaged: copy it again from the source"
        case .invalidInput: return "check the request against the model's vocabulary and context length"
        }
    }
}
