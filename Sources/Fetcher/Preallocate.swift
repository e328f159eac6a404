#if canImport(Glibc)
import Glibc
#endif
import CLinux

/// Reserves the blocks of a file that is about to be written at scattered offsets (ranged GETs
/// landing in parallel): `fallocate`, so the writes fill allocated blocks instead of ext4 doing
/// its delayed-allocation bookkeeping per 4 KiB page as they arrive (faster downloads and cold
/// mount reads: BENCHMARKS finding 9).
/// Returns 0 or the errno: EOPNOTSUPP where the filesystem cannot (the sparse file still works),
/// ENOSPC or EDQUOT when the disk cannot hold the whole file (the caller decides whether that
/// matters; ext4 and XFS may keep part of the blocks).
public func preallocate(_ fd: Int32, bytes: Int64) -> Int32 {
    guard bytes > 0 else { return 0 }
    return wfs_preallocate(fd, bytes)
}

/// Bytes that may still be allocated on `fd`'s filesystem, nil if that cannot be told.
public func availableBytes(_ fd: Int32) -> Int64? {
    let n = wfs_available_bytes(fd)
    return n >= 0 ? n : nil
}

/// Whether `fd`'s file lives in memory (tmpfs, e.g. a Kubernetes `emptyDir` with `medium: Memory`).
/// There, reserving a file's blocks allocates and zeroes all of its memory at once: a cache must
/// not do that for an object it may only partly read.
public func isInMemory(_ fd: Int32) -> Bool { wfs_on_tmpfs(fd) == 1 }
