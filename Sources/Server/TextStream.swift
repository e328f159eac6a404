import Tokenizers

/// Tokens to text for one request, with OpenAI's `stop` strings: the text before the first stop
/// string is returned and the stop string is not; text that could be the start of a stop
/// string is held back until the next token says whether it is.
struct TextStream {
    private var decoder: StreamingDecoder
    private let stops: [String]
    private let holdBack: Int
    private var pending = ""

    init(tokenizer: Tokenizer, stops: [String]) {
        decoder = tokenizer.streamingDecoder(skipSpecialTokens: true)
        self.stops = stops
        holdBack = (stops.map(\.count).max() ?? 1) - 1
    }

    /// The text this token lets out, and whether a stop string ended the generation.
    mutating func push(_ token: Int) -> (text: String, stopped: Bool) {
        pending += decoder.push(token)
        return release(final: false)
    }

    /// What is left when the generation ends.
    mutating func finish() -> (text: String, stopped: Bool) {
        pending += decoder.finish()
        return release(final: true)
    }

    private mutating func release(final: Bool) -> (text: String, stopped: Bool) {
        guard !stops.isEmpty else {
            defer { pending = "" }
            return (pending, false)
        }
        if let cut = stops.compactMap({ pending.range(of: $0)?.lowerBound }).min() {
            let text = String(pending[..<cut])
            pending = ""
            return (text, true)
        }
        if final {
            defer { pending = "" }
            return (pending, false)
        }
        // Keep the longest tail that is a prefix of some stop string.
        var keep = 0
        for n in stride(from: min(holdBack, pending.count), through: 1, by: -1) {
            let tail = pending.suffix(n)
            if stops.contains(where: { $0.hasPrefix(tail) }) {
                keep = n
                break
            }
        }
        let text = String(pending.dropLast(keep))
        pending = String(pending.suffix(keep))
        return (text, false)
    }
}
