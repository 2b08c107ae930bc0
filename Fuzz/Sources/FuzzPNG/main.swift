// Fuzz target: the PNG decoder (libpng through Sources/CPNG/shim.h), RGB and RGBA.
// Also the header check (`readImageHeader`). Any input must give an image or an ImagingError; a trap, sanitizer report or hang is a bug.
// The pixel limit is lowered to 4 megapixels so that valid headers of large images stay fast.

import FuzzSupport
import Imaging

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPNG(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    ImageLimits.maxPixels = 4_000_000
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let image = try? PNGCodec.decode(bytes, path: "fuzz.png", keepAlpha: size & 1 == 1) {
        precondition(image.pixels.count == image.width * image.height * image.channels, "pixel count does not match the size")
    }
    // The header check run before every forward pass (size, completeness) reads the same bytes from a file.
    ScratchFile.write(data, size)
    _ = try? readImageHeader(path: ScratchFile.path)
    return 0
}

runLibFuzzer(fuzzPNG)
