"""``python -m benchmarks``: run the fan-out benchmarks."""

from __future__ import annotations

from benchmarks.cli import main

if __name__ == "__main__":
    main()
