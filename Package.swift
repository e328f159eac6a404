// swift-tools-version: 6.0
import PackageDescription

// weightfs: model weights from object storage, usable before the download ends.
// Targets depend only downward: C shims → ObjectStore → Fetcher → (ChunkCache, FUSEMount, Inference, Server) → weightfs.
// The inference kernels need AVX2+FMA: the baseline x86-64 target has no AVX, and SIMD
// fused multiply-adds there become calls to fmaf, measured 8x slower.
// Build and CI machines have AVX2, FMA and F16C (haswell, x86-64-v3); only Inference gets the flag.
#if arch(x86_64)
let inferenceSwiftSettings: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"]), .unsafeFlags(["-O"], .when(configuration: .debug))]
#else
let inferenceSwiftSettings: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]
#endif
// Inference is optimized in debug builds too: unoptimized kernels make the demo-model tests
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

        .target(
            name: "ObjectStore",
            dependencies: ["CCurl", "CCrypto", "CCRC32C", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Fetcher",
            dependencies: ["ObjectStore", "CCRC32C", "CLinux", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "ChunkCache",
            dependencies: ["ObjectStore", "Fetcher", "Safetensors", "CLinux", .product(name: "Logging", package: "swift-log")]
        ),
        // A model under a store prefix as a WeightSource over the chunk cache (no FUSE):
        // ready(group) waits for that group's chunks. The bridge between storage and runtime.
        .target(name: "ModelStore", dependencies: ["ChunkCache", "ObjectStore", "Safetensors", "Inference"]),
        // Safetensors headers, index files and the forward-order fetch plan. Foundation only.
        .target(name: "Safetensors"),
        // Model runtime: tokenizer, weights mapped in place, SIMD kernels, Llama-family forward pass.
        .target(name: "Inference", dependencies: ["Safetensors", "CPrefetch"], path: "Sources/Inference", swiftSettings: inferenceSwiftSettings),
        .target(
            name: "FUSEMount",
            dependencies: ["CFuse", "ChunkCache", "ObjectStore", .product(name: "Logging", package: "swift-log")]
        ),
        .executableTarget(
            name: "weightfs",
            dependencies: [
                "ObjectStore", "Fetcher", "ChunkCache", "FUSEMount", "Safetensors", "Inference", "ModelStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "weightfs-bench",
            dependencies: ["ObjectStore", "Fetcher", "ChunkCache", "Inference"],
            path: "Sources/weightfs-bench"
        ),

        // Test-only helpers: the emulator, the link proxy, a loopback HTTP server.
        .target(name: "TestSupport", dependencies: ["ObjectStore", "CCrypto"], path: "Sources/TestSupport"),
        .testTarget(name: "ObjectStoreTests", dependencies: ["ObjectStore", "TestSupport", "CCrypto"]),
        .testTarget(name: "FetcherTests", dependencies: ["Fetcher", "ObjectStore", "TestSupport"]),
        .testTarget(name: "ChunkCacheTests", dependencies: ["ChunkCache", "Fetcher", "ObjectStore", "TestSupport"]),
        .testTarget(name: "SafetensorsTests", dependencies: ["Safetensors", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "InferenceTests", dependencies: ["Inference", "TestSupport"]),
        .testTarget(name: "ModelStoreTests", dependencies: ["ModelStore", "ChunkCache", "Fetcher", "Inference", "ObjectStore", "Safetensors", "TestSupport"]),
        .testTarget(name: "FUSEMountTests", dependencies: ["TestSupport", "ObjectStore"]),
        .testTarget(name: "CLITests", dependencies: ["TestSupport", "ObjectStore", "ChunkCache", "Fetcher"]),
    ],
    swiftLanguageModes: [.v6]
)
