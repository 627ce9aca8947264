"""Benchmarks: scripts that print figures and ratios measured side by side, never timed tests."""
