import Foundation

/// jinja2's built-in filters with their Python behaviour, plus transformers' `tojson`.
extension TemplateRenderer {
    static let supportedFilters: Set<String> = [
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "indent", "int",
        "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse",
        "round", "safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "unique", "upper",
        "wordcount",
    ]
    static let unsupportedFilters: Set<String> = [
        "batch", "center", "filesizeformat", "forceescape", "format", "groupby", "pprint", "random", "slice", "striptags",
        "truncate", "urlencode", "urlize", "wordwrap", "xmlattr",
    ]

    func filter(_ name: String, _ value: PyValue, _ args: [PyValue], _ kwargs: [(name: String, value: PyValue)]) throws -> PyValue {
        func bind(_ names: [String], required: Int = 0) throws -> [PyValue?] {
            try bindArguments(name, names, required: required, args, kwargs)
        }
        switch name {
        case "abs":
            _ = try bind([])
            switch value.number {
            case .int(let i)?: return .int(i.magnitude > UInt(Int.max) ? i : abs(i))
            case .double(let d)?: return .double(abs(d))
            case nil:
                if case .undefined(let u) = value { throw u.error }
                throw RenderError.runtime("bad operand type for abs(): '\(value.typeName)'")
            }
        case "attr":
            let a = try bind(["name"], required: 1)
            let attribute = a[0]!.str
            return try Attributes.attribute(value, attribute) ?? .undefined(.attribute(attribute, of: value))
        case "capitalize":
            _ = try bind([])
            return .string(PyString.capitalize(value.str))
        case "count", "length":
            _ = try bind([])
            return .int(try value.length())
        case "d", "default":
            let a = try bind(["default_value", "boolean"])
            let fallback = a[0] ?? .emptyString
            if value.isUndefined || ((a[1]?.truthy ?? false) && !value.truthy) { return fallback }
            return value
        case "dictsort":
            let a = try bind(["case_sensitive", "by", "reverse"])
            guard case .dict(let d) = value else { throw RenderError.runtime("dictsort expects a mapping, got \(value.typeName)") }
            let caseSensitive = a[0]?.truthy ?? false
            let by = a[1].map(\.str) ?? "key"
            guard by == "key" || by == "value" else { throw RenderError.runtime("You can only sort by either \"key\" or \"value\"") }
            let items = d.items.map { PyValue.tuple([$0.key, $0.value]) }
            return .list(try sortValues(items, reverse: a[2]?.truthy ?? false) { item in
                guard case .tuple(let kv) = item else { return item }
                let v = kv[by == "key" ? 0 : 1]
                return caseSensitive ? v : Self.ignoreCase(v)
            })
        case "e", "escape":
            _ = try bind([])
            var out = ""
            for c in value.str.unicodeScalars {
                switch c {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&#34;"
                case "'": out += "&#39;"
                default: out.unicodeScalars.append(c)
                }
            }
            return .string(out)
        case "first":
            _ = try bind([])
            return try value.iterate().first ?? .undefined(Undefined(message: "No first item, sequence was empty."))
        case "last":
            _ = try bind([])
            return try value.iterate().last ?? .undefined(Undefined(message: "No last item, sequence was empty."))
        case "float":
            let a = try bind(["default"])
            return Self.toFloat(value).map(PyValue.double) ?? a[0] ?? .double(0)
        case "int":
            let a = try bind(["default", "base"])
            let base = try a[1].map { try Methods.requireInt($0, "int") } ?? 10
            if case .string(let s) = value, let i = Self.parseInt(s, base: base) { return .int(i) }
            switch value {
            case .bool(let b): return .int(b ? 1 : 0)
            case .int(let i): return .int(i)
            case .undefined(let u): throw u.error
            default: break
            }
            if let d = Self.toFloat(value), !d.isNaN {
                guard d.isFinite, d.magnitude < 0x1p63 else { throw RenderError.runtime("cannot convert float \(PyString.floatRepr(d)) to integer") }
                return .int(Int(d))
            }
            return a[0] ?? .int(0)
        case "indent":
            let a = try bind(["width", "first", "blank"])
            guard case .string(var s) = value else {
                if case .undefined(let u) = value { throw u.error }
                throw RenderError.runtime("indent expects a string, got \(value.typeName)")
            }
            let indention: String
            switch a[0] {
            case .string(let w)?: indention = w
            case nil: indention = "    "
            case let w?: indention = String(repeating: " ", count: max(0, try Methods.requireWidth(w, "indent")))
            }
            s += "\n"
            var rv: String
            if a[2]?.truthy ?? false {
                rv = PyString.splitLines(s).joined(separator: "\n" + indention)
            } else {
                var lines = PyString.splitLines(s)
                rv = lines.removeFirst()
                if !lines.isEmpty { rv += "\n" + lines.map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n") }
            }
            if a[1]?.truthy ?? false { rv = indention + rv }
            return .string(rv)
        case "items":
            _ = try bind([])
            switch value {
            case .undefined: return .list([])
            case .dict(let d): return .list(d.items.map { .tuple([$0.key, $0.value]) })
            default: throw RenderError.runtime("Can only get item pairs from a mapping.")
            }
        case "join":
            let a = try bind(["d", "attribute"])
            var items = try value.iterate()
            if let attribute = a[1].orNone { items = try items.map(attributeGetter(attribute)) }
            return .string(items.map(\.str).joined(separator: a[0].map(\.str) ?? ""))
        case "list":
            _ = try bind([])
            return .list(try value.iterate())
        case "lower":
            _ = try bind([])
            return .string(PyString.lower(value.str))
        case "upper":
            _ = try bind([])
            return .string(PyString.upper(value.str))
        case "map":
            guard value.truthy else { return .list([]) }
            let items = try value.iterate()
            if args.isEmpty, let attribute = kwargs.first(where: { $0.name == "attribute" })?.value {
                var fallback: PyValue? = nil
                for (k, v) in kwargs where k != "attribute" {
                    guard k == "default" else { throw RenderError.runtime("Unexpected keyword argument '\(k)'") }
                    fallback = v.orNoneValue
                }
                return .list(try items.map(attributeGetter(attribute, default: fallback)))
            }
            guard let filterName = args.first else { throw RenderError.runtime("map requires a filter argument") }
            let rest = Array(args.dropFirst())
            return .list(try items.map { try filter(filterName.str, $0, rest, kwargs) })
        case "max", "min":
            let a = try bind(["case_sensitive", "attribute"])
            let items = try value.iterate()
            guard var best = items.first else {
                return .undefined(Undefined(message: "No aggregated item, sequence was empty."))
            }
            let caseSensitive = a[0]?.truthy ?? false
            let getter = try attributeGetter(a[1].orNone)
            func key(_ v: PyValue) throws -> PyValue { caseSensitive ? try getter(v) : Self.ignoreCase(try getter(v)) }
            var bestKey = try key(best)
            for item in items.dropFirst() {
                let k = try key(item)
                if name == "max" ? try PyValue.less(bestKey, k) : try PyValue.less(k, bestKey) {
                    best = item
                    bestKey = k
                }
            }
            return best
        case "select", "reject", "selectattr", "rejectattr":
            guard value.truthy else { return .list([]) }
            let items = try value.iterate()
            let lookupAttribute = name.hasSuffix("attr")
            var getter: (PyValue) throws -> PyValue = { $0 }
            var rest = args[...]
            if lookupAttribute {
                guard let attribute = rest.popFirst() else { throw RenderError.runtime("Missing parameter for attribute name") }
                getter = try attributeGetter(attribute)
            }
            let keep = name.hasPrefix("select")
            var out: [PyValue] = []
            if let testName = rest.popFirst() {
                for item in items where try applyTest(testName.str, try getter(item), Array(rest), kwargs) == keep { out.append(item) }
            } else {
                for item in items where try getter(item).truthy == keep { out.append(item) }
            }
            return .list(out)
        case "replace":
            let a = try bind(["old", "new", "count"], required: 2)
            let count = try a[2].orNone.map { try Methods.requireInt($0, "replace") } ?? -1
            return .string(PyString.replace(value.str, a[0]!.str, a[1]!.str, count: count))
        case "reverse":
            _ = try bind([])
            if case .string(let s) = value { return .string(PyString.make(s.unicodeScalars.reversed())) }
            return .list(try value.iterate().reversed())
        case "round":
            let a = try bind(["precision", "method"])
            let precision = try a[0].map { try Methods.requireInt($0, "round") } ?? 0
            let method = a[1].map(\.str) ?? "common"
            guard ["common", "ceil", "floor"].contains(method) else {
                throw RenderError.runtime("method must be common, ceil or floor")
            }
            guard let number = value.number else {
                if case .undefined(let u) = value { throw u.error }
                throw RenderError.runtime("type \(value.typeName) doesn't define __round__ method")
            }
            if method == "common" {
                if case .int(let i) = number { return .int(i) }
                return .double(Self.pythonRound(number.double, precision))
            }
            let scale = Foundation.pow(10.0, Double(precision))
            let scaled = number.double * scale
            return .double((method == "ceil" ? scaled.rounded(.up) : scaled.rounded(.down)) / scale)
        case "safe", "string":
            _ = try bind([])
            return .string(value.str)
        case "sort":
            let a = try bind(["reverse", "case_sensitive", "attribute"])
            let caseSensitive = a[1]?.truthy ?? false
            let getter = try attributeGetter(a[2].orNone)
            return .list(try sortValues(try value.iterate(), reverse: a[0]?.truthy ?? false) {
                caseSensitive ? try getter($0) : Self.ignoreCase(try getter($0))
            })
        case "sum":
            let a = try bind(["attribute", "start"])
            var total = a[1] ?? .int(0)
            let getter = try attributeGetter(a[0].orNone)
            for item in try value.iterate() { total = try PyValue.binary(.add, total, try getter(item)) }
            return total
        case "title":
            _ = try bind([])
            return .string(Self.jinjaTitle(value.str))
        case "tojson":
            let a = try bind(["ensure_ascii", "indent", "separators", "sort_keys"])
            var encoding = JSONEncoding()
            encoding.ensureASCII = a[0]?.truthy ?? false
            switch a[1].orNone {
            case nil: break
            case .string(let s)?: encoding.indent = s
            case let w?: encoding.indent = String(repeating: " ", count: max(0, try Methods.requireWidth(w, "tojson")))
            }
            if encoding.indent != nil { encoding.itemSeparator = "," }
            if let separators = a[2].orNone {
                let parts = try separators.iterate()
                guard parts.count == 2 else { throw RenderError.runtime("tojson: separators must be a pair (item, key)") }
                encoding.itemSeparator = try Methods.requireString(parts[0], "tojson")
                encoding.keySeparator = try Methods.requireString(parts[1], "tojson")
            }
            encoding.sortKeys = a[3]?.truthy ?? false
            return .string(try encoding.encode(value))
        case "trim":
            let a = try bind(["chars"])
            let chars = a[0].orNone.map(\.str)
            return .string(PyString.strip(value.str, chars: chars, left: true, right: true))
        case "unique":
            let a = try bind(["case_sensitive", "attribute"])
            let caseSensitive = a[0]?.truthy ?? false
            let getter = try attributeGetter(a[1].orNone)
            var seen: [PyValue] = []
            var out: [PyValue] = []
            for item in try value.iterate() {
                let k = caseSensitive ? try getter(item) : Self.ignoreCase(try getter(item))
                if !seen.contains(where: { PyValue.equal($0, k) }) {
                    seen.append(k)
                    out.append(item)
                }
            }
            return .list(out)
        case "wordcount":
            _ = try bind([])
            var count = 0
            var inWord = false
            for c in value.str.unicodeScalars {
                let word = c == "_" || c.properties.isAlphabetic || c.properties.numericType != nil
                if word && !inWord { count += 1 }
                inWord = word
            }
            return .int(count)
        default:
            if Self.unsupportedFilters.contains(name) {
                throw RenderError.unsupported("the '\(name)' filter is not supported")
            }
            throw RenderError(.unsupported, "no filter named '\(name)'")
        }
    }

    /// jinja2's `make_attrgetter`: "a.b.0" looks up each part with `[]`; nil means the item itself.
    func attributeGetter(_ attribute: PyValue?, default fallback: PyValue? = nil) throws -> (PyValue) throws -> PyValue {
        guard let attribute else { return { $0 } }
        let parts: [PyValue]
        if case .string(let s) = attribute {
            parts = PyString.split(s, separator: ".", maxSplit: -1).map { part in
                if !part.isEmpty, part.unicodeScalars.allSatisfy({ $0.properties.numericType == .decimal }), let i = Int(part) { return .int(i) }
                return .string(part)
            }
        } else {
            parts = [attribute]
        }
        return { item in
            var v = item
            for p in parts {
                v = try Attributes.item(v, p)
                if let fallback, v.isUndefined { v = fallback }
            }
            return v
        }
    }

    /// Stable sort by key with Python's `<`, `reverse` keeping equal items in order (as `sorted(reverse=True)` does).
    func sortValues(_ items: [PyValue], reverse: Bool, key: (PyValue) throws -> PyValue) throws -> [PyValue] {
        let keyed = try items.map { (key: try key($0), value: $0) }
        let sorted = try keyed.stableSorted { a, b in
            reverse ? try PyValue.less(b.key, a.key) : try PyValue.less(a.key, b.key)
        }
        return sorted.map(\.value)
    }

    static func ignoreCase(_ v: PyValue) -> PyValue {
        if case .string(let s) = v { return .string(PyString.lower(s)) }
        return v
    }

    /// jinja2's `title` filter (not `str.title`): upper-case the first character after `-`,
    /// whitespace or an opening bracket, lower-case the rest.
    static func jinjaTitle(_ s: String) -> String {
        func isBoundary(_ c: Unicode.Scalar) -> Bool { PyString.isSpace(c) || "-({[<".unicodeScalars.contains(c) }
        var out = ""
        var atStart = true
        for c in s.unicodeScalars {
            if isBoundary(c) {
                out.unicodeScalars.append(c)
                atStart = true
            } else {
                out += atStart ? c.properties.uppercaseMapping : c.properties.lowercaseMapping
                atStart = false
            }
        }
        return out
    }

    /// Python `float(x)`, nil where it raises TypeError/ValueError.
    static func toFloat(_ v: PyValue) -> Double? {
        switch v {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .string(let s):
            var t = PyString.strip(s, chars: nil, left: true, right: true)
            if t.contains("__") || t.hasPrefix("_") || t.hasSuffix("_") { return nil }
            t = t.replacingOccurrences(of: "_", with: "")
            switch t.lowercased() {
            case "inf", "+inf", "infinity", "+infinity": return .infinity
            case "-inf", "-infinity": return -.infinity
            case "nan", "+nan", "-nan": return .nan
            default: break
            }
            guard !t.isEmpty, t.unicodeScalars.allSatisfy({ "0123456789.eE+-".unicodeScalars.contains($0) }) else { return nil }
            return Double(t)
        default: return nil
        }
    }

    /// Python `int(s, base)` for a string.
    static func parseInt(_ s: String, base: Int) -> Int? {
        var t = PyString.strip(s, chars: nil, left: true, right: true)
        var negative = false
        if t.hasPrefix("-") || t.hasPrefix("+") {
            negative = t.hasPrefix("-")
            t.removeFirst()
        }
        if t.hasPrefix("_") || t.hasSuffix("_") || t.contains("__") { return nil }
        t = t.replacingOccurrences(of: "_", with: "")
        guard !t.isEmpty, let v = Int(t, radix: base) else { return nil }
        return negative ? -v : v
    }

    /// Python's `round(x, n)` for a float: correctly rounded, ties to even on the exact value.
    static func pythonRound(_ x: Double, _ n: Int) -> Double {
        guard x.isFinite else { return x }
        if n >= 0 {
            return Double(String(format: "%.\(min(n, 340))f", x)) ?? x
        }
        let scale = Foundation.pow(10.0, Double(-n))
        return (x / scale).rounded(.toNearestOrEven) * scale
    }
}

extension PyValue {
    /// nil for Python None.
    var orNoneValue: PyValue? { if case .none = self { return nil } else { return self } }
}
