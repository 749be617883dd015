"""Benchmarks: the pipeline run per sequence (preprocess -> classify -> densify -> masks) and
its scoring (``evaluate.py``)."""
