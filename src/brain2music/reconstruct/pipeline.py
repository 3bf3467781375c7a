"""``brain2music reconstruct``: music from predicted embeddings, by retrieval and by generation, evaluated.

Reads a results folder written by ``brain2music reproduce`` (``results.json`` and
``predictions/<encoder>/<method>/<subject>.npz`` with ``clip_ids``, ``genres``, ``predicted`` and
``target`` of shape ``(n_test, r, dim)``) and a music library built with the same encoder. For each
selected subject and test clip it retrieves the top-``k`` library tracks for the predicted embedding and
generates new audio conditioned on it, then scores both against the originals.

Evaluation (per subject, then mean ± sd over subjects):

- ``id_acc``: identification accuracy (paper Eq. 2–3, windows averaged) between the embeddings of the
  reconstructions and of the original stimuli (the ``target`` embeddings): reconstruction ``i`` must
  correlate more with original ``i`` than with original ``j``. For ``retrieval`` the reconstruction is
  the top-1 track's stored embedding, for ``generation`` the embedding of the generated audio.
- ``chance``: a random library track per clip (mean over 20 draws); ``oracle``: retrieval with the true
  embedding of the original (the best retrieval can do with this library).
- ``genre_agreement``: how often a genre tagger gives the reconstruction the genre it gives the original.
  The tagger is a logistic regression on the window-averaged embeddings of the *training* stimuli
  (``embeddings/<encoder>.npz``, genre from the clip id); ``tagger_accuracy`` is its accuracy on the
  originals. Instrument and mood tags are not available for these encoders and are not reported.

Output folder::

    recon/
      reconstruction.json
      audio/<subject>/<clip_id>.generated.wav
      audio/oracle/<clip_id>.generated.wav     with oracle_generation=True
      offline_bank.npz                          the offline generator's fitted bank (reused on reruns)

``reconstruction.json`` layout (read by the HTML report)::

    {
      "version", "config": {results, library, out, encoder, method, generator, k, n_clips, subjects, ...},
      "encoder": str, "method": str,
      "generator": {generator config},
      "library": {"path", "n_items", "encoder"},
      "subjects": [str],
      "clips": [                                   one entry per (subject, clip)
        {"subject", "clip_id", "genre",
         "original": {"clip_id", "path" (GTZAN file of the stimulus, or null)},
         "retrieved": [{"rank", "path", "title", "artist", "genre", "score"}],   best first
         "oracle": {"path", "title", "genre", "score"},                      retrieval with the true embedding
         "generated": {"path" (relative to recon/), "score" (cosine to the predicted embedding),
                       "score_true" (cosine to the original's embedding),
                       "nearest_library": {"path", "score"} (closest library track: not a copy),
                       "segments": [{"path", "source_start", "output_start", "duration"}] (the library
                       audio a mosaic is made of) or null} or null,
         "oracle_generated": {"path"} or null,              generation from the true embedding (optional)
         "tags": {"original", "retrieved", "generated", "oracle", ["oracle_generated"]}}   tagger genres
      ],
      "evaluation": {
        (every "score" above is a cosine in the library's search space, see MusicLibrary.space)
        "per_subject": [{"subject", "n_clips", "retrieval_id_acc", "generation_id_acc", "chance_id_acc",
                         "oracle_id_acc", "retrieval_genre_agreement", "generation_genre_agreement",
                         "chance_genre_agreement", "oracle_genre_agreement", "oracle_generation_id_acc",
                         "oracle_generation_genre_agreement", "tagger_accuracy",
                         "retrieval_score_mean", "generation_score_mean"}],
        "summary": {metric: {"mean", "sd", "n_subjects"}}
      }
    }
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from brain2music import __version__
from brain2music._io import write_json
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError
from brain2music.reconstruct.encoders import clip_embedding, encoder_name, prepare_clip, resolve_encoder
from brain2music.reconstruct.generators import Generator, cosine_scores, get_generator
from brain2music.reconstruct.library import MusicLibrary
from brain2music.results import read_results

__all__ = ["GenreTagger", "reconstruct", "read_predictions"]


# ----------------------------------------------------------------------------------------------- inputs
def _read_results(results: Path) -> dict:
    return read_results(results)


def _pick_method(results: Path, info: dict, encoder: str, method: str | None) -> str:
    folder = results / "predictions" / encoder
    available = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not available:
        raise DataFileNotFoundError(f"{folder}: no predictions of encoder {encoder!r} in the results folder")
    if method is not None:
        if method not in available:
            raise ConfigError(
                f"method {method!r} has no predictions for encoder {encoder!r}; available: {available}"
            )
        return method
    # The best decoder on the test set, as the paper reconstructs from its best embedding/method.
    best = [
        r
        for r in info.get("summary", [])
        if r.get("encoder") == encoder and r.get("split", "test") == "test" and r.get("method") in available
    ]
    if best:
        return max(best, key=lambda r: r.get("id_acc_mean", 0.0))["method"]
    return "ridge" if "ridge" in available else available[0]


def read_predictions(path: str | os.PathLike) -> dict:
    """Read ``predictions/<encoder>/<method>/<subject>.npz`` → dict of clip_ids, genres, predicted, target."""
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"predictions file not found: {path}")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("clip_ids", "predicted", "target") if k not in z.files]
        if missing:
            raise DataError(f"{path}: missing arrays {missing}; expected clip_ids, genres, predicted, target")
        out = {k: z[k] for k in ("clip_ids", "predicted", "target")}
        out["genres"] = (
            z["genres"] if "genres" in z.files else np.array([str(c).split(".")[0] for c in out["clip_ids"]])
        )
    out["clip_ids"] = out["clip_ids"].astype(str)
    out["genres"] = out["genres"].astype(str)
    p, t = out["predicted"], out["target"]
    if p.ndim == 2:
        p, t = p[:, None], t[:, None]
    if p.shape != t.shape or p.ndim != 3 or len(p) != len(out["clip_ids"]):
        raise DataError(
            f"{path}: predicted {out['predicted'].shape} and target {out['target'].shape} must both be "
            f"(n_test, r, dim) with n_test = {len(out['clip_ids'])} clip ids"
        )
    out["predicted"], out["target"] = p.astype(np.float32), t.astype(np.float32)
    return out


def _stimulus_path(info: dict, clip: str) -> str | None:
    from brain2music.stimuli import find_gtzan_file

    cfg = info.get("config", {}) or {}
    root = next(
        (cfg[k] for k in ("stimuli", "stimuli_dir", "stimuli_root", "stimuli_path") if cfg.get(k)), None
    )
    if root is None:
        return None
    try:
        genre, track = clip.rsplit(".", 1)
        return str(find_gtzan_file(root, genre, int(track)))
    except (ValueError, DataFileNotFoundError):
        return None


def _segments_of(gen) -> list[dict] | None:
    """The source segments of the clip ``gen`` returned last (generators that reuse library audio)."""
    plans, pick = getattr(gen, "last_plans_", None), 0
    if plans is None and hasattr(gen, "base"):  # best-of-N: the plan of the candidate it kept
        plans = getattr(gen.base, "last_plans_", None)
        pick = int(np.argmax(gen.last_scores_[-1])) if plans is not None else 0
    if not plans:
        return None
    keys = ("path", "source_start", "output_start", "duration")
    return [{k: seg[k] for k in keys} for seg in plans[pick]["segments"]]


def _test_clip_ids(folder: Path, subjects: list[str]) -> list[str]:
    ids: set[str] = set()
    for subject in subjects:
        with np.load(folder / f"{subject}.npz", allow_pickle=False) as z:
            ids |= set(z["clip_ids"].astype(str).tolist())
    return sorted(ids)


def _excluded_paths(lib: MusicLibrary, info: dict, ids) -> list[str]:
    """Library tracks never to retrieve or reuse for test clips ``ids``: tracks whose id is a clip id
    (the stimuli themselves in the library) and the recordings the clips were cut from (a study made
    with ``simulate --music`` records them in ``stimuli/metadata.csv``)."""
    from brain2music.simulate.music import stimulus_sources

    meta = lib.metadata
    ids = set(map(str, ids))
    cfg = info.get("config", {}) or {}
    root = next((cfg[k] for k in ("stimuli", "stimuli_dir", "stimuli_root") if cfg.get(k)), None)
    sources = stimulus_sources(root) if root else {}
    own = {str(Path(p).resolve()) for c, p in sources.items() if c in ids}
    hit = meta["track_id"].astype(str).isin(ids) | meta["path"].astype(str).isin(own)
    return list(meta.loc[hit, "path"])


# ----------------------------------------------------------------------------------------------- tagger
class GenreTagger:
    """Genre classifier on window-averaged embeddings (standardise + multinomial logistic regression).

    ``fit(embeddings (n, [r,] dim), genres (n,))``; ``predict(embeddings) -> (n,) genres``.
    """

    def __init__(self, C: float = 1.0):
        self.C = C

    def fit(self, embeddings: np.ndarray, genres) -> GenreTagger:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = _avg(embeddings)
        y = np.asarray(genres).astype(str)
        if len(np.unique(y)) < 2:
            raise DataError(f"a genre tagger needs at least 2 genres in its training set; got {np.unique(y)}")
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000)).fit(x, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        return self.model_.predict(_avg(embeddings))


def _avg(embeddings) -> np.ndarray:
    e = np.asarray(embeddings, dtype=np.float64)
    return e.mean(axis=1) if e.ndim == 3 else e


def _fit_tagger(results: Path, info: dict, encoder: str, test_ids: set[str]) -> GenreTagger | None:
    rel = (info.get("encoders", {}).get(encoder) or {}).get("embeddings", f"embeddings/{encoder}.npz")
    path = results / rel
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        ids = z["clip_ids"].astype(str)
        emb = z["embeddings"]
    train = np.array([c not in test_ids for c in ids])
    genres = np.array([c.split(".")[0] for c in ids])
    if train.sum() < 2 or len(np.unique(genres[train])) < 2:
        return None
    return GenreTagger().fit(emb[train], genres[train])


# ------------------------------------------------------------------------------------------------ main
def _summary(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k not in ("subject", "n_clips")] if rows else []
    out = {}
    for k in keys:
        vals = np.array([r[k] for r in rows if r.get(k) is not None], dtype=np.float64)
        if vals.size:
            out[k] = {
                "mean": float(vals.mean()),
                "sd": float(vals.std(ddof=1)) if vals.size > 1 else 0.0,
                "n_subjects": int(vals.size),
            }
    return out


def _agreement(a, b) -> float | None:
    if a is None or b is None:
        return None
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def reconstruct(
    results: str | os.PathLike,
    library: str | os.PathLike | MusicLibrary,
    out: str | os.PathLike,
    *,
    generator: str | Generator | None = "offline",
    generator_options: dict | None = None,
    encoder: Any = None,
    method: str | None = None,
    subjects: list[str] | None = None,
    n_clips: int | None = None,
    k: int = 5,
    best_of: int = 1,
    duration: float = 15.0,
    exclude_stimuli: bool = True,
    n_chance: int = 20,
    oracle_generation: bool = False,
    random_state: int = 0,
    progress: bool = True,
) -> dict:
    """Retrieve and generate music for the predicted embeddings of a results folder; evaluate; write JSON.

    Parameters
    ----------
    results
        Folder written by ``brain2music reproduce``.
    library
        Music library built with the same encoder as the predictions to use.
    out
        Output folder (``reconstruction.json``, ``audio/``).
    generator
        Registry name (``offline``, ``debug``, ``musicldm``, ``musicgen``) or Generator; ``None`` skips
        generation (retrieval only).
    generator_options
        Keyword arguments for :func:`~brain2music.reconstruct.generators.get_generator` (``encoder`` is
        filled in for generators that need one).
    encoder
        Encoder object used to embed generated audio; default: the library's encoder from the registry.
    method
        Decoder whose predictions to use; default: the best on the test set in ``results.json``.
    subjects
        Subjects to reconstruct for (default: all with predictions).
    n_clips
        Reconstruct only the first ``n_clips`` test clips (default: all). At least 2 (id acc needs 2).
    k
        Retrieved tracks per clip.
    best_of
        Generate this many candidates per clip and keep the one closest to the predicted embedding.
    duration
        Seconds of generated audio.
    exclude_stimuli
        Never retrieve a library track whose id is a test clip id (a GTZAN stimulus in the library).
    n_chance
        Random-track draws averaged for the Chance row.
    oracle_generation
        Also generate from the true embedding of each clip (the generator's ceiling), written to
        ``audio/oracle/`` and scored as ``oracle_generation_*``.

    Returns
    -------
    dict, the content of ``reconstruction.json`` (layout in the module docstring).
    """
    from tqdm.auto import tqdm

    from brain2music.evaluate.identification import identification_accuracy
    from brain2music.stimuli import write_audio

    results, out = Path(results), Path(out)
    info = _read_results(results)
    lib = library if isinstance(library, MusicLibrary) else MusicLibrary(library)
    enc_name = lib.encoder_name
    known = set(info.get("encoders", {}))
    if (results / "predictions").is_dir():
        known |= {p.name for p in (results / "predictions").iterdir() if p.is_dir()}
    known = sorted(known)
    if enc_name not in known:
        raise DataError(
            f"the library {lib.path} was built with encoder {enc_name!r} but the results folder {results} "
            f"has predictions for encoder(s) {known}; build the library with one of those encoders"
        )
    if n_clips is not None and int(n_clips) < 2:
        raise ConfigError(f"n_clips must be >= 2 (identification needs two clips), got {n_clips!r}")
    if int(k) < 1:
        raise ConfigError(f"k must be >= 1, got {k!r}")
    method = _pick_method(results, info, enc_name, method)
    folder = results / "predictions" / enc_name / method
    available = sorted(p.stem for p in folder.glob("*.npz"))
    if subjects:
        missing = [s for s in subjects if s not in available]
        if missing:
            raise ConfigError(f"no predictions for subject(s) {missing} in {folder}; available: {available}")
        subjects = list(subjects)
    else:
        subjects = available
    if not subjects:
        raise DataFileNotFoundError(f"{folder}: no subject predictions (<subject>.npz)")

    enc = None
    gen = None
    if generator is not None:
        enc = resolve_encoder(encoder if encoder is not None else enc_name)
        if encoder_name(enc) != enc_name:
            raise DataError(
                f"encoder {encoder_name(enc)!r} given to embed generated audio, but the library and "
                f"predictions use encoder {enc_name!r}"
            )
        opts = dict(generator_options or {})
        if generator == "mosaic" or opts.get("base") == "mosaic":
            opts.setdefault("library", lib)
            opts.setdefault("encoder", enc)
            opts.setdefault("progress", progress)
            if exclude_stimuli:  # never the test clips' own tracks (nor any other test stimulus's)
                opts.setdefault("exclude", _excluded_paths(lib, info, _test_clip_ids(folder, subjects)))
        if generator in ("offline",):
            opts.setdefault("encoder", enc)
            opts.setdefault("progress", progress)
            opts.setdefault("cache", out / "offline_bank.npz")
            opts.setdefault("random_state", random_state)
        gen = get_generator(generator, **opts)
        if best_of > 1:
            from brain2music.reconstruct.generators import BestOfN

            gen = BestOfN(gen, enc, n=best_of)
        if hasattr(gen, "fit") and not hasattr(gen, "map_"):
            gen.fit()

    rng = np.random.default_rng(random_state)
    gen_sources: dict[str, list | None] = {}
    oracle_cache: dict[str, tuple[str, np.ndarray]] = {}
    taggers: dict[frozenset, GenreTagger | None] = {}
    clips_out: list[dict] = []
    per_subject: list[dict] = []
    meta = lib.metadata
    for subject in subjects:
        pred = read_predictions(folder / f"{subject}.npz")
        sel = slice(None) if n_clips is None else slice(0, int(n_clips))
        ids, genres = pred["clip_ids"][sel], pred["genres"][sel]
        P, T = pred["predicted"][sel], pred["target"][sel]
        if len(ids) < 2:
            raise DataError(f"{folder / (subject + '.npz')}: needs at least 2 test clips, found {len(ids)}")
        if P.shape[1:] != (lib.n_windows, lib.dim):
            raise DataError(
                f"{folder / (subject + '.npz')}: embeddings of shape (r, dim) = {P.shape[1:]}, but the library "
                f"stores ({lib.n_windows}, {lib.dim}) for encoder {enc_name!r}"
            )
        exclude = _excluded_paths(lib, info, ids) if exclude_stimuli else None
        if exclude and len(exclude) >= len(lib):
            raise DataError(f"{lib.path}: the library holds only the test stimuli; nothing left to retrieve")
        r_scores, r_items = lib.search(P, k, encoder=enc_name, exclude=exclude)
        o_scores, o_items = lib.search(T, 1, encoder=enc_name, exclude=exclude)
        allowed = np.setdiff1d(np.arange(len(lib)), meta.index[meta["path"].isin(set(exclude or []))])
        chance_draws = rng.choice(allowed, size=(max(1, int(n_chance)), len(ids)))
        # One read of the shards for every embedding needed (the library may be large).
        needed = np.concatenate([r_items[:, 0], o_items[:, 0], chance_draws.ravel()])
        wins = lib.windows(needed)
        n = len(ids)
        retrieved, oracle = wins[:n], wins[n : 2 * n]
        chance_w = wins[2 * n :].reshape(len(chance_draws), n, lib.n_windows, lib.dim)
        chance_acc = float(np.mean([identification_accuracy(w, T) for w in chance_w]))
        key = frozenset(pred["clip_ids"])
        if key not in taggers:  # subjects share their test set: fit once
            taggers[key] = _fit_tagger(results, info, enc_name, set(key))
        tagger = taggers[key]
        tags = {}
        if tagger is not None:
            tags = {
                "original": tagger.predict(T),
                "retrieved": tagger.predict(retrieved),
                "oracle": tagger.predict(oracle),
                "chance": tagger.predict(chance_w[0]),
            }

        def run_generator(target, rel):
            audio, sr = gen.generate(target, n_samples=1, duration=duration, random_state=rng.integers(2**31))
            write_audio(out / rel, audio[0], sr)
            gen_sources[str(rel)] = _segments_of(gen)
            return clip_embedding(enc, prepare_clip(audio[0], sr, duration=min(duration, 15.0)), sr)

        generated = oracle_generated = None
        gen_paths: list[str | None] = [None] * len(ids)
        if gen is not None:
            embs = []
            for i in tqdm(range(len(ids)), desc=f"generating for {subject}", disable=not progress):
                rel = Path("audio") / subject / f"{ids[i]}.generated.wav"
                embs.append(run_generator(P[i], rel))
                gen_paths[i] = str(rel)
            generated = np.stack(embs)
            if tagger is not None:
                tags["generated"] = tagger.predict(generated)
            if oracle_generation:
                # Generation from the true embedding: the same for every subject, so made once per clip.
                todo = [i for i, c in enumerate(ids) if c not in oracle_cache]
                for i in tqdm(todo, desc="generating from true embeddings", disable=not progress):
                    rel = Path("audio") / "oracle" / f"{ids[i]}.generated.wav"
                    oracle_cache[ids[i]] = (str(rel), run_generator(T[i], rel))
                oracle_generated = np.stack([oracle_cache[c][1] for c in ids])
                if tagger is not None:
                    tags["oracle_generated"] = tagger.predict(oracle_generated)

        gen_score = gen_score_true = near_s = near_i = None
        if generated is not None:
            # Scores in the library's search space, so they compare with the retrieval scores.
            g = lib.query_vectors(generated)
            gen_score = np.sum(g * lib.query_vectors(P), axis=1)
            gen_score_true = np.sum(g * lib.query_vectors(T), axis=1)
            near_s, near_i = lib.search(generated, 1)
        for i, clip in enumerate(ids):
            clips_out.append(
                {
                    "subject": subject,
                    "clip_id": str(clip),
                    "genre": str(genres[i]),
                    "original": {"clip_id": str(clip), "path": _stimulus_path(info, str(clip))},
                    "retrieved": [
                        {
                            "rank": j + 1,
                            "path": str(meta.at[int(it), "path"]),
                            "title": str(meta.at[int(it), "title"]),
                            "artist": str(meta.at[int(it), "artist"]),
                            "genre": str(meta.at[int(it), "genre"]),
                            "score": float(s),
                        }
                        for j, (s, it) in enumerate(zip(r_scores[i], r_items[i], strict=True))
                        if it >= 0
                    ],
                    "oracle": {
                        "path": str(meta.at[int(o_items[i, 0]), "path"]),
                        "title": str(meta.at[int(o_items[i, 0]), "title"]),
                        "genre": str(meta.at[int(o_items[i, 0]), "genre"]),
                        "score": float(o_scores[i, 0]),
                    },
                    "generated": None
                    if generated is None
                    else {
                        "path": gen_paths[i],
                        "score": float(gen_score[i]),
                        "score_true": float(gen_score_true[i]),
                        "nearest_library": {
                            "path": str(meta.at[int(near_i[i, 0]), "path"]),
                            "score": float(near_s[i, 0]),
                        },
                        "segments": gen_sources.get(gen_paths[i]),
                    },
                    "oracle_generated": {"path": oracle_cache[clip][0]}
                    if oracle_generated is not None
                    else None,
                    "tags": {key: str(v[i]) for key, v in tags.items() if key != "chance"} or None,
                }
            )
        per_subject.append(
            {
                "subject": subject,
                "n_clips": int(len(ids)),
                "retrieval_id_acc": identification_accuracy(retrieved, T),
                "generation_id_acc": identification_accuracy(generated, T) if generated is not None else None,
                "chance_id_acc": chance_acc,
                "oracle_id_acc": identification_accuracy(oracle, T),
                "retrieval_genre_agreement": _agreement(tags.get("retrieved"), tags.get("original")),
                "generation_genre_agreement": _agreement(tags.get("generated"), tags.get("original")),
                "chance_genre_agreement": _agreement(tags.get("chance"), tags.get("original")),
                "oracle_genre_agreement": _agreement(tags.get("oracle"), tags.get("original")),
                "oracle_generation_id_acc": identification_accuracy(oracle_generated, T)
                if oracle_generated is not None
                else None,
                "oracle_generation_genre_agreement": _agreement(
                    tags.get("oracle_generated"), tags.get("original")
                ),
                "tagger_accuracy": _agreement(tags.get("original"), genres),
                "retrieval_score_mean": float(r_scores[:, 0].mean()),
                "generation_score_mean": float(np.mean(gen_score)) if gen_score is not None else None,
            }
        )

    report = {
        "version": __version__,
        "config": {
            "results": str(results),
            "library": str(lib.path),
            "out": str(out),
            "encoder": enc_name,
            "method": method,
            "generator": None if gen is None else gen.config,
            "k": int(k),
            "n_clips": n_clips,
            "subjects": subjects,
            "best_of": int(best_of),
            "duration": float(duration),
            "exclude_stimuli": bool(exclude_stimuli),
            "n_chance": int(n_chance),
            "oracle_generation": bool(oracle_generation),
            "random_state": random_state,
        },
        "encoder": enc_name,
        "method": method,
        "generator": None if gen is None else gen.config,
        "library": {"path": str(lib.path), "n_items": len(lib), "encoder": enc_name},
        "subjects": subjects,
        "clips": clips_out,
        "evaluation": {"per_subject": per_subject, "summary": _summary(per_subject)},
    }
    write_json(out / "reconstruction.json", report)
    return report


def cosine_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of window-averaged ``a`` and ``b`` ``(n, [r,] dim)`` → ``(n,)``."""
    return np.array([cosine_scores(x[None], y)[0] for x, y in zip(_avg(a), _avg(b), strict=True)])
