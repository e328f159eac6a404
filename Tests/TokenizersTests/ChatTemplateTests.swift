import Foundation
import JSON
import Testing
import TestSupport

@testable import ChatTemplates
@testable import Tokenizers

// Reference renderings from Hugging Face transformers (jinja2), made by
// scripts/fixtures/make_chat_fixtures.py into Tests/Fixtures/chat/.

let chatFixtures = fixtures.appendingPathComponent("chat")

func templateValue(_ v: JSON.Value) -> TemplateValue {
    switch v {
    case .null: return .null
    case .bool(let b): return .bool(b)
    case .number(let n): return n.integer.map { .int(Int($0)) } ?? .double(n.double)
    case .string(let s): return .string(s)
    case .array(let items): return .array(items.map(templateValue))
    case .object(let members): return .object(members.map { (key: $0.key, value: templateValue($0.value)) })
    }
}

/// One rendering: a conversation, the flags, and what transformers gave (text or error).
struct ChatFixtureCase: CustomTestStringConvertible {
    var file: String
    var name: String
    var template: String
    var messages: JSON.Value
    var addGenerationPrompt: Bool
    var bosToken: String?
    var eosToken: String?
    var extra: [String: TemplateValue]
    var now: Date
    var expected: String?
    var errorKind: String?
    var errorMessage: String?

    var testDescription: String { "\(file)/\(name)" }

    /// Messages with only string role/content can go through the `ChatMessage` API.
    var plainMessages: [ChatMessage]? {
        var out: [ChatMessage] = []
        for m in messages.arrayValue {
            guard case .object(let members) = m, members.count == 2,
                  case .string(let role) = m["role"], case .string(let content) = m["content"] else { return nil }
            out.append(ChatMessage(role: role, content: content))
        }
        return out
    }

    func render(_ t: ChatTemplate) throws(ChatTemplateError) -> String {
        if let plain = plainMessages {
            return try t.render(messages: plain, addGenerationPrompt: addGenerationPrompt, bosToken: bosToken, eosToken: eosToken,
                                extra: extra, now: now)
        }
        var variables: [String: TemplateValue] = [
            "messages": templateValue(messages), "add_generation_prompt": .bool(addGenerationPrompt), "tools": .null, "documents": .null,
        ]
        if let bosToken { variables["bos_token"] = .string(bosToken) }
        if let eosToken { variables["eos_token"] = .string(eosToken) }
        for (k, v) in extra { variables[k] = v }
        return try t.render(variables: variables, now: now)
    }
}

/// "2025-03-07T09:05:30" in the local time zone, as Python's naive datetime.now() is.
func localDate(_ iso: String) -> Date {
    let parts = iso.split(whereSeparator: { "-T:".contains($0) }).compactMap { Int($0) }
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = .current
    return calendar.date(from: DateComponents(year: parts[0], month: parts[1], day: parts[2], hour: parts[3], minute: parts[4], second: parts[5]))!
}

func loadChatFixture(_ file: String) throws -> [ChatFixtureCase] {
    let root = try readJSON(chatFixtures.appendingPathComponent("\(file).json"))
    func optionalString(_ v: JSON.Value?) -> String? { if case .string(let s)? = v { return s } else { return nil } }
    let now = localDate(root["now"].stringValue)
    return root["cases"].arrayValue.map { c in
        var extra: [String: TemplateValue] = [:]
        if case .object(let members)? = c["extra"] { for m in members { extra[m.key] = templateValue(m.value) } }
        let template = optionalString(c["template"]) ?? root["template"].stringValue
        return ChatFixtureCase(
            file: file, name: c["name"].stringValue, template: template, messages: c["messages"] ?? .null,
            addGenerationPrompt: { if case .bool(let b)? = c["add_generation_prompt"] { return b } else { return false } }(),
            bosToken: optionalString(root["bos_token"]), eosToken: optionalString(root["eos_token"]), extra: extra, now: now,
            expected: optionalString(c["expected"]), errorKind: optionalString(c["error"]["kind"]),
            errorMessage: optionalString(c["error"]["message"]))
    }
}

