"""raikit benchmarks: speed ratios against a baseline measured in the same process (never timed tests)."""
