"""Benchmarks of openqq-bridge against the raw limit of the same stack (``python -m bench``)."""
