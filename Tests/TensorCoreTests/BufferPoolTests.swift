// The buffer pool resizes a free mapping for a request that no free buffer fits, instead of mapping
// more pages beside it: the pool's free bytes go down, and the whole resized buffer is usable.
// Shapes: flat tensors of a few MB.

import XCTest
@testable import TensorCore

final class BufferPoolTests: XCTestCase {
    func testARequestNoFreeBufferFitsResizesAFreeMapping() {
        BufferPool.drain()
        do { _ = Tensor(shape: [512 * 1024], repeating: 1) }  // 2 MiB, back in the pool
        XCTAssertEqual(BufferPool.cachedBytes, 2 << 20)
        // 5 MiB: more than `stretch` times 2 MiB, so only a resize reuses the free mapping.
        do {
            let big = Tensor(shape: [5 * 256 * 1024], repeating: 3)
            XCTAssertEqual(BufferPool.cachedBytes, 0, "the free 2 MiB mapping was grown, not left beside a new one")
            XCTAssertEqual(big.values.reduce(0, +), 3 * Float(big.count))
        }
        XCTAssertEqual(BufferPool.cachedBytes, 5 << 20)
        // Smaller than every free buffer by more than `stretch`: the 5 MiB mapping is shrunk.
        let small = Tensor(shape: [80 * 1024], repeating: 2)  // 320 KiB
        XCTAssertEqual(BufferPool.cachedBytes, 0)
        XCTAssertEqual(small.values.reduce(0, +), 2 * Float(small.count))
        BufferPool.drain()
    }
}
