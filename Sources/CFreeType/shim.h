// FreeType 2 (Debian: libfreetype-dev), found through pkg-config `freetype2`; used to rasterise plot text.
// Besides the headers, it exposes the function-like macros Swift cannot import (load-target flags, the
// kerning test) as tiny inline functions. Nothing else: font handling lives in Sources/Rendering/Font.swift.
#ifndef STM_CFREETYPE_SHIM_H
#define STM_CFREETYPE_SHIM_H

#include <ft2build.h>
#include FT_FREETYPE_H

/// Load flags for grey anti-aliased glyphs with light (vertical-only) hinting, rendered on load.
static inline FT_Int32 stm_ft_load_flags_light_render(void) {
    return FT_LOAD_TARGET_LIGHT | FT_LOAD_RENDER;
}

/// Whether the face carries a kerning table that FT_Get_Kerning can read.
static inline int stm_ft_has_kerning(FT_Face face) {
    return FT_HAS_KERNING(face) ? 1 : 0;
}

#endif
