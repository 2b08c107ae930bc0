// swift-tools-version:5.10
// stm-analyze fuzz targets: libFuzzer executables (each main.swift hands libFuzzer's driver its
// `LLVMFuzzerTestOneInput` through `LLVMFuzzerRunDriver`), built only with `-sanitize=fuzzer,address` by
// Fuzz/run.sh (`make fuzz`). Kept out of the main package so that `swift build` there never sees them.
import PackageDescription

let fuzzers: [(name: String, library: String)] = [
    ("FuzzTorchZip", "Checkpoint"),
    ("FuzzLegacyTorch", "Checkpoint"),
    ("FuzzSafeTensors", "Checkpoint"),
    ("FuzzPNG", "Imaging"),
    ("FuzzJPEG", "Imaging"),
]

let package = Package(
    name: "stm-analyze-fuzz",
    dependencies: [.package(name: "stm-analyze", path: "..")],
    targets: [
        // Writes each input to a scratch file, for the readers that map files.
        .target(name: "FuzzSupport"),
    ] + fuzzers.map { f in
        .executableTarget(name: f.name,
                          dependencies: ["FuzzSupport", .product(name: f.library, package: "stm-analyze")])
    }
)
