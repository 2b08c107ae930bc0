// libjpeg-turbo (Debian: libjpeg-dev), found through pkg-config `libjpeg`.
//
// Besides the library headers, this shim holds the one piece of the JPEG decoder that must be C:
// libjpeg reports fatal errors through error_exit, which by default calls exit(). The helpers below
// install an error manager that longjmps back into the helper instead, copy libjpeg's message into a
// caller-supplied buffer and return -1, so that a corrupt or truncated file never ends the process.
//
// Decoding follows Pillow's `Image.open(p).convert("RGB")` for 8-bit JPEGs: libjpeg's defaults
// (ISLOW integer DCT, fancy upsampling, colour space taken from the JFIF/Adobe markers); YCbCr and
// RGB files come out as RGB, grayscale files are replicated into R = G = B, CMYK and YCCK files are
// decoded to (Adobe-inverted) CMYK and turned into RGB with Pillow's integer cmyk2rgb formula.
// Not handled here: scaled (draft) decoding, 12-bit JPEGs, EXIF orientation (Pillow ignores it too),
// ICC colour management.
//
// Output layout: H rows of W pixels of 3 interleaved bytes (R, G, B), row-major.
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

/// Error manager: libjpeg's own fields first, then the jump target and what the helper reports.
typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
    int truncated;         // set when libjpeg ran out of data ("Premature end of JPEG file")
    unsigned char *row;    // scratch row owned by the helper; freed on every exit path
} stm_jpeg_error_mgr;

static void stm_jpeg_error_exit(j_common_ptr cinfo) {
    stm_jpeg_error_mgr *err = (stm_jpeg_error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->jump, 1);
}

static void stm_jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
    // Warnings (level -1) are counted, never printed; running out of data is remembered because
    // libjpeg otherwise pads the image with grey and carries on.
    if (msg_level < 0) {
        stm_jpeg_error_mgr *err = (stm_jpeg_error_mgr *)cinfo->err;
        cinfo->err->num_warnings++;
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
            err->truncated = 1;
        }
    }
}

static void stm_jpeg_copy_message(char *dst, size_t cap, const char *src) {
    if (dst == NULL || cap == 0) { return; }
    strncpy(dst, src, cap - 1);
    dst[cap - 1] = '\0';
}

/// Decodes `size` bytes of JPEG data. With `out == NULL` only the header is read and the image size
/// is stored in `*width` / `*height`. Otherwise `out` must hold `width * height * 3` bytes for the
/// size obtained by a previous header-only call; the RGB pixels are written there.
/// Returns 0 on success, -1 on failure with a one-line message in `message` (capacity `cap`).
static inline int stm_jpeg_decode_rgb(const unsigned char *data, size_t size,
                                      int *width, int *height, unsigned char *out,
                                      char *message, size_t cap) {
    struct jpeg_decompress_struct cinfo;
    stm_jpeg_error_mgr err;
    memset(&err, 0, sizeof(err));
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = stm_jpeg_error_exit;
    err.pub.emit_message = stm_jpeg_emit_message;
    err.truncated = 0;
    err.row = NULL;

    if (setjmp(err.jump)) {
        if (err.truncated) {
            stm_jpeg_copy_message(message, cap, "truncated JPEG data (the file ends before the image does)");
        } else {
            stm_jpeg_copy_message(message, cap, err.message);
        }
        free(err.row);
        err.row = NULL;
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }

    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);

    if (cinfo.data_precision != 8) {
        snprintf(err.message, sizeof(err.message), "%d-bit JPEG samples are not supported", cinfo.data_precision);
        stm_jpeg_copy_message(message, cap, err.message);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    int components = cinfo.num_components;
    if (components == 1) {
        cinfo.out_color_space = JCS_GRAYSCALE;
    } else if (components == 3) {
        cinfo.out_color_space = JCS_RGB;
    } else if (components == 4) {
        cinfo.out_color_space = JCS_CMYK;   // libjpeg converts YCCK to CMYK itself
    } else {
        snprintf(err.message, sizeof(err.message), "JPEG with %d colour components is not supported", components);
        stm_jpeg_copy_message(message, cap, err.message);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }

    if (out == NULL) {
        *width = (int)cinfo.image_width;
        *height = (int)cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        return 0;
    }
    if ((int)cinfo.image_width != *width || (int)cinfo.image_height != *height) {
        stm_jpeg_copy_message(message, cap, "JPEG size changed between the header and the decode");
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }

    jpeg_start_decompress(&cinfo);
    const size_t w = cinfo.output_width;
    if (components != 3) {
        err.row = (unsigned char *)malloc(w * (size_t)components);
        if (err.row == NULL) {
            stm_jpeg_copy_message(message, cap, "out of memory");
            jpeg_destroy_decompress(&cinfo);
            return -1;
        }
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        unsigned char *dst = out + (size_t)cinfo.output_scanline * w * 3;
        JSAMPROW rowp = components == 3 ? dst : err.row;
        if (jpeg_read_scanlines(&cinfo, &rowp, 1) != 1) {
            break;
        }
        if (components == 1) {
            for (size_t x = 0; x < w; x++) {
                unsigned char v = err.row[x];
                dst[3 * x] = v; dst[3 * x + 1] = v; dst[3 * x + 2] = v;
            }
        } else if (components == 4) {
            // Pillow stores Adobe CMYK inverted (rawmode "CMYK;I"): c = 255 - sample, k likewise,
            // then converts with  channel = clip(nk - c * nk / 255)  where nk = 255 - k and the
            // product is divided by 255 with its rounding shortcut ((t >> 8) + t) >> 8, t = c*nk + 128.
            for (size_t x = 0; x < w; x++) {
                const unsigned char *s = err.row + 4 * x;
                int nk = s[3];   // 255 - (255 - sample)
                for (int c = 0; c < 3; c++) {
                    int cmy = 255 - s[c];
                    int t = cmy * nk + 128;
                    int v = nk - (((t >> 8) + t) >> 8);
                    dst[3 * x + c] = (unsigned char)(v < 0 ? 0 : (v > 255 ? 255 : v));
                }
            }
        }
    }
    if (cinfo.output_scanline < cinfo.output_height || err.truncated) {
        stm_jpeg_copy_message(message, cap, "truncated JPEG data (the file ends before the image does)");
        free(err.row);
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    jpeg_finish_decompress(&cinfo);
    free(err.row);
    err.row = NULL;
    jpeg_destroy_decompress(&cinfo);
    return 0;
}
