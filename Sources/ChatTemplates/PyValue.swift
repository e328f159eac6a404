/// A value while a template renders, with Python's semantics (what jinja2 does is what the
/// Python objects underneath do): truthiness, `str()`, `repr()`, `==`, `<`, arithmetic.
///
/// Lives only for one `render` call on one thread, so it may hold reference types
/// (namespaces are shared and mutable, as in jinja2).
indirect enum PyValue {
    case undefined(Undefined)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([PyValue])
    case tuple([PyValue])
    case dict(Dict)
    case namespace(Namespace)
    case function(Function)
    case macro(MacroDefinition)
    case loop(LoopState)

    static var emptyString: PyValue { .string("") }
}

/// jinja2's default `Undefined`: prints as "", is falsy, iterates as empty; most other uses
/// fail with `message`.
struct Undefined {
    var message: String

    static func named(_ name: String) -> Undefined { Undefined(message: "'\(name)' is undefined") }

    static func attribute(_ name: String, of object: PyValue) -> Undefined {
        Undefined(message: "'\(object.objectDescription)' has no attribute '\(name)'")
    }

    static func element(_ key: PyValue, of object: PyValue) -> Undefined {
        if case .string(let s) = key { return attribute(s, of: object) }
        return Undefined(message: "'\(object.objectDescription)' has no element \(key.repr)")
    }

    var error: RenderError { RenderError(.undefined, message) }
}

/// A Python dict: insertion-ordered, keys compared with Python `==` (dicts in chat
/// templates are small, so lookups scan).
struct Dict {
    private(set) var keys: [PyValue] = []
    private(set) var values: [PyValue] = []

    var count: Int { keys.count }
    var isEmpty: Bool { keys.isEmpty }

    func index(of key: PyValue) -> Int? {
        if case .string(let s) = key {
            for (i, k) in keys.enumerated() { if case .string(let t) = k, PyString.equal(s, t) { return i } }
            return nil
        }
        return keys.firstIndex { PyValue.equal($0, key) }
    }

    subscript(key: PyValue) -> PyValue? {
        index(of: key).map { values[$0] }
    }

    subscript(key: String) -> PyValue? { self[.string(key)] }

    mutating func set(_ key: PyValue, _ value: PyValue) {
        if let i = index(of: key) { values[i] = value } else { keys.append(key); values.append(value) }
    }

    var items: [(key: PyValue, value: PyValue)] { Array(zip(keys, values)).map { (key: $0.0, value: $0.1) } }
}

/// jinja2's `namespace()`: attributes that `{% set ns.x = … %}` can change from inside loops.
final class Namespace {
    var attributes = Dict()
}

/// A callable: a global (`range`, `raise_exception`), or a method bound to its receiver.
final class Function {
    let name: String
    let call: ([PyValue], [(name: String, value: PyValue)]) throws -> PyValue

    init(_ name: String, _ call: @escaping ([PyValue], [(name: String, value: PyValue)]) throws -> PyValue) {
        self.name = name
        self.call = call
    }
}

/// The `loop` variable inside a for loop.
struct LoopState {
    var index0: Int
    var length: Int
    var previous: PyValue?
    var next: PyValue?
    var depth0: Int
}

