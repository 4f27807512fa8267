"""pdmodel benchmarks: pdmodel against the tools users would otherwise pick, in one run."""
