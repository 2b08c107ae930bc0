// Parity of U-InternImage (DCNv3) with ../shared/reference/dcnv3_nano*: logits, batch, stage
// outputs and ERF input gradients, through the shared `checkFamily` of ParityTests.

import XCTest

extension ParityTests {
    func testDCNv3Nano() throws { try checkFamily("dcnv3") }
}
