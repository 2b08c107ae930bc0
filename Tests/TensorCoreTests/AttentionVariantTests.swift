// Tests of the attention activations (softmax, scale, scale-relu, layernorm, layernorm-relu) and the
// depth-wise attention: values worked out by hand on tiny tensors, a PyTorch module written from the
// formulas (Tests/Fixtures/attention/make_fixtures.py, float64; outputs and input gradients), and
// finite differences through every variant.
//
// Shape key: B sequences, Lq queries, Lk keys, Hd heads, Dk/Dv widths per head, L tokens, C channels.

import Foundation
import XCTest
@testable import TensorCore

final class AttentionVariantTests: XCTestCase {
    // MARK: by hand

    /// One query q = 1 (Dk = 1, scale 1), keys k = (1, 2, 3) or (-1, 2, 3), values v = (1, 10, 100).
    private func single(_ act: AttentionActivation, keys: [Float] = [1, 2, 3], mask: [Float]? = nil) -> Float {
        let q = Tensor(shape: [1, 1, 1], values: [1])                  // [B, Lq, Dk]
        let k = Tensor(shape: [1, 3, 1], values: keys)                 // [B, Lk, Dk]
        let v = Tensor(shape: [1, 3, 1], values: [1, 10, 100])         // [B, Lk, Dv]
        let bias = AttentionBias(perGroup: mask.map { Tensor(shape: [1, 1, 3], values: $0) })
        return attention(q: AttentionOperand(q), k: AttentionOperand(k), v: AttentionOperand(v), heads: 1,
                         keyWidth: 1, valueWidth: 1, scale: 1, bias: bias, activation: act).values[0]
    }

    func testScaleByHand() {
        // logits (1, 2, 3) / 3 = (1/3, 2/3, 1): 1/3 + 20/3 + 100 = 107
        XCTAssertEqual(single(.scale(by: 3)), 107, accuracy: 1e-4)
        // head_dim reading, D = 1 here: 1 + 20 + 300 = 321
        XCTAssertEqual(single(.scale(by: 1)), 321, accuracy: 1e-3)
        // logits (-1, 2, 3): plain scale keeps the negative weight, -1/3 + 20/3 + 100 = 106.333...
        XCTAssertEqual(single(.scale(by: 3), keys: [-1, 2, 3]), 106.333336, accuracy: 1e-4)
        // scale-relu drops it: 20/3 + 100 = 106.666...
        XCTAssertEqual(single(.scale(by: 3, relu: true), keys: [-1, 2, 3]), 106.666664, accuracy: 1e-4)
        // an absent key (mask < 0) weighs 0: 1/3 + 100
        XCTAssertEqual(single(.scale(by: 3), mask: [0, -100, 0]), 100.333336, accuracy: 1e-4)
    }

    func testLayerNormByHand() {
        // logits (1, 2, 3): mean 2, variance 2/3, so x-hat = (-1, 0, 1) / sqrt(2/3 + 1e-5) = (-r, 0, r),
        // r = 1.2247357. With weight (2, 1, 1), bias (0.5, 0, 0): weights (0.5 - 2r, 0, r).
        let w = Tensor(shape: [3], values: [2, 1, 1]), b = Tensor(shape: [3], values: [0.5, 0, 0])
        let r: Float = 1 / (2.0 / 3.0 + 1e-5 as Float).squareRoot()
        XCTAssertEqual(r, 1.2247357, accuracy: 1e-6)
        XCTAssertEqual(single(.layerNorm(weight: w, bias: b)), (0.5 - 2 * r) + 100 * r, accuracy: 1e-3)
        // layernorm-relu: the first weight 0.5 - 2r < 0 is cut: 100 r.
        XCTAssertEqual(single(.layerNorm(weight: w, bias: b, relu: true)), 100 * r, accuracy: 1e-3)
        // key 1 absent: statistics over (1, 3): mean 2, variance 1, x-hat (-1, ., 1) / sqrt(1 + 1e-5).
        let r1: Float = 1 / (1 + 1e-5 as Float).squareRoot()
        XCTAssertEqual(single(.layerNorm(weight: w, bias: b), mask: [0, -1e9, 0]), (0.5 - 2 * r1) + 100 * r1, accuracy: 1e-3)
    }

