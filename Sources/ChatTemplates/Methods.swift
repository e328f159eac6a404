/// Binds Python-style call arguments to parameter names: positionals first, then keywords.
func bindArguments(_ function: String, _ names: [String], required: Int = 0,
                   _ args: [PyValue], _ kwargs: [(name: String, value: PyValue)]) throws -> [PyValue?] {
    guard args.count <= names.count else {
        throw RenderError.runtime("\(function)() takes at most \(names.count) argument(s) (\(args.count) given)")
    }
    var bound: [PyValue?] = args.map { $0 } + Array(repeating: nil, count: names.count - args.count)
    for (key, value) in kwargs {
        guard let i = names.firstIndex(of: key) else {
            throw RenderError.runtime("\(function)() got an unexpected keyword argument '\(key)'")
        }
        guard bound[i] == nil else { throw RenderError.runtime("\(function)() got multiple values for argument '\(key)'") }
        bound[i] = value
    }
    for i in 0..<required where bound[i] == nil {
        throw RenderError.runtime("\(function)() missing required argument '\(names[i])'")
    }
    return bound
}

extension Optional where Wrapped == PyValue {
    /// nil for a missing argument or Python None.
    var orNone: PyValue? {
        switch self {
        case nil, .some(PyValue.none): return nil
        case .some(let v): return v
        }
    }
}

/// The methods of Python's str, dict and list that templates call (`.strip()`, `.items()`).
enum Methods {
    static func requireString(_ v: PyValue?, _ function: String, _ what: String = "argument") throws -> String {
        guard case .string(let s)? = v else {
            if case .undefined(let u)? = v { throw u.error }
            throw RenderError.runtime("\(function)() \(what) must be str, not \(v?.typeName ?? "missing")")
        }
        return s
    }

    static func requireWidth(_ v: PyValue?, _ function: String) throws -> Int {
        let w = try requireInt(v, function)
        guard w <= Arithmetic.maxWidth else { throw RenderError.runtime("\(function)(): width \(w) is too large") }
        return w
    }

    static func requireInt(_ v: PyValue?, _ function: String) throws -> Int {
        guard case .int(let i)? = v?.number, v?.isDouble == false else {
            if case .undefined(let u)? = v { throw u.error }
            throw RenderError.runtime("\(function)() expected an integer, got \(v?.typeName ?? "nothing")")
        }
        return i
    }

