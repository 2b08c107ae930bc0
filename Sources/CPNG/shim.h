// libpng (Debian: libpng-dev), found through pkg-config `libpng`.
#include <png.h>
