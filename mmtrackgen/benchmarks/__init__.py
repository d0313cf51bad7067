"""Benchmarks (``suites``: timing and memory of the models, written as JSON) and the training
memory model (``memory_model``) of TrackDiffusion configs. ``tools/benchmark.py`` and
``tools/analysis/memory_model.py`` are their command lines."""
