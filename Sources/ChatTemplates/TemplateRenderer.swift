import Foundation

/// Runs a parsed template once. jinja2's scoping: a for loop's body (and `with`, and a macro
/// call) gets its own frame, so `{% set %}` inside a loop does not leak out of it — which is
/// why templates use `namespace()`; `if` has no frame of its own.
final class TemplateRenderer {
    private var output = ""
    private var frames: [[String: PyValue]] = [[:]]
    private let context: [String: PyValue]
    private let globals: [String: PyValue]
    private var macroDepth = 0
    /// Deeper macro recursion fails (as Python's recursion limit would) instead of overflowing the stack.
    static let maxMacroDepth = 64
    /// A rendering, and any one string it builds, stops with an error past this many bytes (a
    /// server renders templates for every request: a template doubling a string 34 times must
    /// not take the process's memory). Real chat prompts are far smaller.
    static let maxStringBytes = 16 << 20
    /// Statements and loop iterations one rendering may run.
    static let maxSteps = 5_000_000
    private var steps = 0

    /// Fails when `s` is past `maxStringBytes`.
    static func checkSize(_ s: String) throws {
        if s.utf8.count > maxStringBytes {
            throw RenderError.runtime("the template built a string of more than \(maxStringBytes) bytes")
        }
    }

    private func step() throws {
        steps += 1
        if steps > Self.maxSteps { throw RenderError.runtime("the template ran more than \(Self.maxSteps) steps") }
    }

    init(context: [String: PyValue], now: Date) {
        self.context = context
        self.globals = Globals.make(now: now)
    }

    func render(_ nodes: [Node]) throws -> String {
        _ = try execute(nodes)
        return output
    }

    enum Flow { case normal, breakLoop, continueLoop }

    // MARK: Statements

    private func execute(_ nodes: [Node]) throws -> Flow {
        for node in nodes {
            let flow = try execute(node)
            if flow != .normal { return flow }
        }
        return .normal
    }

    private func execute(_ node: Node) throws -> Flow {
        try step()
        switch node {
        case .text(let s):
            output += s
            try Self.checkSize(output)
        case .output(let e):
            output += try eval(e).str
            try Self.checkSize(output)
        case .conditional(let branches, let otherwise):
            for branch in branches {
                if try eval(branch.test).truthy { return try execute(branch.body) }
            }
            return try execute(otherwise)
        case .forLoop(let loop):
            return try executeFor(loop)
        case .assign(let target, let expr, let position):
            let value = try eval(expr)
            try at(position) { try assign(target, value) }
        case .assignBlock(let target, let filters, let body, let position):
            var value = PyValue.string(try capture(body))
            for f in filters { value = try applyFilter(f, to: value) }
            try at(position) { try assign(target, value) }
        case .macro(let m):
            frames[frames.count - 1][m.name] = .macro(m)
        case .loopControl(let isBreak, _):
            return isBreak ? .breakLoop : .continueLoop
        case .scoped(let assignments, let body):
            let values = try assignments.map { try eval($0.value) }
            frames.append([:])
            defer { frames.removeLast() }
            for (a, v) in zip(assignments, values) { try at(a.value.position) { try assign(a.target, v) } }
            return try execute(body)
        case .filterBlock(let filters, let body):
            var value = PyValue.string(try capture(body))
            for f in filters { value = try applyFilter(f, to: value) }
            output += value.str
            try Self.checkSize(output)
        case .group(let body):
            return try execute(body)
        }
        return .normal
    }

    /// Renders `nodes` into a string of its own, as `{% set %}…{% endset %}` and macros do.
    private func capture(_ nodes: [Node]) throws -> String {
        let saved = output
        output = ""
        defer { output = saved }
        _ = try execute(nodes)
        return output
    }

