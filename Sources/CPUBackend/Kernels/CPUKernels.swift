import CKernels
import Foundation

/// A set of CPU kernels, narrowest first. One binary carries all of them; the CPU decides which
/// can run (cpuid and the OS's saved register state), `WEIGHTFS_CPU_KERNELS` may force one.
public enum CPUKernelSet: String, Sendable, CaseIterable, Comparable {
    /// AVX2 + FMA + F16C, 8 floats a vector: the build's baseline (x86-64-v3; the only set off x86).
    case avx2
    /// AVX-512 F/BW/VL/DQ: prefill and batched decode in 16-wide fused multiply-adds over 32 registers.
    case avx512
    /// AVX512-BF16 on top: bf16 weights meet activations rounded to bf16 in `vdpbf16ps` (two
    /// products per lane and instruction, sums in f32), as oneDNN runs a bf16 model.
    case avx512bf16
    /// AMX-BF16 on top: the same bf16 pairs in tile multiplies (`tdpbf16ps`, 12 rows × 16
    /// tokens × 32 k per instruction) where the row length is a multiple of 32, as oneDNN runs a
    /// bf16 model on Sapphire Rapids and later; f32 weights stay on AVX-512.
    case amx

    public static func < (a: CPUKernelSet, b: CPUKernelSet) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }

    /// What the CPU needs for this set, in words.
    var requirement: String {
        switch self {
        case .avx2: return "AVX2, FMA and F16C"
        case .avx512: return "AVX-512 F, BW, VL and DQ (with the OS saving the zmm registers)"
        case .avx512bf16: return "AVX512-BF16 (with AVX-512 F, BW, VL and DQ)"
        case .amx: return "AMX-TILE and AMX-BF16 with the kernel's permission to use the tiles (Linux 5.16 or later; with AVX512-BF16)"
        }
    }
}

/// A `WEIGHTFS_CPU_KERNELS` value that cannot be honoured.
public struct CPUKernelError: Error, CustomStringConvertible, Equatable {
    public let description: String
}

public enum CPUKernels {
    public static let environmentVariable = "WEIGHTFS_CPU_KERNELS"

    /// The sets this CPU runs, narrowest first (the baseline is always there: the binary was
    /// built for it).
    public static let available: [CPUKernelSet] = sets(features: Int(wfs_cpu_features()))

    static func sets(features: Int) -> [CPUKernelSet] {
        var sets: [CPUKernelSet] = [.avx2]
        if features & Int(WFS_CPU_AVX512) != 0 { sets.append(.avx512) }
        if features & Int(WFS_CPU_AVX512BF16) != 0 { sets.append(.avx512bf16) }
        if features & Int(WFS_CPU_AMX) != 0 { sets.append(.amx) }
        return sets
    }

    /// The set to run: `forced` (the value of `source`, the environment variable or an option)
    /// if this CPU has it, else the widest available.
    public static func choose(forced: String?, source: String = environmentVariable,
                              available: [CPUKernelSet] = available) throws(CPUKernelError) -> CPUKernelSet {
        let names = available.map(\.rawValue).joined(separator: ", ")
        guard let forced, !forced.isEmpty else { return available.last ?? .avx2 }
        guard let set = CPUKernelSet(rawValue: forced.lowercased()) else {
            throw CPUKernelError(description: "\(source)=\(forced) is not a kernel set: use one of "
                + CPUKernelSet.allCases.map(\.rawValue).joined(separator: ", ")
                + " (this CPU runs \(names)), or unset it to take the widest this CPU runs")
        }
        guard available.contains(set) else {
            throw CPUKernelError(description: "\(source)=\(forced): this CPU lacks \(set.requirement); "
                + "it runs \(names). Unset it or pick one of those")
        }
        return set
    }

    /// The process's choice, from the environment at first use. Commands check it before they
    /// start (`try CPUKernels.selection.get()`) so that a bad value is an error, not a fallback.
    public static let selection: Result<CPUKernelSet, CPUKernelError> = Result {
        () throws(CPUKernelError) -> CPUKernelSet in
        try choose(forced: ProcessInfo.processInfo.environment[environmentVariable])
    }

    /// The set models use unless told otherwise (the baseline if the environment asked for one
    /// this CPU lacks: commands refuse that before they get here).
    public static var active: CPUKernelSet {
        (try? selection.get()) ?? .avx2
    }

    /// One line for logs: the set in use and what the CPU offers.
    public static var summary: String {
        "CPU kernels: \(active.rawValue) (this CPU runs \(available.map(\.rawValue).joined(separator: ", ")); \(environmentVariable) forces one)"
    }
}
