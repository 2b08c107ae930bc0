// Parity of U-PVT (`PvtBlock`) with ../shared/reference/pvt_nano_*: logits, batch, stage outputs
// and ERF centre gradients, through the shared `checkFamily` of ParityTests.swift.

import XCTest

extension ParityTests {
    func testPVTNano() throws { try checkFamily("pvt") }
}
