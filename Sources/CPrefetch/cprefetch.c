// The target's one function is static inline in its header; SwiftPM wants a source file.
#include "cprefetch.h"
