// Placeholder entry point; replaced by the ArgumentParser command tree.
print("stm-analyze")
