"""Retrieval against the mosaic (and the composer generator) on a study made from real recordings.

Run step by step (each step is short enough for one hold of the shared lock)::

    python benchmarks/bench_mosaic_real.py --workdir W --step folder      # links, seconds
    python benchmarks/bench_mosaic_real.py --workdir W --step study      # ~2 min
    python benchmarks/bench_mosaic_real.py --workdir W --step reproduce  # ~8 min
    python benchmarks/bench_mosaic_real.py --workdir W --step library    # ~2 min
    python benchmarks/bench_mosaic_real.py --workdir W --step reconstruct
    python benchmarks/bench_mosaic_real.py --workdir W --step offline    # ~8 min
    python benchmarks/bench_mosaic_real.py --workdir W --step tags       # ~3 min
    python benchmarks/bench_mosaic_real.py --workdir W --step summary

The music: the 94 real recordings of ``benchmarks/real_music.py`` (Debian's game and music packages),
linked into ``W/music/<label>/`` with one label per collection. The ds003720 layout needs GTZAN genre
names, so the collections are stored under stand-in names — they are labels, not genre claims:
wesnoth (orchestral) ``classical``, drascula (adventure-game score) ``jazz``, hyperrogue
(ambient/electronic) ``disco``, fretsonfire (rock/metal band recordings) ``rock``, lincity
(electronic/blues) ``blues``, asc (electronic/rock) ``metal``.

Two studies are simulated from them with ``brain2music simulate --music`` (2 subjects, 5,000 voxels,
4 test recordings per label (2 for the 3-recording labels) = 20 test clips, up to 3 training excerpts
per training recording, 12 training and 4 test runs): the **evaluation study** (seed 0) and a
**development study** (seed 1: other excerpts, other splits, other brains) on which the mosaic's
defaults were chosen; the evaluation study's test clips were not used for any choice. Decoders:
``brain2music reproduce --encoders acoustic --methods ridge,encsel``. Library: every recording, whole
tracks, ``library build --coverage full`` (acoustic). Reconstruction excludes each test clip's own
recording (and every other test recording) from retrieval and from the mosaic.

``tags`` scores the paper's class agreement with musicnn (:mod:`brain2music.evaluate.tags`; issue 10's
phase 2 wires it into ``reconstruct`` itself): originals (the stimuli as played), the top-1 retrieved
track (its first 15 s, faded and RMS-normalised like a library clip), the mosaic and the composer
generator's clips; chance is exact against the library's clips (test recordings excluded); tags of
``musicnn-msd`` (genre, mood) and ``musicnn-mtt`` (instrument), top 2 / 2 / 1 as in the paper.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

LABELS = {
    "wesnoth": "classical",
    "drascula": "jazz",
    "hyperrogue": "disco",
    "fretsonfire": "rock",
    "lincity": "blues",
    "asc": "metal",
}
STUDIES = {"eval": 0, "dev": 1}  # --studies eval: the evaluation study alone (the defaults are fixed)
STEPS = ("folder", "study", "reproduce", "library", "reconstruct", "offline", "tags", "summary")


def _cli(*args) -> None:
    from brain2music.cli import main

    print("$ brain2music " + " ".join(map(str, args)), flush=True)
    code = main([str(a) for a in args])
    if code:
        raise SystemExit(f"brain2music {args[0]} failed with exit code {code}")


def step_folder(w: Path) -> None:
    from real_music import real_tracks

    for t in real_tracks():
        folder = w / "music" / LABELS[t.collection]
        folder.mkdir(parents=True, exist_ok=True)
        # fretsonfire's songs are all called song.ogg: name the links by their song folder
        name = Path(t.path).name if t.collection != "fretsonfire" else f"{Path(t.path).parent.name}.ogg"
        if not (folder / name).exists():
            os.symlink(t.path, folder / name)


def step_study(w: Path) -> None:
    for name, seed in STUDIES.items():
        if not (w / name).is_dir():
            _cli("simulate", w / name, "--music", w / "music", "--seed", seed, "--subjects", 2,
                 "--test-clips-per-genre", 4, "--excerpts-per-track", 3, "--train-runs", 12, "--test-runs", 4,
                 "--quiet")  # fmt: skip


def step_reproduce(w: Path) -> None:
    for name in STUDIES:
        if not (w / f"{name}_results" / "results.json").is_file():
            _cli("reproduce", w / name / "bids", "--stimuli", w / name / "stimuli", "--encoders", "acoustic",
                 "--methods", "ridge,encsel", "--no-logo", "--n-permutations", 10, "--cache-dir", w / "cache",
                 "--out", w / f"{name}_results", "--quiet")  # fmt: skip


def step_library(w: Path) -> None:
    if not (w / "lib").is_dir():
        _cli(
            "library", "build", w / "music", "--encoder", "acoustic", "--coverage", "full", "--out", w / "lib"
        )


def step_reconstruct(w: Path, generator: str = "mosaic") -> None:
    for name in STUDIES:
        out = w / "recon" / f"{name}-{generator}"
        if not (out / "reconstruction.json").is_file():
            _cli("reconstruct", w / f"{name}_results", "--library", w / "lib", "--generator", generator,
                 "--out", out, "--quiet")  # fmt: skip


def _clip_audio(w: Path, study: str, recon: dict):
    """``{name: [(clip_id, audio 22,050 Hz)]}`` for originals, retrieval, retrieval with the true
    embedding ("oracle") and generated clips."""
    import pandas as pd

    from brain2music.reconstruct.clip_embedding import prepare_clip
    from brain2music.stimuli import load_stimulus, read_audio

    meta = pd.read_csv(w / study / "stimuli" / "metadata.csv").set_index("clip_id")
    out: dict[str, list] = {"original": [], "retrieval": [], "oracle": [], "generated": []}
    seen = set()
    for clip in recon["clips"]:
        cid = clip["clip_id"]
        if cid not in seen:
            seen.add(cid)
            genre, track = cid.rsplit(".", 1)
            y = load_stimulus(w / study / "stimuli", genre, int(track), float(meta.at[cid, "excerpt_start"]))
            out["original"].append((cid, y))
            truth = clip.get("true_embedding") or clip["oracle"]  # the key's spelling before the rename
            o, _ = read_audio(truth["path"], sr=22050, duration=15.0)
            out["oracle"].append((cid, prepare_clip(o, 22050)))
        r, _ = read_audio(clip["retrieved"][0]["path"], sr=22050, duration=15.0)
        out["retrieval"].append((cid, prepare_clip(r, 22050)))
        if clip.get("generated"):
            g, _ = read_audio(Path(recon["config"]["out"]) / clip["generated"]["path"], sr=22050)
            out["generated"].append((cid, g))
    return out


def step_tags(w: Path) -> None:
    from brain2music.embeddings.musicnn import get_tagger
    from brain2music.embeddings.musicnn.tags import TAG_GROUPS, TOP_K
    from brain2music.evaluate.stats import bootstrap_ci
    from brain2music.evaluate.tags import chance_top_k_agreement, group_agreement
    from brain2music.reconstruct.clip_embedding import prepare_clip
    from brain2music.reconstruct.library import MusicLibrary
    from brain2music.stimuli import read_audio

    lib = MusicLibrary(w / "lib")
    taggers = {"MSD": get_tagger("musicnn-msd"), "MTT": get_tagger("musicnn-mtt")}
    cache = w / "recon" / "tags.json"
    tags = json.loads(cache.read_text()) if cache.is_file() else {}
    results = {}
    for generator in ("mosaic", "offline"):
        path = w / "recon" / f"eval-{generator}" / "reconstruction.json"
        if not path.is_file():
            continue
        recon = json.loads(path.read_text())
        audio = _clip_audio(w, "eval", recon)
        probs = {}
        for name, clips in audio.items():
            key = f"{generator}:{name}" if name == "generated" else name
            if key not in tags:
                tags[key] = {
                    d: [taggers[d].predict_proba(y, 22050).tolist() for _, y in clips] for d in taggers
                }
                cache.write_text(json.dumps(tags))  # resumable: a stopped run keeps what it tagged
            probs[name] = {d: np.array(v) for d, v in tags[key].items()}
        if "library" not in tags:  # chance: every library clip as the paper's protocol plays it
            tags["library"] = {d: [] for d in taggers}
            for p in lib.metadata["path"]:
                y, _ = read_audio(p, sr=22050, duration=15.0)
                for d in taggers:
                    tags["library"][d].append(
                        taggers[d].predict_proba(prepare_clip(y, 22050), 22050).tolist()
                    )
        cache.write_text(json.dumps(tags))
        ids = [c for c, _ in audio["original"]]
        order = {c: i for i, c in enumerate(ids)}
        per_clip = [order[c["clip_id"]] for c in recon["clips"]]  # (subject, clip) rows -> original row
        excluded = _excluded_items(w, lib, ids)
        row = {}
        for d, groups in TAG_GROUPS.items():
            tagger = taggers[d]
            for group, members in groups.items():
                orig = probs["original"][d]
                cols = [tagger.tags.index(t) for t in members]
                libp = np.array(tags["library"][d])[np.setdiff1d(np.arange(len(lib)), excluded)]
                row[f"chance {d} {group}"] = float(
                    chance_top_k_agreement(orig[:, cols], libp[:, cols], TOP_K[group]).mean()
                )
                for name in ("retrieval", "generated", "oracle"):
                    rec = probs[name][d]
                    o = orig if name == "oracle" else orig[per_clip]
                    agree = group_agreement(o, rec, tagger.tags, {group: members}, TOP_K)[group]
                    row[f"{name} {d} {group}"] = float(agree.mean())
                    row[f"{name} {d} {group} ci"] = bootstrap_ci(agree)  # over (subject, clip) rows
        results[generator] = row
    (w / "recon" / "tag_agreement.json").write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


def _excluded_items(w: Path, lib, ids) -> np.ndarray:
    from brain2music.simulate.music import stimulus_sources

    src = stimulus_sources(w / "eval" / "stimuli")
    own = {str(Path(src[c]).resolve()) for c in ids if c in src}
    return lib.metadata.loc[lib.metadata["path"].isin(own), "item"].to_numpy()


def _paired(w: Path, recon):
    """Sign-flip test of per-clip identification scores, generation against retrieval, in the metric space
    of the predictions (the generated audio re-embedded as ``reconstruct`` does)."""
    from brain2music.embeddings import get_encoder
    from brain2music.evaluate import identification_scores, similarity_matrix
    from brain2music.evaluate.stats import paired_test
    from brain2music.reconstruct.clip_embedding import clip_embedding, prepare_clip
    from brain2music.reconstruct.library import MusicLibrary
    from brain2music.results import ResultsFolder
    from brain2music.stimuli import read_audio

    lib, enc = MusicLibrary(recon.library["path"]), get_encoder(recon.encoder)
    item_of = {p: i for i, p in enumerate(lib.metadata["path"])}
    gen_s, ret_s = [], []
    for subject in recon.subjects:
        pred = ResultsFolder(recon.config["results"]).read_predictions(recon.encoder, recon.method, subject)
        clips = {c.clip_id: c for c in recon.clips if c.subject == subject}
        ids = [c for c in map(str, pred.clip_ids) if c in clips]
        rows = [list(map(str, pred.clip_ids)).index(c) for c in ids]
        target = pred.space.transform(pred.target[rows])
        ret = lib.windows(np.array([item_of[clips[c].retrieved[0]["path"]] for c in ids]))
        gen = []
        for c in ids:
            y, sr = read_audio(Path(recon.config["out"]) / clips[c].generated["path"])
            gen.append(clip_embedding(enc, prepare_clip(y, sr, duration=15.0), sr))
        for store, x in ((gen_s, np.stack(gen)), (ret_s, ret)):
            store.append(identification_scores(similarity_matrix(pred.space.transform(x), target)))
    return paired_test(np.stack(gen_s), np.stack(ret_s))


def step_summary(w: Path) -> None:
    from brain2music.results import ResultsFolder
    from brain2music.results.table import cell

    for path in sorted((w / "recon").glob("*/reconstruction.json")):
        recon = ResultsFolder.read_reconstruction(path.parent)
        s = recon.summary
        print(path.parent.name, f"(method {recon.method} by {recon.method_selected_by}, space {recon.space})")
        cells = [f"{k} {cell(s[k].mean, s[k].sd, s[k].ci)}" for k in (
            "retrieval_id_acc", "generation_id_acc", "chance_id_acc", "true_embedding_id_acc",
            "retrieval_genre_agreement", "generation_genre_agreement", "chance_genre_agreement",
            "true_embedding_genre_agreement") if k in s]  # fmt: skip
        print("  " + "\n  ".join(cells))
        for sub in recon.per_subject:
            ret, gen = sub.get("retrieval", "id_acc"), sub.get("generation", "id_acc")
            print(f"  {sub.subject}: retrieval {ret.value:.3f} {ret.ci} p={ret.p}; "
                  f"generation {gen.value:.3f} {gen.ci} p={gen.p}")  # fmt: skip
        if recon.generator is not None:
            t = _paired(w, recon)
            print(
                f"  generation - retrieval id acc, paired over clips (both subjects): {t.diff:+.3f} "
                f"CI [{t.ci[0]:+.3f}, {t.ci[1]:+.3f}], sign-flip p = {t.p_value:.3f}, {t.n} clips"
            )
    tags = w / "recon" / "tag_agreement.json"
    if tags.is_file():
        print(tags.read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", required=True)
    p.add_argument("--step", choices=STEPS + ("all",), default="all")
    p.add_argument("--studies", default="eval,dev", help="comma-separated subset of eval,dev")
    args = p.parse_args(argv)
    for name in list(STUDIES):
        if name not in args.studies.split(","):
            del STUDIES[name]
    w = Path(args.workdir).resolve()
    w.mkdir(parents=True, exist_ok=True)
    print(f"load at start: {os.getloadavg()}", flush=True)
    steps = STEPS if args.step == "all" else (args.step,)
    for step in steps:
        if step == "offline":
            step_reconstruct(w, "offline")
        else:
            globals()[f"step_{step}"](w)
    print(f"load at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
