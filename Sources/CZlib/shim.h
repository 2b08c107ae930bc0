// zlib (Debian: zlib1g-dev), found through pkg-config `zlib`. Used for one thing: the CRC-32 of every
// zip entry a checkpoint reader takes bytes from (crc32_z, which takes a size_t length).
#include <zlib.h>
