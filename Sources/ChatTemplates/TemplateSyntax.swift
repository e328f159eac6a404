/// The parsed form of a template: statements (`Node`) holding expressions (`Expr`), each
/// with the source position that errors report.

struct Expr: Sendable {
    var kind: ExprKind
    var position: SourcePosition
}

enum Constant: Sendable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
}

struct Arguments: Sendable {
    var positional: [Expr] = []
    var keywords: [(name: String, value: Expr)] = []
}

enum BinaryOperator: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//", modulo = "%", power = "**"
}

enum CompareOperator: String, Sendable {
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
    case contains = "in", notContains = "not in"
}

/// A filter application: `| name(args)`.
struct FilterCall: Sendable {
    var name: String
    var arguments: Arguments
    var position: SourcePosition
}

indirect enum ExprKind: Sendable {
    case constant(Constant)
    case name(String)
    case list([Expr])
    case tuple([Expr])
    case dict([(key: Expr, value: Expr)])
    case attribute(Expr, String)
    case item(Expr, Expr)
    case slice(Expr, start: Expr?, stop: Expr?, step: Expr?)
    case call(Expr, Arguments)
    case filter(Expr, FilterCall)
    case test(Expr, name: String, Arguments)
    case not(Expr)
    case negate(Expr)
    case plus(Expr)
    case binary(BinaryOperator, Expr, Expr)
    case and(Expr, Expr)
    case or(Expr, Expr)
    case compare(Expr, [(op: CompareOperator, operand: Expr)])
    case concat([Expr])
    case conditional(test: Expr, then: Expr, otherwise: Expr?)
}

indirect enum AssignTarget: Sendable {
    case name(String)
    case tuple([AssignTarget])
    /// `ns.attr` in `{% set ns.attr = … %}`.
    case namespaceAttribute(String, String)
}

struct ForLoop: Sendable {
    var target: AssignTarget
    var iterable: Expr
    var condition: Expr?
    var body: [Node]
    var otherwise: [Node]
    var position: SourcePosition
}

struct MacroDefinition: Sendable {
    var name: String
    var parameters: [(name: String, defaultValue: Expr?)]
    var body: [Node]
    var position: SourcePosition
}

indirect enum Node: Sendable {
    case text(String)
    case output(Expr)
    case conditional(branches: [(test: Expr, body: [Node])], otherwise: [Node])
    case forLoop(ForLoop)
    case assign(AssignTarget, Expr, SourcePosition)
    /// `{% set x %}…{% endset %}`, optionally through filters.
    case assignBlock(AssignTarget, [FilterCall], [Node], SourcePosition)
    case macro(MacroDefinition)
    case loopControl(isBreak: Bool, SourcePosition)
    /// `{% with a = 1 %}…{% endwith %}`: assignments visible only inside.
    case scoped([(target: AssignTarget, value: Expr)], [Node])
    /// `{% filter upper %}…{% endfilter %}`.
    case filterBlock([FilterCall], [Node])
    /// A block rendered as is: transformers' `{% generation %}…{% endgeneration %}`.
    case group([Node])
}
