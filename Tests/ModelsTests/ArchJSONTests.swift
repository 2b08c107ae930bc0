// Architecture JSON as a stranger writes it: a syntax error names the line and column, an unknown
// family is reported before anything else and lists the known ones, and every top-level field is
// checked against its range (ArchLimits) with one error naming the file and the field.

import Foundation
import Models
import TestSupport
import XCTest

final class ArchJSONTests: XCTestCase {
    private func write(_ text: String) -> String {
        let path = temporaryDirectory() + "/arch.json"
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    /// A valid convnext architecture with `field` replaced by `value` (raw JSON), or removed when nil.
    private func convnext(_ field: String, _ value: String?) -> String {
        var fields: [(String, String)] = [("family", #""convnext""#), ("img_size", "224"), ("dims", "[16, 32, 64, 128]"),
                                          ("depths", "[2, 2, 2, 2]"), ("block_kwargs", "{}"), ("extra_transform_ratio", "1.5"),
                                          ("num_classes", "1000"), ("layer_norm_eps", "1e-6")]
        if let i = fields.firstIndex(where: { $0.0 == field }) {
            if let value { fields[i].1 = value } else { fields.remove(at: i) }
        } else if let value { fields.append((field, value)) }
        return "{" + fields.map { "\"\($0.0)\": \($0.1)" }.joined(separator: ", ") + "}"
    }

    private func assertError(_ text: String, _ words: [String], file: StaticString = #filePath, line: UInt = #line) {
        let path = write(text)
        XCTAssertThrowsError(try ArchConfig.load(path: path), text, file: file, line: line) { error in
            let message = "\(error)"
            XCTAssertTrue(message.hasPrefix(path + ": "), message, file: file, line: line)
            XCTAssertFalse(message.contains("\n"), message, file: file, line: line)
            for w in words { XCTAssertTrue(message.contains(w), "'\(w)' not in: \(message)", file: file, line: line) }
        }
    }

    func testTheValidBaseLoads() throws {
        let config = try ArchConfig.load(path: write(convnext("name", nil)))
        XCTAssertEqual(config.dims, [16, 32, 64, 128])
        // The reference files' extra keys (shrinks, eval_size) are accepted.
        XCTAssertEqual(try ArchConfig.load(path: referencePath("swin_nano.json")).family, .swin)
    }

    func testSyntaxErrorsNameLineAndColumn() {
        assertError("{\n  \"family\": \"swin\",\n  \"dims\": [16, 32,, 64]\n}", ["is not valid JSON at line 3, column 19"])
        assertError("{\n  \"family\": \"swin\"\n  \"img_size\": 224\n}", ["line 3, column 3"])
        assertError("{\"family\": \"convnext\",\n \"dims\": [1, 2", ["is not valid JSON at line 2, column 15", "nexpected end"])
        assertError("", ["is not valid JSON"])
        // Columns count characters, not bytes.
        assertError("{\"name\": \"é\", x}", ["line 1, column 15"])
        assertError("[1, 2, 3]", ["must be an object"])
    }

    func testFamilyIsCheckedFirstAndListsTheKnownOnes() {
        // No img_size either: the family is what is reported.
        assertError(#"{"family": "resnet", "dims": [64, 128, 256, 512]}"#, ["unknown family 'resnet'", "known: convnext, swin, halo, pvt, dcnv3"])
        assertError(#"{"dims": [64, 128, 256, 512]}"#, ["lacks the key 'family'", "known families: convnext"])
        assertError(#"{"family": 3}"#, ["family must be a string", "convnext"])
    }

    func testEveryTopLevelFieldIsRangeChecked() {
        let cases: [(String, String?, String)] = [
            ("img_size", "16", "img_size must be between 32 and 4096, got 16"),
            ("img_size", "100000", "img_size must be between 32 and 4096"),
            ("img_size", "230", "img_size must be a multiple of 32"),
            ("img_size", "224.5", "img_size must be a whole number"),
            ("img_size", nil, "lacks the key 'img_size'"),
            ("dims", "[16, 32, 100000, 128]", "dims[2] must be between 2 and 16384, got 100000"),
            ("dims", "[16, 32, 64]", "dims must be a list of 4 whole numbers"),
            ("dims", "[16, 32, 0, 128]", "dims[2] must be between 2"),
            ("dims", "[16, 33, 64, 128]", "dims[1] must be even, got 33"),
            ("dims", "16", "dims must be a list"),
            ("depths", "[2, 2, -1, 2]", "depths[2] must be between 1 and 256, got -1"),
            ("depths", "[2, 2, 2, 2, 2]", "depths must be a list of 4"),
            ("depths", "[2, 2, 1000, 2]", "depths[2] must be between 1 and 256"),
            ("block_kwargs", "[]", "block_kwargs must be an object"),
            ("num_classes", "0", "num_classes must be between 1 and 1000000, got 0"),
            ("num_classes", "\"1000\"", "num_classes must be a whole number"),
            ("layer_norm_eps", "0", "layer_norm_eps must be above 0"),
            ("layer_norm_eps", "-1e-6", "layer_norm_eps must be above 0"),
            ("extra_transform_ratio", "0", "extra_transform_ratio must be above 0"),
            ("extra_transform_ratio", "1e300", "extra_transform_ratio must be above 0 and at most 64"),
            ("layer_scale_init_value", "-1", "layer_scale_init_value must be at least 0"),
            ("name", "5", "name must be a string"),
        ]
        for (field, value, words) in cases {
            assertError(convnext(field, value), [words])
        }
    }

    func testValidateAppliesTheSameRangesToConfigsBuiltInCode() throws {
        var config = try XCTUnwrap(Presets.named("unified_convnext_micro"))
        config.dims[3] = 100_000
        XCTAssertThrowsError(try config.validate(source: "code")) { XCTAssertTrue("\($0)".contains("dims[3] must be even and between 2 and 16384"), "\($0)") }
        config = try XCTUnwrap(Presets.named("unified_convnext_micro"))
        config.family = Family("resnet")
        XCTAssertThrowsError(try config.validate(source: "code")) { XCTAssertTrue("\($0)".contains("unknown family 'resnet'"), "\($0)") }
    }
}
