import Foundation

/// Python's arithmetic on template values: `int` stays `int` (overflow is an error rather
/// than a bignum), `/` always gives a float, `//` and `%` round toward negative infinity,
/// `+` joins strings and lists, `*` repeats them.
extension PyValue {
    static func binary(_ op: BinaryOperator, _ a: PyValue, _ b: PyValue) throws -> PyValue {
        if case .undefined(let u) = a { throw u.error }
        if case .undefined(let u) = b { throw u.error }
        switch op {
        case .add: return try add(a, b)
        case .subtract: return try numeric(op, a, b, { i, j in i.subtractingReportingOverflow(j) }, -)
        case .multiply: return try multiply(a, b)
        case .divide:
            guard let x = a.number, let y = b.number else { throw unsupported(op, a, b) }
            let d = y.double
            guard d != 0 else { throw RenderError.runtime("division by zero") }
            return .double(x.double / d)
        case .floorDivide:
            guard let x = a.number, let y = b.number else { throw unsupported(op, a, b) }
            if case .int(let i) = x, case .int(let j) = y {
                guard j != 0 else { throw RenderError.runtime("integer division or modulo by zero") }
                if i == .min && j == -1 { throw RenderError.runtime("integer overflow in //") }
                return .int(floorDiv(i, j))
            }
            guard y.double != 0 else { throw RenderError.runtime("float floor division by zero") }
            return .double(floatDivMod(x.double, y.double).div)
        case .modulo:
            if case .string = a { throw RenderError.unsupported("printf-style string formatting ('…' % value) is not supported") }
            guard let x = a.number, let y = b.number else { throw unsupported(op, a, b) }
            if case .int(let i) = x, case .int(let j) = y {
                guard j != 0 else { throw RenderError.runtime("integer division or modulo by zero") }
                if j == -1 { return .int(0) }
                return .int(i - floorDiv(i, j) * j)
            }
            guard y.double != 0 else { throw RenderError.runtime("float modulo") }
            return .double(floatDivMod(x.double, y.double).mod)
        case .power:
            guard let x = a.number, let y = b.number else { throw unsupported(op, a, b) }
            if case .int(let base) = x, case .int(let exp) = y {
                if exp < 0 {
                    guard base != 0 else { throw RenderError.runtime("0.0 cannot be raised to a negative power") }
                    return .double(Foundation.pow(Double(base), Double(exp)))
                }
                var result = 1, factor = base, e = exp
                while e > 0 {
                    if e & 1 == 1 {
                        let (r, o) = result.multipliedReportingOverflow(by: factor)
                        guard !o else { throw RenderError.runtime("integer overflow in **") }
                        result = r
                    }
                    e >>= 1
                    if e > 0 {
                        let (f, o) = factor.multipliedReportingOverflow(by: factor)
                        guard !o else { throw RenderError.runtime("integer overflow in **") }
                        factor = f
                    }
                }
                return .int(result)
            }
            return .double(Foundation.pow(x.double, y.double))
        }
    }

    private static func unsupported(_ op: BinaryOperator, _ a: PyValue, _ b: PyValue) -> RenderError {
        RenderError.runtime("unsupported operand type(s) for \(op.rawValue): '\(a.typeName)' and '\(b.typeName)'")
    }

    private static func numeric(_ op: BinaryOperator, _ a: PyValue, _ b: PyValue,
                                _ intOp: (Int, Int) -> (partialValue: Int, overflow: Bool),
                                _ doubleOp: (Double, Double) -> Double) throws -> PyValue {
        guard let x = a.number, let y = b.number else { throw unsupported(op, a, b) }
        if case .int(let i) = x, case .int(let j) = y {
            let (r, o) = intOp(i, j)
            guard !o else { throw RenderError.runtime("integer overflow in \(op.rawValue)") }
            return .int(r)
        }
        return .double(doubleOp(x.double, y.double))
    }

