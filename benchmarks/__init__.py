"""Benchmarks: AUC tables and throughput comparisons (CLI entry points)."""
