// Linux calls Swift's Glibc module does not import (they sit behind _GNU_SOURCE).
#ifndef WEIGHTFS_CLINUX_H
#define WEIGHTFS_CLINUX_H
#include <stdint.h>

/// Starts asynchronous writeback of [offset, offset+count) of fd's dirty pages
/// (sync_file_range with SYNC_FILE_RANGE_WRITE). 0 or -1 with errno set.
int wfs_start_writeback(int fd, int64_t offset, int64_t count);
/// Allocates the blocks of [0, length) of fd (fallocate mode 0: the file grows to length if
/// shorter; the blocks read as zeros). 0 or -1 with errno set (EOPNOTSUPP where the filesystem
/// cannot, ENOSPC when the disk is full).
int wfs_preallocate(int fd, int64_t length);
/// 1 when fd's file is on tmpfs (memory), 0 otherwise or when that cannot be told.
int wfs_on_tmpfs(int fd);
#endif
