// Invariance analysis: the seeded generator against numpy's and C++'s Mersenne Twister, the study's
// level lists and --levels parsing, labels files and class folders with their errors, and the batched
// engine against a direct, image-by-image computation with the nano fixtures (consistency, accuracies,
// soft-target cross-entropy, reuse of identical images, Zhang's shift pairs).

import Analysis
import Foundation
import Imaging
import Models
import TensorCore
import TestSupport
import XCTest

final class InvarianceTests: XCTestCase {
    let imageFolder = sharedDirectory() + "/images/imagenet-val"
    var labelsFile: String { imageFolder + "/labels.txt" }

    /// The shared labels.txt read independently: file name -> class.
    func referenceLabels() throws -> [String: Int] {
        let text = try String(contentsOfFile: labelsFile, encoding: .utf8)
        var table: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            if f.count == 2, let c = Int(f[1]) { table[String(f[0])] = c }
        }
        XCTAssertEqual(table.count, 8, "labels.txt should label the eight images")
        return table
    }

    func loadFixture(_ name: String) throws -> UnifiedModel {
        try ModelLoader.load(model: referencePath("\(name)_nano.pth"), arch: referencePath("\(name)_nano.json")).model
    }

    // MARK: Generator

    func testMersenneTwisterMatchesNumpyAndCxx() {
        // C++ [rand.predef]: the 10000th output of a default-constructed std::mt19937 (seed 5489) is 4123659995.
        var cxx = MersenneTwister(seed: 5489)
        var last: UInt32 = 0
        for _ in 0..<10000 { last = cxx.next() }
        XCTAssertEqual(last, 4_123_659_995)

        // numpy's legacy generator: np.random.seed(s) then randint(n) one value at a time.
        func draws(seed: UInt32, bound: UInt32, count: Int) -> [UInt32] {
            var rng = MersenneTwister(seed: seed)
            return (0..<count).map { _ in rng.randint(bound) }
        }
        XCTAssertEqual(draws(seed: 0, bound: 8, count: 10), [4, 7, 5, 0, 3, 3, 3, 7, 1, 3])
        XCTAssertEqual(draws(seed: 0, bound: 7, count: 10), [4, 5, 0, 3, 3, 3, 1, 3, 5, 2])
        XCTAssertEqual(draws(seed: 2023, bound: 8, count: 12), [7, 1, 6, 7, 1, 4, 3, 4, 4, 6, 5, 0])
        XCTAssertEqual(draws(seed: 4_294_967_295, bound: 1000, count: 5), [419, 290, 12, 71, 948])

        // Directions: one randint(8) per image and level, image by image.
        let directions = jitterDirections(images: 2, levels: 5, seed: 0)
        XCTAssertEqual(directions.flatMap { $0 }.map(\.rawValue), [4, 7, 5, 0, 3, 3, 3, 7, 1, 3])
        let study = jitterDirections(images: 1, levels: 10, seed: 0, studyDirections: true)
        XCTAssertEqual(study[0].map(\.rawValue), [4, 5, 0, 3, 3, 3, 1, 3, 5, 2])
        // Shift pairs: np.random.randint(32, size=2) twice -> [12 15] [21 0].
        let pairs = shiftPairOffsets(images: 1, rounds: 1, margin: 32, seed: 0)
        XCTAssertEqual(pairs[0][0].first.top, 12)
        XCTAssertEqual(pairs[0][0].first.left, 15)
        XCTAssertEqual(pairs[0][0].second.top, 21)
        XCTAssertEqual(pairs[0][0].second.left, 0)
    }

    // MARK: Levels

    func testStudyLevels() {
        let t = InvarianceKind.translate.defaultLevels
        XCTAssertEqual(t.map(\.value), Array(stride(from: 0.0, through: 64, by: 4)))
        XCTAssertEqual(t.map(\.key).prefix(3), ["0", "4", "8"])
        let r = InvarianceKind.rotate.defaultLevels
        XCTAssertEqual(r.count, 19)
        XCTAssertEqual(r.last?.value, 90)
        // range(200, 2000 + 1, 125) / 1000: 0.2 ... 1.95, fifteen ratios printed as Python prints them.
        let s = InvarianceKind.scale.defaultLevels
        XCTAssertEqual(s.count, 15)
        XCTAssertEqual(s.map(\.key).prefix(4), ["0.2", "0.325", "0.45", "0.575"])
        XCTAssertEqual(s.last?.key, "1.95")
        XCTAssertEqual(s[7].value, 1.075, accuracy: 1e-15)
    }

    func testParseLevels() throws {
        let levels = try InvarianceKind.rotate.parseLevels(["0, 15,30", "45"])
        XCTAssertEqual(levels.map(\.key), ["0", "15", "30", "45"])
        XCTAssertEqual(levels.map(\.value), [0, 15, 30, 45])
        XCTAssertEqual(try InvarianceKind.rotate.parseLevels(["-10"]).first?.value, -10)
        XCTAssertEqual(try InvarianceKind.scale.parseLevels(["0.5,1.25"]).map(\.key), ["0.5", "1.25"])

        func assertRejected(_ kind: InvarianceKind, _ args: [String], mentions: String, line: UInt = #line) {
            XCTAssertThrowsError(try kind.parseLevels(args), line: line) { error in
                let text = "\(error)"
                XCTAssertTrue(text.hasPrefix("--levels"), text, line: line)
                XCTAssertTrue(text.contains(mentions), text, line: line)
                XCTAssertFalse(text.contains("\n"), line: line)
            }
        }
        assertRejected(.rotate, [""], mentions: "no levels")
        assertRejected(.rotate, [" , "], mentions: "no levels")
        assertRejected(.rotate, ["1,,2"], mentions: "empty entry")
        assertRejected(.rotate, ["ten"], mentions: "'ten' is not a number")
        assertRejected(.rotate, ["inf"], mentions: "not a number")
        assertRejected(.translate, ["-4"], mentions: "whole number")
        assertRejected(.translate, ["2.5"], mentions: "whole number")
        assertRejected(.scale, ["0"], mentions: "above 0")
        assertRejected(.scale, ["0.00001"], mentions: "8192")
        assertRejected(.rotate, ["5", "5.0"], mentions: "repeats")
    }

    // MARK: Labels

    func testLabelsFileAndItsErrors() throws {
        let set = try LabelledImages.gather(images: [imageFolder], labelsFile: labelsFile)
        XCTAssertEqual(set.paths.count, 8)
        let reference = try referenceLabels()
        for (path, label) in zip(set.paths, try XCTUnwrap(set.labels)) {
            XCTAssertEqual(reference[URL(fileURLWithPath: path).lastPathComponent], label, path)
        }
        XCTAssertNoThrow(try set.checkLabels(classes: 1000, model: "m"))
        // A class index the model does not have, named with the line it came from.
        XCTAssertThrowsError(try set.checkLabels(classes: 500, model: "tiny")) { error in
            XCTAssertTrue("\(error)".contains("labels.txt line"), "\(error)")
            XCTAssertTrue("\(error)".contains("500 classes"), "\(error)")
        }

        let dir = temporaryDirectory("invariance-labels")
        let images = [imageFolder + "/ILSVRC2012_val_00000004.JPEG", imageFolder + "/ILSVRC2012_val_00000019.JPEG"]
        func labelsWith(_ text: String) throws -> String {
            let path = dir + "/labels-\(UUID().uuidString).txt"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        func assertRejected(_ text: String, mentions: [String], line: UInt = #line) throws {
            let path = try labelsWith(text)
            XCTAssertThrowsError(try LabelledImages.gather(images: images, labelsFile: path), line: line) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(path), message, line: line)
                for m in mentions { XCTAssertTrue(message.contains(m), "\(message) should mention \(m)", line: line) }
            }
        }
        let good = "# comment\nILSVRC2012_val_00000004.JPEG 809\n\nILSVRC2012_val_00000019.JPEG 478\n"
        XCTAssertEqual(try LabelledImages.gather(images: images, labelsFile: try labelsWith(good)).labels, [809, 478])
        try assertRejected(good + "ILSVRC2012_val_99999999.JPEG 3\n", mentions: ["ILSVRC2012_val_99999999.JPEG", "not among the images", "line 5"])
        try assertRejected("ILSVRC2012_val_00000004.JPEG 809\n", mentions: ["no line for", "ILSVRC2012_val_00000019.JPEG"])
        try assertRejected(good + "ILSVRC2012_val_00000004.JPEG 1\n", mentions: ["line 5", "already labelled on line 2"])
        try assertRejected("ILSVRC2012_val_00000004.JPEG\n", mentions: ["line 1", "expected 'name class-index'"])
        try assertRejected("ILSVRC2012_val_00000004.JPEG -3\nILSVRC2012_val_00000019.JPEG 478\n", mentions: ["line 1", "'-3'"])
        try assertRejected("ILSVRC2012_val_00000004.JPEG cat\n", mentions: ["'cat'"])
        XCTAssertThrowsError(try LabelledImages.gather(images: images, labelsFile: dir + "/missing.txt")) { error in
            XCTAssertTrue("\(error)".contains("no such labels file"), "\(error)")
        }
        // An index above the model's classes is caught once the model is known.
        let high = try LabelledImages.gather(images: images, labelsFile: try labelsWith("ILSVRC2012_val_00000004.JPEG 1000\nILSVRC2012_val_00000019.JPEG 2\n"))
        XCTAssertThrowsError(try high.checkLabels(classes: 1000, model: "swin_nano")) { error in
            XCTAssertTrue("\(error)".contains("line 1"), "\(error)")
            XCTAssertTrue("\(error)".contains("class index 1000"), "\(error)")
        }
    }

    func testClassFolders() throws {
        let root = temporaryDirectory("invariance-classes")
        let fm = FileManager.default
        // Created in reverse order: the indices must come from the sorted names.
        for (cls, names) in [("n02", ["ILSVRC2012_val_00000078.JPEG"]), ("n01", ["ILSVRC2012_val_00000019.JPEG", "ILSVRC2012_val_00000004.JPEG"])] {
            try fm.createDirectory(atPath: "\(root)/\(cls)", withIntermediateDirectories: true)
            for n in names { try fm.copyItem(atPath: "\(imageFolder)/\(n)", toPath: "\(root)/\(cls)/\(n)") }
        }
        let set = try LabelledImages.gather(images: [root], labelsFile: nil)
        XCTAssertEqual(set.paths.map { URL(fileURLWithPath: $0).lastPathComponent },
                       ["ILSVRC2012_val_00000004.JPEG", "ILSVRC2012_val_00000019.JPEG", "ILSVRC2012_val_00000078.JPEG"])
        XCTAssertEqual(set.labels, [0, 0, 1])
        XCTAssertEqual(set.classFolderCount, 2)
        // A flat folder has no labels; mixing it with class folders is an error.
        XCTAssertNil(try LabelledImages.gather(images: [imageFolder], labelsFile: nil).labels)
        XCTAssertThrowsError(try LabelledImages.gather(images: [root, imageFolder], labelsFile: nil)) { error in
            XCTAssertTrue("\(error)".contains("mixes class folders"), "\(error)")
        }
        // An empty class folder is named.
        try fm.createDirectory(atPath: "\(root)/n03", withIntermediateDirectories: true)
        XCTAssertThrowsError(try LabelledImages.gather(images: [root], labelsFile: nil)) { error in
            XCTAssertTrue("\(error)".contains("n03"), "\(error)")
        }
    }

    // MARK: Engine

    /// Metrics computed image by image, one forward pass per image, with Classification's topK.
    struct Direct {
        var consistent: [Int], top1: [Int], top5: [Int], ce: [Double], entropySum = 0.0
    }

    func direct(model: UnifiedModel, paths: [String], labels: [Int], settings: InvarianceSettings) throws -> Direct {
        let directions = jitterDirections(images: paths.count, levels: settings.levels.count, seed: settings.seed)
        let l = settings.levels.count
        var d = Direct(consistent: .init(repeating: 0, count: l), top1: .init(repeating: 0, count: l),
                       top5: .init(repeating: 0, count: l), ce: .init(repeating: 0, count: l))
        func logits(_ image: Image8) -> [Float] {
            let out = model.logits(batchTensor([image]))
            return Array(UnsafeBufferPointer(start: out.data, count: out.shape[1]))
        }
        for (i, path) in paths.enumerated() {
            let decoded = try loadImage(path: path)
            let z0 = logits(evalTransform(decoded, size: settings.size, cropPct: settings.cropPct))
            let reference = topK(z0, k: 1)[0].index
            let m0 = Double(z0.max()!)
            let e0 = z0.map { exp(Double($0) - m0) }
            let total = e0.reduce(0, +)
            let p0 = e0.map { $0 / total }
            d.entropySum -= p0.reduce(0) { $0 + ($1 > 0 ? $1 * log($1) : 0) }
            for (k, level) in settings.levels.enumerated() {
                let image: Image8
                switch settings.kind {
                case .translate:
                    image = jitterTransform(decoded, size: settings.size, cropPct: settings.cropPct, jitter: Int(level.value),
                                            direction: directions[i][k])
                case .rotate:
                    image = rotateTransform(decoded, size: settings.size, cropPct: settings.cropPct, degrees: level.value,
                                            preCrop: settings.preCrop)
                case .scale:
                    image = scaleTransform(decoded, size: settings.size, ratio: level.value)
                }
                let z = logits(image)
                let top = topK(z, k: 5).map(\.index)
                if top[0] == reference { d.consistent[k] += 1 }
                if top[0] == labels[i] { d.top1[k] += 1 }
                if top.contains(labels[i]) { d.top5[k] += 1 }
                // -sum p0 * log softmax(z), softmax in Double.
                let m = Double(z.max()!)
                let lse = m + log(z.reduce(0.0) { $0 + exp(Double($1) - m) })
                d.ce[k] += zip(p0, z).reduce(0.0) { $0 - $1.0 * (Double($1.1) - lse) }
            }
        }
        return d
    }

    func testEngineMatchesImageByImageComputation() throws {
        let model = try loadFixture("swin")
        let paths = ["ILSVRC2012_val_00000004.JPEG", "ILSVRC2012_val_00000078.JPEG", "ILSVRC2012_val_00000302.JPEG"]
            .map { imageFolder + "/" + $0 }
        let reference = try referenceLabels()
        // Labels: the true class for two images; for the third the class the model itself predicts, so
        // that accuracy is not trivially zero for a random fixture.
        var labels = paths.map { reference[URL(fileURLWithPath: $0).lastPathComponent]! }
        let z0 = model.logits(batchTensor([evalTransform(try loadImage(path: paths[2]))]))
        labels[2] = topK(Array(UnsafeBufferPointer(start: z0.data, count: 1000)), k: 1)[0].index
        let images = LabelledImages(paths: paths, labels: labels, source: "test", origins: paths)

        var settings = InvarianceSettings(kind: .translate)
        settings.levels = try InvarianceKind.translate.parseLevels(["0,24,48"])
        settings.seed = 7
        settings.batch = 4  // batches straddle images
        let subject = InvarianceSubject(label: "swin", source: "swin_nano.pth", model: model, untrained: false)
        let result = try runInvariance(subjects: [subject], images: images, settings: settings)
        let expected = try direct(model: model, paths: paths, labels: labels, settings: settings)
        let got = try XCTUnwrap(result.models.first)
        XCTAssertEqual(got.levels.map(\.level.key), ["0", "24", "48"])
        for (k, level) in got.levels.enumerated() {
            XCTAssertEqual(level.consistency, 100 * Double(expected.consistent[k]) / 3, accuracy: 1e-9, "level \(level.level.key)")
            XCTAssertEqual(level.acc1 ?? -1, 100 * Double(expected.top1[k]) / 3, accuracy: 1e-9)
            XCTAssertEqual(level.acc5 ?? -1, 100 * Double(expected.top5[k]) / 3, accuracy: 1e-9)
            XCTAssertEqual(level.ce, expected.ce[k] / 3, accuracy: 1e-4 * abs(expected.ce[k] / 3))
            XCTAssertEqual(level.kl, level.ce - expected.entropySum / 3, accuracy: 1e-4)
            XCTAssertGreaterThanOrEqual(level.kl, -1e-6, "KL divergence cannot be negative")
        }
        XCTAssertGreaterThan(got.levels[0].acc1 ?? 0, 0, "the third image is labelled with its own prediction")
        XCTAssertEqual(got.meanConsistency, got.levels.map(\.consistency).reduce(0, +) / 3, accuracy: 1e-12)
        XCTAssertEqual(result.labelSource, "test")

        // Batch size changes nothing.
        for batch in [1, 32] {
            settings.batch = batch
            let again = try runInvariance(subjects: [subject], images: images, settings: settings).models[0]
            for (a, b) in zip(again.levels, got.levels) {
                XCTAssertEqual(a.consistency, b.consistency)
                XCTAssertEqual(a.acc1, b.acc1)
                XCTAssertEqual(a.acc5, b.acc5)
                XCTAssertEqual(a.ce, b.ce, accuracy: 1e-5 * abs(b.ce))
            }
        }
    }

    func testIdenticalImagesReuseTheStandardPrediction() throws {
        let model = try loadFixture("convnext")
        let paths = [imageFolder + "/ILSVRC2012_val_00000019.JPEG", imageFolder + "/ILSVRC2012_val_00000098.JPEG"]
        var settings = InvarianceSettings(kind: .rotate)
        settings.levels = try InvarianceKind.rotate.parseLevels(["0", "10"])
        let subject = InvarianceSubject(label: "c", source: "c", model: model, untrained: false)
        let result = try runInvariance(subjects: [subject], images: LabelledImages(paths: paths), settings: settings)
        // Two standard images and two rotated by 10 degrees; rotation by 0 is the standard image itself.
        XCTAssertEqual(result.forwardImages, 4)
        let zero = result.models[0].levels[0]
        XCTAssertEqual(zero.consistency, 100)
        XCTAssertEqual(zero.kl, 0, accuracy: 1e-12)
        XCTAssertGreaterThan(zero.ce, 0, "the soft-target cross-entropy at level 0 is the prediction's entropy")
        XCTAssertNil(zero.acc1)
        XCTAssertGreaterThan(result.models[0].levels[1].kl, 0)
        XCTAssertFalse(result.labelled)
    }

    func testShiftPairs() throws {
        let model = try loadFixture("convnext")
        let paths = [imageFolder + "/ILSVRC2012_val_00000109.JPEG", imageFolder + "/ILSVRC2012_val_00000118.JPEG"]
        var settings = InvarianceSettings(kind: .translate)
        settings.levels = [InvarianceLevel(key: "0", value: 0)]
        settings.pairs = true
        settings.pairRounds = 3
        settings.seed = 11
        let subject = InvarianceSubject(label: "c", source: "c", model: model, untrained: false)
        let result = try runInvariance(subjects: [subject], images: LabelledImages(paths: paths), settings: settings)

        let offsets = shiftPairOffsets(images: 2, rounds: 3, margin: 32, seed: 11)
        var agree = 0
        for (i, path) in paths.enumerated() {
            // Resize(256), CenterCrop(256), two 224 windows, as antialiased-cnns crops them.
            let square = centerCrop(resizeShortSide(try loadImage(path: path), to: 256), size: 256)
            for o in offsets[i] {
                XCTAssertTrue((0..<32).contains(o.first.top) && (0..<32).contains(o.second.left))
                let a = crop(square, left: o.first.left, top: o.first.top, width: 224, height: 224)
                let b = crop(square, left: o.second.left, top: o.second.top, width: 224, height: 224)
                let z = model.logits(batchTensor([a, b]))
                let za = Array(UnsafeBufferPointer(start: z.data, count: 1000))
                let zb = Array(UnsafeBufferPointer(start: z.data + 1000, count: 1000))
                if topK(za, k: 1)[0].index == topK(zb, k: 1)[0].index { agree += 1 }
            }
        }
        XCTAssertEqual(try XCTUnwrap(result.models[0].shiftConsistency), 100 * Double(agree) / 6, accuracy: 1e-9)
    }

    func testSettingsValidation() {
        var s = InvarianceSettings(kind: .rotate)
        s.pairs = true
        XCTAssertThrowsError(try s.validate()) { XCTAssertTrue("\($0)".contains("translate only")) }
        s = InvarianceSettings(kind: .translate)
        s.pairs = true
        s.cropPct = 1
        XCTAssertThrowsError(try s.validate()) { XCTAssertTrue("\($0)".contains("room to shift")) }
        s = InvarianceSettings(kind: .scale)
        s.batch = 0
        XCTAssertThrowsError(try s.validate()) { XCTAssertTrue("\($0)".contains("--batch")) }
        s = InvarianceSettings(kind: .scale)
        s.levels = []
        XCTAssertThrowsError(try s.validate()) { XCTAssertTrue("\($0)".contains("no levels")) }
    }
}
