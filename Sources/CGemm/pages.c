// CGemm: resizing a page mapping, for TensorCore's buffer pool (Swift cannot call the variadic
// mremap). Leaves out: everything else about the pool, which is Swift (Tensor.swift).
#define _GNU_SOURCE
#include <sys/mman.h>
#include "stm_pages.h"

void *stm_pages_remap(void *p, size_t old_bytes, size_t new_bytes) {
    void *q = mremap(p, old_bytes, new_bytes, MREMAP_MAYMOVE);
    return q == MAP_FAILED ? NULL : q;
}
