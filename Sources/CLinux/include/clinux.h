// Linux calls Swift's Glibc module does not import (they sit behind _GNU_SOURCE).
#ifndef WEIGHTFS_CLINUX_H
#define WEIGHTFS_CLINUX_H
#include <stdint.h>

/// Starts asynchronous writeback of [offset, offset+count) of fd's dirty pages
/// (sync_file_range with SYNC_FILE_RANGE_WRITE). 0 or -1 with errno set.
int wfs_start_writeback(int fd, int64_t offset, int64_t count);
/// Allocates the blocks of [0, length) of fd (fallocate mode 0: the file grows to length if
/// shorter; the blocks read as zeros). 0, or the errno (EOPNOTSUPP where the filesystem cannot,
/// ENOSPC when the disk is full; ext4 and XFS may keep part of the blocks then).
int wfs_preallocate(int fd, int64_t length);
/// Bytes an unprivileged writer may still allocate on fd's filesystem (statvfs f_bavail), or -1.
int64_t wfs_available_bytes(int fd);
/// 1 when fd's file is on tmpfs (memory), 0 otherwise or when that cannot be told.
int wfs_on_tmpfs(int fd);
/// Faults in [addr, addr+length) of a shared file mapping writable (madvise MADV_POPULATE_WRITE,
/// Linux 5.14): where a write through the mapping would raise SIGBUS (past the end of the file,
/// tmpfs or disk full), this returns an error instead. 0, or the errno (EINVAL on older kernels).
int wfs_populate_write(void *addr, uint64_t length);
/// Maps [addr, addr+length) of a file mapping's present pages into the page tables in one call
/// (madvise MADV_POPULATE_READ, Linux 5.14), instead of a fault per 4 KiB page when the bytes
/// are first touched. 0, or the errno (EINVAL on older kernels).
int wfs_populate_read(const void *addr, uint64_t length);
#endif
