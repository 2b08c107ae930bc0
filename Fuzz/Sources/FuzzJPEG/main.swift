// Fuzz target: the JPEG decoder (libjpeg-turbo through Sources/CJPEG/shim.h).
// Also the header check (`readImageHeader`). Any input must give an image or an ImagingError; a trap, sanitizer report or hang is a bug.
// The pixel limit is lowered to 4 megapixels so that valid headers of large images stay fast.

import FuzzSupport
import Imaging

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJPEG(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    ImageLimits.maxPixels = 4_000_000
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    if let image = try? JPEGCodec.decode(bytes, path: "fuzz.jpg") {
        precondition(image.pixels.count == image.width * image.height * 3, "pixel count does not match the size")
    }
    // The header check run before every forward pass (size, completeness) reads the same bytes from a file.
    ScratchFile.write(data, size)
    _ = try? readImageHeader(path: ScratchFile.path)
    return 0
}

runLibFuzzer(fuzzJPEG)