    func testDepthwiseByHand() {
        // q = ((1, 2), (3, 4)), k = ((1, 0), (0, 2)): k-bar = (0.5, 1); p = ((0.5, 0), (0, 1)).
        // o_0 = (0.5, 2) + 0.5 k_0 = (1, 2); o_1 = (1.5, 4) + k_1 = (1.5, 6).
        let q = Tensor(shape: [1, 2, 2], values: [1, 2, 3, 4])
        let k = Tensor(shape: [1, 2, 2], values: [1, 0, 0, 2])
        let p = Tensor(shape: [1, 2, 2], values: [0.5, 0, 0, 1])
        let o = depthwiseAttention(q: AttentionOperand(q), k: AttentionOperand(k), channels: 2, heads: 1, position: p)
        XCTAssertEqual(o.values, [1, 2, 1.5, 6])
        // Query 0 cannot see key 1: k-bar_0 = k_0 = (1, 0), o_0 = (1, 0) + 0.5 k_0 = (1.5, 0).
        let m = Tensor(shape: [1, 2, 2], values: [0, -100, 0, 0])
        let om = depthwiseAttention(q: AttentionOperand(q), k: AttentionOperand(k), channels: 2, heads: 1, position: p, mask: m)
        XCTAssertEqual(om.values, [1.5, 0, 1.5, 6])
    }

    // MARK: against the PyTorch module

    private struct Fixture: Decodable {
        struct Attn: Decodable {
            struct Case: Decodable {
                var activation: String, scale: String, masked: Bool
                var out: [Float], dq: [Float], dk: [Float], dv: [Float]
                var ln_weight: [Float]?, ln_bias: [Float]?
            }
            var B: Int, heads: Int, Lq: Int, Lk: Int, Dk: Int, Dv: Int
            var q: [Float], k: [Float], v: [Float], bias: [Float], mask: [Float], cases: [Case]
        }
        struct Depthwise: Decodable {
            struct Case: Decodable { var masked: Bool, out: [Float], dq: [Float], dk: [Float] }
            var B: Int, heads: Int, L: Int, C: Int, q: [Float], k: [Float], position: [Float], mask: [Float], cases: [Case]
        }
        var attention: Attn
        var depthwise: Depthwise
    }

    private func fixture() throws -> Fixture {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/attention/attention_variants.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    private func assertClose(_ a: [Float], _ e: [Float], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, e.count, what, file: file, line: line)
        let peak = e.map(abs).max() ?? 0
        for (x, y) in zip(a, e) where abs(x - y) > 1e-5 + 1e-5 * peak {
            XCTFail("\(what): \(x) vs PyTorch \(y)", file: file, line: line)
            return
        }
    }

    /// Weights w = linspace(-1, 1, n), the PyTorch script's seed for the backward.
    private func linspace(_ n: Int) -> Tensor {
        Tensor(shape: [n], values: (0..<n).map { n == 1 ? -1 : Float(-1 + 2 * Double($0) / Double(n - 1)) })
    }

    func testActivationsMatchPyTorch() throws {
        let f = try fixture().attention
        XCTAssertEqual(f.cases.count, 12)
        for c in f.cases {
            let act: AttentionActivation
            switch c.activation {
            case "softmax": act = .softmax
            case "scale", "scale-relu":
                act = .scale(by: Float(c.scale == "keys" ? f.Lk : f.Dk), relu: c.activation == "scale-relu")
            default:
                act = .layerNorm(weight: Tensor(shape: [f.Lk], values: c.ln_weight!), bias: Tensor(shape: [f.Lk], values: c.ln_bias!),
                                 relu: c.activation == "layernorm-relu")
            }
            let q = Tensor(shape: [f.B, f.Lq, f.heads * f.Dk], values: f.q).requiringGrad()  // [B, Lq, Hd*Dk]
            let k = Tensor(shape: [f.B, f.Lk, f.heads * f.Dk], values: f.k).requiringGrad()  // [B, Lk, Hd*Dk]
            let v = Tensor(shape: [f.B, f.Lk, f.heads * f.Dv], values: f.v).requiringGrad()  // [B, Lk, Hd*Dv]
            let bias = AttentionBias(perHead: Tensor(shape: [f.heads, f.Lq, f.Lk], values: f.bias),
                                     perGroup: c.masked ? Tensor(shape: [f.B, f.Lq, f.Lk], values: f.mask) : nil)
            let out = attention(q: AttentionOperand(q), k: AttentionOperand(k), v: AttentionOperand(v), heads: f.heads,
                                keyWidth: f.Dk, valueWidth: f.Dv, scale: 1 / Float(f.Dk).squareRoot(), bias: bias, activation: act)
            let name = "\(c.activation) (\(c.scale), masked \(c.masked))"
            assertClose(out.values, c.out, name + " output")
            Tape.backward(out, seed: linspace(out.count).reshaped(out.shape))
            assertClose(Tape.gradient(of: q).values, c.dq, name + " dq")
            assertClose(Tape.gradient(of: k).values, c.dk, name + " dk")
            assertClose(Tape.gradient(of: v).values, c.dv, name + " dv")
        }
    }

