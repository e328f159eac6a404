/// `x.name` and `x[key]` as jinja2's sandbox resolves them: attribute first then item for
/// `.name`, item first then attribute for `[key]`; a miss gives an undefined value, and a
/// method that would mutate its receiver gives an undefined that fails when called (the
/// immutable sandbox's rule).
enum Attributes {
    static let stringMethods: Set<String> = [
        "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format", "format_map",
        "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower", "isnumeric",
        "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans", "partition",
        "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split",
        "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill",
    ]
    static let dictMethods: Set<String> = ["clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault", "update", "values"]
    static let dictMutators: Set<String> = ["clear", "pop", "popitem", "setdefault", "update"]
    static let listMethods: Set<String> = ["append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove", "reverse", "sort"]
    static let listMutators: Set<String> = ["append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort"]

    static func unsafe(_ name: String, _ object: PyValue) -> PyValue {
        .undefined(Undefined(message: "access to attribute '\(name)' of '\(object.typeName)' object is unsafe."))
    }

    /// The attribute itself, or nil when the object has no such attribute.
    static func attribute(_ object: PyValue, _ name: String) throws -> PyValue? {
        switch object {
        case .undefined(let u):
            throw u.error
        case .string(let s):
            guard stringMethods.contains(name) else { return nil }
            return .function(Function("str.\(name)") { args, kwargs in try Methods.string(s, name, args, kwargs) })
        case .dict(let d):
            guard dictMethods.contains(name) else { return nil }
            if dictMutators.contains(name) { return unsafe(name, object) }
            return .function(Function("dict.\(name)") { args, kwargs in try Methods.dict(d, name, args, kwargs) })
        case .list(let items), .tuple(let items):
            if case .tuple = object, !["count", "index"].contains(name) { return nil }
            guard listMethods.contains(name) else { return nil }
            if listMutators.contains(name) { return unsafe(name, object) }
            return .function(Function("list.\(name)") { args, kwargs in try Methods.list(items, name, args, kwargs) })
        case .namespace(let ns):
            return ns.attributes[name]
        case .loop(let l):
            return loopAttribute(l, name)
        case .int, .bool, .double:
            switch name {
            case "real": return object.number.map { if case .int(let i) = $0 { return .int(i) } else { return .double($0.double) } }
            case "imag": return .int(0)
            default: return nil
            }
        default:
            return nil
        }
    }

    static func loopAttribute(_ l: LoopState, _ name: String) -> PyValue? {
        switch name {
        case "index": return .int(l.index0 + 1)
        case "index0": return .int(l.index0)
        case "revindex": return .int(l.length - l.index0)
        case "revindex0": return .int(l.length - l.index0 - 1)
        case "first": return .bool(l.index0 == 0)
        case "last": return .bool(l.index0 == l.length - 1)
        case "length": return .int(l.length)
        case "depth": return .int(l.depth0 + 1)
        case "depth0": return .int(l.depth0)
        case "previtem": return l.previous ?? .undefined(Undefined(message: "there is no previous item"))
        case "nextitem": return l.next ?? .undefined(Undefined(message: "there is no next item"))
        case "cycle":
            return .function(Function("loop.cycle") { args, _ in
                guard !args.isEmpty else { throw RenderError.runtime("no items for cycling given") }
                return args[l.index0 % args.count]
            })
        default: return nil
        }
    }

    /// `object.name`.
    static func get(_ object: PyValue, _ name: String) throws -> PyValue {
        if let v = try attribute(object, name) { return v }
        if let v = try? subscriptItem(object, .string(name)) { return v }
        return .undefined(.attribute(name, of: object))
    }

    /// `object[key]`.
    static func item(_ object: PyValue, _ key: PyValue) throws -> PyValue {
        if case .undefined(let u) = object { throw u.error }
        if let v = try subscriptItem(object, key) { return v }
        if case .string(let name) = key, let v = try attribute(object, name) { return v }
        return .undefined(.element(key, of: object))
    }

    /// Python `object[key]`, nil on a missing key or index out of range.
    private static func subscriptItem(_ object: PyValue, _ key: PyValue) throws -> PyValue? {
        switch object {
        case .dict(let d):
            if case .list = key { throw RenderError.runtime("unhashable type: 'list'") }
            if case .dict = key { throw RenderError.runtime("unhashable type: 'dict'") }
            return d[key]
        case .list(let items), .tuple(let items):
            guard case .int(let i)? = key.number, !(key.isDouble) else { return nil }
            let j = i < 0 ? i + items.count : i
            return j >= 0 && j < items.count ? items[j] : nil
        case .string(let s):
            guard case .int(let i)? = key.number, !(key.isDouble) else { return nil }
            let c = Array(s.unicodeScalars)
            let j = i < 0 ? i + c.count : i
            return j >= 0 && j < c.count ? .string(String(c[j])) : nil
        default:
            return nil
        }
    }

    /// `object[start:stop:step]`.
    static func slice(_ object: PyValue, _ start: PyValue?, _ stop: PyValue?, _ step: PyValue?) throws -> PyValue {
        func bound(_ v: PyValue?) throws -> Int? {
            guard let v else { return nil }
            switch v {
            case .none: return nil
            case .int(let i): return i
            case .bool(let b): return b ? 1 : 0
            case .undefined(let u): throw u.error
            default: throw RenderError.runtime("slice indices must be integers or None")
            }
        }
        let (a, b, c) = (try bound(start), try bound(stop), try bound(step))
        func indices(_ count: Int) throws -> [Int] {
            let step = c ?? 1
            guard step != 0 else { throw RenderError.runtime("slice step cannot be zero") }
            func adjust(_ v: Int?, _ dflt: Int) -> Int {
                guard var v else { return dflt }
                if v < 0 {
                    v += count
                    if v < 0 { v = step < 0 ? -1 : 0 }
                } else if v >= count {
                    v = step < 0 ? count - 1 : count
                }
                return v
            }
            let lo = adjust(a, step < 0 ? count - 1 : 0)
            let hi = adjust(b, step < 0 ? -1 : count)
            return Array(stride(from: lo, to: hi, by: step))
        }
        switch object {
        case .list(let items): return .list(try indices(items.count).map { items[$0] })
        case .tuple(let items): return .tuple(try indices(items.count).map { items[$0] })
        case .string(let s):
            let chars = Array(s.unicodeScalars)
            return .string(PyString.make(try indices(chars.count).map { chars[$0] }))
        case .undefined(let u): throw u.error
        default: throw RenderError.runtime("'\(object.typeName)' object is not subscriptable")
        }
    }
}

extension PyValue {
    var isDouble: Bool { if case .double = self { return true } else { return false } }
}