    static func string(_ s: String, _ name: String, _ args: [PyValue], _ kwargs: [(name: String, value: PyValue)]) throws -> PyValue {
        let fn = "str.\(name)"
        switch name {
        case "strip", "lstrip", "rstrip":
            let a = try bindArguments(fn, ["chars"], args, kwargs)
            let chars = try a[0].orNone.map { try requireString($0, fn) }
            return .string(PyString.strip(s, chars: chars, left: name != "rstrip", right: name != "lstrip"))
        case "startswith", "endswith":
            let a = try bindArguments(fn, ["prefix", "start", "end"], required: 1, args, kwargs)
            if a[1] != nil || a[2] != nil { throw RenderError.unsupported("\(fn)() with start/end positions is not supported") }
            let candidates: [PyValue]
            if case .tuple(let items)? = a[0] { candidates = items } else { candidates = [a[0]!] }
            for c in candidates {
                let p = try requireString(c, fn, "first argument")
                if name == "startswith" ? s.utf8.starts(with: p.utf8) : s.utf8.reversed().starts(with: p.utf8.reversed()) {
                    return .bool(true)
                }
            }
            return .bool(false)
        case "split", "rsplit":
            let a = try bindArguments(fn, ["sep", "maxsplit"], args, kwargs)
            let sep = try a[0].orNone.map { try requireString($0, fn) }
            if sep?.isEmpty == true { throw RenderError.runtime("empty separator") }
            let maxSplit = try a[1].map { try requireInt($0, fn) } ?? -1
            let parts = name == "split" ? PyString.split(s, separator: sep, maxSplit: maxSplit) : PyString.rsplit(s, separator: sep, maxSplit: maxSplit)
            return .list(parts.map { .string($0) })
        case "splitlines":
            let a = try bindArguments(fn, ["keepends"], args, kwargs)
            return .list(PyString.splitLines(s, keepEnds: a[0]?.truthy ?? false).map { .string($0) })
        case "upper": _ = try bindArguments(fn, [], args, kwargs); return .string(PyString.upper(s))
        case "lower", "casefold": _ = try bindArguments(fn, [], args, kwargs); return .string(PyString.lower(s))
        case "title": _ = try bindArguments(fn, [], args, kwargs); return .string(PyString.title(s))
        case "capitalize": _ = try bindArguments(fn, [], args, kwargs); return .string(PyString.capitalize(s))
        case "swapcase":
            _ = try bindArguments(fn, [], args, kwargs)
            var out = ""
            for c in s.unicodeScalars {
                out += c.properties.isUppercase ? c.properties.lowercaseMapping : c.properties.isLowercase ? c.properties.uppercaseMapping : String(c)
            }
            return .string(out)
        case "replace":
            let a = try bindArguments(fn, ["old", "new", "count"], required: 2, args, kwargs)
            let count = try a[2].map { try requireInt($0, fn) } ?? -1
            return .string(PyString.replace(s, try requireString(a[0], fn), try requireString(a[1], fn), count: count))
        case "find", "rfind", "index", "rindex":
            let a = try bindArguments(fn, ["sub", "start", "end"], required: 1, args, kwargs)
            if a[1] != nil || a[2] != nil { throw RenderError.unsupported("\(fn)() with start/end positions is not supported") }
            let i = PyString.find(s, try requireString(a[0], fn), reverse: name.hasPrefix("r"))
            if i < 0 && name.hasSuffix("index") { throw RenderError.runtime("substring not found") }
            return .int(i)
        case "count":
            let a = try bindArguments(fn, ["sub"], required: 1, args, kwargs)
            return .int(PyString.count(s, try requireString(a[0], fn)))
        case "join":
            let a = try bindArguments(fn, ["iterable"], required: 1, args, kwargs)
            var parts: [String] = []
            for (i, item) in try a[0]!.iterate().enumerated() {
                guard case .string(let p) = item else {
                    throw RenderError.runtime("sequence item \(i): expected str instance, \(item.typeName) found")
                }
                parts.append(p)
            }
            return .string(parts.joined(separator: s))
        case "removeprefix", "removesuffix":
            let a = try bindArguments(fn, ["affix"], required: 1, args, kwargs)
            let affix = Array(try requireString(a[0], fn).utf8)
            let bytes = Array(s.utf8)
            if affix.isEmpty || affix.count > bytes.count { return .string(s) }
            if name == "removeprefix" {
                return .string(bytes.starts(with: affix) ? PyString.fromUTF8(bytes[affix.count...]) : s)
            }
            return .string(bytes[(bytes.count - affix.count)...].elementsEqual(affix) ? PyString.fromUTF8(bytes[..<(bytes.count - affix.count)]) : s)
        case "isdigit", "isdecimal", "isnumeric", "isalpha", "isalnum", "isspace", "islower", "isupper", "isascii":
            _ = try bindArguments(fn, [], args, kwargs)
            let c = Array(s.unicodeScalars)
            switch name {
            case "islower": return .bool(PyString.isLower(s))
            case "isupper": return .bool(PyString.isUpper(s))
            case "isascii": return .bool(c.allSatisfy(\.isASCII))
            default: break
            }
            if c.isEmpty { return .bool(false) }
            let test: (Unicode.Scalar) -> Bool
            switch name {
            case "isdigit": test = { $0.properties.numericType == .decimal || $0.properties.numericType == .digit }
            case "isdecimal": test = { $0.properties.numericType == .decimal }
            case "isnumeric": test = { $0.properties.numericType != nil }
            case "isalpha": test = { $0.properties.isAlphabetic && $0.properties.generalCategory.isLetter }
            case "isalnum": test = { $0.properties.generalCategory.isLetter || $0.properties.numericType != nil }
            default: test = PyString.isSpace
            }
            return .bool(c.allSatisfy(test))
        case "zfill":
            let a = try bindArguments(fn, ["width"], required: 1, args, kwargs)
            let width = try requireWidth(a[0], fn)
            var c = Array(s.unicodeScalars)
            guard c.count < width else { return .string(s) }
            let fill = Array(repeating: Unicode.Scalar("0"), count: width - c.count)
            let signed = c.first == "+" || c.first == "-"
            c.insert(contentsOf: fill, at: signed ? 1 : 0)
            return .string(PyString.make(c))
        case "ljust", "rjust", "center":
            let a = try bindArguments(fn, ["width", "fillchar"], required: 1, args, kwargs)
            let width = try requireWidth(a[0], fn)
            let fill = try a[1].map { try requireString($0, fn) } ?? " "
            guard PyString.length(fill) == 1 else { throw RenderError.runtime("The fill character must be exactly one character long") }
            let n = PyString.length(s)
            guard n < width else { return .string(s) }
            let pad = width - n
            switch name {
            case "ljust": return .string(s + String(repeating: fill, count: pad))
            case "rjust": return .string(String(repeating: fill, count: pad) + s)
            default:
                let left = pad / 2 + (pad & width & 1)
                return .string(String(repeating: fill, count: left) + s + String(repeating: fill, count: pad - left))
            }
        case "partition", "rpartition":
            let a = try bindArguments(fn, ["sep"], required: 1, args, kwargs)
            let sep = try requireString(a[0], fn)
            if sep.isEmpty { throw RenderError.runtime("empty separator") }
            let parts = name == "partition" ? PyString.split(s, separator: sep, maxSplit: 1) : PyString.rsplit(s, separator: sep, maxSplit: 1)
            if parts.count == 1 {
                return name == "partition" ? .tuple([.string(s), .emptyString, .emptyString]) : .tuple([.emptyString, .emptyString, .string(s)])
            }
            return .tuple([.string(parts[0]), .string(sep), .string(parts[1])])
        default:
            throw RenderError.unsupported("the string method '\(name)' is not supported")
        }
    }

