import Safetensors

/// Where a model's tensors come from.
///
/// The model asks for every tensor once, when it is built, by its Hugging Face name and the
/// shape the config implies; the views it gets may point at bytes that are not local yet.
/// Before a forward pass touches a group of tensors (embeddings, layer i, final norm, lm_head)
/// it awaits `ready(group)`. A local checkpoint is always ready; a source backed by the chunk
/// cache will map the cache's sparse data file and suspend in `ready` until the group's chunks
/// are present (requesting them at demand priority), so the first token can come as soon as
/// the last layer lands.
public protocol WeightSource: Sendable {
    /// The tensor `name`, checked to have exactly `shape` and a dtype the kernels read.
    func tensor(_ name: String, shape: [Int]) throws(ModelError) -> WeightTensor
    /// Whether the checkpoint holds `name` (for optional tensors such as `lm_head.weight`).
    func contains(_ name: String) -> Bool
    /// Returns once every tensor of `group` can be read. Until it has, a tensor's bytes must not
    /// be read (a cache-backed source's unfetched bytes read as zeros).
    func ready(_ group: FetchPlan.Group) async throws(ModelError)
}