    private func executeFor(_ loop: ForLoop) throws -> Flow {
        let iterable = try eval(loop.iterable)
        var items = try at(loop.iterable.position) { try iterable.iterate() }
        frames.append([:])
        defer { frames.removeLast() }
        if let condition = loop.condition {
            var kept: [PyValue] = []
            for item in items {
                try at(loop.position) { try assign(loop.target, item) }
                if try eval(condition).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            frames[frames.count - 1] = [:]
            return try execute(loop.otherwise)
        }
        for (i, item) in items.enumerated() {
            // Each iteration starts from the enclosing scope: a `set` in one iteration is not
            // seen by the next (jinja2's rule; templates carry state in a namespace).
            frames[frames.count - 1] = [:]
            try step()
            try at(loop.position) { try assign(loop.target, item) }
            frames[frames.count - 1]["loop"] = .loop(LoopState(
                index0: i, length: items.count,
                previous: i > 0 ? items[i - 1] : nil, next: i + 1 < items.count ? items[i + 1] : nil, depth0: 0))
            if try execute(loop.body) == .breakLoop { break }
        }
        return .normal
    }

    private func assign(_ target: AssignTarget, _ value: PyValue) throws {
        switch target {
        case .name(let name):
            frames[frames.count - 1][name] = value
        case .tuple(let targets):
            let items = try value.iterate()
            guard items.count == targets.count else {
                throw RenderError.runtime(items.count < targets.count
                    ? "not enough values to unpack (expected \(targets.count), got \(items.count))"
                    : "too many values to unpack (expected \(targets.count))")
            }
            for (t, v) in zip(targets, items) { try assign(t, v) }
        case .namespaceAttribute(let name, let attribute):
            guard case .namespace(let ns) = lookup(name) else {
                throw RenderError.runtime("cannot assign attribute on non-namespace object ('\(name)')")
            }
            ns.attributes.set(.string(attribute), value)
        }
    }

    private func lookup(_ name: String) -> PyValue {
        for frame in frames.reversed() {
            if let v = frame[name] { return v }
        }
        return context[name] ?? globals[name] ?? .undefined(.named(name))
    }

    /// Runs `body`, giving an error without a position the position of the construct.
    @inline(__always)
    private func at<T>(_ position: SourcePosition, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch var e as RenderError {
            if e.position == nil { e.position = position }
            throw e
        }
    }

    // MARK: Expressions

    func eval(_ e: Expr) throws -> PyValue {
        try at(e.position) { try evalKind(e) }
    }

    private func evalKind(_ e: Expr) throws -> PyValue {
        switch e.kind {
        case .constant(let c):
            switch c {
            case .none: return .none
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .double(let d): return .double(d)
            case .string(let s): return .string(s)
            }
        case .name(let name):
            return lookup(name)
        case .list(let items):
            return .list(try items.map(eval))
        case .tuple(let items):
            return .tuple(try items.map(eval))
        case .dict(let pairs):
            var d = Dict()
            for p in pairs {
                let key = try eval(p.key)
                switch key {
                case .list, .dict, .namespace, .undefined: throw RenderError.runtime("unhashable type: '\(key.typeName)'")
                default: d.set(key, try eval(p.value))
                }
            }
            return .dict(d)
        case .attribute(let base, let name):
            return try Attributes.get(try eval(base), name)
        case .item(let base, let key):
            return try Attributes.item(try eval(base), try eval(key))
        case .slice(let base, let start, let stop, let step):
            let object = try eval(base)
            return try Attributes.slice(object, try start.map(eval), try stop.map(eval), try step.map(eval))
        case .call(let callee, let arguments):
            let f = try eval(callee)
            let (args, kwargs) = try evalArguments(arguments)
            return try call(f, args, kwargs)
        case .filter(let base, let f):
            return try applyFilter(f, to: try eval(base))
        case .test(let subject, let name, let arguments):
            let value = try eval(subject)
            let (args, kwargs) = try evalArguments(arguments)
            return .bool(try applyTest(name, value, args, kwargs))
        case .not(let x):
            return .bool(!(try eval(x).truthy))
        case .negate(let x):
            return try PyValue.negate(try eval(x))
        case .plus(let x):
            return try PyValue.positive(try eval(x))
        case .binary(let op, let a, let b):
            let left = try eval(a)
            return try PyValue.binary(op, left, try eval(b))
        case .and(let a, let b):
            let left = try eval(a)
            return left.truthy ? try eval(b) : left
        case .or(let a, let b):
            let left = try eval(a)
            return left.truthy ? left : try eval(b)
        case .compare(let first, let ops):
            var left = try eval(first)
            for (op, operand) in ops {
                let right = try eval(operand)
                if !(try PyValue.compare(left, op, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .concat(let items):
            var s = ""
            for item in items {
                s += try eval(item).str
                try Self.checkSize(s)
            }
            return .string(s)
        case .conditional(let test, let then, let otherwise):
            if try eval(test).truthy { return try eval(then) }
            if let otherwise { return try eval(otherwise) }
            return .undefined(Undefined(message: "the inline if-expression on line \(e.position.line) evaluated to false and no else section was defined."))
        }
    }

    func evalArguments(_ arguments: Arguments) throws -> ([PyValue], [(name: String, value: PyValue)]) {
        let args = try arguments.positional.map(eval)
        let kwargs = try arguments.keywords.map { (name: $0.name, value: try eval($0.value)) }
        return (args, kwargs)
    }

    func call(_ f: PyValue, _ args: [PyValue], _ kwargs: [(name: String, value: PyValue)]) throws -> PyValue {
        switch f {
        case .function(let fn): return try fn.call(args, kwargs)
        case .macro(let m): return try callMacro(m, args, kwargs)
        case .undefined(let u): throw u.error
        case .loop: throw RenderError.unsupported("calling loop(…) (recursive loops) is not supported")
        default: throw RenderError.runtime("'\(f.typeName)' object is not callable")
        }
    }

    private func callMacro(_ m: MacroDefinition, _ args: [PyValue], _ kwargs: [(name: String, value: PyValue)]) throws -> PyValue {
        guard args.count <= m.parameters.count else {
            throw RenderError.runtime("macro '\(m.name)' takes not more than \(m.parameters.count) argument(s)")
        }
        var frame: [String: PyValue] = [:]
        for (i, a) in args.enumerated() { frame[m.parameters[i].name] = a }
        for (k, v) in kwargs {
            guard m.parameters.contains(where: { $0.name == k }) else {
                throw RenderError.runtime("macro '\(m.name)' takes no keyword argument '\(k)'")
            }
            guard frame[k] == nil else { throw RenderError.runtime("macro '\(m.name)' got multiple values for argument '\(k)'") }
            frame[k] = v
        }
        guard macroDepth < Self.maxMacroDepth else {
            throw RenderError.runtime("maximum recursion depth exceeded in macro '\(m.name)' (\(Self.maxMacroDepth) nested calls)")
        }
        macroDepth += 1
        defer { macroDepth -= 1 }
        // The macro sees the template's top-level names, not the caller's loop variables.
        let saved = frames
        frames = [frames[0], frame]
        defer { frames = saved }
        for p in m.parameters where frame[p.name] == nil {
            let v = try p.defaultValue.map(eval) ?? .undefined(Undefined(message: "parameter '\(p.name)' was not provided"))
            frames[1][p.name] = v
        }
        return .string(try capture(m.body))
    }

    func applyFilter(_ f: FilterCall, to value: PyValue) throws -> PyValue {
        let (args, kwargs) = try evalArguments(f.arguments)
        return try at(f.position) { try filter(f.name, value, args, kwargs) }
    }
}
