// swift-tools-version: 6.0
import PackageDescription

// weightfs: model weights from object storage, usable before the download ends.
// Targets depend only downward (docs/ARCHITECTURE.md draws the graph):
//   C shims (CCurl, CCrypto, CFuse, CCRC32C, CLinux, CPrefetch, CKernels) → ObjectStore → Fetcher → ChunkCache → FUSEMount
//   JSON → Safetensors, ChatTemplates → Tokenizers; Safetensors → ModelCore → CPUBackend
//   ChunkCache + ModelCore + Tokenizers → ModelStore (a WeightSource over the cache)
//   everything → weightfs (the CLI), weightfs-bench
// The CPU kernels need AVX2+FMA: the baseline x86-64 target has no AVX, and SIMD fused
// multiply-adds there become calls to fmaf, measured 8x slower. Build and CI machines have AVX2,
// FMA and F16C (haswell, x86-64-v3); only CPUBackend gets the flag.
#if arch(x86_64)
let kernelSwiftSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"]), .unsafeFlags(["-O"], .when(configuration: .debug))]
#else
let kernelSwiftSettings: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]
#endif
// CPUBackend is optimized in debug builds too: unoptimized kernels make the demo-model tests
// (a 135M-parameter forward pass) take minutes instead of seconds.

let package = Package(
    name: "weightfs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "weightfs", targets: ["weightfs"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // C shims: only what Swift cannot import (variadics, macros). No logic.
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("curl")]),
        .target(name: "CCrypto", linkerSettings: [.linkedLibrary("crypto")]),
        .systemLibrary(name: "CFuse", pkgConfig: "fuse3", providers: [.apt(["libfuse3-dev"])]),
        // Hardware CRC32C (SSE4.2) with a portable fallback; C because Swift cannot reach the intrinsic portably.
        .target(name: "CCRC32C"),
        // Linux calls behind _GNU_SOURCE that Swift's Glibc module does not import (sync_file_range).
        .target(name: "CLinux"),
        // A prefetch hint for the inference kernels (no Swift spelling); static inline, no logic.
        .target(name: "CPrefetch"),
        // The AVX-512 and AVX512-BF16 panel kernels, each function compiled for its ISA (target
        // attributes), chosen at run time by cpuid: one binary for AVX2-only and AVX-512 machines.
        // Optimized in debug builds too (the model tests run them).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O2"])]),

        // Whole, EINTR-safe reads and writes on file descriptors (over swift-system's FileDescriptor).
        .target(name: "Posix", dependencies: [.product(name: "SystemPackage", package: "swift-system")]),
        .target(
            name: "ObjectStore",
            dependencies: ["CCurl", "CCrypto", "CCRC32C", "Posix", .product(name: "SystemPackage", package: "swift-system"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Fetcher",
            dependencies: ["ObjectStore", "CCRC32C", "CLinux", "Posix", .product(name: "SystemPackage", package: "swift-system"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "ChunkCache",
            dependencies: ["ObjectStore", "Fetcher", "CLinux", "Posix", .product(name: "SystemPackage", package: "swift-system"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        // A model under a store prefix as a WeightSource over the chunk cache (no FUSE):
        // ready(group) waits for that group's chunks. The bridge between storage and runtime.
        .target(name: "ModelStore", dependencies: ["ChunkCache", "ObjectStore", "Safetensors", "ModelCore", "Tokenizers"]),
        // The one strict JSON reader and string escaper (no dependencies).
        .target(name: "JSON"),
        // The one shape of file-parsing errors (file, tensor, field, message, advice) and of message-only errors.
        .target(name: "Diagnostics"),
        // Safetensors headers, index files and the forward-order fetch plan.
        .target(name: "Safetensors", dependencies: ["JSON", "Diagnostics"]),
        // Jinja chat templates (tokenizer_config.json's chat_template), rendered as transformers does.
        .target(name: "ChatTemplates", dependencies: ["JSON"]),
        // tokenizer.json byte-level BPE, and chat prompts rendered with a template and encoded.
        .target(name: "Tokenizers", dependencies: ["JSON", "Diagnostics", "ChatTemplates"]),
        // What every backend shares: ModelConfig, WeightSource/WeightTensor over safetensors, sampling.
        .target(name: "ModelCore", dependencies: ["JSON", "Diagnostics", "Safetensors", "Posix", .product(name: "SystemPackage", package: "swift-system")]),
        // SIMD kernels and the Llama-family forward pass on the CPU; the only target with -target-cpu.
        .target(name: "CPUBackend", dependencies: ["ModelCore", "Safetensors", "CPrefetch", "CKernels"], swiftSettings: kernelSwiftSettings),
        .target(
            name: "FUSEMount",
            dependencies: ["CFuse", "CLinux", "ChunkCache", "ObjectStore", "Diagnostics", .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "weightfs",
            dependencies: [
                "ObjectStore", "Fetcher", "ChunkCache", "FUSEMount", "Safetensors", "ModelCore", "CPUBackend", "Tokenizers", "ChatTemplates", "ModelStore", "Posix", "Diagnostics", "Engine", "Server",
                .product(name: "SystemPackage", package: "swift-system"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Continuous batching over paged KV, backend-neutral (no HTTP): requests, the KV cache
        // manager with prefix caching, the scheduler, and the engine that drives a ModelBackend.
        .target(name: "Engine", dependencies: ["ModelCore", .product(name: "Collections", package: "swift-collections")]),
        // The OpenAI-compatible HTTP server over the Engine (Hummingbird 2, swift-prometheus,
        // swift-service-lifecycle): routes, SSE, vLLM's metric names, graceful shutdown.
        .target(
            name: "Server",
            dependencies: ["Engine", "ModelCore", "Tokenizers", "ChatTemplates", "JSON",
                           .product(name: "Hummingbird", package: "hummingbird"),
                           .product(name: "Prometheus", package: "swift-prometheus"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "weightfs-bench",
            dependencies: ["ObjectStore", "Fetcher", "ChunkCache", "ModelCore", "CPUBackend", "Tokenizers", "Diagnostics"],
            path: "Sources/weightfs-bench"
        ),
        // The parsers of bucket files under libFuzzer (scripts/fuzz); a replayer otherwise.
        .executableTarget(name: "weightfs-fuzz", dependencies: ["Safetensors", "Tokenizers", "ChatTemplates", "ModelCore"], path: "Sources/weightfs-fuzz"),

        // Test-only helpers: the emulator, the link proxy, a loopback HTTP server.
        .target(name: "TestSupport", dependencies: ["ObjectStore", "CCrypto", "JSON"], path: "Sources/TestSupport"),
        .testTarget(name: "ObjectStoreTests", dependencies: ["ObjectStore", "TestSupport", "CCrypto"]),
        .testTarget(name: "FetcherTests", dependencies: ["Fetcher", "ObjectStore", "TestSupport"]),
        .testTarget(name: "ChunkCacheTests", dependencies: ["ChunkCache", "Fetcher", "ObjectStore", "TestSupport"]),
        .testTarget(name: "JSONTests", dependencies: ["JSON", "TestSupport"]),
        .testTarget(name: "PosixTests", dependencies: ["Posix", .product(name: "SystemPackage", package: "swift-system"), "TestSupport"]),
        .testTarget(name: "SafetensorsTests", dependencies: ["Safetensors", "JSON", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "ChatTemplates", "JSON", "TestSupport"]),
        .testTarget(name: "ModelCoreTests", dependencies: ["ModelCore", "TestSupport"]),
        .testTarget(name: "CPUBackendTests", dependencies: ["CPUBackend", "CKernels", "ModelCore", "Tokenizers", "JSON", "TestSupport"]),
        .testTarget(name: "ServerTests", dependencies: ["TestSupport", "ObjectStore", "Tokenizers"], exclude: ["openai_client.py", "concurrent_client.py", "bad_clients.py", "load_clients.py"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "ModelCore", "CPUBackend", "TestSupport"]),
        .testTarget(name: "ModelStoreTests", dependencies: ["ModelStore", "ChunkCache", "Fetcher", "ModelCore", "CPUBackend", "Tokenizers", "ObjectStore", "Safetensors", "TestSupport"]),
        .testTarget(name: "FUSEMountTests", dependencies: ["TestSupport", "ObjectStore", "FUSEMount", "ChunkCache", "Fetcher"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "ObjectStore", "ChunkCache", "Fetcher"]),
    ],
    swiftLanguageModes: [.v6]
)
