// TensorCore ops: explicit zero padding with a different amount on each side, TensorFlow's "same"
// padding arithmetic, and a strided depth-wise convolution without padding ("valid"), each with its
// input-gradient rule beside it. Together they run TensorFlow-style convolutions (EfficientNet-Lite),
// whose "same" padding is asymmetric at stride 2 (one more row and column after than before), as
// pad + convolution with no padding, leaving the symmetric kernels in Conv2d.swift untouched.
//
// Shape key: N batch, H/W input height/width, Ho/Wo output height/width, C channels, KH/KW kernel.

/// Zero rows and columns added on each side of a map.
public struct Padding2d: Equatable, Sendable, CustomStringConvertible {
    public var top: Int, bottom: Int, left: Int, right: Int

    public init(top: Int, bottom: Int, left: Int, right: Int) {
        precondition(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "Padding2d: negative padding")
        self.top = top
        self.bottom = bottom
        self.left = left
        self.right = right
    }

    /// True when nothing is added.
    public var isZero: Bool { top == 0 && bottom == 0 && left == 0 && right == 0 }

    /// In `torch.nn.functional.pad`'s order for the last two dimensions: (left, right, top, bottom).
    public var description: String { "(\(left), \(right), \(top), \(bottom))" }

    /// TensorFlow's "same" padding for an input of `height` x `width`: the output is ceil(size / stride)
    /// and the total padding max((out - 1) * stride + kernel - size, 0) is split with the odd pixel
    /// after (bottom, right).
    public static func same(height: Int, width: Int, kernel: Int, stride: Int) -> Padding2d {
        let (t, b) = sameAxis(height, kernel: kernel, stride: stride)
        let (l, r) = sameAxis(width, kernel: kernel, stride: stride)
        return Padding2d(top: t, bottom: b, left: l, right: r)
    }

    /// One axis of `same`: (before, after).
    public static func sameAxis(_ size: Int, kernel: Int, stride: Int) -> (Int, Int) {
        let out = (size + stride - 1) / stride
        let total = max((out - 1) * stride + kernel - size, 0)
        return (total / 2, total - total / 2)
    }
}

/// Zero padding of x [N,H,W,C] -> [N, H+top+bottom, W+left+right, C]. The backward crops.
public func pad2d(_ x: Tensor, _ p: Padding2d) -> Tensor {
    precondition(x.rank == 4, "pad2d: input must be [N,H,W,C], got \(x.shape)")
    if p.isZero { return x }
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let hp = h + p.top + p.bottom, wp = w + p.left + p.right
    let out = Tensor(uninitializedShape: [n, hp, wp, c])
    let xp = x.data, op = out.data
    parallelFor(n * hp, grain: grainFor(n * hp, cost: wp * c)) { r in
        for row in r {
            let b = row / hp, y = row % hp, iy = y - p.top
            let dst = op + row * wp * c
            guard iy >= 0 && iy < h else { dst.update(repeating: 0, count: wp * c); continue }
            dst.update(repeating: 0, count: p.left * c)
            (dst + p.left * c).update(from: xp + (b * h + iy) * w * c, count: w * c)
            (dst + (p.left + w) * c).update(repeating: 0, count: p.right * c)
        }
    }
    let xShape = x.shape  // not x: cropping needs only the shape
    return Tape.record(out, inputs: [x]) { dOut in
        // dx is the interior of dOut.
        let dx = Tensor(uninitializedShape: xShape)
        let dp = dOut.data, dxp = dx.data
        parallelFor(n * h, grain: grainFor(n * h, cost: w * c)) { r in
            for row in r {
                let b = row / h, iy = row % h
                (dxp + row * w * c).update(from: dp + ((b * hp + iy + p.top) * wp + p.left) * c, count: w * c)
            }
        }
        return [dx]
    }
}

/// Depth-wise convolution without padding at any stride. x [N,H,W,C]; weight [KH,KW,C] (see
/// `depthwiseWeightHWC`); bias [C] or nil -> [N, (H-KH)/s+1, (W-KW)/s+1, C]. Pad first with `pad2d`.
public func depthwiseConv2dValid(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride s: Int) -> Tensor {
    precondition(x.rank == 4 && weight.rank == 3 && weight.shape[2] == x.shape[3],
                 "depthwiseConv2dValid: input \(x.shape) and weight \(weight.shape) do not fit")
    precondition(s >= 1, "depthwiseConv2dValid: stride must be positive")
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (kh, kw) = (weight.shape[0], weight.shape[1])
    precondition(h >= kh && w >= kw, "depthwiseConv2dValid: input \(h)x\(w) is smaller than the kernel \(kh)x\(kw)")
    let ho = (h - kh) / s + 1, wo = (w - kw) / s + 1
    let out = Tensor(uninitializedShape: [n, ho, wo, c])
    let xp = x.data, wp = weight.data, op = out.data
    let bp: UnsafeMutablePointer<Float>? = bias?.data
    parallelFor(n * ho, grain: grainFor(n * ho, cost: wo * kh * kw * c)) { r in
        let list = TapList(capacity: kh * kw)
        defer { list.release() }
        // Every column reads all its taps; at stride 1 neighbours' sources are one vector apart.
        for row in r {
            let b = row / ho, oy = row % ho
            var ox = 0
            while ox < wo {
                let run = s == 1 ? wo - ox : 1
                depthwiseTaps(into: op + ((b * ho + oy) * wo + ox) * c, bias: bp, c: c, kh: kh, kw: kw, weights: wp, list: list,
                              pixels: run) { ky, kx in
                    xp + ((b * h + oy * s + ky) * w + ox * s + kx) * c
                }
                ox += run
            }
        }
    }
    let xShape = x.shape  // not x: the input gradient needs only the weight
    return Tape.record(out, inputs: [x]) { dOut in
        // dx[y,x] = sum over taps with (y - ky) and (x - kx) divisible by s of weight[ky,kx] * dOut[(y-ky)/s, (x-kx)/s]
        let dx = Tensor(uninitializedShape: xShape)
        let dp = dOut.data, dxp = dx.data, wp = weight.data
        parallelFor(n * h, grain: grainFor(n * h, cost: w * kh * kw * c)) { r in
            let list = TapList(capacity: kh * kw)
            defer { list.release() }
            // At stride 1, columns kw-1...wo-1 take every tap from inside dOut's row.
            let lo = s == 1 ? kw - 1 : w, hi = s == 1 ? min(w, wo) : w
            for row in r {
                let b = row / h, iy = row % h
                var ix = 0
                while ix < w {
                    let run = tapRun(ix, lo, hi)
                    depthwiseTaps(into: dxp + ((b * h + iy) * w + ix) * c, bias: nil, c: c, kh: kh, kw: kw, weights: wp, list: list,
                                  pixels: run) { ky, kx in
                        let ty = iy - ky, tx = ix - kx
                        guard ty >= 0, tx >= 0, ty % s == 0, tx % s == 0 else { return nil }
                        let oy = ty / s, ox = tx / s
                        return oy < ho && ox < wo ? dp + ((b * ho + oy) * wo + ox) * c : nil
                    }
                    ix += run
                }
            }
        }
        return [dx]
    }
}
