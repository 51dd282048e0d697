"""Benchmark suites as sweeps of Hydra jobs: definitions (``benchmarks/suites/*.yaml``), a resumable runner over any
Hydra launcher, and a report with IQM, bootstrap intervals, probability of improvement and performance profiles.
Entry point: ``python -m benchmarks``."""
