import JSON

/// transformers' `tojson` filter: Python's `json.dumps(x, ensure_ascii=False, indent=None,
/// separators=None, sort_keys=False)` (not jinja2's HTML-escaping `tojson`).
struct JSONEncoding {
    var indent: String? = nil
    var itemSeparator = ", "
    var keySeparator = ": "
    var sortKeys = false
    var ensureASCII = false

    func encode(_ value: PyValue) throws -> String {
        var out = ""
        try write(value, level: 0, into: &out)
        return out
    }

    private func write(_ value: PyValue, level: Int, into out: inout String) throws {
        switch value {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += Self.number(d)
        case .string(let s): writeString(s, into: &out)
        case .list(let items), .tuple(let items):
            if items.isEmpty {
                out += "[]"
                return
            }
            out += "["
            let (open, separator, close) = layout(level)
            out += open
            for (i, item) in items.enumerated() {
                if i > 0 { out += separator }
                try write(item, level: level + 1, into: &out)
            }
            out += close + "]"
        case .dict(let d):
            if d.isEmpty {
                out += "{}"
                return
            }
            var entries = try d.items.map { (key: try Self.key($0.key), value: $0.value) }
            if sortKeys {
                for e in d.keys {
                    guard case .string = e else { throw RenderError.runtime("sort_keys: keys must all be strings") }
                }
                entries = entries.stableSorted { PyString.less($0.key, $1.key) }
            }
            out += "{"
            let (open, separator, close) = layout(level)
            out += open
            for (i, e) in entries.enumerated() {
                if i > 0 { out += separator }
                writeString(e.key, into: &out)
                out += keySeparator
                try write(e.value, level: level + 1, into: &out)
            }
            out += close + "}"
        case .undefined:
            throw RenderError.runtime("Object of type Undefined is not JSON serializable")
        default:
            throw RenderError.runtime("Object of type \(value.typeName) is not JSON serializable")
        }
    }

    private func layout(_ level: Int) -> (open: String, separator: String, close: String) {
        guard let indent else { return ("", itemSeparator, "") }
        let inner = "\n" + String(repeating: indent, count: level + 1)
        return (inner, itemSeparator + inner, "\n" + String(repeating: indent, count: level))
    }

    /// Python's float repr, with JSON's names for the non-finite values.
    static func number(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        return PyString.floatRepr(d)
    }

    private static func key(_ k: PyValue) throws -> String {
        switch k {
        case .string(let s): return s
        case .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return number(d)
        default: throw RenderError.runtime("keys must be str, int, float, bool or None, not \(k.typeName)")
        }
    }

    private func writeString(_ s: String, into out: inout String) {
        out += JSON.quoted(s, shortControlEscapes: true, ensureASCII: ensureASCII)
    }
}
