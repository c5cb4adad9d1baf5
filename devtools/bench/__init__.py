"""Benchmarks behind `orderloom bench`."""
