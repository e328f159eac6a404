import ChatTemplates
import Foundation
import ModelCore
import Safetensors
import Tokenizers

/// The parsers of files that come from a bucket, under a coverage-guided fuzzer (libFuzzer;
/// `scripts/fuzz` builds this with `-sanitize=fuzzer,address -DFUZZING` and runs each target
/// for a bounded time). Each input must end in a value or the parser's own error: never a
/// crash, a trap, a hang or unbounded memory.
///
/// Without FUZZING (the ordinary build) this is a replayer: `weightfs-fuzz TARGET FILE…` runs
/// each file through the same code, for a crash input saved by a fuzzing run.
enum FuzzTarget: String, CaseIterable {
    case safetensors, tokenizer, config, template

    func run(_ bytes: [UInt8]) {
        switch self {
        case .safetensors:
            // A shard's start (8-byte length, then the JSON header), and the header alone.
            _ = try? SafetensorsHeader.parse(fileName: "fuzz.safetensors", prefix: bytes, fileSize: Int64(bytes.count))
            _ = try? SafetensorsHeader.parse(fileName: "fuzz.safetensors", headerBytes: bytes, headerLength: Int64(bytes.count), fileSize: nil)
        case .tokenizer:
            guard let tokenizer = try? Tokenizer(tokenizerJSON: bytes) else { return }
            let ids = tokenizer.encode("Hello, world! Größe 日本語 <|im_start|>user\n  \t12345 don't", parseSpecialTokens: true)
            _ = tokenizer.decode(ids)
        case .config:
            _ = try? ModelConfig.parse(bytes)
        case .template:
            guard let source = String(validating: bytes, as: UTF8.self), let template = try? ChatTemplate(source) else { return }
            let messages = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi {{ there }}"),
                            ChatMessage(role: "assistant", content: "Hello."), ChatMessage(role: "user", content: "Again")]
            _ = try? template.render(messages: messages, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>",
                                     now: Date(timeIntervalSince1970: 1_700_000_000))
        }
    }

    /// WEIGHTFS_FUZZ names the target of a fuzzing run.
    static var fromEnvironment: FuzzTarget {
        let name = ProcessInfo.processInfo.environment["WEIGHTFS_FUZZ"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("weightfs-fuzz: set WEIGHTFS_FUZZ to one of \(allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        return target
    }
}

#if FUZZING
nonisolated(unsafe) let target = FuzzTarget.fromEnvironment

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    target.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}

/// SwiftPM names an executable's entry point itself (`main` is an alias of this module's), so
/// libFuzzer's own `main` is not linked in: this one hands over to libFuzzer's driver.
@main
struct FuzzMain {
    typealias Callback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
    typealias Driver = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>, Callback) -> Int32

    static func main() {
        _ = target
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "LLVMFuzzerRunDriver") else {
            FileHandle.standardError.write(Data("weightfs-fuzz: LLVMFuzzerRunDriver not linked (build with -sanitize=fuzzer)\n".utf8))
            exit(2)
        }
        let driver = unsafeBitCast(symbol, to: Driver.self)
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(driver(&argc, &argv, fuzzOneInput))
    }
}
#else
@main
struct Replay {
    static func main() throws {
        let args = CommandLine.arguments.dropFirst()
        guard let name = args.first, let target = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("usage: weightfs-fuzz \(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")) FILE...\n".utf8))
            exit(2)
        }
        for path in args.dropFirst() {
            target.run(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        }
        print("weightfs-fuzz: \(args.count - 1) inputs through \(name), no crash")
    }
}
#endif
