"""Fan-out benchmarks: the project against a raw ``websockets`` server and stock Channels.

Run ``python -m benchmarks --help`` (or ``make bench``); the method and the
latest numbers are in ``docs/performance.md``.
"""