    static func dict(_ d: Dict, _ name: String, _ args: [PyValue], _ kwargs: [(name: String, value: PyValue)]) throws -> PyValue {
        let fn = "dict.\(name)"
        switch name {
        case "get":
            let a = try bindArguments(fn, ["key", "default"], required: 1, args, kwargs)
            return d[a[0]!] ?? a[1] ?? .none
        case "items":
            _ = try bindArguments(fn, [], args, kwargs)
            return .list(d.items.map { .tuple([$0.key, $0.value]) })
        case "keys":
            _ = try bindArguments(fn, [], args, kwargs)
            return .list(d.keys)
        case "values":
            _ = try bindArguments(fn, [], args, kwargs)
            return .list(d.values)
        case "copy":
            _ = try bindArguments(fn, [], args, kwargs)
            return .dict(d)
        default:
            throw RenderError.unsupported("the dict method '\(name)' is not supported")
        }
    }

    static func list(_ items: [PyValue], _ name: String, _ args: [PyValue], _ kwargs: [(name: String, value: PyValue)]) throws -> PyValue {
        let fn = "list.\(name)"
        switch name {
        case "count":
            let a = try bindArguments(fn, ["value"], required: 1, args, kwargs)
            return .int(items.filter { PyValue.equal($0, a[0]!) }.count)
        case "index":
            let a = try bindArguments(fn, ["value"], required: 1, args, kwargs)
            guard let i = items.firstIndex(where: { PyValue.equal($0, a[0]!) }) else {
                throw RenderError.runtime("\(a[0]!.repr) is not in list")
            }
            return .int(i)
        case "copy":
            _ = try bindArguments(fn, [], args, kwargs)
            return .list(items)
        default:
            throw RenderError.unsupported("the list method '\(name)' is not supported")
        }
    }
}

extension Unicode.GeneralCategory {
    var isLetter: Bool {
        switch self {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }
}
