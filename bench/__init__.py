"""Benchmarks (never timed tests): ``make bench``, ``make bench-mail``, ``make bench-policy``,
``make bench-replay``. The pure parts are in :mod:`bench.figures` (unit-tested)."""
