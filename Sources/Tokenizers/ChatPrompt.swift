import ChatTemplates
import Foundation

/// A conversation rendered with a chat template and encoded.
public struct ChatPrompt: Sendable {
    /// The rendered prompt text.
    public let text: String
    /// Its token ids (no post-processor tokens: the template writes BOS itself when it wants one).
    public let ids: [TokenID]
}

extension Tokenizer {
    /// Private-use characters that mark special-token text coming from the messages, the
    /// same ones transformers uses (`_CONTROL_TOKEN_START`/`_END`).
    static let controlTokenStart: Unicode.Scalar = "\u{F0000}"
    static let controlTokenEnd: Unicode.Scalar = "\u{F0001}"

    /// The texts of the special tokens, longest first (a token wins over the tokens it contains).
    var specialTokenTexts: [[Unicode.Scalar]] {
        addedTokens.tokens.filter(\.special).map(\.content).sorted { $0.count > $1.count }
    }

    /// Renders `messages` with `template` and encodes the result as transformers'
    /// `apply_chat_template(messages, tokenize=True, sanitize_control_tokens=True,
    /// add_generation_prompt=…)` does: the special tokens the template writes become tokens,
    /// while special-token text inside a message is encoded as plain text, so that a user
    /// cannot forge `<|im_end|>` or a system turn. (Added tokens that are not special, like
    /// `<think>`, still match in message text.)
    public func encodeChat(_ messages: [ChatMessage], template: ChatTemplate, addGenerationPrompt: Bool = true,
                           extra: [String: TemplateValue] = [:], now: Date = Date()) throws(ChatTemplateError) -> ChatPrompt {
        let specials = specialTokenTexts
        let marked = messages.map { ChatMessage(role: Self.markControlTokens($0.role, specials), content: Self.markControlTokens($0.content, specials)) }
        let rendered = try template.render(messages: marked, addGenerationPrompt: addGenerationPrompt,
                                           bosToken: bosToken, eosToken: eosToken, extra: extra, now: now)
        let pieces = Self.splitMarked(rendered, specials)
        var ids: [TokenID] = []
        var text = ""
        let newline = encode("\n", addSpecialTokens: false)
        for (i, piece) in pieces.enumerated() {
            guard let piece, !piece.text.isEmpty else { continue }
            text += piece.text
            if i == 0 {
                ids += encode(piece.text, addSpecialTokens: false, parseSpecialTokens: true)
                continue
            }
            // As transformers does: encode after a newline and drop it again, so a
            // SentencePiece-style tokenizer does not treat the piece as the start of the text.
            let withNewline = encode("\n" + piece.text, addSpecialTokens: false, parseSpecialTokens: !piece.isUserToken)
            if withNewline.starts(with: newline) {
                ids += withNewline.dropFirst(newline.count)
            } else {
                ids += encode(piece.text, addSpecialTokens: false, parseSpecialTokens: !piece.isUserToken)
            }
        }
        return ChatPrompt(text: text, ids: ids)
    }

    /// Wraps each special token written in `text` in the control markers (after dropping any
    /// markers already there, so they cannot be forged either).
    static func markControlTokens(_ text: String, _ specials: [[Unicode.Scalar]]) -> String {
        let s = Array(text.unicodeScalars.filter { $0 != controlTokenStart && $0 != controlTokenEnd })
        var out = String.UnicodeScalarView()
        var i = 0
        scan: while i < s.count {
            for t in specials where !t.isEmpty && i + t.count <= s.count && s[i..<(i + t.count)].elementsEqual(t) {
                out.append(controlTokenStart)
                out.append(contentsOf: t)
                out.append(controlTokenEnd)
                i += t.count
                continue scan
            }
            out.append(s[i])
            i += 1
        }
        return String(out)
    }

    /// [text, marked token, text, …] as transformers' `markers_re.split` gives it: a marked
    /// token is `start + token + end`; a lone marker is dropped (nil) but still separates
    /// the text around it.
    static func splitMarked(_ rendered: String, _ specials: [[Unicode.Scalar]]) -> [(text: String, isUserToken: Bool)?] {
        let s = Array(rendered.unicodeScalars)
        var pieces: [(text: String, isUserToken: Bool)?] = []
        var current = String.UnicodeScalarView()
        var i = 0
        while i < s.count {
            let c = s[i]
            guard c == controlTokenStart || c == controlTokenEnd else {
                current.append(c)
                i += 1
                continue
            }
            pieces.append((String(current), false))
            current = String.UnicodeScalarView()
            if c == controlTokenStart,
               let t = specials.first(where: { t in
                   i + 1 + t.count < s.count && s[(i + 1)..<(i + 1 + t.count)].elementsEqual(t) && s[i + 1 + t.count] == controlTokenEnd
               }) {
                var text = String.UnicodeScalarView()
                text.append(contentsOf: t)
                pieces.append((String(text), true))
                i += t.count + 2
            } else {
                pieces.append(nil)
                i += 1
            }
        }
        pieces.append((String(current), false))
        return pieces
    }
}
