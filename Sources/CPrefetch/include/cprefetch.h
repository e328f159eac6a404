// A cache prefetch hint for the inference kernels: Swift has no spelling for the instruction.
#ifndef WEIGHTFS_CPREFETCH_H
#define WEIGHTFS_CPREFETCH_H

/// Asks the CPU to start loading the cache line at p (a hint: no fault, no effect on results).
static inline __attribute__((always_inline)) void wfs_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}
#endif
