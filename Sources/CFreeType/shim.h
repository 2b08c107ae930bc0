// FreeType 2 (Debian: libfreetype-dev), found through pkg-config `freetype2`; used to rasterise plot text.
#include <ft2build.h>
#include FT_FREETYPE_H
