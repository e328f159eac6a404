#define _GNU_SOURCE
#include <fcntl.h>
#include "clinux.h"

int wfs_start_writeback(int fd, int64_t offset, int64_t count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}

int wfs_preallocate(int fd, int64_t length) {
    return fallocate(fd, 0, 0, length);
}
