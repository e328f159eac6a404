/// Builds the syntax tree from the lexer's tokens, following jinja2's parser rule for rule
/// (operator precedence, where filters and tests bind, tuples, `for … if …`), so that a
/// template means here what it means to jinja2.
struct TemplateParser {
    private var tokens: [TemplateToken]
    private var index = 0
    private var loopDepth = 0
    private var nesting = 0
    /// Deeper nesting of expressions or blocks is refused rather than risking the stack.
    static let maxNesting = 200

    /// One more level of a left-deep chain (`a + b + c`, `x.a.b`, `x | f | g`): it nests in the tree like parentheses do.
    private mutating func chain(_ levels: inout Int) throws(RenderError) {
        try enter()
        levels += 1
    }

    private mutating func enter() throws(RenderError) {
        nesting += 1
        if nesting > Self.maxNesting { throw fail("the template nests expressions or blocks more than \(Self.maxNesting) deep") }
    }

    init(tokens: [TemplateToken]) {
        self.tokens = tokens
    }

    static func parse(_ source: String) throws(RenderError) -> [Node] {
        let lexer = TemplateLexer(source: source)
        var parser = TemplateParser(tokens: try lexer.tokenize())
        return try parser.parseTemplate()
    }

    // MARK: Token stream

    private var current: TemplateToken { tokens[index] }
    private var lookahead: TemplateToken { tokens[min(index + 1, tokens.count - 1)] }

    @discardableResult
    private mutating func advance() -> TemplateToken {
        let t = tokens[index]
        if index < tokens.count - 1 { index += 1 }
        return t
    }

    private func isName(_ name: String) -> Bool { current.kind == .name && current.text == name }
    private func isOp(_ op: String) -> Bool { current.kind == .op && current.text == op }

    private mutating func skipName(_ name: String) -> Bool {
        guard isName(name) else { return false }
        advance()
        return true
    }

    private mutating func skipOp(_ op: String) -> Bool {
        guard isOp(op) else { return false }
        advance()
        return true
    }

    private func describe(_ t: TemplateToken) -> String {
        switch t.kind {
        case .data: return "template data"
        case .variableBegin: return "begin of print statement ({{)"
        case .variableEnd: return "end of print statement (}})"
        case .blockBegin: return "begin of statement block ({%)"
        case .blockEnd: return "end of statement block (%})"
        case .name, .op: return "'\(t.text)'"
        case .string: return "string literal"
        case .integer, .float: return "number"
        case .eof: return "end of template"
        }
    }

    private func fail(_ message: String, at position: SourcePosition? = nil) -> RenderError {
        RenderError(.syntax, message, at: position ?? current.position)
    }

    private mutating func expectOp(_ op: String) throws(RenderError) {
        guard skipOp(op) else { throw fail("expected '\(op)', got \(describe(current))") }
    }

    private mutating func expectName(_ name: String? = nil) throws(RenderError) -> String {
        guard current.kind == .name, name == nil || current.text == name else {
            throw fail("expected \(name.map { "'\($0)'" } ?? "a name"), got \(describe(current))")
        }
        return advance().text
    }

    private mutating func expect(_ kind: TemplateToken.Kind) throws(RenderError) {
        guard current.kind == kind else {
            let want = kind == .blockEnd ? "end of statement block (%})" : kind == .variableEnd ? "end of print statement (}})" : "\(kind)"
            throw fail("expected \(want), got \(describe(current))")
        }
        advance()
    }

    // MARK: Statements

    private mutating func parseTemplate() throws(RenderError) -> [Node] {
        try subparse(endTokens: [], opener: nil)
    }

    /// Nodes up to a `{% name %}` whose name is in `endTokens` (left as the current token).
    private mutating func subparse(endTokens: [String], opener: (name: String, position: SourcePosition)?) throws(RenderError) -> [Node] {
        var nodes: [Node] = []
        while true {
            switch current.kind {
            case .data:
                nodes.append(.text(advance().text))
            case .variableBegin:
                advance()
                let e = try parseTuple()
                try expect(.variableEnd)
                nodes.append(.output(e))
            case .blockBegin:
                advance()
                if current.kind == .name && endTokens.contains(current.text) { return nodes }
                nodes.append(contentsOf: try parseStatement())
                try expect(.blockEnd)
            case .eof:
                if let opener {
                    let wanted = endTokens.map { "'\($0)'" }.joined(separator: " or ")
                    throw fail("unexpected end of template: the '\(opener.name)' at line \(opener.position.line), column \(opener.position.column) is not closed (looking for \(wanted))",
                               at: opener.position)
                }
                return nodes
            default:
                throw fail("unexpected \(describe(current))")
            }
        }
    }

