"""10-way cross-validated genre accuracy of an encoder on the stimuli of a simulated (or real) study.

Usage::

    brain2music simulate STUDY            # or: python -c "from brain2music.simulate import simulate_study; ..."
    python benchmarks/bench_embed_genres.py STUDY [--encoder acoustic] [--cache-dir DIR]

Embeds the experiment's clips (``STUDY/stimuli`` cut as listed by ``STUDY/bids``), averages each clip's
windows, and scores a standardised logistic regression with stratified 10-fold cross-validation. Also
prints the same with shuffled genre labels (chance: 0.10) and with the full ``(r * dim)`` vector.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", help="folder written by brain2music simulate (holds bids/ and stimuli/)")
    parser.add_argument("--encoder", default="acoustic")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from brain2music.embeddings import embed_folder

    study = Path(args.study)
    cache = args.cache_dir or tempfile.mkdtemp(prefix="b2m-genres-")
    print(f"load average at start: {os.getloadavg()}")
    t0 = time.perf_counter()
    res = embed_folder(study / "stimuli", args.encoder, bids=study / "bids", cache_dir=cache, progress=False)
    t = time.perf_counter() - t0
    print(
        f"embedded {len(res)} clips with {args.encoder!r} in {t:.1f} s ({res.n_computed_} computed, "
        f"{res.n_cached_} cached): shape {res.embeddings.shape}"
    )
    genres = np.array([c.split(".")[0] for c in res.clip_ids])
    cv = StratifiedKFold(n_splits=10, shuffle=True, random_state=0)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    rng = np.random.default_rng(0)
    for label, X in (
        ("window mean", res.embeddings.mean(axis=1)),
        ("all windows", res.embeddings.reshape(len(res), -1)),
    ):
        scores = cross_val_score(clf, X, genres, cv=cv)
        shuffled = cross_val_score(clf, X, rng.permutation(genres), cv=cv)
        print(
            f"{args.encoder} ({label}, {X.shape[1]} features): 10-fold genre accuracy "
            f"{scores.mean():.3f} ± {scores.std():.3f} over {len(genres)} clips of {len(set(genres))} genres; "
            f"shuffled labels {shuffled.mean():.3f} ± {shuffled.std():.3f} (chance {1 / len(set(genres)):.2f})"
        )


if __name__ == "__main__":
    main()
