"""Processors: pure transformations of batches. Each module has a frozen `Config` and a processor."""
