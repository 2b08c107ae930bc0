// libpng (Debian: libpng-dev), found through pkg-config `libpng`, plus two C helpers that keep libpng's
// longjmp error handling on the C side: `stm_png_decode` (memory -> 8-bit RGB/RGBA rows) and
// `stm_png_encode` (8-bit grey/RGB/RGBA rows -> PNG bytes in memory). Swift never sees a longjmp: every
// libpng error comes back as a non-zero return code and a message. File I/O, temporary files and renames
// are left to the Swift caller. Pixel layout key: H height, W width, C channels, rows packed H x W x C.
#ifndef STM_CPNG_SHIM_H
#define STM_CPNG_SHIM_H

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/// Error state shared with libpng's error callback: where to jump and the message to report.
typedef struct {
    jmp_buf jump;
    char message[256];
} stm_png_error_state;

static inline void stm_png_on_error(png_structp png, png_const_charp message) {
    stm_png_error_state *state = (stm_png_error_state *)png_get_error_ptr(png);
    snprintf(state->message, sizeof state->message, "%s", message ? message : "libpng error");
    longjmp(state->jump, 1);
}

static inline void stm_png_on_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message; /* Warnings (unknown chunks, odd gamma) do not stop decoding. */
}

/// A read cursor over bytes held in memory.
typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
} stm_png_source;

static inline void stm_png_read_bytes(png_structp png, png_bytep out, size_t count) {
    stm_png_source *source = (stm_png_source *)png_get_io_ptr(png);
    if (count > source->size - source->offset) {
        png_error(png, "file is truncated");
    }
    memcpy(out, source->data + source->offset, count);
    source->offset += count;
}

/// Largest decoded image accepted, in bytes (guards against absurd header sizes in corrupt files).
#define STM_PNG_MAX_DECODED_BYTES ((size_t)1 << 31)

/// Decodes a PNG held in memory to 8 bits per channel: palettes, grey and low bit depths are expanded to
/// RGB, 16-bit samples keep their high byte. Alpha (or tRNS transparency) is dropped unless `keep_alpha`,
/// in which case the output is RGBA (opaque images get alpha 255). On success returns 0 and hands back a
/// malloc'ed H x W x C buffer in `*out_pixels` (the caller frees it); on failure returns 1 and writes a
/// one-line message to `message`.
static inline int stm_png_decode(const unsigned char *data, size_t size, int keep_alpha,
                                 unsigned char **out_pixels, unsigned *out_width, unsigned *out_height,
                                 int *out_channels, char *message, size_t message_size) {
    stm_png_error_state state;
    stm_png_source source = { data, size, 0 };
    png_structp png = NULL;
    png_infop info = NULL;
    unsigned char *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;

    *out_pixels = NULL;
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        snprintf(message, message_size, "not a PNG file (bad signature)");
        return 1;
    }
    state.message[0] = 0;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, stm_png_on_error, stm_png_on_warning);
    if (png == NULL) {
        snprintf(message, message_size, "libpng could not allocate a reader");
        return 1;
    }
    info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(message, message_size, "libpng could not allocate a reader");
        return 1;
    }
    if (setjmp(state.jump)) {
        free(rows);
        free(pixels);
        png_destroy_read_struct(&png, &info, NULL);
        snprintf(message, message_size, "corrupt PNG: %s", state.message);
        return 1;
    }
    png_set_read_fn(png, &source, stm_png_read_bytes);
    png_read_info(png, info);

    png_uint_32 width = png_get_image_width(png, info);
    png_uint_32 height = png_get_image_height(png, info);
    int color_type = png_get_color_type(png, info);
    int bit_depth = png_get_bit_depth(png, info);
    int has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;

    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_set_palette_to_rgb(png);
    }
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png);
    }
    if (has_trns && keep_alpha) {
        png_set_tRNS_to_alpha(png);
    }
    if (bit_depth == 16) {
        png_set_strip_16(png);
    }
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) {
        png_set_gray_to_rgb(png);
    }
    if (!keep_alpha) {
        /* Also needed without an alpha channel: palette expansion turns tRNS into alpha by itself. */
        png_set_strip_alpha(png);
    } else if (!(color_type & PNG_COLOR_MASK_ALPHA) && !has_trns) {
        png_set_add_alpha(png, 0xFF, PNG_FILLER_AFTER);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    int channels = keep_alpha ? 4 : 3;
    size_t row_bytes = png_get_rowbytes(png, info);
    if (row_bytes != (size_t)width * (size_t)channels) {
        png_error(png, "unexpected row layout after conversion");
    }
    if (height != 0 && row_bytes > STM_PNG_MAX_DECODED_BYTES / height) {
        png_error(png, "image too large to decode");
    }
    pixels = (unsigned char *)malloc(row_bytes * height);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
    if (pixels == NULL || rows == NULL) {
        png_error(png, "out of memory");
    }
    for (png_uint_32 y = 0; y < height; y++) {
        rows[y] = pixels + (size_t)y * row_bytes;
    }
    png_read_image(png, rows);
    png_read_end(png, NULL);

    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    *out_pixels = pixels;
    *out_width = width;
    *out_height = height;
    *out_channels = channels;
    return 0;
}

