"""Benchmark scripts that print their figures (run each as `python bench/NAME.py`): never timed assertions."""
