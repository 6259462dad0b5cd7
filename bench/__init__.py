"""baton's benchmarks: `python -m bench [--quick] [--json]`. Every figure is a ratio against a
baseline measured in the same run."""