/// A growing output buffer in memory.
typedef struct {
    unsigned char *data;
    size_t size;
    size_t capacity;
} stm_png_sink;

static inline void stm_png_write_bytes(png_structp png, png_bytep bytes, size_t count) {
    stm_png_sink *sink = (stm_png_sink *)png_get_io_ptr(png);
    if (count > sink->capacity - sink->size) {
        size_t capacity = sink->capacity ? sink->capacity : 4096;
        while (count > capacity - sink->size) {
            if (capacity > ((size_t)-1) / 2) {
                png_error(png, "output too large");
            }
            capacity *= 2;
        }
        unsigned char *grown = (unsigned char *)realloc(sink->data, capacity);
        if (grown == NULL) {
            png_error(png, "out of memory");
        }
        sink->data = grown;
        sink->capacity = capacity;
    }
    memcpy(sink->data + sink->size, bytes, count);
    sink->size += count;
}

static inline void stm_png_flush(png_structp png) {
    (void)png;
}

/// Encodes H x W x C 8-bit rows (C = 1 grey, 3 RGB, 4 RGBA) as a non-interlaced PNG with zlib level 6 and
/// no time stamp, so equal pixels give equal bytes. `pixels_per_metre` > 0 writes a pHYs chunk. On success
/// returns 0 and a malloc'ed buffer in `*out_bytes` / `*out_size` (the caller frees it); on failure returns
/// 1 and a one-line message.
static inline int stm_png_encode(const unsigned char *pixels, unsigned width, unsigned height, int channels,
                                 unsigned pixels_per_metre, unsigned char **out_bytes, size_t *out_size,
                                 char *message, size_t message_size) {
    stm_png_error_state state;
    stm_png_sink sink = { NULL, 0, 0 };
    png_structp png = NULL;
    png_infop info = NULL;
    png_bytep *volatile rows = NULL;
    int color_type;

    *out_bytes = NULL;
    *out_size = 0;
    switch (channels) {
    case 1: color_type = PNG_COLOR_TYPE_GRAY; break;
    case 3: color_type = PNG_COLOR_TYPE_RGB; break;
    case 4: color_type = PNG_COLOR_TYPE_RGB_ALPHA; break;
    default:
        snprintf(message, message_size, "PNG writing needs 1, 3 or 4 channels, got %d", channels);
        return 1;
    }
    state.message[0] = 0;
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &state, stm_png_on_error, stm_png_on_warning);
    if (png == NULL) {
        snprintf(message, message_size, "libpng could not allocate a writer");
        return 1;
    }
    info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_write_struct(&png, NULL);
        snprintf(message, message_size, "libpng could not allocate a writer");
        return 1;
    }
    if (setjmp(state.jump)) {
        free(rows);
        free(sink.data);
        png_destroy_write_struct(&png, &info);
        snprintf(message, message_size, "PNG encoding failed: %s", state.message);
        return 1;
    }
    png_set_write_fn(png, &sink, stm_png_write_bytes, stm_png_flush);
    png_set_compression_level(png, 6);
    png_set_IHDR(png, info, width, height, 8, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pixels_per_metre > 0) {
        png_set_pHYs(png, info, pixels_per_metre, pixels_per_metre, PNG_RESOLUTION_METER);
    }
    png_write_info(png, info);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (height ? height : 1));
    if (rows == NULL) {
        png_error(png, "out of memory");
    }
    size_t row_bytes = (size_t)width * (size_t)channels;
    for (unsigned y = 0; y < height; y++) {
        rows[y] = (png_bytep)(pixels + (size_t)y * row_bytes);
    }
    png_write_image(png, rows);
    png_write_end(png, NULL);

    free(rows);
    png_destroy_write_struct(&png, &info);
    *out_bytes = sink.data;
    *out_size = sink.size;
    return 0;
}

#endif
