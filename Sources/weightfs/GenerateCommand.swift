import Diagnostics
import ArgumentParser
import ChunkCache
import Foundation
import ObjectStore
import CPUBackend
import ModelCore
import Tokenizers
import ChatTemplates
import ModelStore

struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate text with a Llama-family model (safetensors f32/f16/bf16) on the CPU, from a local directory or straight from gs://.",
        discussion: """
            MODEL is a Hugging Face model directory (config.json, tokenizer.json and \
            model.safetensors, or shards with model.safetensors.index.json), or gs://BUCKET/PREFIX \
            (or file:///DIR) holding one. From a store URL the model is read through the chunk \
            cache with no FUSE: only the headers are read before the first forward pass, the \
            shards come in forward-pass order, and each layer waits for its own bytes, so the \
            first token comes when the last layer lands. Tokens stream to stdout; prefill and \
            decode speeds (and, from a store, the time to the first token) go to stderr at the end.

            With --chat the prompt is the user's message: it is rendered with the model's chat \
            template (tokenizer_config.json), after an optional --system message, and generation \
            stops at the end of the assistant's turn. Special-token text typed in the messages \
            (such as <|im_end|>) is encoded as plain text, never as the special token.
            """
    )

    @Argument(help: "The model directory, or gs://BUCKET/PREFIX (file:///DIR) of one.")
    var modelDir: String

    @Option(help: "The prompt (the tokenizer adds BOS if its post-processor says so); with --chat, the user's message.")
    var prompt: String

    @Flag(help: "Format --prompt as a user message with the model's chat template and start the assistant's turn.")
    var chat = false

    @Option(help: "A system message placed before the user message (needs --chat).")
    var system: String?

    @Option(help: "Stop after this many new tokens.")
    var maxTokens = 128

    @Option(help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(help: "Sample from the smallest set of tokens whose probability reaches P (1 = all).")
    var topP: Float = 1

    @Option(help: "Sample from the K most likely tokens (0 = all).")
    var topK = 0

    @Option(help: "Seed of the sampler's random generator (the same seed gives the same text).")
    var seed: UInt64 = 0

    @Option(help: "Threads per kernel (default: all cores).")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Keep generating past the end-of-sequence token (for benchmarks).")
    var ignoreEOS = false

    @OptionGroup(title: "From a store URL") var cacheOptions: CacheOptions
    @OptionGroup(title: "From a store URL") var fetch: FetchArguments
    @OptionGroup(title: "From a store URL") var store: StoreOptions

    func validate() throws {
        guard maxTokens > 0 else { throw ValidationError("--max-tokens must be positive") }
        guard temperature >= 0 else { throw ValidationError("--temperature must be 0 (greedy) or positive") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        guard topK >= 0 else { throw ValidationError("--top-k must be 0 (off) or positive") }
        guard threads > 0 else { throw ValidationError("--threads must be positive") }
        guard system == nil || chat else { throw ValidationError("--system needs --chat") }
    }


    func run() async throws {
        let clock = ContinuousClock()
        let started = clock.now
        let kernels: CPUKernelSet
        do { kernels = try CPUKernels.selection.get() } catch { throw MessageError("\(error)") }
        let source = try await OpenedModel.open(modelDir, cacheOptions: cacheOptions, fetch: fetch, store: store)
        let tokenizer = source.tokenizer, chunkCache = source.chunkCache
        let model: LlamaModel
        do { model = try LlamaModel(config: source.config, weights: source.weights, threads: threads, kernels: kernels) } catch {
            throw MessageError("\(modelDir): \(error)")
        }
        let opened = clock.now - started
        let promptIDs = chat ? try chatPromptIDs(tokenizer) : tokenizer.encode(prompt)
        guard !promptIDs.isEmpty else { throw MessageError("the prompt encodes to no tokens") }
        let capacity = min(model.config.maxPositionEmbeddings, promptIDs.count + maxTokens)
        guard promptIDs.count < capacity else {
            throw MessageError("the prompt is \(promptIDs.count) tokens; the model holds at most \(model.config.maxPositionEmbeddings)")
        }
        let cache = model.makeCache(capacity: capacity)
        var stops = Set(model.config.eosTokenIDs + [tokenizer.eosTokenID].compactMap { $0 })
        if chat { stops.formUnion(Self.endOfTurnTokens.compactMap { tokenizer.id(for: $0) }.filter(tokenizer.isSpecial)) }
        var sampler = Sampler(SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed))
        var decoder = tokenizer.streamingDecoder(skipSpecialTokens: true)

        let prefillStart = clock.now
        var logits = try await model.forward(tokens: promptIDs, cache: cache)
        let prefill = clock.now - prefillStart
        let firstToken = clock.now - started
        let fetchedByFirstToken = await chunkCache?.stats.bytesFetched ?? 0

        let decodeStart = clock.now
        var decodeSteps = 0
        var generated = 0
        let endOfTurn = Set(Self.endOfTurnTokens.compactMap { tokenizer.id(for: $0) })
        var stopped = ""
        while true {
            let next = sampler.sample(logits)
            generated += 1
            if stops.contains(next) && !ignoreEOS {
                let name = tokenizer.token(for: next).map { " \($0)" } ?? ""
                let isEOS = model.config.eosTokenIDs.contains(next) || tokenizer.eosTokenID == next
                stopped = isEOS ? "end of sequence\(name)" : endOfTurn.contains(next) ? "end of turn\(name)" : "stop token \(next)"
                break
            }
            writeStdout(decoder.push(next))
            if generated == maxTokens { stopped = "--max-tokens \(maxTokens)"; break }
            if cache.count == capacity { stopped = "the context is full (\(capacity) tokens)"; break }
            logits = try await model.forward(tokens: [next], cache: cache)
            decodeSteps += 1
        }
        let decode = clock.now - decodeStart
        writeStdout(decoder.finish() + "\n")

        var report = ""
        if let chunkCache {
            // From a store the prefill includes waiting for the weights.
            report += "model opened (headers) in \(format(opened)); first token at \(format(firstToken)), \(formatBytes(fetchedByFirstToken)) fetched by then; "
            await chunkCache.shutdown()
        }
        report += "prefill: \(promptIDs.count) tokens in \(format(prefill)) (\(rate(promptIDs.count, prefill)))"
        if decodeSteps > 0 { report += "; decode: \(decodeSteps) tokens in \(format(decode)) (\(rate(decodeSteps, decode)))" }
        report += "; \(threads) thread(s), weights \(model.residency.residency.rawValue), CPU kernels \(kernels.rawValue); stopped at \(stopped)\n"
        FileHandle.standardError.write(Data(report.utf8))
    }

    /// Tokens that end an assistant turn in the common chat formats; a model's generation
    /// config does not always list them as EOS.
    static let endOfTurnTokens = ["<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>"]

    /// The prompt as a chat: [system,] user, then the template's generation prompt.
    private func chatPromptIDs(_ tokenizer: Tokenizer) throws -> [TokenID] {
        guard let source = tokenizer.chatTemplate else {
            throw MessageError("\(modelDir)/tokenizer_config.json has no chat_template; run without --chat and write the prompt in the model's format")
        }
        var messages: [ChatMessage] = []
        if let system { messages.append(ChatMessage(role: "system", content: system)) }
        messages.append(ChatMessage(role: "user", content: prompt))
        do {
            return try tokenizer.encodeChat(messages, template: ChatTemplate(source), addGenerationPrompt: true).ids
        } catch {
            throw MessageError("\(modelDir)/tokenizer_config.json: chat_template: \(error)")
        }
    }

    private func format(_ d: Duration) -> String { String(format: "%.3f s", d.seconds) }

    private func rate(_ tokens: Int, _ d: Duration) -> String { String(format: "%.1f tok/s", Double(tokens) / d.seconds) }
}
