"""Faithfulness of brain2music's musicnn to the original TensorFlow implementation, layer by layer.

    python benchmarks/bench_musicnn_reference.py [--refenv /work/refenv/musicnn-tf] [--real 6]
    python benchmarks/bench_musicnn_reference.py --fixture tests/data/musicnn/reference.npz

The original runs in its own virtual environment (TensorFlow must never enter brain2music's); make it once:

    python3 -m venv /work/refenv/musicnn-tf
    /work/refenv/musicnn-tf/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 librosa soundfile
    /work/refenv/musicnn-tf/bin/pip install --no-deps musicnn

Audio: the deterministic signals of ``tests/musicnn_signals.py`` (16-kHz float WAV), the same 15-s clip
as 44.1-kHz stereo (resampling and down-mix included), and with ``--real N`` the first 30 s of N real
recordings (``benchmarks/real_music.py``, one collection after another). Both sides tag every file on
consecutive 3-s patches (``brain2music tag`` / ``musicnn.extractor``) and embed the 15-s clip on the
encoder's 9 windows (the original's graph on the patches of its own spectrogram at the encoder's frame
offsets). Printed per model and layer: the max absolute difference and the Pearson correlation over all
values, and for the file-averaged tags (what ``tag`` prints) the max absolute difference.

``--fixture PATH`` also saves the original's outputs on the deterministic signals (taggram and
penultimate / pool5 per patch) for ``tests/test_musicnn.py``. Run it alone on the machine (no other heavy job beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

MODELS = ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"]
NAMES = {
    "MSD_musicnn": "musicnn-msd",
    "MTT_musicnn": "musicnn-mtt",
    "MSD_vgg": "musicnn-vgg-msd",
    "MTT_vgg": "musicnn-vgg-mtt",
}


def _files(folder: Path, n_real: int) -> list[dict]:
    from brain2music.stimuli.audio import read_audio, resample
    from musicnn_signals import SR, signals

    files = []
    for name, y in signals().items():
        path = folder / f"{name}.wav"
        sf.write(path, y, SR, subtype="FLOAT")
        files.append({"name": name, "path": str(path), "offsets": None})
    clip = signals()["clip15"]
    stereo = resample(np.stack([clip, 0.5 * clip], axis=1), SR, 44100)
    sf.write(folder / "clip15_44k_stereo.wav", stereo, 44100, subtype="FLOAT")
    files.append(
        {"name": "clip15_44k_stereo", "path": str(folder / "clip15_44k_stereo.wav"), "offsets": None}
    )
    if n_real:
        from real_music import real_tracks

        tracks = real_tracks()
        by: dict[str, list] = {}
        for t in tracks:
            by.setdefault(t.collection, []).append(t)
        picked = []
        while len(picked) < n_real and any(by.values()):
            for ts in by.values():
                if ts and len(picked) < n_real:
                    picked.append(ts.pop(0))
        for t in picked:
            audio, sr = read_audio(t.path, mono=False, duration=30.0)
            path = folder / f"real_{t.collection}_{Path(t.path).stem}.wav"
            sf.write(path, audio, sr, subtype="FLOAT")
            files.append(
                {"name": f"real:{t.collection}/{Path(t.path).name}", "path": str(path), "offsets": None}
            )
    return files


def _run_reference(refenv: Path, files: list[dict], out: Path, float16: bool = False) -> dict:
    job = out.with_suffix(".json")
    job.write_text(json.dumps({"models": MODELS, "files": files, "float16": float16}))
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    cmd = [str(refenv / "bin" / "python"), str(HERE / "musicnn_tf_reference.py"), str(out), str(job)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the reference run failed:\n{done.stderr[-4000:]}")
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


def _ours(model: str, item: dict) -> dict[str, np.ndarray]:
    """Every layer of our implementation, through the public tagger / encoder."""
    from brain2music.embeddings.musicnn import MusicnnEncoder, MusicnnTagger
    from brain2music.embeddings.musicnn import spectrogram as spec
    from brain2music.stimuli.audio import read_audio

    name = NAMES[model]
    tagger = MusicnnTagger(name)
    layers = list(tagger.pretrained.layers)
    layers.remove("logits")
    audio, sr = read_audio(item["path"], mono=True)
    if item["offsets"] is not None:  # the encoder's windows
        return {layer: MusicnnEncoder(name, layer=layer).embed(audio, sr) for layer in layers}
    out = {"taggram": tagger.taggram(audio, sr)}
    frames = spec.log_mel(tagger._mono16k(audio, sr, item["path"]))
    offsets = np.arange(0, len(frames) - 186, 187)
    out.update(
        tagger.pretrained.network.forward_frames(frames, offsets, [x for x in layers if x != "taggram"])
    )
    out["logmel"] = frames
    return out


def _compare(ref: dict, files: list[dict]) -> list[dict]:
    rows = []
    for model in MODELS:
        for i, item in enumerate(files):
            ours = _ours(model, item)
            for layer, value in ours.items():
                theirs = ref[f"{model}/{i}/{layer}"]
                if layer == "logmel":
                    theirs = theirs[: len(value)]
                diff = np.abs(value - theirs)
                rows.append(
                    {
                        "model": model,
                        "file": item["name"],
                        "path": "encoder windows" if item["offsets"] is not None else "tag patches",
                        "layer": layer,
                        "shape": value.shape,
                        "max_abs": float(diff.max()),
                        "corr": float(np.corrcoef(value.ravel(), theirs.ravel())[0, 1]),
                        "mean_tags_max_abs": float(np.abs(value.mean(0) - theirs.mean(0)).max())
                        if layer == "taggram"
                        else None,
                    }
                )
    return rows


def _print(rows: list[dict]) -> None:
    print(
        f"{'model':12s} {'path':16s} {'layer':12s} {'files':>5s} {'max |diff|':>11s} {'1 - min corr':>12s} {'tags(file) max|diff|':>21s}"
    )
    keys = sorted(
        {(r["model"], r["path"], r["layer"]) for r in rows}, key=lambda k: (MODELS.index(k[0]), k[1], k[2])
    )
    for key in keys:
        sel = [r for r in rows if (r["model"], r["path"], r["layer"]) == key]
        tags = [r["mean_tags_max_abs"] for r in sel if r["mean_tags_max_abs"] is not None]
        print(
            f"{key[0]:12s} {key[1]:16s} {key[2]:12s} {len(sel):5d} {max(r['max_abs'] for r in sel):11.2e} "
            f"{1 - min(r['corr'] for r in sel):12.1e} {(f'{max(tags):.2e}' if tags else ''):>21s}"
        )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--refenv", default="/work/refenv/musicnn-tf", help="virtual environment with TensorFlow + musicnn"
    )
    p.add_argument("--real", type=int, default=6, help="real recordings to add (0: none)")
    p.add_argument("--fixture", help="also save the original's outputs on the deterministic signals here")
    args = p.parse_args(argv)
    refenv = Path(args.refenv)
    if not (refenv / "bin" / "python").exists():
        print(f"no reference environment at {refenv}; make it as the module docstring says", file=sys.stderr)
        return 2
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = _files(folder, args.real)
        clip = next(f for f in files if f["name"] == "clip15")
        from brain2music.embeddings.musicnn import MusicnnEncoder

        enc_offsets = MusicnnEncoder("musicnn-msd").patch_offsets().tolist()
        files.append({"name": "clip15 (encoder)", "path": clip["path"], "offsets": enc_offsets})
        t0 = time.perf_counter()
        ref = _run_reference(refenv, files, folder / "ref.npz")
        print(
            f"original (TF {ref['tf_version']}) on {len(files)} inputs x {len(MODELS)} models: {time.perf_counter() - t0:.0f} s"
        )
        rows = _compare(ref, files)
        _print(rows)
        _float16_failure(refenv, [f for f in files if f["offsets"] is None], folder)
        if args.fixture:
            _save_fixture(Path(args.fixture), ref, files, argv)
    print(f"load average at end: {os.getloadavg()}")
    return 0


def _float16_failure(refenv: Path, files: list[dict], folder: Path) -> None:
    """The original as shipped: mel power above 6.55 overflows ``10000 * x`` in float16."""
    ref16 = _run_reference(refenv, files, folder / "ref16.npz", float16=True)
    inf = np.mean([np.isinf(ref16[f"MSD_musicnn/{i}/logmel"]).mean() for i in range(len(files))])
    print(
        f"original with its float16 cast: {inf:.1%} of log-mel values are inf (mean over {len(files)} files)"
    )
    for model in MODELS:
        hit, tags = [], []
        for i in range(len(files)):
            logmel = ref16[f"{model}/{i}/logmel"]
            taggram = ref16[f"{model}/{i}/taggram"]
            for j in range(len(taggram)):
                overflow = bool(np.isinf(logmel[187 * j : 187 * (j + 1)]).any())
                hit.append(overflow)
                if overflow:
                    tags.append(taggram[j])
        spread = float(np.ptp(np.stack(tags), axis=0).max()) if len(tags) > 1 else float("nan")
        print(
            f"  {model}: {np.mean(hit):.0%} of {len(hit)} patches hold an inf; their tags differ by at most "
            f"{spread:.1e} across all those patches of all files"
            + (" (the same tags for any music)" if spread < 1e-6 else "")
        )


def _save_fixture(path: Path, ref: dict, files: list[dict], argv) -> None:
    from brain2music._io import save_npz

    keep = {
        "tf_version": ref["tf_version"],
        "command": np.array("python benchmarks/bench_musicnn_reference.py " + " ".join(argv or sys.argv[1:])),
    }
    for model in MODELS:
        keep[f"{model}/labels"] = ref[f"{model}/labels"]
        for i, item in enumerate(files):
            if item["name"].startswith("real:") or item["name"] == "clip15_44k_stereo":
                continue
            name = item["name"] if item["offsets"] is None else "clip15_encoder"
            for layer in ("taggram", "penultimate", "pool5"):
                if f"{model}/{i}/{layer}" in ref:
                    keep[f"{model}/{name}/{layer}"] = ref[f"{model}/{i}/{layer}"]
            if item["offsets"] is not None:
                keep[f"{model}/{name}/offsets"] = np.asarray(item["offsets"])
    save_npz(path, **keep)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    sys.exit(main())