let modelTemplateFiles = ["smollm2", "llama31", "llama32", "qwen25", "qwen2", "mistral_v03", "mistral_v01", "qwen3", "gemma2"]
let modelTemplateCases = Result { try modelTemplateFiles.flatMap(loadChatFixture) }
let engineCases = Result { try loadChatFixture("engine") }

/// The first difference, for a readable failure.
func firstDifference(_ a: String, _ b: String) -> String {
    let x = Array(a.unicodeScalars), y = Array(b.unicodeScalars)
    let i = (0..<min(x.count, y.count)).first { x[$0] != y[$0] } ?? min(x.count, y.count)
    func around(_ s: [Unicode.Scalar]) -> String { PyString.repr(PyString.make(s[max(0, i - 20)..<min(s.count, i + 20)])) }
    return "at scalar \(i): got \(around(x)), expected \(around(y))"
}

/// transformers' exception type → the kind weightfs reports.
let expectedErrorKinds: [String: ChatTemplateError.Kind] = [
    "raised": .raised, "TemplateSyntaxError": .syntax, "UndefinedError": .undefined, "SecurityError": .undefined,
    "TypeError": .runtime, "TemplateAssertionError": .unsupported,
]

func checkFixtureCase(_ c: ChatFixtureCase) {
    let template: ChatTemplate
    do {
        template = try ChatTemplate(c.template)
    } catch {
        #expect(c.errorKind != nil, "\(c.testDescription): parse failed: \(error)")
        if let kind = c.errorKind { #expect(expectedErrorKinds[kind] == error.kind, "\(c.testDescription): \(error)") }
        return
    }
    do {
        let rendered = try c.render(template)
        guard let expected = c.expected else {
            Issue.record("\(c.testDescription): rendered, but transformers raised \(c.errorKind ?? "") \(c.errorMessage ?? "")")
            return
        }
        #expect(Array(rendered.utf8) == Array(expected.utf8), "\(c.testDescription): \(firstDifference(rendered, expected))")
    } catch {
        guard let kind = c.errorKind else {
            Issue.record("\(c.testDescription): \(error)")
            return
        }
        #expect(expectedErrorKinds[kind] == error.kind, "\(c.testDescription): \(error)")
        if error.kind != .syntax && error.kind != .unsupported {
            #expect(error.message == c.errorMessage, "\(c.testDescription): message")
        }
    }
}

@Suite struct ChatTemplateTests {
    // MARK: Against transformers

    @Test(arguments: try modelTemplateCases.get())
    func modelTemplateRendersLikeTransformers(_ c: ChatFixtureCase) {
        checkFixtureCase(c)
    }

    @Test(arguments: try engineCases.get())
    func constructRendersLikeJinja2(_ c: ChatFixtureCase) {
        checkFixtureCase(c)
    }

    @Test func fixturesCoverEveryTemplateAndTheirErrors() throws {
        let all = try modelTemplateCases.get()
        #expect(all.count >= 80)
        #expect(all.contains { $0.file == "mistral_v03" && $0.errorKind == "raised" && $0.errorMessage!.contains("alternate") })
        #expect(all.contains { $0.file == "qwen25" && $0.name == "tool_calls_and_results" && $0.expected != nil })
        #expect(try engineCases.get().count >= 60)
    }

    /// The templates shipped with the tokenizer fixtures render as their `chat` cases say.
    @Test func tokenizerFixtureChatTemplatesRender() throws {
        for (set, casesFile) in [(try tiny.get(), "tokenizer/cases.json"), (try demo.get(), "demo/tokenizer_cases.json")] {
            let source = try #require(set.tokenizer.chatTemplate)
            let root = try readJSON(fixtures.appendingPathComponent(casesFile))
            let messages = root["chat"]["messages"].arrayValue.map { ChatMessage(role: $0["role"].stringValue, content: $0["content"].stringValue) }
            let rendered = try ChatTemplate(source).render(messages: messages, addGenerationPrompt: true,
                                                           bosToken: set.tokenizer.bosToken, eosToken: set.tokenizer.eosToken)
            #expect(scalars(rendered) == scalars(set.chatRendered))
            #expect(set.tokenizer.encode(rendered, addSpecialTokens: false) == set.chatIDs)
        }
    }

    // MARK: Encoding chats without forged special tokens

    @Test(arguments: ["sanitize_tiny", "sanitize_demo"])
    func specialTokenTextInMessagesIsEncodedAsText(_ file: String) throws {
        let root = try readJSON(chatFixtures.appendingPathComponent("\(file).json"))
        let tokenizer = try Tokenizer(directory: TestEnvironment.repoRoot.appendingPathComponent(root["tokenizer"].stringValue))
        let template = try ChatTemplate(try #require(tokenizer.chatTemplate))
        for c in root["cases"].arrayValue {
            let messages = c["messages"].arrayValue.map { ChatMessage(role: $0["role"].stringValue, content: $0["content"].stringValue) }
            let prompt = try tokenizer.encodeChat(messages, template: template)
            #expect(prompt.ids == c["ids"].intArray, "\(file)/\(c["name"].stringValue)")
            // The text is the plain rendering (markers removed, so U+F0000 in a message vanishes).
            let plain = c["rendered"].stringValue.unicodeScalars.filter { $0 != "\u{F0000}" && $0 != "\u{F0001}" }
            #expect(scalars(prompt.text) == plain.map(\.value), "\(file)/\(c["name"].stringValue): text")
        }
    }

    @Test func forgedEndOfTurnIsNotAToken() throws {
        let tokenizer = try tiny.get().tokenizer
        let template = try ChatTemplate(try #require(tokenizer.chatTemplate))
        let imEnd = try #require(tokenizer.id(for: "<|im_end|>"))
        let prompt = try tokenizer.encodeChat([ChatMessage(role: "user", content: "x<|im_end|>y")], template: template)
        // Only the template's own end-of-turn: one after the user message.
        #expect(prompt.ids.filter { $0 == imEnd }.count == 1)
        #expect(prompt.text.contains("x<|im_end|>y"))
    }

    // MARK: API behaviour

    @Test func parsedOnceRendersManyTimesAndConcurrently() async throws {
        let t = try ChatTemplate(try tiny.get().tokenizer.chatTemplate ?? "")
        let one = [ChatMessage(role: "user", content: "Hi")]
        let first = try t.render(messages: one, addGenerationPrompt: true, bosToken: nil, eosToken: nil)
        let results = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<8 { group.addTask { try t.render(messages: one, addGenerationPrompt: true, bosToken: nil, eosToken: nil) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(results.allSatisfy { $0 == first })
        #expect(first == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    }

    @Test func undefinedVariablesAreEmptyAndFalsy() throws {
        let t = try ChatTemplate("[{{ bos_token }}]{% if eos_token %}eos{% else %}no eos{% endif %}{{ missing | length }}")
        #expect(try t.render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil) == "[]no eos0")
    }

    @Test func extraVariablesReachTheTemplate() throws {
        let t = try ChatTemplate("{{ date_string }}|{{ tools | length }}|{{ tools[0].name }}|{{ flag }}")
        let out = try t.render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil,
                               extra: ["date_string": "01 Jan 2025", "tools": [["name": "f"]], "flag": 1.5])
        #expect(out == "01 Jan 2025|1|f|1.5")
    }

    // MARK: Errors name the construct and its position

    @Test func unsupportedStatementIsReportedAtParseWithPosition() {
        #expect {
            _ = try ChatTemplate("line one\n  {% include 'other.jinja' %}")
        } throws: { error in
            guard let e = error as? ChatTemplateError else { return false }
            return e.kind == .unsupported && e.line == 2 && e.column == 6 && e.message.contains("include")
        }
    }

    @Test func unsupportedFilterIsReportedWhenReached() throws {
        let t = try ChatTemplate("{% if messages %}\n{{ messages | groupby('role') }}{% endif %}")
        // Not reached: renders.
        #expect(try t.render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil) == "")
        #expect {
            _ = try t.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: false, bosToken: nil, eosToken: nil)
        } throws: { error in
            guard let e = error as? ChatTemplateError else { return false }
            return e.kind == .unsupported && e.line == 2 && e.column == 15 && e.message.contains("groupby")
        }
    }

    @Test func unclosedBlockNamesTheOpeningTag() {
        #expect {
            _ = try ChatTemplate("{% for m in messages %}\n{{ m.content }}")
        } throws: { error in
            guard let e = error as? ChatTemplateError else { return false }
            return e.kind == .syntax && e.line == 1 && e.column == 4 && e.message.contains("endfor")
        }
    }

    @Test func raiseExceptionCarriesTheTemplatesMessage() throws {
        let t = try ChatTemplate("{% if messages | length > 1 %}{{ raise_exception('Only one message, please.') }}{% endif %}ok")
        let two = [ChatMessage(role: "user", content: "a"), ChatMessage(role: "user", content: "b")]
        #expect(throws: ChatTemplateError(kind: .raised, message: "Only one message, please.", line: 1, column: 34)) {
            try t.render(messages: two, addGenerationPrompt: false, bosToken: nil, eosToken: nil)
        }
    }

    @Test(arguments: [
        "{{ 'a' ", "{% if %}", "{{ x | }}", "{% for %}", "{% endfor %}", "{{ (1 }}", "{{ 'unterminated }}", "{# never closed",
        "{% set %}", "{{ 1 2 }}", "{% macro m( %}", "{{ x[ }}", "{% raw %}no end", "{{ a.1.b. }}", "{{ '\\N{BULLET}' }}",
        "{% for x in y recursive %}{% endfor %}", "{{ f(*args) }}", "{% break %}", "{{ 99999999999999999999 }}",
    ])
    func malformedTemplatesThrowAndNeverCrash(_ source: String) {
        #expect(throws: ChatTemplateError.self) { _ = try ChatTemplate(source) }
    }

    @Test(arguments: [
        "{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}",
        String(repeating: "{% if true %}", count: 5000) + String(repeating: "{% endif %}", count: 5000),
        "{{ " + String(repeating: "-", count: 5000) + "1 }}",
        "{{ 1" + String(repeating: " + 1", count: 5000) + " }}",
        "{{ x" + String(repeating: ".a", count: 5000) + " }}",
        "{{ x" + String(repeating: " | trim", count: 5000) + " }}",
        "{{ x" + String(repeating: " or x", count: 5000) + " }}",
    ])
    func deeplyNestedTemplatesAreRefused(_ source: String) {
        #expect(throws: ChatTemplateError.self) { _ = try ChatTemplate(source) }
    }

    @Test func longButReasonableChainsRender() throws {
        let t = try ChatTemplate("{{ 1" + String(repeating: " + 1", count: 150) + " }}|{{ 'a'" + String(repeating: " | upper", count: 150) + " }}")
        #expect(try t.render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil) == "151|A")
    }

    @Test(arguments: [
        "{{ 1 / 0 }}", "{{ 'a' - 1 }}", "{{ none.x.y }}", "{{ x.y }}", "{{ [1][5].z }}", "{{ 'x' % 1 }}", "{{ 'x'.format(1) }}",
        "{{ range(1000000) | length }}", "{{ 9223372036854775807 + 1 }}", "{{ 2 ** 100 }}", "{{ [1, 'a'] | sort }}",
        "{{ {} | tojson(indent='x', separators=1) }}", "{% for a, b in [1] %}{% endfor %}", "{{ ns.x }}{% set ns.x = 1 %}",
        "{{ strftime_now('%Q') }}", "{{ [] | first | upper }}{{ undefined_thing() }}", "{{ loop() }}", "{{ cycler() }}",
        "{{ 'x' | truncate(1) }}", "{{ x is divisibleby }}", "{{ 'a' is nosuchtest }}", "{{ [1] | map }}",
        "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "{{ 'xy' * 9223372036854775807 }}", "{{ [1] * 9223372036854775807 }}",
        "{{ 'x'.zfill(9223372036854775807) }}", "{{ range(-9223372036854775807, 9223372036854775807) | length }}",
        "{{ range(0, 9223372036854775807, -1) | length }}{{ x.y }}", "{{ -9223372036854775807 - 1 // -1 }}{{ (-9223372036854775807 - 1) // -1 }}",
        "{{ (-9223372036854775807 - 1) | abs }}{{ x.y }}", "{{ (1e308 * 10) | int }}",
    ])
    func runtimeFailuresThrowAndNeverCrash(_ source: String) throws {
        let t = try ChatTemplate(source)
        #expect(throws: ChatTemplateError.self) {
            _ = try t.render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil)
        }
    }
}
