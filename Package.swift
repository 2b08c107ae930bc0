// swift-tools-version:5.10
// stm-analyze: effective receptive fields and invariance of spatial token mixers, on the CPU.
import PackageDescription

/// Release builds drop bounds checks in the numeric kernels; debug builds keep them.
let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release)),
]

let package = Package(
    name: "stm-analyze",
    products: [
        .executable(name: "stm-analyze", targets: ["stm-analyze"]),
        .library(name: "TensorCore", targets: ["TensorCore"]),
        .library(name: "Checkpoint", targets: ["Checkpoint"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Imaging", targets: ["Imaging"]),
        .library(name: "Analysis", targets: ["Analysis"]),
        .library(name: "Rendering", targets: ["Rendering"]),
        .library(name: "COCOEval", targets: ["COCOEval"]),
        .library(name: "Detection", targets: ["Detection"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // YAML recipes (analyses/*.yaml) for `stm-analyze run`.
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // System libraries, reached through pkg-config (Debian's -dev packages).
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg",
                       providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "CFreeType", pkgConfig: "freetype2",
                       providers: [.apt(["libfreetype-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),

        // A persistent worker pool for parallelFor (C: atomics and pthreads).
        .target(name: "CThreadPool", cSettings: [.unsafeFlags(["-O2"])]),
        // The packed GEMM with a fixed summation order (AVX-512, AVX2+FMA and portable micro-kernels,
        // chosen at run time). No contraction of a*b+c: every fma is written out.
        .target(name: "CGemm", dependencies: ["CThreadPool"],
                cSettings: [.unsafeFlags(["-O3", "-ffp-contract=off"])]),
        // The error type every library throws for bad input.
        .target(name: "Diagnostics", swiftSettings: fast),
        // Tensor core: float32 NHWC tensors, primitive ops with forward and backward, reverse-mode tape.
        .target(name: "TensorCore", dependencies: ["CBLAS", "CThreadPool", "CGemm"], swiftSettings: fast),
        // Checkpoint readers: torch.save zip archives (pickle interpreted, never executed) and safetensors.
        .target(name: "Checkpoint", dependencies: ["Diagnostics", "CZlib"], swiftSettings: fast),
        // Models: architecture configs, presets, block registry, the five mixers, strict loading.
        .target(name: "Models", dependencies: ["TensorCore", "Checkpoint"], swiftSettings: fast),
        // Imaging: JPEG/PNG codecs and Pillow-exact resampling, crops and affine transforms.
        .target(name: "Imaging", dependencies: ["Diagnostics", "CPNG", "CJPEG"], swiftSettings: fast),
        // Rendering: colour maps, heatmaps with colour bars, line plots, text through FreeType.
        .target(name: "Rendering", dependencies: ["Imaging", "CFreeType"], swiftSettings: fast),
        // Analysis: classification, ERF maps and ratios, invariance protocols.
        .target(name: "Analysis",
                dependencies: ["TensorCore", "Checkpoint", "Models", "Imaging", "Rendering"],
                swiftSettings: fast),
        // COCO box evaluation equal to pycocotools' COCOeval (bbox), and the box-consistency score.
        .target(name: "COCOEval", dependencies: ["Diagnostics"], swiftSettings: fast),
        // Detection: the test-time box path of the study's mmdetection 2.x Mask R-CNN on the unified
        // backbones (OpenCV-exact resize, FPN, RPN, RoIAlign, box head, NMS), forward only.
        .target(name: "Detection",
                dependencies: ["Diagnostics", "TensorCore", "Models", "Checkpoint", "Imaging", "COCOEval"],
                swiftSettings: fast),
        // The thin command-line front end.
        .executableTarget(
            name: "stm-analyze",
            dependencies: [
                "TensorCore", "Checkpoint", "Models", "Imaging", "Rendering", "Analysis", "COCOEval", "Detection",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: fast),

        // Helpers shared by the test targets (fixture paths, tolerances); not part of any product.
        .target(name: "TestSupport", dependencies: ["Checkpoint", "TensorCore"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"]),
        .testTarget(name: "CheckpointTests", dependencies: ["Checkpoint"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "Checkpoint"],
                    exclude: ["Fuzz"]),  // inputs the tests read by path, not resources
        .testTarget(name: "RenderingTests", dependencies: ["Rendering", "Imaging"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "TensorCore", "Checkpoint", "Analysis", "TestSupport"]),
        .testTarget(name: "AnalysisTests",
                    dependencies: ["Analysis", "Models", "TensorCore", "Checkpoint", "Imaging", "TestSupport"]),
        .testTarget(name: "COCOEvalTests", dependencies: ["COCOEval", "Checkpoint", "TestSupport"]),
        .testTarget(name: "DetectionTests",
                    dependencies: ["Detection", "COCOEval", "Models", "TensorCore", "Checkpoint", "Imaging", "TestSupport"]),
        .testTarget(name: "CLITests", dependencies: ["Checkpoint", "Imaging", "Rendering", "Analysis", "TestSupport"]),
    ]
)
