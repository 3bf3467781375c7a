"""A small fake results folder in the layout of docs/results_layout.md, for report tests."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import soundfile as sf

GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")


def write_fake_results(
    root: Path,
    *,
    n_test: int = 10,
    subjects=("sub-001", "sub-002"),
    seed: int = 0,
    space: str = "standardized",
) -> Path:
    """A results folder of the current layout, written through :class:`ResultsFolder`."""
    from brain2music.evaluate import identification_scores, similarity_matrix
    from brain2music.evaluate.space import MetricSpace
    from brain2music.results import (
        ChanceResult,
        EncoderInfo,
        EncodingResult,
        EnsembleParcels,
        GenreScore,
        MethodResult,
        PairedTest,
        Predictions,
        ResultsFolder,
        SplitHalfResult,
        StudyResults,
        SummaryRow,
    )  # fmt: skip

    rng = np.random.default_rng(seed)
    folder = ResultsFolder(root)
    clip_ids = [f"{GENRES[i % 10]}.{i:05d}" for i in range(n_test)]
    methods = ("ridge", "ensemble", "encsel", "aligned")
    res = StudyResults(
        config={"experiment": {"name": "fake"}}, subjects=list(subjects), methods=list(methods),
        encoders={"acoustic": EncoderInfo(1.5, 10, 8, "embeddings/acoustic.npz", space)},
    )  # fmt: skip
    for s, sub in enumerate(subjects):
        for k, m in enumerate(methods):
            acc = 0.7 + 0.05 * k + 0.01 * s
            for split in ("test", "train"):
                res.rows.append(
                    MethodResult(sub, "acoustic", m, split, space, acc, 0.2 + 0.02 * k,
                                 id_acc_ci=[acc - 0.05, acc + 0.05] if split == "test" else None,
                                 id_acc_p=0.001 if split == "test" else None, n_clips=n_test, train_cv_r=0.3 + 0.01 * k)
                )  # fmt: skip
            pred = rng.normal(size=(n_test, 10, 8)).astype(np.float32)
            target = pred + rng.normal(size=pred.shape).astype(np.float32)
            sim = similarity_matrix(pred, target)
            folder.write_predictions(
                Predictions(sub, "acoustic", m, np.array(clip_ids), np.array([c.split(".")[0] for c in clip_ids]),
                            pred, target, sim, identification_scores(sim), MetricSpace.fit(space, target))
            )  # fmt: skip
        res.per_genre += [
            GenreScore(sub, "acoustic", "encsel", g, float(rng.uniform(0.5, 1)), space) for g in GENRES
        ]
        enc_dir = root / "encoding" / "acoustic"
        enc_dir.mkdir(parents=True, exist_ok=True)
        data = rng.uniform(-0.1, 0.6, size=(12, 14, 10)).astype(np.float32)
        nib.save(nib.Nifti1Image(data, np.diag([3.0, 3.0, 3.0, 1.0])), str(enc_dir / f"{sub}_test_r.nii.gz"))
        res.encoding.append(
            EncodingResult(sub, "acoustic", f"encoding/acoustic/{sub}_test_r.nii.gz", f"encoding/acoustic/{sub}_encoding.npz",
                           1680, 42, 0.05, 100, 0.1, 0.6, 0.7, n_selected=100, mean_cv_r=0.1,
                           mean_test_r_over_ceiling_selected=0.4)
        )  # fmt: skip
        res.ensemble_parcels.append(
            EnsembleParcels(sub, "acoustic", [3, 7, 1, 9, 2, 5], [0.4, 0.3, 0.2, 0.1, 0.05, 0.01])
        )
        res.chance.append(
            ChanceResult(
                sub, "acoustic", space, 0.5, 0.0, n_clips=n_test, top1_acc=0.1, top1_chance=1 / n_test
            )
        )
        res.split_half.append(SplitHalfResult(sub, "acoustic", "ridge", space, 0.97, 0.8, 0.89, 4))
    res.summary = [
        SummaryRow("acoustic", m, split, space, 0.7 + 0.05 * k, 0.01, [0.69 + 0.05 * k, 0.71 + 0.05 * k], 0.001,
                   0.2, 0.01, 0.3 + 0.01 * k, len(subjects), n_clips=n_test,
                   ci_resamples="clips" if split == "test" else None,
                   top1_acc_mean=0.2 + 0.1 * k, top1_acc_sd=0.02, top1_acc_p=0.004,
                   top1_acc_ci=[0.1 + 0.1 * k, 0.3 + 0.1 * k] if split == "test" else None)
        for k, m in enumerate(methods)
        for split in ("test", "train")
    ]  # fmt: skip
    res.paired_tests = [
        PairedTest("acoustic", "ridge", "aligned", "mean", space, -0.15, [-0.2, -0.1], 0.002, n_test)
    ]
    folder.write(res)
    return root


def write_tone(path: Path, freq: float, sr: int = 22050, seconds: float = 3.0) -> Path:
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr)
    return path


def write_fake_reconstruction(results: Path, *, n_clips: int = 3) -> Path:
    """A reconstruction folder in the layout of brain2music.study.reconstruct (audio + JSON)."""
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
    stat = {"mean": 0.7, "sd": None, "ci": [0.6, 0.8], "n_subjects": 1}
    payload = {
        "schema_version": 2,
        "version": "test",
        "config": {},
        "encoder": "acoustic",
        "method": "encsel",
        "method_selected_by": "train_cv",
        "space": "standardized",
        "generator": {"name": "offline"},
        "library": {"path": str(lib), "n_items": 3 * n_clips, "encoder": "acoustic"},
        "subjects": ["sub-001"],
        "clips": clips,
        "per_subject": [],
        "summary": {f"{k}_id_acc": stat for k in ("retrieval", "generation", "chance", "oracle")}
        | {f"{k}_genre_agreement": stat for k in ("retrieval", "generation", "chance", "oracle")},
    }
    (recon / "reconstruction.json").write_text(json.dumps(payload))
    return recon
