"""Profile ``reproduce`` on a study folder: wall time and the cProfile entries by cumulative time.

    python benchmarks/profile_reproduce.py STUDY [--encoders acoustic,musicnn-msd] [--cache-dir DIR] [--top 45]

``STUDY`` holds ``bids/`` and ``stimuli/`` (``brain2music simulate STUDY`` or a demo's ``OUT/study``). With an
empty or absent ``--cache-dir`` the embeddings are computed and profiled too. Prints the wall time, then
pstats' table (cumulative order).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", type=Path)
    p.add_argument("--encoders", default="acoustic")
    p.add_argument("--methods", default="ridge,ensemble,encsel,aligned,krr-rbf")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--top", type=int, default=45)
    args = p.parse_args()

    from brain2music.study.reproduce import reproduce

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        prof = cProfile.Profile()
        prof.enable()
        reproduce(
            args.study / "bids", stimuli=args.study / "stimuli", encoders=args.encoders.split(","),
            out=Path(tmp) / "results", methods=args.methods.split(","), verbose=False,
            cache_dir=args.cache_dir or Path(tmp) / "cache",
        )  # fmt: skip
        prof.disable()
        print(f"wall {time.perf_counter() - t0:.1f} s")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
