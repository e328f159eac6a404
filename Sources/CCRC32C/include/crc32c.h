// CRC32C (Castagnoli), as GCS reports it. Hardware (SSE4.2) when the CPU has it, else slicing-by-8.
#ifndef WEIGHTFS_CRC32C_H
#define WEIGHTFS_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/// Extends `crc` (0 to start) over `len` bytes.
uint32_t wfs_crc32c_extend(uint32_t crc, const void *data, size_t len);
/// CRC of A‖B from crc(A), crc(B) and len(B).
uint32_t wfs_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);
/// 1 when the hardware path is in use.
int wfs_crc32c_hardware(void);
#endif
