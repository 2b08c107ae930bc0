// COCOEval: numpy's mean of a float64 array, bit for bit: the pairwise summation of numpy's add
// reduction (blocks of eight running sums, leaves of at most 128 values, halves split at a multiple
// of 8), divided by the count. Nothing else of numpy is reproduced here.

/// numpy's pairwise sum of `values` (`DOUBLE_pairwise_sum` applied to the whole array, as `np.sum`
/// does for a contiguous 1-d array).
public func numpyPairwiseSum(_ values: [Double]) -> Double {
    values.withUnsafeBufferPointer { pairwiseSum($0.baseAddress, $0.count) }
}

/// numpy's `np.mean` of a 1-d float64 array: the pairwise sum divided by the count (NaN when empty).
public func numpyMean(_ values: [Double]) -> Double {
    numpyPairwiseSum(values) / Double(values.count)
}

private func pairwiseSum(_ a: UnsafePointer<Double>?, _ n: Int) -> Double {
    guard let a, n > 0 else { return 0 }
    if n < 8 {
        var sum = 0.0
        for i in 0..<n { sum += a[i] }
        return sum
    }
    if n <= 128 {
        var r0 = a[0], r1 = a[1], r2 = a[2], r3 = a[3], r4 = a[4], r5 = a[5], r6 = a[6], r7 = a[7]
        var i = 8
        let blocked = n - n % 8
        while i < blocked {
            r0 += a[i]; r1 += a[i + 1]; r2 += a[i + 2]; r3 += a[i + 3]
            r4 += a[i + 4]; r5 += a[i + 5]; r6 += a[i + 6]; r7 += a[i + 7]
            i += 8
        }
        var sum = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        while i < n {
            sum += a[i]
            i += 1
        }
        return sum
    }
    var half = n / 2
    half -= half % 8
    return pairwiseSum(a, half) + pairwiseSum(a + half, n - half)
}
