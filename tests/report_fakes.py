"""A small fake results folder in the layout of docs/results_layout.md, for report tests."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import soundfile as sf

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def write_fake_results(
    root: Path, *, n_test: int = 10, subjects=("sub-001", "sub-002"), seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    clip_ids = [f"{GENRES[i % 10]}.{i:05d}" for i in range(n_test)]
    rows, per_genre, encoding, parcels = [], [], [], []
    methods = ("ridge", "ensemble", "encsel", "aligned")
    for s, sub in enumerate(subjects):
        for k, m in enumerate(methods):
            for split in ("test", "train"):
                rows.append(
                    {
                        "subject": sub,
                        "encoder": "acoustic",
                        "method": m,
                        "split": split,
                        "id_acc": 0.7 + 0.05 * k + 0.01 * s,
                        "pearson_r": 0.2 + 0.02 * k,
                    }
                )
            pred = rng.normal(size=(n_test, 10, 8)).astype(np.float32)
            target = pred + rng.normal(size=pred.shape).astype(np.float32)
            sim = np.corrcoef(pred.mean(1), target.mean(1))[:n_test, n_test:]
            d = root / "predictions" / "acoustic" / m
            d.mkdir(parents=True, exist_ok=True)
            np.savez(
                d / f"{sub}.npz",
                clip_ids=np.array(clip_ids),
                genres=np.array([c.split(".")[0] for c in clip_ids]),
                predicted=pred,
                target=target,
                similarity=sim,
            )
        for g in GENRES:
            per_genre.append(
                {
                    "subject": sub,
                    "encoder": "acoustic",
                    "method": "ridge",
                    "genre": g,
                    "id_acc": float(rng.uniform(0.5, 1)),
                }
            )
        enc_dir = root / "encoding" / "acoustic"
        enc_dir.mkdir(parents=True, exist_ok=True)
        data = rng.uniform(-0.1, 0.6, size=(12, 14, 10)).astype(np.float32)
        nib.save(nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.0, 1.0])), str(enc_dir / f"{sub}_test_r.nii.gz"))
        encoding.append(
            {
                "subject": sub,
                "encoder": "acoustic",
                "map": f"encoding/acoustic/{sub}_test_r.nii.gz",
                "n_significant": 42,
            }
        )
        parcels.append(
            {
                "subject": sub,
                "encoder": "acoustic",
                "parcels": [3, 7, 1, 9, 2, 5],
                "cv_scores": [0.4, 0.3, 0.2, 0.1, 0.05, 0.01],
            }
        )
    summary = [
        {
            "encoder": "acoustic",
            "method": m,
            "split": split,
            "id_acc_mean": 0.7 + 0.05 * k,
            "id_acc_sd": 0.01,
            "r_mean": 0.2,
            "r_sd": 0.01,
            "n_subjects": len(subjects),
        }
        for k, m in enumerate(methods)
        for split in ("test", "train")
    ]
    results = {
        "version": "test",
        "config": {"experiment": {"name": "fake"}},
        "subjects": list(subjects),
        "encoders": {"acoustic": {"window": 1.5, "r": 10, "dim": 8, "embeddings": "embeddings/acoustic.npz"}},
        "methods": list(methods),
        "rows": rows,
        "chance": [{"subject": s, "encoder": "acoustic", "id_acc": 0.5, "pearson_r": 0.0} for s in subjects],
        "oracle": [{"subject": s, "encoder": "acoustic", "id_acc": 0.97, "pearson_r": 0.8} for s in subjects],
        "summary": summary,
        "per_genre": per_genre,
        "leave_one_genre_out": [],
        "ensemble_parcels": parcels,
        "encoding": encoding,
    }
    (root / "results.json").write_text(json.dumps(results))
    return root


def write_tone(path: Path, freq: float, sr: int = 22050, seconds: float = 3.0) -> Path:
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


def write_fake_reconstruction(results: Path, *, n_clips: int = 3) -> Path:
    """A reconstruction folder in the layout of brain2music.reconstruct.pipeline (audio + JSON)."""
    recon = results / "reconstruction"
    (recon / "audio" / "sub-001").mkdir(parents=True, exist_ok=True)
    lib = results / "libmusic"
    lib.mkdir(exist_ok=True)
    clips = []
    for i in range(n_clips):
        cid = f"{GENRES[i]}.{i:05d}"
        orig = write_tone(lib / f"orig{i}.wav", 220.0 * (i + 1), seconds=20.0)
        ret = [write_tone(lib / f"lib{i}_{j}.wav", 300.0 + 50 * j + i) for j in range(3)]
        gen = write_tone(recon / "audio" / "sub-001" / f"{cid}.generated.wav", 500.0 + i)
        clips.append(
            {
                "subject": "sub-001",
                "clip_id": cid,
                "genre": GENRES[i],
                "original": {"clip_id": cid, "path": str(orig)},
                "retrieved": [
                    {
                        "rank": j + 1,
                        "path": str(p),
                        "title": f"track {j}",
                        "artist": "a",
                        "genre": "jazz",
                        "score": 0.9 - 0.1 * j,
                    }
                    for j, p in enumerate(ret)
                ],
                "oracle": {"path": str(ret[0]), "title": "track 0", "genre": "jazz", "score": 0.95},
                "generated": {"path": str(gen.relative_to(recon)), "score": 0.8, "score_true": 0.6},
                "tags": {
                    "original": GENRES[i],
                    "retrieved": "jazz",
                    "generated": GENRES[i],
                    "oracle": "jazz",
                },
            }
        )
    stat = {"mean": 0.7, "sd": 0.05, "n_subjects": 1}
    payload = {
        "version": "test",
        "config": {},
        "encoder": "acoustic",
        "method": "encsel",
        "generator": {"name": "offline"},
        "library": {"path": str(lib), "n_items": 3 * n_clips, "encoder": "acoustic"},
        "subjects": ["sub-001"],
        "clips": clips,
        "evaluation": {
            "per_subject": [],
            "summary": {f"{k}_id_acc": stat for k in ("retrieval", "generation", "chance", "oracle")}
            | {f"{k}_genre_agreement": stat for k in ("retrieval", "generation", "chance", "oracle")},
        },
    }
    (recon / "reconstruction.json").write_text(json.dumps(payload))
    return recon
