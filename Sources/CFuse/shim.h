// libfuse3's low-level API. At FUSE_USE_VERSION >= 312 the loop functions import directly
// (below 312 they are macros); see docs/FACTS.md.
#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>
