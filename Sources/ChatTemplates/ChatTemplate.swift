import Foundation

/// A model's chat template (the Jinja `chat_template` of `tokenizer_config.json`), parsed
/// once and rendered for any number of conversations.
///
/// Renders as Hugging Face transformers' `apply_chat_template(messages, tokenize=False,
/// add_generation_prompt=…)` does: jinja2 with `trim_blocks` and `lstrip_blocks`, the globals
/// `raise_exception`, `strftime_now`, `namespace`, `dict` and `range`, loop controls, and a
/// `tojson` that is Python's `json.dumps` (non-ASCII kept). Values follow Python's rules
/// (`str()` of a list, `//` and `%`, code point string indexing, jinja2's undefined values).
///
/// Supported: `{{ }}`, `{% %}`, `{# #}` with `-`/`+` whitespace control; `for` (with `loop.*`,
/// `if` filters, `else`, tuple unpacking, `break`/`continue`), `if`/`elif`/`else`, `set`
/// (also block form and `ns.attr = …`), `macro`, `with`, `filter` blocks, `raw`, and
/// transformers' `generation` block; the filters, tests and str/dict methods listed in
/// `Filters.swift`, `Predicates.swift` and `Methods.swift`. Anything else (`include`,
/// `extends`, `call`, recursive loops, `%`-formatting, `str.format`…) throws a
/// `ChatTemplateError` naming the construct and its line and column — when it is parsed for
/// statements, when it is reached for filters, tests and methods.
public struct ChatTemplate: Sendable {
    /// The template text as given.
    public let source: String
    let nodes: [Node]

    public init(_ source: String) throws(ChatTemplateError) {
        self.source = source
        do {
            nodes = try TemplateParser.parse(source)
        } catch {
            throw error.publicError
        }
    }

    /// The conversation rendered as a prompt.
    ///
    /// The template sees `messages` (a list of `{"role", "content"}` dicts),
    /// `add_generation_prompt`, `bos_token` and `eos_token` (undefined when nil), `tools` and
    /// `documents` (None, as transformers passes them), then everything in `extra`, which may
    /// also replace those (e.g. `tools`, `date_string`, or `messages` with tool calls).
    /// `strftime_now` reads `now` in the local time zone.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String?, eosToken: String?,
                       extra: [String: TemplateValue] = [:], now: Date = Date()) throws(ChatTemplateError) -> String {
        var variables: [String: TemplateValue] = [
            "messages": .array(messages.map(\.templateValue)),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "tools": .null,
            "documents": .null,
        ]
        if let bosToken { variables["bos_token"] = .string(bosToken) }
        if let eosToken { variables["eos_token"] = .string(eosToken) }
        for (k, v) in extra { variables[k] = v }
        return try render(variables: variables, now: now)
    }

    /// Renders with exactly `variables` as the template's context.
    public func render(variables: [String: TemplateValue], now: Date = Date()) throws(ChatTemplateError) -> String {
        let renderer = TemplateRenderer(context: variables.mapValues(\.runtimeValue), now: now)
        do {
            return try renderer.render(nodes)
        } catch let error as RenderError {
            throw error.publicError
        } catch {
            throw ChatTemplateError(kind: .runtime, message: "\(error)", line: 1, column: 1)
        }
    }
}

/// One turn of a conversation, as `apply_chat_template` takes it: `{"role": …, "content": …}`.
public struct ChatMessage: Sendable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }

    var templateValue: TemplateValue { ["role": .string(role), "content": .string(content)] }
}
