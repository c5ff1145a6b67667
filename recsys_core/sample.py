"""Where the bundled MovieLens sample lives, and how the benchmark may cut it.

Kept free of heavy imports: the command line reads these names while it builds its parser,
before any command has asked for numpy, pandas or torch.
"""

from __future__ import annotations

from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data" / "ml-latest-small"
SAMPLE_RATINGS = SAMPLE_DIR / "ratings.csv"
#: The fixed 80/10/10 split used for every side-by-side comparison with other libraries.
SAMPLE_SPLIT_FILE = SAMPLE_DIR / "split_random_80_10_10.csv"
#: Splits the benchmark accepts: the fixed file, a random 80/10/10, or leave-last-out by time.
BENCH_PROTOCOLS = ("fixed", "random", "leave_last")
