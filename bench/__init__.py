"""Benchmark scripts (run them as files: `python bench/pipeline.py`); see BENCHMARKS.md."""
