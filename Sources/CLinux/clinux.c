#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include "clinux.h"

int wfs_start_writeback(int fd, int64_t offset, int64_t count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}

int wfs_preallocate(int fd, int64_t length) {
    return fallocate(fd, 0, 0, length);
}

int wfs_on_tmpfs(int fd) {
    struct statfs fs;
    return fstatfs(fd, &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}
