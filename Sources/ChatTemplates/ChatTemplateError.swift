/// Why a chat template could not be parsed or rendered, and where in the template.
///
/// `line` and `column` count from 1 in the template text (columns in Unicode scalars, after
/// `\r\n` is read as `\n`). A template's own `raise_exception("…")` arrives as `.raised` with
/// its message unchanged, so callers can show it as the model author wrote it.
public struct ChatTemplateError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Not valid Jinja (unclosed tag, unexpected token, missing `endfor`…).
        case syntax
        /// Valid Jinja that this engine does not implement (a statement, filter, test or method).
        case unsupported
        /// An operation on an undefined value (`x.attr` when `x` is undefined).
        case undefined
        /// A Python type error, bad argument, or other failure while rendering.
        case runtime
        /// The template called `raise_exception(message)`.
        case raised
    }

    public let kind: Kind
    public let message: String
    public let line: Int
    public let column: Int

    public init(kind: Kind, message: String, line: Int, column: Int) {
        self.kind = kind
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        let at = "line \(line), column \(column)"
        switch kind {
        case .raised: return "the chat template refused the conversation (\(at)): \(message)"
        case .unsupported: return "chat template \(at): \(message) (weightfs renders a subset of Jinja)"
        case .syntax: return "chat template syntax error at \(at): \(message)"
        case .undefined, .runtime: return "chat template error at \(at): \(message)"
        }
    }
}

/// A position in the template source, 1-based.
struct SourcePosition: Sendable, Equatable {
    var line: Int
    var column: Int
}

/// An error inside the engine; the evaluator fills in the position of the innermost
/// expression or statement that was running.
struct RenderError: Error {
    var kind: ChatTemplateError.Kind
    var message: String
    var position: SourcePosition?

    init(_ kind: ChatTemplateError.Kind, _ message: String, at position: SourcePosition? = nil) {
        self.kind = kind
        self.message = message
        self.position = position
    }

    var publicError: ChatTemplateError {
        ChatTemplateError(kind: kind, message: message, line: position?.line ?? 1, column: position?.column ?? 1)
    }

    static func runtime(_ message: String) -> RenderError { RenderError(.runtime, message) }
    static func unsupported(_ message: String) -> RenderError { RenderError(.unsupported, message) }
}
