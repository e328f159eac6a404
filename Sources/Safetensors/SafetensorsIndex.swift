import JSON
/// A sharded checkpoint's `model.safetensors.index.json`: which shard holds each tensor.
///
/// Guarantees: `weight_map` was present, non-empty, and mapped strings to strings with no key
/// twice; every shard name is a relative path of plain components (no "", ".", "..", no leading
/// "/", no backslash or NUL), so it can be resolved next to the index without leaving its
/// directory. `shards` lists each shard once, sorted.
public struct SafetensorsIndex: Sendable {
    public let fileName: String
    /// Tensor name → shard file name.
    public let weightMap: [String: String]
    /// Unique shard names, sorted (which is also shard order for `model-0000k-of-0000n` names).
    public let shards: [String]
    /// The `metadata` object; string values as they are, other values as compact JSON text
    /// (`total_size` is a number, so it appears as its digits).
    public let metadata: [String: String]
    /// `metadata.total_size`, the sum of tensor bytes, when present as an integer.
    public let totalSize: Int64?

    public static func parse(fileName: String, data: some Collection<UInt8>) throws(SafetensorsError) -> SafetensorsIndex {
        let root: JSON.Value
        do {
            root = try JSON.parse(Array(data))
        } catch {
            // Here the top-level key ("weight_map") is the field and the key below it the tensor.
            var e = SafetensorsHeader.jsonError(error, file: fileName, what: "index", base: 0)
            (e.kind, e.tensor, e.field) = (.index, e.tensor == "weight_map" ? e.field : nil, e.tensor)
            throw e
        }
        guard case .object = root else {
            throw SafetensorsError(.index, file: fileName, "the index must be a JSON object with a \"weight_map\", found \(root.kindName)")
        }

        var metadata: [String: String] = [:]
        var totalSize: Int64? = nil
        switch root["metadata"] {
        case nil, .null?:
            break
        case .object(let members)?:
            for m in members {
                if case .string(let s) = m.value { metadata[m.key] = s } else { metadata[m.key] = m.value.compactText }
                if m.key == "total_size", case .number(let n) = m.value, !n.isNegative { totalSize = n.integer }
            }
        case let other?:
            throw SafetensorsError(.index, file: fileName, field: "metadata", "must be an object, found \(other.kindName)")
        }

        guard let mapValue = root["weight_map"] else {
            throw SafetensorsError(.index, file: fileName, field: "weight_map", "missing; the index must map each tensor name to its shard file")
        }
        guard case .object(let entries) = mapValue else {
            throw SafetensorsError(.index, file: fileName, field: "weight_map", "must be an object of tensor name → shard file name, found \(mapValue.kindName)")
        }
        guard !entries.isEmpty else {
            throw SafetensorsError(.index, file: fileName, field: "weight_map", "is empty; the index lists no tensors")
        }
        var weightMap: [String: String] = [:]
        weightMap.reserveCapacity(entries.count)
        var shardSet = Set<String>()
        for entry in entries {
            guard case .string(let shard) = entry.value else {
                throw SafetensorsError(.index, file: fileName, tensor: entry.key, field: "weight_map",
                                       "the shard must be a file name string, found \(entry.value.kindName)")
            }
            if let problem = shardNameProblem(shard) {
                throw SafetensorsError(.index, file: fileName, tensor: entry.key, field: "weight_map",
                                       "shard name \(JSON.quoted(shard)) \(problem); shard names must be relative paths next to the index")
            }
            weightMap[entry.key] = shard
            shardSet.insert(shard)
        }
        return SafetensorsIndex(fileName: fileName, weightMap: weightMap, shards: shardSet.sorted(), metadata: metadata, totalSize: totalSize)
    }

    /// Checks the index against the shards' headers: every shard it names is among `headers`
    /// (matched by `fileName`), and every tensor it places in a shard is in that shard's header.
    /// Tensors a shard holds but the index omits are allowed (loaders never look them up).
    public func check(against headers: [SafetensorsHeader]) throws(SafetensorsError) {
        var byName: [String: SafetensorsHeader] = [:]
        for h in headers { byName[h.fileName] = h }
        for shard in shards where byName[shard] == nil {
            throw SafetensorsError(.index, file: fileName, field: "weight_map",
                                   "names shard \(JSON.quoted(shard)), but no header was read for it; is the file missing?")
        }
        // Sorted so the error, if any, is the same on every run.
        for (tensor, shard) in weightMap.sorted(by: { $0.key < $1.key }) where byName[shard]?.tensor(named: tensor) == nil {
            let elsewhere = headers.first { $0.tensor(named: tensor) != nil }.map { " (it is in \($0.fileName))" } ?? ""
            throw SafetensorsError(.index, file: fileName, tensor: tensor, field: "weight_map",
                                   "the index places it in \(shard), whose header does not list it\(elsewhere)")
        }
    }

    /// Why `name` is not an acceptable shard path, or nil when it is.
    static func shardNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "is empty" }
        if name.hasPrefix("/") { return "is an absolute path" }
        if name.contains("\\") { return "contains a backslash" }
        if name.utf8.contains(0) { return "contains a NUL byte" }
        for component in name.split(separator: "/", omittingEmptySubsequences: false) {
            switch component {
            case "": return "has an empty path component"
            case ".", "..": return "has a \"\(component)\" path component"
            default: continue
            }
        }
        return nil
    }
}
