// ExactFloatSums adds float32 values exactly, so any order and any split into parts gives the same
// bits (where a Double running sum does not); SHA256Digest matches FIPS 180-4's test vectors and
// coreutils on a file.

import Analysis
import Foundation
import XCTest

final class ExactSumTests: XCTestCase {
    func testSumsAreExactAndOrderIndependent() {
        // Values a Double running sum adds differently in different orders: 1e30, small ones, -1e30.
        var values: [Float] = [1e30, 3e-7, 1.5, -1e30, 2.5e-38, 1e-45, 7, 0.1, 123456.78, -0.1]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 { values.append(Float.random(in: -1000...1000, using: &rng) * Float(pow(2.0, Double(Int.random(in: -60...60, using: &rng))))) }
        func sum(_ v: [Float]) -> ExactFloatSums {
            var s = ExactFloatSums(count: 1)
            for x in v { [x].withUnsafeBufferPointer { s.add($0.baseAddress!) } }
            return s
        }
        let forward = sum(values)
        XCTAssertEqual(sum(values.reversed()), forward)
        XCTAssertEqual(sum(values.shuffled()), forward)
        // Split into two parts summed apart, then added.
        var a = sum(Array(values[0..<77])), b = sum(Array(values[77...]))
        a.add(b)
        XCTAssertEqual(a, forward)
        b.add(sum(Array(values[0..<77])))
        XCTAssertEqual(b, forward)

        // Exact on known sums: 1e30 - 1e30 cancels exactly, the rest is what remains.
        let small: [Float] = [1e30, 0.5, -1e30, 0.25, 1e-45]
        XCTAssertEqual(sum(small).value(at: 0), 0.75 + Double(Float(1e-45)))
        XCTAssertEqual(sum([-2, 0.5]).value(at: 0), -1.5)
        XCTAssertEqual(sum([Float.greatestFiniteMagnitude, Float.greatestFiniteMagnitude]).value(at: 0), 2 * Double(Float.greatestFiniteMagnitude))
        // A Double running sum loses 0.5 next to 1e30 (which is why merged shards needed exact sums).
        XCTAssertNotEqual(small.reduce(0.0) { $0 + Double($1) }, 0.75 + Double(Float(1e-45)))
    }

    func testSHA256KnownVectors() throws {
        XCTAssertEqual(SHA256Digest.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256Digest.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256Digest.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // A file read in chunks equals the digest of its bytes at once.
        let path = NSTemporaryDirectory() + "sha-\(UUID().uuidString).bin"
        let bytes = Data((0..<(9 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) })
        try bytes.write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try SHA256Digest.hex(file: path), SHA256Digest.hex(bytes))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [path]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let coreutils = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).prefix(64)
        p.waitUntilExit()
        XCTAssertEqual(try SHA256Digest.hex(file: path), String(coreutils))
    }
}
