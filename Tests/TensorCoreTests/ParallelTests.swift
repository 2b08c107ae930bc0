// TensorCoreTests: the worker pool's contract as `parallelFor` sees it. Every index of a range is
// handed to its body exactly once, whatever the thread count, the grain, and how the pool shares
// the chunks out (each thread its own contiguous share first, then the others' leftovers).
// Leaves out: which thread runs which chunk (not part of the contract) and timing.

import Foundation
import TensorCore
import XCTest

final class ParallelTests: XCTestCase {
    /// Counts, per index, how often a body saw it: each chunk writes only its own indices.
    private func hits(count: Int, grain: Int, threads: Int) -> [Int] {
        let before = Threads.count
        Threads.set(threads)
        defer { Threads.set(before) }
        var seen = [Int](repeating: 0, count: count)
        seen.withUnsafeMutableBufferPointer { buf in
            let p = buf.baseAddress!
            parallelFor(count, grain: grain) { r in
                for i in r { p[i] += 1 }
                // A little work, so that more than one thread is likely to take part.
                var s: UInt64 = 1
                for k in 0..<(200 * r.count) { s = s &* 6364136223846793005 &+ UInt64(k) }
                if s == 42 { print("") }
            }
        }
        return seen
    }

    func testEveryIndexRunsExactlyOnce() {
        for threads in [1, 2, 3, 5, 8] {
            for count in [1, 2, 3, 7, 16, 17, 100, 1000] {
                for grain in [1, 3, 64] {
                    let h = hits(count: count, grain: grain, threads: threads)
                    XCTAssertEqual(h, [Int](repeating: 1, count: count), "threads \(threads), count \(count), grain \(grain)")
                }
            }
        }
    }

    /// Many short runs back to back (workers between spinning and sleeping) and more threads than
    /// chunks: still every index once.
    func testBackToBackRunsAndMoreThreadsThanChunks() {
        for round in 0..<300 {
            let count = 1 + round % 9
            let h = hits(count: count, grain: 1, threads: 8)
            XCTAssertEqual(h, [Int](repeating: 1, count: count), "round \(round)")
        }
    }
}
