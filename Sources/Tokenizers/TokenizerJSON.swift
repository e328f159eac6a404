import JSON

/// A JSON value together with where it is, so that every complaint names the file and field.
struct JSONNode {
    let value: JSON.Value
    let path: String
    let file: String

    func error(_ message: String, kind: TokenizerError.Kind = .invalidField) -> TokenizerError {
        TokenizerError(kind: kind, file: file, field: path, message: message)
    }

    func childPath(_ key: String) -> String { path.isEmpty ? key : path + "." + key }

    var isNull: Bool { if case .null = value { return true } else { return false } }

    /// Member `key`, or nil when absent or null.
    func optional(_ key: String) throws(TokenizerError) -> JSONNode? {
        guard case .object(let members) = value else { throw error("expected an object, found \(value.kindName)") }
        // The last of equal keys wins, as serde_json does for maps.
        guard let member = members.last(where: { $0.key.utf8.elementsEqual(key.utf8) }) else { return nil }
        if case .null = member.value { return nil }
        return JSONNode(value: member.value, path: childPath(key), file: file)
    }

    func required(_ key: String) throws(TokenizerError) -> JSONNode {
        guard let node = try optional(key) else {
            throw TokenizerError(kind: .invalidField, file: file, field: childPath(key), message: "missing (or null)")
        }
        return node
    }

    var string: String {
        get throws(TokenizerError) {
            guard case .string(let s) = value else { throw error("expected a string, found \(value.kindName)") }
            return s
        }
    }

    var bool: Bool {
        get throws(TokenizerError) {
            guard case .bool(let b) = value else { throw error("expected true or false, found \(value.kindName)") }
            return b
        }
    }

    var int: Int {
        get throws(TokenizerError) {
            guard case .number(let n) = value, let i = n.integer, i >= -9_000_000_000_000_000, i <= 9_000_000_000_000_000 else {
                throw error("expected an integer, found \(value.kindName)")
            }
            return Int(i)
        }
    }

    var array: [JSONNode] {
        get throws(TokenizerError) {
            guard case .array(let items) = value else { throw error("expected an array, found \(value.kindName)") }
            var out: [JSONNode] = []
            out.reserveCapacity(items.count)
            for (k, v) in items.enumerated() { out.append(JSONNode(value: v, path: "\(path)[\(k)]", file: file)) }
            return out
        }
    }

    /// The members of an object in document order.
    var members: [(key: String, node: JSONNode)] {
        get throws(TokenizerError) {
            guard case .object(let items) = value else { throw error("expected an object, found \(value.kindName)") }
            var out: [(key: String, node: JSONNode)] = []
            out.reserveCapacity(items.count)
            for m in items { out.append((m.key, JSONNode(value: m.value, path: childPath(m.key), file: file))) }
            return out
        }
    }

    func bool(_ key: String, default def: Bool) throws(TokenizerError) -> Bool {
        guard let n = try optional(key) else { return def }
        return try n.bool
    }

    /// The component's `type` tag.
    var typeTag: String {
        get throws(TokenizerError) { try required("type").string }
    }
}
