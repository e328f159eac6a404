// libfuse3's low-level API. At FUSE_USE_VERSION >= 312 the loop functions import directly
// (below 312 they are macros); see docs/FACTS.md.
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <stddef.h>
#include <fuse_lowlevel.h>

// Pushes size bytes at mem into the kernel's page cache of inode ino at offset
// (FUSE_NOTIFY_STORE), so readers find them there without a READ. 0 or -errno.
static inline int wfs_notify_store(struct fuse_session *se, fuse_ino_t ino, off_t offset, const void *mem, size_t size) {
    struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(size);
    bufv.buf[0].mem = (void *)mem;
    return fuse_lowlevel_notify_store(se, ino, offset, &bufv, 0);
}
