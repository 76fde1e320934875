"""The flash-sale benchmark: `python -m bench.run` (see bench/README.md)."""