extension PyValue {
    // MARK: Python types

    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .function: return "function"
        case .macro: return "Macro"
        case .loop: return "LoopContext"
        }
    }

    /// jinja2's `object_type_repr`, used in its undefined messages.
    var objectDescription: String {
        if case .none = self { return "None" }
        return "\(typeName) object"
    }

    var isUndefined: Bool { if case .undefined = self { return true } else { return false } }

    /// Python `bool(x)`.
    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace, .function, .macro, .loop: return true
        }
    }

    /// The numeric value of bool/int/float, as Python's numeric tower sees it.
    enum Number { case int(Int), double(Double) }

    var number: Number? {
        switch self {
        case .bool(let b): return .int(b ? 1 : 0)
        case .int(let i): return .int(i)
        case .double(let d): return .double(d)
        default: return nil
        }
    }

    // MARK: str() and repr()

    /// Python `str(x)`; an undefined value prints as "".
    var str: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr
        }
    }

    var repr: String {
        var open: Set<ObjectIdentifier> = []
        return repr(open: &open)
    }

    /// `repr` with the namespaces being printed (`open`): one met again inside itself prints as
    /// Python prints a dict inside itself, `{...}`, instead of recursing without end.
    private func repr(open: inout Set<ObjectIdentifier>) -> String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return PyString.floatRepr(d)
        case .string(let s): return PyString.repr(s)
        case .list(let items):
            var parts: [String] = []
            for item in items { parts.append(item.repr(open: &open)) }
            return "[" + parts.joined(separator: ", ") + "]"
        case .tuple(let items):
            var parts: [String] = []
            for item in items { parts.append(item.repr(open: &open)) }
            return items.count == 1 ? "(" + parts[0] + ",)" : "(" + parts.joined(separator: ", ") + ")"
        case .dict(let d):
            var parts: [String] = []
            for (k, v) in d.items { parts.append(k.repr(open: &open) + ": " + v.repr(open: &open)) }
            return "{" + parts.joined(separator: ", ") + "}"
        case .namespace(let ns):
            let id = ObjectIdentifier(ns)
            guard open.insert(id).inserted else { return "<Namespace {...}>" }
            defer { open.remove(id) }
            return "<Namespace " + PyValue.dict(ns.attributes).repr(open: &open) + ">"
        case .function(let f): return "<function \(f.name)>"
        case .macro(let m): return "<Macro '\(m.name)'>"
        case .loop(let l): return "<LoopContext \(l.index0 + 1)/\(l.length)>"
        }
    }

    // MARK: Comparison

    /// Python `a == b`.
    static func equal(_ a: PyValue, _ b: PyValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return PyString.equal(x, y)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.dict(let x), .dict(let y)):
            return x.count == y.count && x.items.allSatisfy { item in y[item.key].map { equal($0, item.value) } ?? false }
        case (.namespace(let x), .namespace(let y)): return x === y
        case (.function(let x), .function(let y)): return x === y
        default:
            guard let x = a.number, let y = b.number else { return false }
            switch (x, y) {
            case (.int(let i), .int(let j)): return i == j
            case (.int(let i), .double(let d)), (.double(let d), .int(let i)): return Double(i) == d && d.isFinite && (d.magnitude >= 0x1p63 ? false : Int(d) == i)
            case (.double(let d), .double(let e)): return d == e
            }
        }
    }

    /// Python `a < b` (`<=` etc. are built from this and `==`); throws for unorderable types.
    static func less(_ a: PyValue, _ b: PyValue, _ op: String = "<") throws -> Bool {
        switch (a, b) {
        case (.undefined(let u), _), (_, .undefined(let u)): throw u.error
        case (.string(let x), .string(let y)): return PyString.less(x, y)
        case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
            for (p, q) in zip(x, y) where !equal(p, q) { return try less(p, q, op) }
            return x.count < y.count
        default:
            guard let x = a.number, let y = b.number else {
                throw RenderError.runtime("'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
            }
            switch (x, y) {
            case (.int(let i), .int(let j)): return i < j
            case (.int(let i), .double(let d)): return Double(i) < d
            case (.double(let d), .int(let i)): return d < Double(i)
            case (.double(let d), .double(let e)): return d < e
            }
        }
    }

    static func compare(_ a: PyValue, _ op: CompareOperator, _ b: PyValue) throws -> Bool {
        switch op {
        case .equal: return equal(a, b)
        case .notEqual: return !equal(a, b)
        case .less: return try less(a, b, "<")
        case .greater: return try less(b, a, ">")
        case .lessEqual: return try (less(a, b, "<=") || equal(a, b))
        case .greaterEqual: return try (less(b, a, ">=") || equal(a, b))
        case .contains: return try b.contains(a)
        case .notContains: return try !b.contains(a)
        }
    }

    /// Python `item in self`.
    func contains(_ item: PyValue) throws -> Bool {
        switch self {
        case .string(let s):
            guard case .string(let sub) = item else {
                if case .undefined(let u) = item { throw u.error }
                throw RenderError.runtime("'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return PyString.contains(s, sub)
        case .list(let items), .tuple(let items): return items.contains { PyValue.equal($0, item) }
        case .dict(let d): return d.index(of: item) != nil
        case .namespace(let ns): return ns.attributes.index(of: item) != nil
        case .undefined: return false
        default: throw RenderError.runtime("argument of type '\(typeName)' is not iterable")
        }
    }

    // MARK: Iteration

    /// `list(x)`: the items a for loop visits.
    func iterate() throws -> [PyValue] {
        switch self {
        case .undefined: return []
        case .list(let items), .tuple(let items): return items
        case .dict(let d): return d.keys
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        default: throw RenderError.runtime("'\(typeName)' object is not iterable")
        }
    }

    /// Python `len(x)`.
    func length() throws -> Int {
        switch self {
        case .undefined: return 0
        case .string(let s): return PyString.length(s)
        case .list(let items), .tuple(let items): return items.count
        case .dict(let d): return d.count
        default: throw RenderError.runtime("object of type '\(typeName)' has no len()")
        }
    }
}

extension Array {
    /// Python's `sorted`: stable, with a comparison that may throw (mixed types).
    func stableSorted(by less: (Element, Element) throws -> Bool) rethrows -> [Element] {
        let items = self
        if items.count <= 1 { return items }
        let mid = items.count / 2
        let left = try Array(items[..<mid]).stableSorted(by: less)
        let right = try Array(items[mid...]).stableSorted(by: less)
        var out: [Element] = []
        out.reserveCapacity(items.count)
        var i = 0, j = 0
        while i < left.count && j < right.count {
            if try less(right[j], left[i]) {
                out.append(right[j])
                j += 1
            } else {
                out.append(left[i])
                i += 1
            }
        }
        out.append(contentsOf: left[i...])
        out.append(contentsOf: right[j...])
        return out
    }
}
