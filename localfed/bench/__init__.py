"""Benchmarks of cellfed parts, run by `cellfed bench`: pure functions that measure and return numbers."""
