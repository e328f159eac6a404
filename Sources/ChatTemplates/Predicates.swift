/// jinja2's tests: `x is defined`, `x is string`, `x is divisibleby 3`…
extension TemplateRenderer {
    func applyTest(_ name: String, _ value: PyValue, _ args: [PyValue], _ kwargs: [(name: String, value: PyValue)]) throws -> Bool {
        func other() throws -> PyValue {
            let a = try bindArguments(name, ["other"], required: 1, args, kwargs)
            return a[0]!
        }
        func none() throws { _ = try bindArguments(name, [], args, kwargs) }
        switch name {
        case "defined": try none(); return !value.isUndefined
        case "undefined": try none(); return value.isUndefined
        case "none": try none(); if case .none = value { return true } else { return false }
        case "boolean": try none(); if case .bool = value { return true } else { return false }
        case "true": try none(); if case .bool(true) = value { return true } else { return false }
        case "false": try none(); if case .bool(false) = value { return true } else { return false }
        case "integer": try none(); if case .int = value { return true } else { return false }
        case "float": try none(); return value.isDouble
        case "number": try none(); return value.number != nil
        case "string": try none(); if case .string = value { return true } else { return false }
        case "mapping": try none(); if case .dict = value { return true } else { return false }
        case "iterable":
            try none()
            switch value {
            case .undefined, .string, .list, .tuple, .dict, .loop: return true
            default: return false
            }
        case "sequence":
            try none()
            switch value {
            case .undefined, .string, .list, .tuple, .dict: return true
            default: return false
            }
        case "callable":
            try none()
            switch value {
            case .function, .macro, .loop, .undefined: return true
            default: return false
            }
        case "odd", "even":
            try none()
            let r = try PyValue.binary(.modulo, value, .int(2))
            return PyValue.equal(r, .int(name == "odd" ? 1 : 0))
        case "divisibleby":
            return PyValue.equal(try PyValue.binary(.modulo, value, try other()), .int(0))
        case "eq", "equalto", "==": return PyValue.equal(value, try other())
        case "ne", "!=": return !PyValue.equal(value, try other())
        case "lt", "lessthan", "<": return try PyValue.compare(value, .less, try other())
        case "le", "<=": return try PyValue.compare(value, .lessEqual, try other())
        case "gt", "greaterthan", ">": return try PyValue.compare(value, .greater, try other())
        case "ge", ">=": return try PyValue.compare(value, .greaterEqual, try other())
        case "in":
            let a = try bindArguments(name, ["seq"], required: 1, args, kwargs)
            return try a[0]!.contains(value)
        case "lower": try none(); return PyString.isLower(value.str)
        case "upper": try none(); return PyString.isUpper(value.str)
        case "sameas":
            let o = try other()
            switch (value, o) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.int(let a), .int(let b)): return a == b
            case (.string(let a), .string(let b)): return PyString.equal(a, b)
            case (.namespace(let a), .namespace(let b)): return a === b
            default: return false
            }
        case "escaped": try none(); return false
        case "filter":
            try none()
            return Self.supportedFilters.contains(value.str) || Self.unsupportedFilters.contains(value.str)
        case "test":
            try none()
            return Self.supportedTests.contains(value.str)
        default:
            throw RenderError(.unsupported, "no test named '\(name)'")
        }
    }

    static let supportedTests: Set<String> = [
        "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string", "mapping",
        "iterable", "sequence", "callable", "odd", "even", "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt",
        "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "in", "lower", "upper", "sameas", "escaped",
        "filter", "test",
    ]
}