    func testDepthwiseMatchesPyTorch() throws {
        let f = try fixture().depthwise
        for c in f.cases {
            let q = Tensor(shape: [f.B, f.L, f.C], values: f.q).requiringGrad()  // [B, L, C]
            let k = Tensor(shape: [f.B, f.L, f.C], values: f.k).requiringGrad()  // [B, L, C]
            let out = depthwiseAttention(q: AttentionOperand(q), k: AttentionOperand(k), channels: f.C, heads: f.heads,
                                         position: Tensor(shape: [f.heads, f.L, f.L], values: f.position),
                                         mask: c.masked ? Tensor(shape: [f.B, f.L, f.L], values: f.mask) : nil)
            assertClose(out.values, c.out, "depthwise (masked \(c.masked)) output")
            Tape.backward(out, seed: linspace(out.count).reshaped(out.shape))
            assertClose(Tape.gradient(of: q).values, c.dq, "depthwise dq")
            assertClose(Tape.gradient(of: k).values, c.dk, "depthwise dk")
        }
    }

    // MARK: finite differences

    private func activations(keys lk: Int, rng: inout TestRNG) -> [(String, AttentionActivation)] {
        let w = Tensor(shape: [lk], values: (0..<lk).map { _ in 1 + 0.3 * rng.uniform() })
        let b = Tensor(shape: [lk], values: (0..<lk).map { _ in 0.3 * rng.uniform() })
        return [("softmax", .softmax), ("scale", .scale(by: Float(lk))), ("scale-relu", .scale(by: 2, relu: true)),
                ("layernorm", .layerNorm(weight: w, bias: b)), ("layernorm-relu", .layerNorm(weight: w, bias: b, relu: true))]
    }

    func testActivationGradientsFiniteDifference() {
        var rng = TestRNG(7)
        let (b, lq, lk, heads, dk) = (2, 3, 5, 2, 3)
        let q = rng.tensor([b, lq, heads * dk])          // [B, Lq, Hd*Dk]
        let k = rng.tensor([b, lk, heads * dk])          // [B, Lk, Hd*Dk]
        let v = rng.tensor([b, lk, heads * dk])          // [B, Lk, Hd*Dv]
        let logits = rng.tensor([b, heads, lq, lk], scale: 0.5)  // [B, Hd, Lq, Lk]
        var maskValues = [Float](repeating: 0, count: b * lq * lk)
        maskValues[lq * lk + 1] = -100
        maskValues[lq * lk + lk + 3] = -100
        let mask = Tensor(shape: [b, lq, lk], values: maskValues)  // [G, Lq, Lk]
        for (name, act) in activations(keys: lk, rng: &rng) {
            for masked in [false, true] {
                let bias = AttentionBias(perGroup: masked ? mask : nil)
                func run(_ q: Tensor, _ k: Tensor, _ v: Tensor, _ l: Tensor) -> Tensor {
                    attention(q: AttentionOperand(q), k: AttentionOperand(k), v: AttentionOperand(v), heads: heads,
                              keyWidth: dk, valueWidth: dk, scale: 0.6, bias: bias, logits: l, activation: act)
                }
                // A smaller step for the ReLU variants, so that fewer steps cross a kink.
                let eps: Float = name.hasSuffix("relu") ? 1e-3 : 1e-2
                checkGradient("\(name) dq", q, eps: eps) { run($0, k, v, logits) }
                checkGradient("\(name) dk", k, eps: eps) { run(q, $0, v, logits) }
                checkGradient("\(name) dv", v, eps: eps) { run(q, k, $0, logits) }
                checkGradient("\(name) dlogits", logits, eps: eps) { run(q, k, v, $0) }
            }
        }
    }

    func testDepthwiseGradientsFiniteDifference() {
        var rng = TestRNG(11)
        let (b, l, c, heads) = (3, 4, 6, 2)
        let qk = rng.tensor([b, l, 2 * c])  // [B, L, 2C]: q then k, one tensor as in the Swin block
        let p = rng.tensor([heads, l, l], scale: 0.5)
        var m = [Float](repeating: 0, count: l * l)
        m[1] = -100
        m[2 * l + 3] = -100
        for mask in [nil, Tensor(shape: [1, l, l], values: m)] {
            checkGradient("depthwise dqk", qk) {
                depthwiseAttention(q: AttentionOperand($0), k: AttentionOperand($0, offset: c), channels: c, heads: heads,
                                   position: p, mask: mask)
            }
        }
    }
}
