// Analysis: the seeded generator of the invariance protocols. It is the 32-bit Mersenne Twister
// (MT19937) seeded the way numpy's legacy `np.random.seed(int)` seeds it (Matsumoto and Nishimura's
// init_genrand), with bounded integers drawn as numpy's legacy `randint(n)` draws them (the low bits
// under the smallest all-ones mask that covers n - 1, redrawn while above n - 1). So a run's jitter
// directions are the ones `np.random.seed(seed)` followed by one `np.random.randint(8)` per image and
// level would give, and the shift-pair offsets those of `np.random.randint(k, size=2)`.
// Not here: numpy's array seeding (init_by_array), floats, 64-bit draws, other distributions.

/// MT19937 with numpy's legacy integer seeding and bounded draws.
public struct MersenneTwister: Sendable {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624

    /// Seeds as `np.random.seed(seed)` (and C++'s `std::mt19937(seed)`) do.
    public init(seed: UInt32) {
        state[0] = seed
        for i in 1..<624 {
            let previous = state[i - 1]
            state[i] = 1_812_433_253 &* (previous ^ (previous >> 30)) &+ UInt32(i)
        }
    }

    /// The next 32 random bits (genrand_int32).
    public mutating func next() -> UInt32 {
        if index >= 624 { regenerate() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    /// A uniform integer in `0..<bound` as numpy's legacy `randint(bound)`: masked rejection sampling.
    /// A bound below 2 gives 0 without consuming bits, as numpy does for an empty range of one value.
    public mutating func randint(_ bound: UInt32) -> UInt32 {
        guard bound > 1 else { return 0 }
        let limit = bound - 1
        var mask = limit
        mask |= mask >> 1
        mask |= mask >> 2
        mask |= mask >> 4
        mask |= mask >> 8
        mask |= mask >> 16
        while true {
            let value = next() & mask
            if value <= limit { return value }
        }
    }

    private mutating func regenerate() {
        for i in 0..<624 {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7FFF_FFFF)
            var v = state[(i + 397) % 624] ^ (y >> 1)
            if y & 1 != 0 { v ^= 0x9908_B0DF }
            state[i] = v
        }
        index = 0
    }
}
