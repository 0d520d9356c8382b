"""Benchmarks (``python -m bench``): ratios to baselines measured in the same run, never timed tests."""
