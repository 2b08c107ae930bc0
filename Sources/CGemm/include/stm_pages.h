// CGemm: page mappings for TensorCore's buffer pool.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Resizes an anonymous mapping of `old_bytes` at `p` (page-aligned) to `new_bytes`, moving it if it
/// must. Pages kept stay resident (no new faults); a shrink hands the tail back to the system. The
/// new address, or NULL on failure (then `p` is unchanged).
void *stm_pages_remap(void *p, size_t old_bytes, size_t new_bytes);

#ifdef __cplusplus
}
#endif
