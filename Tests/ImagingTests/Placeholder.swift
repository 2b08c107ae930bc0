// Placeholder so the target builds; replaced as its tests are written.
