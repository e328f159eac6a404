#define _GNU_SOURCE
#include <fcntl.h>
#include <errno.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include "clinux.h"

int wfs_start_writeback(int fd, int64_t offset, int64_t count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}

int wfs_preallocate(int fd, int64_t length) {
    return fallocate(fd, 0, 0, length) == 0 ? 0 : errno;
}

int64_t wfs_available_bytes(int fd) {
    struct statvfs vfs;
    if (fstatvfs(fd, &vfs) != 0) return -1;
    return (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
}

int wfs_on_tmpfs(int fd) {
    struct statfs fs;
    return fstatfs(fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
int wfs_populate_write(void *addr, uint64_t length) {
    return madvise(addr, (size_t)length, MADV_POPULATE_WRITE) == 0 ? 0 : errno;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
int wfs_populate_read(const void *addr, uint64_t length) {
    return madvise((void *)addr, (size_t)length, MADV_POPULATE_READ) == 0 ? 0 : errno;
}
