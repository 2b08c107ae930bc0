// Parity of U-HaloNet (`UnifiedHaloBlock`) with ../shared/reference/halo_nano.*: logits, batch,
// stage outputs and ERF gradients, through the shared `checkFamily` checks. Nothing else here.

import XCTest

extension ParityTests {
    func testHaloNano() throws { try checkFamily("halo") }
}
