import ChatTemplates
import Testing

/// A server renders chat templates for every request: a hostile template ends with a template
/// error, never a dead process (issue 14: these two crashed and exhausted memory).
struct TemplateBoundsTests {
    func render(_ source: String) throws -> String {
        try ChatTemplate(source).render(messages: [ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true,
                                        bosToken: nil, eosToken: nil)
    }

    @Test func aNamespaceInsideItselfPrintsAsJinjaDoes() throws {
        #expect(try render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}") == "<Namespace {'me': <Namespace {...}>}>")
    }

    @Test func aStringDoubledWithoutEndIsAnError() {
        for op in ["~", "+"] {
            let source = "{% set ns = namespace(s='x') %}{% for i in range(34) %}{% set ns.s = ns.s \(op) ns.s %}{% endfor %}{{ ns.s|length }}"
            #expect(throws: ChatTemplateError.self, "\(op)") { try render(source) }
            do { _ = try render(source) } catch let e as ChatTemplateError {
                #expect(e.kind == .runtime && e.message.contains("bytes"), "\(e)")
            } catch { Issue.record("\(error)") }
        }
    }

    @Test func endlessWorkIsAnError() {
        let source = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
        do {
            _ = try render(source)
            Issue.record("ran ten billion iterations")
        } catch let e as ChatTemplateError {
            #expect(e.kind == .runtime && e.message.contains("steps"), "\(e)")
        } catch { Issue.record("\(error)") }
    }
}