    private mutating func parseStatements(_ endTokens: [String], opener: (String, SourcePosition), dropNeedle: Bool = false) throws(RenderError) -> [Node] {
        try enter()
        defer { nesting -= 1 }
        try expect(.blockEnd)
        let body = try subparse(endTokens: endTokens, opener: opener)
        if dropNeedle { advance() }
        return body
    }

    private static let unsupportedStatements: Set<String> = [
        "block", "extends", "include", "import", "from", "call", "autoescape", "do", "trans", "pluralize", "debug", "print",
    ]

    private mutating func parseStatement() throws(RenderError) -> [Node] {
        guard current.kind == .name else { throw fail("tag name expected, got \(describe(current))") }
        let keyword = current.text
        let position = current.position
        switch keyword {
        case "for": return [try parseFor()]
        case "if": return [try parseIf()]
        case "set": return [try parseSet()]
        case "macro": return [try parseMacro()]
        case "with": return [try parseWith()]
        case "filter":
            advance()
            let filters = try parseFilterChain(startInline: true)
            return [.filterBlock(filters, try parseStatements(["endfilter"], opener: ("filter", position), dropNeedle: true))]
        case "generation":
            advance()
            return [.group(try parseStatements(["endgeneration"], opener: ("generation", position), dropNeedle: true))]
        case "break", "continue":
            advance()
            guard loopDepth > 0 else { throw fail("'\(keyword)' outside a for loop", at: position) }
            return [.loopControl(isBreak: keyword == "break", position)]
        default:
            if Self.unsupportedStatements.contains(keyword) {
                throw RenderError(.unsupported, "the '{% \(keyword) %}' statement is not supported", at: position)
            }
            throw fail("encountered unknown tag '\(keyword)'", at: position)
        }
    }

    private mutating func parseFor() throws(RenderError) -> Node {
        let position = advance().position
        let target = try parseAssignTarget(extraEndRules: ["in"])
        _ = try expectName("in")
        let iterable = try parseTuple(withCondexpr: false, extraEndRules: ["recursive"])
        var condition: Expr? = nil
        if skipName("if") { condition = try parseExpression() }
        if isName("recursive") {
            throw RenderError(.unsupported, "recursive for loops are not supported", at: current.position)
        }
        loopDepth += 1
        let body = try parseStatements(["endfor", "else"], opener: ("for", position))
        loopDepth -= 1
        var otherwise: [Node] = []
        if advance().text == "else" {
            otherwise = try parseStatements(["endfor"], opener: ("for", position), dropNeedle: true)
        }
        return .forLoop(ForLoop(target: target, iterable: iterable, condition: condition, body: body, otherwise: otherwise, position: position))
    }

    private mutating func parseIf() throws(RenderError) -> Node {
        let position = advance().position
        var branches: [(test: Expr, body: [Node])] = []
        var otherwise: [Node] = []
        while true {
            let test = try parseTuple(withCondexpr: false)
            let body = try parseStatements(["elif", "else", "endif"], opener: ("if", position))
            branches.append((test, body))
            let end = advance().text
            if end == "elif" { continue }
            if end == "else" {
                otherwise = try parseStatements(["endif"], opener: ("if", position), dropNeedle: true)
            }
            break
        }
        return .conditional(branches: branches, otherwise: otherwise)
    }

    private mutating func parseSet() throws(RenderError) -> Node {
        let position = advance().position
        let target = try parseAssignTarget(withNamespace: true)
        if skipOp("=") {
            return .assign(target, try parseTuple(), position)
        }
        let filters = try parseFilterChain(startInline: false)
        let body = try parseStatements(["endset"], opener: ("set", position), dropNeedle: true)
        return .assignBlock(target, filters, body, position)
    }

