// Weights the model reads only through a copy in another layout (a dense convolution's [O, KH*KW*C]
// matrix, HaloNet's reordered kv matrix) hand their own pages back once that copy is made, and give
// back exactly the values they were assigned when read; the layer's output does not change.
// Shapes: conv weight [O, C, K, K]; halo kv weight [Hd*(Dk+Dv), C].

@testable import Models
import TensorCore
import XCTest

final class DerivedWeightTests: XCTestCase {
    private func values(_ count: Int, seed: Int) -> [Float] {
        (0..<count).map { Float(sin(Double($0 * 7 + seed))) * 0.05 }
    }

    func testConvolutionWeightIsReleasedAndRestoredExactly() {
        let conv = Conv2d(128, 256, kernel: 3, stride: 2, padding: 1)  // 1.2 MB of weight
        let v = values(conv.weight.count, seed: 1)
        conv.weight.assign(v)
        conv.bias!.assign(values(256, seed: 2))
        conv.prepare()
        XCTAssertTrue(conv.weight.tensor.storage.isUnpackedReleased)
        let x = Tensor(shape: [1, 9, 9, 128], values: values(9 * 9 * 128, seed: 3))
        let y = conv(x).values
        let expected = conv2d(x, weight: convWeightOHWI(v, o: 256, c: 128, kh: 3, kw: 3), bias: conv.bias!.tensor,
                              kernel: (3, 3), stride: 2, pad: 1).values
        XCTAssertEqual(y.map(\.bitPattern), expected.map(\.bitPattern))
        XCTAssertEqual(conv.weight.values, v, "restored from the [O, KH*KW*C] matrix")
        XCTAssertFalse(conv.weight.tensor.storage.isUnpackedReleased)
        // Preparing again (as after a new checkpoint) reads the values and releases them once more.
        conv.prepare()
        XCTAssertTrue(conv.weight.tensor.storage.isUnpackedReleased)
        XCTAssertEqual(conv(x).values.map(\.bitPattern), expected.map(\.bitPattern))
    }

    func testHaloKeyValueWeightIsReleasedAndRestoredExactly() throws {
        let model = UnifiedModel(config: try XCTUnwrap(Presets.named("unified_halo_tiny")))
        let kvs = model.namedParameters().filter { $0.0.hasSuffix("attn.kv.weight") && $0.1.count * 4 >= 1 << 18 }
        XCTAssertFalse(kvs.isEmpty)
        var assigned: [String: [Float]] = [:]
        for (i, (name, p)) in kvs.enumerated() {
            assigned[name] = values(p.count, seed: 10 + i)
            p.assign(assigned[name]!)
        }
        model.prepareAll()
        for (name, p) in kvs {
            XCTAssertTrue(p.tensor.storage.isUnpackedReleased, name)
            XCTAssertEqual(p.values, assigned[name], "\(name) restored from the reordered kv matrix")
        }
    }
}
