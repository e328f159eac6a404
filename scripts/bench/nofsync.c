// Benchmark diagnostic only (scripts/bench/cache and mount, rows labelled "diag"): loaded with
// LD_PRELOAD, fdatasync(2) returns at once without syncing, so a run shows what the chunk
// cache's durability step costs. Never use it for anything but measuring.
int fdatasync(int fd) {
    (void)fd;
    return 0;
}
