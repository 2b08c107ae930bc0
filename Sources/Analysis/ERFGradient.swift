// Analysis: the gradient at the heart of the ERF. For each requested stage S, the scalar
// `sum_n sum_c relu(y_S[n, c, H/2, W/2])` of the stage output (after its stage norm) is
// differentiated with respect to the input images; the gradient is passed through `relu` (or `abs`)
// and summed over channels, per image. One forward serves every stage: the passes run stage by
// stage from the highest down, each stage's part of the graph released after its last pass
// (`Tape.backwardEach`, cutting the graph where each stage hands on to the next), so the peak memory
// is that of the highest stage's pass. Only the centre of the highest
// stage is differentiated, so its last block runs its token-wise channel MLP on the centre alone
// (`Backbone.forwardToCentre`; the same bits). Averaging over images, log scaling and ERF@t are elsewhere.
//
// Shape key: N batch, H/W input height/width, h/w stage map height/width, C channels.

import Models
import TensorCore

/// How the input gradient becomes a non-negative contribution.
public enum GradientReduction: String, CaseIterable, Sendable {
    /// `relu(grad)`, as the study and RepLKNet's tool do.
    case relu
    /// `|grad|`, as some other ERF tools do.
    case abs
}

/// Per-image contribution maps of the centre point of each stage.
/// - Parameters:
///   - input: [N,H,W,3] normalised images.
///   - stages: stage numbers 1...4.
///   - centreOnly: the highest stage's output is computed at its centre alone (`forwardToCentre`);
///     false runs the whole map, the slower definition the tests compare with. The maps are the same.
/// - Returns: stage -> [N, H, W] maps (row-major, per image), with NaN preserved for the caller to judge.
public func centreContributions(model: any Backbone, input: Tensor, stages: [Int],
                                reduction: GradientReduction = .relu, centreOnly: Bool = true) -> [Int: Tensor] {
    let wanted = Array(Set(stages)).sorted()
    guard let last = wanted.last else { return [:] }
    let x = input.detached().requiringGrad()
    // The stage outputs, and what each stage hands on to the next (the backward passes cut there;
    // the whole-map definition hands on its outputs).
    let outputs: [Tensor], trunk: [Tensor]
    if centreOnly {
        (outputs, trunk) = model.forwardToCentreWithTrunk(x, through: last)
    } else {
        outputs = model.forward(x, through: last, logits: false).stages
        trunk = outputs
    }
    let (n, hIn, wIn) = (input.shape[0], input.shape[1], input.shape[2])
    var result: [Int: Tensor] = [:]
    // One pass per stage, from one forward: stage by stage from the last down, holding no more memory
    // than the last stage's pass alone (Tape.backwardEach).
    let roots = wanted.map { outputs[$0 - 1] }
    Tape.backwardEach(roots, cuts: wanted.map { trunk[$0 - 1] }, seed: { i in
        let y = roots[i]  // [N,h,w,C], or [N,1,1,C] for the highest stage with centreOnly
        let (h, w, c) = (y.shape[1], y.shape[2], y.shape[3])
        // d/dy of sum_c relu(y[n, c, h/2, w/2]) is 1 where that centre value is positive.
        let seed = Tensor.zeros(y.shape)
        for b in 0..<n {
            let base = ((b * h + h / 2) * w + w / 2) * c
            for ch in 0..<c where y.data[base + ch] > 0 { seed.data[base + ch] = 1 }
        }
        return seed
    }, leaf: x) { i, g in  // g [N,H,W,3]
        let map = Tensor(uninitializedShape: [n, hIn, wIn])
        withExtendedLifetime(g) {  // g is read through its pointer below
            let gp = g.data, mp = map.data
            // One loop per reduction (the choice out of the pixel loop); channels added in order from 0.
            func reduce(_ f: (Float) -> Float) {
                for p in 0..<(n * hIn * wIn) {
                    var acc: Float = 0
                    acc += f(gp[p * 3])
                    acc += f(gp[p * 3 + 1])
                    acc += f(gp[p * 3 + 2])
                    mp[p] = acc
                }
            }
            switch reduction {
            case .relu: reduce { max($0, 0) }
            case .abs: reduce { Swift.abs($0) }
            }
        }
        result[wanted[i]] = map
    }
    return result
}