    private static func add(_ a: PyValue, _ b: PyValue) throws -> PyValue {
        switch (a, b) {
        case (.string(let x), .string(let y)):
            let joined = x + y
            try TemplateRenderer.checkSize(joined)
            return .string(joined)
        case (.list(let x), .list(let y)): return .list(x + y)
        case (.tuple(let x), .tuple(let y)): return .tuple(x + y)
        case (.string, _): throw RenderError.runtime("can only concatenate str (not \"\(b.typeName)\") to str")
        case (.list, _): throw RenderError.runtime("can only concatenate list (not \"\(b.typeName)\") to list")
        case (.tuple, _): throw RenderError.runtime("can only concatenate tuple (not \"\(b.typeName)\") to tuple")
        default: return try numeric(.add, a, b, { i, j in i.addingReportingOverflow(j) }, +)
        }
    }

    /// Repetition larger than this fails instead of exhausting memory.
    static let maxRepeatedLength = 10_000_000

    private static func multiply(_ a: PyValue, _ b: PyValue) throws -> PyValue {
        func times(_ n: Number?) -> Int? { if case .int(let i) = n { return max(0, i) } else { return nil } }
        func checked(_ unit: Int, _ n: Int) throws -> Int {
            if unit > 0 && n > maxRepeatedLength / unit {
                throw RenderError.runtime("repetition result too large (more than \(maxRepeatedLength) items)")
            }
            return n
        }
        switch (a, b) {
        case (.string(let s), _) where times(b.number) != nil:
            return .string(String(repeating: s, count: try checked(s.utf8.count, times(b.number)!)))
        case (_, .string(let s)) where times(a.number) != nil:
            return .string(String(repeating: s, count: try checked(s.utf8.count, times(a.number)!)))
        case (.list(let x), _) where times(b.number) != nil:
            return .list(Array(repeating: x, count: try checked(x.count, times(b.number)!)).flatMap { $0 })
        case (_, .list(let x)) where times(a.number) != nil:
            return .list(Array(repeating: x, count: try checked(x.count, times(a.number)!)).flatMap { $0 })
        case (.tuple(let x), _) where times(b.number) != nil:
            return .tuple(Array(repeating: x, count: try checked(x.count, times(b.number)!)).flatMap { $0 })
        default: return try numeric(.multiply, a, b, { i, j in i.multipliedReportingOverflow(by: j) }, *)
        }
    }

    static func floorDiv(_ i: Int, _ j: Int) -> Int {
        let q = i / j
        return (i % j != 0 && ((i < 0) != (j < 0))) ? q - 1 : q
    }

    /// CPython's float_divmod.
    static func floatDivMod(_ vx: Double, _ wx: Double) -> (div: Double, mod: Double) {
        var mod = fmod(vx, wx)
        var div = (vx - mod) / wx
        if mod != 0 {
            if (wx < 0) != (mod < 0) {
                mod += wx
                div -= 1
            }
        } else {
            mod = copysign(0, wx)
        }
        var floordiv: Double
        if div != 0 {
            floordiv = floor(div)
            if div - floordiv > 0.5 { floordiv += 1 }
        } else {
            floordiv = copysign(0, vx / wx)
        }
        return (floordiv, mod)
    }

    static func negate(_ a: PyValue) throws -> PyValue {
        switch a.number {
        case .int(let i)?:
            guard i != .min else { throw RenderError.runtime("integer overflow in unary -") }
            return .int(-i)
        case .double(let d)?: return .double(-d)
        case nil:
            if case .undefined(let u) = a { throw u.error }
            throw RenderError.runtime("bad operand type for unary -: '\(a.typeName)'")
        }
    }

    static func positive(_ a: PyValue) throws -> PyValue {
        switch a.number {
        case .int(let i)?: return .int(i)
        case .double(let d)?: return .double(d)
        case nil:
            if case .undefined(let u) = a { throw u.error }
            throw RenderError.runtime("bad operand type for unary +: '\(a.typeName)'")
        }
    }
}

enum Arithmetic {
    /// Padding widths (`zfill`, `ljust`, `indent`) larger than this fail instead of exhausting memory.
    static let maxWidth = 10_000_000
}

extension PyValue.Number {
    var double: Double {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        }
    }
}