    private mutating func parseMacro() throws(RenderError) -> Node {
        let position = advance().position
        let name = try expectName()
        try expectOp("(")
        var parameters: [(name: String, defaultValue: Expr?)] = []
        while !isOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            let p = try expectName()
            if skipOp("=") {
                parameters.append((p, try parseExpression()))
            } else {
                if parameters.contains(where: { $0.defaultValue != nil }) { throw fail("non-default argument follows default argument") }
                parameters.append((p, nil))
            }
        }
        try expectOp(")")
        let savedDepth = loopDepth
        loopDepth = 0
        let body = try parseStatements(["endmacro"], opener: ("macro", position), dropNeedle: true)
        loopDepth = savedDepth
        return .macro(MacroDefinition(name: name, parameters: parameters, body: body, position: position))
    }

    private mutating func parseWith() throws(RenderError) -> Node {
        let position = advance().position
        var assignments: [(target: AssignTarget, value: Expr)] = []
        while current.kind != .blockEnd {
            if !assignments.isEmpty { try expectOp(",") }
            let target = try parseAssignTarget()
            try expectOp("=")
            assignments.append((target, try parseExpression()))
        }
        return .scoped(assignments, try parseStatements(["endwith"], opener: ("with", position), dropNeedle: true))
    }

    // MARK: Assignment targets

    private func isTupleEnd(_ extraEndRules: [String]) -> Bool {
        switch current.kind {
        case .variableEnd, .blockEnd: return true
        case .op: return current.text == ")"
        case .name: return extraEndRules.contains(current.text)
        default: return false
        }
    }

    private mutating func parseAssignTarget(extraEndRules: [String] = [], withNamespace: Bool = false) throws(RenderError) -> AssignTarget {
        var items: [AssignTarget] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEndRules) { break }
            items.append(try parseTargetPrimary(withNamespace: withNamespace))
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            guard let only = items.first else { throw fail("expected an assignment target, got \(describe(current))") }
            return only
        }
        return .tuple(items)
    }

    private mutating func parseTargetPrimary(withNamespace: Bool) throws(RenderError) -> AssignTarget {
        let t = current
        switch t.kind {
        case .name where !["true", "false", "True", "False", "none", "None"].contains(t.text):
            advance()
            if withNamespace && isOp(".") {
                advance()
                return .namespaceAttribute(t.text, try expectName())
            }
            return .name(t.text)
        case .op where t.text == "(":
            advance()
            let inner = try parseAssignTarget(withNamespace: withNamespace)
            try expectOp(")")
            return inner
        default:
            throw fail("can't assign to \(describe(t))")
        }
    }

    // MARK: Expressions

    private mutating func parseTuple(simplified: Bool = false, withCondexpr: Bool = true, extraEndRules: [String] = [],
                                     explicitParentheses: Bool = false) throws(RenderError) -> Expr {
        let position = current.position
        var items: [Expr] = []
        var isTuple = false
        while true {
            if !items.isEmpty { try expectOp(",") }
            if isTupleEnd(extraEndRules) { break }
            items.append(simplified ? try parsePrimary() : try parseExpression(withCondexpr: withCondexpr))
            if isOp(",") { isTuple = true } else { break }
        }
        if !isTuple {
            if let only = items.first { return only }
            if !explicitParentheses { throw fail("expected an expression, got \(describe(current))") }
        }
        return Expr(kind: .tuple(items), position: position)
    }

    private mutating func parseExpression(withCondexpr: Bool = true) throws(RenderError) -> Expr {
        withCondexpr ? try parseCondexpr() : try parseOr()
    }

    private mutating func parseCondexpr() throws(RenderError) -> Expr {
        var position = current.position
        var expr1 = try parseOr()
        while skipName("if") {
            let expr2 = try parseOr()
            let expr3: Expr? = skipName("else") ? try parseCondexpr() : nil
            expr1 = Expr(kind: .conditional(test: expr2, then: expr1, otherwise: expr3), position: position)
            position = current.position
        }
        return expr1
    }

    private mutating func parseOr() throws(RenderError) -> Expr {
        var left = try parseAnd()
        var levels = 0
        defer { nesting -= levels }
        while isName("or") {
            try chain(&levels)
            let position = advance().position
            left = Expr(kind: .or(left, try parseAnd()), position: position)
        }
        return left
    }

    private mutating func parseAnd() throws(RenderError) -> Expr {
        var left = try parseNot()
        var levels = 0
        defer { nesting -= levels }
        while isName("and") {
            try chain(&levels)
            let position = advance().position
            left = Expr(kind: .and(left, try parseNot()), position: position)
        }
        return left
    }

    private mutating func parseNot() throws(RenderError) -> Expr {
        if isName("not") {
            let position = advance().position
            return Expr(kind: .not(try parseNot()), position: position)
        }
        return try parseCompare()
    }

    private mutating func parseCompare() throws(RenderError) -> Expr {
        let position = current.position
        let expr = try parseMath1()
        var ops: [(op: CompareOperator, operand: Expr)] = []
        while true {
            if current.kind == .op, let op = CompareOperator(rawValue: current.text), op != .contains, op != .notContains {
                advance()
                ops.append((op, try parseMath1()))
            } else if skipName("in") {
                ops.append((.contains, try parseMath1()))
            } else if isName("not") && lookahead.kind == .name && lookahead.text == "in" {
                advance()
                advance()
                ops.append((.notContains, try parseMath1()))
            } else {
                break
            }
        }
        if ops.isEmpty { return expr }
        return Expr(kind: .compare(expr, ops), position: position)
    }

    private mutating func parseMath1() throws(RenderError) -> Expr {
        var left = try parseConcat()
        var levels = 0
        defer { nesting -= levels }
        while current.kind == .op, current.text == "+" || current.text == "-" {
            try chain(&levels)
            let t = advance()
            let right = try parseConcat()
            left = Expr(kind: .binary(t.text == "+" ? .add : .subtract, left, right), position: t.position)
        }
        return left
    }

    private mutating func parseConcat() throws(RenderError) -> Expr {
        let position = current.position
        var items = [try parseMath2()]
        while skipOp("~") { items.append(try parseMath2()) }
        return items.count == 1 ? items[0] : Expr(kind: .concat(items), position: position)
    }

    private mutating func parseMath2() throws(RenderError) -> Expr {
        var left = try parsePow()
        var levels = 0
        defer { nesting -= levels }
        while current.kind == .op, let op = BinaryOperator(rawValue: current.text), [.multiply, .divide, .floorDivide, .modulo].contains(op) {
            try chain(&levels)
            let position = advance().position
            left = Expr(kind: .binary(op, left, try parsePow()), position: position)
        }
        return left
    }

    private mutating func parsePow() throws(RenderError) -> Expr {
        var left = try parseUnary()
        var levels = 0
        defer { nesting -= levels }
        while isOp("**") {
            try chain(&levels)
            let position = advance().position
            left = Expr(kind: .binary(.power, left, try parseUnary()), position: position)
        }
        return left
    }

    private mutating func parseUnary(withFilter: Bool = true) throws(RenderError) -> Expr {
        try enter()
        defer { nesting -= 1 }
        var node: Expr
        if isOp("-") {
            let position = advance().position
            node = Expr(kind: .negate(try parseUnary(withFilter: false)), position: position)
        } else if isOp("+") {
            let position = advance().position
            node = Expr(kind: .plus(try parseUnary(withFilter: false)), position: position)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    private mutating func parsePrimary() throws(RenderError) -> Expr {
        let t = current
        switch t.kind {
        case .name:
            advance()
            switch t.text {
            case "true", "True": return Expr(kind: .constant(.bool(true)), position: t.position)
            case "false", "False": return Expr(kind: .constant(.bool(false)), position: t.position)
            case "none", "None": return Expr(kind: .constant(.none), position: t.position)
            default: return Expr(kind: .name(t.text), position: t.position)
            }
        case .string:
            advance()
            var text = t.text
            while current.kind == .string { text += advance().text }
            return Expr(kind: .constant(.string(text)), position: t.position)
        case .integer:
            advance()
            return Expr(kind: .constant(.int(t.integer)), position: t.position)
        case .float:
            advance()
            return Expr(kind: .constant(.double(t.float)), position: t.position)
        case .op where t.text == "(":
            advance()
            let inner = try parseTuple(explicitParentheses: true)
            try expectOp(")")
            return inner
        case .op where t.text == "[":
            advance()
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("]") { break }
                items.append(try parseExpression())
            }
            try expectOp("]")
            return Expr(kind: .list(items), position: t.position)
        case .op where t.text == "{":
            advance()
            var items: [(key: Expr, value: Expr)] = []
            while !isOp("}") {
                if !items.isEmpty { try expectOp(",") }
                if isOp("}") { break }
                let key = try parseExpression()
                try expectOp(":")
                items.append((key, try parseExpression()))
            }
            try expectOp("}")
            return Expr(kind: .dict(items), position: t.position)
        default:
            throw fail("unexpected \(describe(t))")
        }
    }

    private mutating func parsePostfix(_ start: Expr) throws(RenderError) -> Expr {
        var node = start
        var levels = 0
        defer { nesting -= levels }
        while true {
            if isOp(".") || isOp("[") {
                try chain(&levels)
                node = try parseSubscript(node)
            } else if isOp("(") {
                try chain(&levels)
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseFilterExpr(_ start: Expr) throws(RenderError) -> Expr {
        var node = start
        var levels = 0
        defer { nesting -= levels }
        while true {
            if isOp("|") {
                for f in try parseFilterChain(startInline: false) {
                    try chain(&levels)
                    node = Expr(kind: .filter(node, f), position: f.position)
                }
            } else if isName("is") {
                try chain(&levels)
                node = try parseTest(node)
            } else if isOp("(") {
                try chain(&levels)
                node = try parseCall(node)
            } else {
                return node
            }
        }
    }

    private mutating func parseSubscript(_ base: Expr) throws(RenderError) -> Expr {
        let t = advance()
        if t.text == "." {
            let attr = current
            advance()
            if attr.kind == .name { return Expr(kind: .attribute(base, attr.text), position: t.position) }
            guard attr.kind == .integer else { throw fail("expected name or number", at: attr.position) }
            return Expr(kind: .item(base, Expr(kind: .constant(.int(attr.integer)), position: attr.position)), position: t.position)
        }
        // "["
        var args: [Expr] = []
        var slice: (Expr?, Expr?, Expr?)? = nil
        while !isOp("]") {
            if !args.isEmpty || slice != nil { try expectOp(",") }
            if let s = try parseSubscribed() {
                guard args.isEmpty && slice == nil else {
                    throw RenderError(.unsupported, "a slice inside a multi-part subscript is not supported", at: t.position)
                }
                slice = s
            } else {
                if slice != nil {
                    throw RenderError(.unsupported, "a slice inside a multi-part subscript is not supported", at: t.position)
                }
                args.append(try parseExpression())
            }
        }
        try expectOp("]")
        if let (start, stop, step) = slice {
            return Expr(kind: .slice(base, start: start, stop: stop, step: step), position: t.position)
        }
        guard !args.isEmpty else { throw fail("expected subscript expression", at: t.position) }
        let arg = args.count == 1 ? args[0] : Expr(kind: .tuple(args), position: t.position)
        return Expr(kind: .item(base, arg), position: t.position)
    }

    /// A slice `a:b:c` (any part may be missing), or nil when the subscript is a plain
    /// expression (left unparsed for the caller).
    private mutating func parseSubscribed() throws(RenderError) -> (Expr?, Expr?, Expr?)? {
        let saved = index
        var start: Expr? = nil
        if !isOp(":") {
            start = try parseExpression()
            guard isOp(":") else {
                index = saved
                return nil
            }
        }
        advance()  // ":"
        var stop: Expr? = nil
        if !isOp(":") && !isOp("]") && !isOp(",") { stop = try parseExpression() }
        var step: Expr? = nil
        if skipOp(":") {
            if !isOp("]") && !isOp(",") { step = try parseExpression() }
        }
        return (start, stop, step)
    }

    private mutating func parseCallArguments() throws(RenderError) -> Arguments {
        try expectOp("(")
        var arguments = Arguments()
        var requireComma = false
        while !isOp(")") {
            if requireComma {
                try expectOp(",")
                if isOp(")") { break }
            }
            if isOp("*") || isOp("**") {
                throw RenderError(.unsupported, "'\(current.text)' argument unpacking in calls is not supported", at: current.position)
            }
            if current.kind == .name && lookahead.kind == .op && lookahead.text == "=" {
                let key = advance().text
                advance()
                arguments.keywords.append((key, try parseExpression()))
            } else {
                if !arguments.keywords.isEmpty { throw fail("invalid syntax for function call expression (positional argument after keyword argument)") }
                arguments.positional.append(try parseExpression())
            }
            requireComma = true
        }
        try expectOp(")")
        return arguments
    }

    private mutating func parseCall(_ callee: Expr) throws(RenderError) -> Expr {
        // Errors point at what is called (`raise_exception`), not at the parenthesis.
        Expr(kind: .call(callee, try parseCallArguments()), position: callee.position)
    }

    private mutating func parseFilterChain(startInline: Bool) throws(RenderError) -> [FilterCall] {
        var filters: [FilterCall] = []
        var inline = startInline
        while isOp("|") || inline {
            if !inline { advance() }
            inline = false
            let t = current
            var name = try expectName()
            while skipOp(".") { name += "." + (try expectName()) }
            let arguments = isOp("(") ? try parseCallArguments() : Arguments()
            filters.append(FilterCall(name: name, arguments: arguments, position: t.position))
        }
        return filters
    }

    private mutating func parseTest(_ subject: Expr) throws(RenderError) -> Expr {
        let position = advance().position  // "is"
        let negated = skipName("not")
        var name = try expectName()
        while skipOp(".") { name += "." + (try expectName()) }
        var arguments = Arguments()
        if isOp("(") {
            arguments = try parseCallArguments()
        } else if (current.kind == .name || current.kind == .string || current.kind == .integer || current.kind == .float
                   || isOp("(") || isOp("[") || isOp("{")) && !isName("else") && !isName("or") && !isName("and") {
            if isName("is") { throw fail("you cannot chain multiple tests with is") }
            arguments.positional = [try parsePostfix(try parsePrimary())]
        }
        let test = Expr(kind: .test(subject, name: name, arguments), position: position)
        return negated ? Expr(kind: .not(test), position: position) : test
    }
}
