"""Run a whole experiment from one configuration: simulate or load data, embed, decode, evaluate,
retrieve, generate, report.

Stages and their outputs (inside ``experiment.out``)::

    study/           simulate: a simulated study (bids/, stimuli/, truth/)       [simulate.enabled]
    library_music/   simulate: composed tracks for the retrieval library         [simulate.enabled]
    results.json, table2.csv, predictions/, decoders/, encoding/, embeddings/    reproduce
    library/         the music library (embeddings + FAISS index)                 library
    reconstruction/  retrieved and generated music + reconstruction.json          reconstruct
    report.html, report_assets/                                                   report
    .stages/<stage>.json                                                          stage fingerprints

A stage is reused when its fingerprint (its configuration, the fingerprints of the stages it reads and
the package version) matches the one recorded when it last completed and its outputs still exist.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brain2music import __version__
from brain2music._io import to_json, write_json
from brain2music.config import Config, load_config, parse_config
from brain2music.errors import ConfigError
from brain2music.results import ResultsFolder

STAGES = ("simulate", "reproduce", "library", "reconstruct", "report")


def _fingerprint(payload: Any) -> str:
    return hashlib.sha256(
        to_json({"payload": payload, "version": __version__}, indent=None).encode()
    ).hexdigest()[:16]


class _StageRunner:
    def __init__(self, out: Path, log: Callable[[str], None]):
        self.out = out
        self.state_dir = out / ".stages"
        self.log = log
        self.fingerprints: dict[str, str] = {}
        self.timings: dict[str, float] = {}

    def run(self, name: str, payload: Any, outputs: list[Path], fn: Callable[[], Any], *, step: str) -> bool:
        """Run ``fn`` unless the stage is up to date; return True when it ran."""
        fp = _fingerprint(payload)
        self.fingerprints[name] = fp
        record = self.state_dir / f"{name}.json"
        if record.is_file() and all(p.exists() for p in outputs):
            try:
                if json.loads(record.read_text()).get("fingerprint") == fp:
                    self.log(
                        f"[{step}] {name}: inputs unchanged, reusing {', '.join(str(p.relative_to(self.out)) for p in outputs)}"
                    )
                    self.timings[name] = 0.0
                    return False
            except json.JSONDecodeError:
                pass
        record.unlink(missing_ok=True)  # invalidate first: a crash below must not leave a stale "done"
        self.log(f"[{step}] {name} ...")
        t0 = time.perf_counter()
        fn()
        self.timings[name] = time.perf_counter() - t0
        write_json(record, {"fingerprint": fp, "seconds": self.timings[name], "version": __version__})
        self.log(f"[{step}] {name} done in {self.timings[name]:.0f} s")
        return True


def compose_library(out: str | os.PathLike, n_tracks: int, *, seed: int = 0, duration: float = 15.0) -> Path:
    """Compose ``n_tracks`` new tracks (balanced over the 10 genres) as a retrieval library folder.

    Uses the simulator's composer with seeds disjoint from the stimuli's, writes
    ``<genre>/<genre>.lib-NNNN.wav`` and ``metadata.csv`` (path, title, artist, genre). Written to a
    temporary folder and renamed, so an interrupted run leaves nothing that looks complete.
    """
    import numpy as np
    import pandas as pd
    from tqdm.auto import tqdm

    from brain2music.data.events import GENRES
    from brain2music.simulate import render, sample_params
    from brain2music.stimuli import write_audio

    out = Path(out)
    if n_tracks < 1:
        raise ConfigError(f"library_tracks must be at least 1; got {n_tracks}")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    rows = []
    rng = np.random.default_rng(
        [seed, 7919]
    )  # a stream of its own: library tracks never reuse stimulus seeds
    for i in tqdm(range(n_tracks), desc="composing library", leave=False):
        genre = GENRES[i % len(GENRES)]
        params = sample_params(genre, rng)
        audio = render(params, sr=22050, duration=duration)
        rel = Path(genre) / f"{genre}.lib-{i:04d}.wav"
        write_audio(tmp / rel, audio, 22050)
        rows.append(
            {
                "path": str(rel),
                "title": f"{genre} study #{i}",
                "artist": "brain2music composer",
                "genre": genre,
            }
        )
    pd.DataFrame(rows).to_csv(tmp / "metadata.csv", index=False)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


@dataclass
class _Plan:
    """Where every stage reads and writes, and which stages run (resolved once from the config)."""

    config: Config
    out: Path
    encoders: list[str]
    lib_encoder: str
    bids: Path | None
    stimuli: Path | None
    derivatives: str | None
    #: Data-source and parcel keywords of ``reproduce`` (fMRIPrep folder, space, confounds, mask, parcels).
    source_kw: dict
    music_dir: Path | None
    lib_path: Path | None
    enabled: list[str]

    @property
    def cfg(self) -> dict:
        return self.config.values

    def step(self, name: str) -> str:
        return f"{self.enabled.index(name) + 1}/{len(self.enabled)}"


def run_experiment(config: Config | str | os.PathLike | dict, *, verbose: bool = True) -> dict:
    """Run every enabled stage of an experiment and return a summary (paths, timings, key figures)."""
    if isinstance(config, dict):
        config = parse_config(config)
    elif not isinstance(config, Config):
        config = load_config(config)
    plan = _plan(config)
    plan.out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        if verbose:
            print(msg, file=sys.stderr, flush=True)

    stages = _StageRunner(plan.out, log)
    # One run of an experiment folder at a time (reproduce, inside, holds it again: re-entrant).
    with ResultsFolder(plan.out).writing("brain2music run"):
        for name, stage in (("simulate", _simulate), ("reproduce", _reproduce), ("library", _library),
                            ("reconstruct", _reconstruct), ("report", _report)):  # fmt: skip
            if name in plan.enabled:
                stage(plan, stages, verbose)
        summary = {
            "out": str(plan.out),
            "report": str(plan.out / "report.html") if "report" in plan.enabled else None,
            "results": str(plan.out / "results.json"),
            "timings_s": stages.timings,
            "stages": plan.enabled,
        }
        write_json(
            plan.out / "experiment.json", {"config": config.to_dict(), "version": __version__, **summary}
        )
    return summary


def _plan(config: Config) -> _Plan:
    cfg = config.values
    out = Path(cfg["experiment"]["out"])
    sim, recon_cfg = cfg["simulate"], cfg["reconstruction"]
    encoders = cfg["embeddings"]["encoders"]
    lib_encoder = cfg["library"]["encoder"] or encoders[0]
    if lib_encoder not in encoders:
        raise ConfigError(
            f"{config.where('library.encoder')}: {lib_encoder!r} is not among embeddings.encoders {encoders}"
        )
    if sim["enabled"]:
        bids, stimuli, derivatives = out / "study" / "bids", out / "study" / "stimuli", None
        fmriprep = bids / "derivatives" / "fmriprep" if sim["layout"] == "fmriprep" else None
    else:
        bids = Path(cfg["data"]["bids"]) if cfg["data"]["bids"] else None
        stimuli = Path(cfg["data"]["stimuli"]) if cfg["data"]["stimuli"] else None
        derivatives = cfg["data"]["derivatives"]
        fmriprep = cfg["data"]["fmriprep"]
    data = cfg["data"]
    source_kw = {"fmriprep": fmriprep, "space": data["space"], "confounds": data["confounds"],
                 "mask": data["mask"], "freesurfer_dir": data["freesurfer_dir"], "parcels": data["parcels"]}  # fmt: skip
    music_dir = (
        Path(cfg["library"]["music"])
        if cfg["library"]["music"]
        else (out / "library_music" if sim["enabled"] else None)
    )
    lib_path = (
        Path(cfg["library"]["path"]) if cfg["library"]["path"] else (out / "library" if music_dir else None)
    )
    enabled = (["simulate"] if sim["enabled"] else []) + ["reproduce"]
    if lib_path is not None and recon_cfg["enabled"]:
        if cfg["library"]["music"] or sim["enabled"] or not lib_path.exists():
            enabled.append("library")
        enabled.append("reconstruct")
    if cfg["report"]["enabled"]:
        enabled.append("report")
    if "library" in enabled:
        _check_library_encoder(config, lib_encoder)
    return _Plan(
        config,
        out,
        encoders,
        lib_encoder,
        bids,
        stimuli,
        derivatives,
        source_kw,
        music_dir,
        lib_path,
        enabled,
    )


def _check_library_encoder(config: Config, name: str) -> None:
    """The library embeds music, so its encoder must be in the registry (a precomputed name may not be)."""
    from brain2music.embeddings import list_encoders

    if name not in list_encoders():
        raise ConfigError(
            f"{config.where('library.encoder')}: {name!r} is no encoder of the registry (a precomputed "
            f"embedding needs none, but the library must embed its music); set library.encoder to one of "
            f"{', '.join(list_encoders())}"
        )


def _precomputed(plan: _Plan) -> dict:
    return dict(plan.cfg["embeddings"]["precomputed"])


def _file_digests(paths: dict) -> dict:
    """``{name: sha256}`` of the precomputed files, so a stage reruns when a file's content changes."""
    out = {}
    for name, path in paths.items():
        if not Path(path).is_file():
            from brain2music.errors import DataFileNotFoundError

            raise DataFileNotFoundError(f"embeddings.precomputed: {name}: file does not exist: {path}")
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        out[name] = h.hexdigest()
    return out


def _simulate(plan: _Plan, stages: _StageRunner, verbose: bool) -> None:
    sim, seed, study = plan.cfg["simulate"], plan.cfg["experiment"]["seed"], plan.out / "study"

    def run():
        from brain2music.simulate import simulate_study

        simulate_study(
            study, n_subjects=sim["subjects"], n_voxels=sim["voxels"], seed=seed,
            clips_per_genre=sim["clips_per_genre"], test_clips_per_genre=sim["test_clips_per_genre"],
            train_runs=sim["train_runs"], test_runs=sim["test_runs"], layout=sim["layout"], overwrite=True,
            progress=verbose,
        )  # fmt: skip
        compose_library(plan.out / "library_music", sim["library_tracks"], seed=seed)

    outputs = [study / "simulation.json", plan.out / "library_music"]
    stages.run("simulate", sim | {"seed": seed}, outputs, run, step=plan.step("simulate"))


def _reproduce(plan: _Plan, stages: _StageRunner, verbose: bool) -> None:
    from brain2music.results import SCHEMA_VERSION

    cfg = plan.cfg

    def run():
        from threadpoolctl import threadpool_limits

        from brain2music.study.reproduce import reproduce

        # decoding.n_jobs caps the BLAS/OpenMP threads of the decoders' linear algebra (null: all cores).
        with threadpool_limits(limits=cfg["decoding"]["n_jobs"]):
            reproduce(
                plan.bids, stimuli=plan.stimuli, encoders=plan.encoders, out=plan.out,
                subjects=cfg["data"]["subjects"], derivatives=plan.derivatives, **plan.source_kw,
                methods=cfg["decoding"]["methods"], delay=cfg["data"]["delay"],
                random_state=cfg["experiment"]["seed"], verbose=verbose,
                backend=cfg["decoding"]["backend"], scheduler=cfg["decoding"]["scheduler"],
                **_placement(plan), encoder_options=cfg["embeddings"]["options"],
                embeddings=_precomputed(plan) or None,
            )  # fmt: skip

    # Where the subjects run does not change the results, so it is not part of the stage's fingerprint.
    decoding = {k: v for k, v in cfg["decoding"].items() if k != "scheduler"}
    payload = {
        "data": cfg["data"], "embeddings": cfg["embeddings"], "decoding": decoding,
        "seed": cfg["experiment"]["seed"], "upstream": stages.fingerprints.get("simulate"),
        "dtype": cfg["experiment"]["dtype"], "precomputed": _file_digests(_precomputed(plan)),
        # A results folder of another layout must be rewritten even when nothing else changed.
        "schema": SCHEMA_VERSION,
    }  # fmt: skip
    stages.run("reproduce", payload, [plan.out / "results.json"], run, step=plan.step("reproduce"))


def _library(plan: _Plan, stages: _StageRunner, verbose: bool) -> None:
    def run():
        from brain2music.reconstruct import build_library

        shutil.rmtree(plan.lib_path, ignore_errors=True)
        metadata = plan.music_dir / "metadata.csv"
        build_library(
            plan.music_dir, plan.lib_path, encoder=plan.lib_encoder,
            metadata=metadata if metadata.is_file() else None, progress=verbose,
            encoder_options=_library_options(plan),
        )  # fmt: skip

    payload = {"library": plan.cfg["library"], "encoder": plan.lib_encoder, "music": str(plan.music_dir),
               "options": plan.cfg["embeddings"]["options"], "dtype": plan.cfg["experiment"]["dtype"],
               "upstream": stages.fingerprints.get("simulate")}  # fmt: skip
    stages.run("library", payload, [plan.lib_path], run, step=plan.step("library"))


def _reconstruct(plan: _Plan, stages: _StageRunner, verbose: bool) -> None:
    recon_cfg, recon_out = plan.cfg["reconstruction"], plan.out / "reconstruction"

    def run():
        from brain2music.study.reconstruct import reconstruct

        reconstruct(
            plan.out, plan.lib_path, recon_out, generator=recon_cfg["generator"],
            generator_options=_generator_options(plan), subjects=recon_cfg["subjects"],
            n_clips=recon_cfg["n_clips"], k=recon_cfg["top_k"], best_of=recon_cfg["best_of"],
            score=recon_cfg["score"], random_state=plan.cfg["experiment"]["seed"], progress=verbose,
            **_placement(plan), tag_agreement=recon_cfg["tag_agreement"],
            tag_library=recon_cfg["tag_library"],
        )  # fmt: skip

    payload = {
        "reconstruction": recon_cfg,
        "up": [stages.fingerprints.get(s) for s in ("reproduce", "library")],
    }
    stages.run(
        "reconstruct", payload, [recon_out / "reconstruction.json"], run, step=plan.step("reconstruct")
    )


def _placement(plan: _Plan) -> dict:
    return {"device": plan.cfg["experiment"]["device"], "dtype": plan.cfg["experiment"]["dtype"]}


def _library_options(plan: _Plan) -> dict:
    """The library encoder's kwargs: the same ``embeddings.options`` as the study's encoder of that name."""
    from brain2music.study.settings import resolve_study_encoders

    others = [e for e in _precomputed(plan) if e != plan.lib_encoder]
    opts = resolve_study_encoders(
        plan.encoders, plan.cfg["embeddings"]["options"], **_placement(plan), precomputed=others
    )
    return opts[plan.lib_encoder]


def _generator_options(plan: _Plan) -> dict:
    recon = plan.cfg["reconstruction"]
    options = {"preset": recon["preset"]} if recon["generator"] == "offline" else {}
    return options | dict(recon["generator_options"])


def check_experiment(config: Config | str | os.PathLike | dict) -> list:
    """``run --check``: build every encoder and the generator an experiment names, loading their
    checkpoints (and MusicLDM's CLAP pairing against the library's encoder), computing nothing.

    Returns :class:`~brain2music.checkpoints.CheckResult` s (:func:`brain2music.checkpoints.print_check`).
    """
    from brain2music.checkpoints import check_component, check_encoders, check_generator
    from brain2music.reconstruct.generators import generator_parameters, resolve_generator_options
    from brain2music.study.settings import resolve_study_encoders

    if isinstance(config, dict):
        config = parse_config(config, check_paths=False)
    elif not isinstance(config, Config):
        config = load_config(config, check_paths=False)
    plan = _plan(config)
    options, precomputed = plan.cfg["embeddings"]["options"], _precomputed(plan)
    resolved = resolve_study_encoders(plan.encoders, options, **_placement(plan), precomputed=precomputed)
    results = check_encoders(resolved)
    generator = plan.cfg["reconstruction"]["generator"]
    if "reconstruct" not in plan.enabled or generator is None:
        return results
    options = resolve_generator_options(generator, _generator_options(plan), **_placement(plan))
    if "encoder" in generator_parameters(generator):
        from brain2music.embeddings.registry import get_encoder

        built = {}
        lib_kw = resolved[plan.lib_encoder] if plan.lib_encoder in resolved else _library_options(plan)
        results.append(check_component("encoder", f"{plan.lib_encoder} (library)", None,
                                       lambda: built.setdefault("enc", get_encoder(plan.lib_encoder, **lib_kw))))  # fmt: skip
        if "enc" not in built:
            return results
        options.setdefault("encoder", built["enc"])
    return results + check_generator(generator, options)


def _report(plan: _Plan, stages: _StageRunner, verbose: bool) -> None:
    def run():
        from brain2music.report import build_report

        build_report(
            plan.out, recon_dir=plan.out / "reconstruction" if "reconstruct" in plan.enabled else None,
            max_clips=plan.cfg["report"]["max_clips"], config=plan.config.to_dict(),
            title=plan.cfg["experiment"]["name"],
        )  # fmt: skip

    payload = {"report": plan.cfg["report"], "up": dict(stages.fingerprints)}
    stages.run("report", payload, [plan.out / "report.html"], run, step=plan.step("report"))


DEMO_OUT = "brain2music-demo"


def demo_config(out: str | os.PathLike = DEMO_OUT, *, seed: int = 0) -> dict:
    """The embedded default experiment: a small simulated study, ``acoustic`` embeddings, the paper's
    decoders and their successors, retrieval from a composed library and offline generation.

    Sized to finish in minutes on a 2-core laptop without downloads or a GPU.
    """
    return {
        "experiment": {"name": "brain2music demo (simulated study)", "out": str(out), "seed": seed},
        "simulate": {
            "enabled": True,
            "subjects": 2,
            "voxels": 2000,
            "clips_per_genre": 24,
            "test_clips_per_genre": 3,
            "train_runs": 6,
            "test_runs": 3,
            "library_tracks": 60,
        },
        "embeddings": {"encoders": ["acoustic", "musicnn-msd"]},
        "decoding": {"methods": ["ridge", "ensemble", "encsel", "aligned", "krr-rbf"]},
        "reconstruction": {
            "enabled": True,
            "generator": "offline",
            "preset": "demo",
            "n_clips": 10,
            "top_k": 3,
        },
        "report": {"enabled": True, "max_clips": 6},
    }


def run_demo(out: str | os.PathLike = DEMO_OUT, *, seed: int = 0, verbose: bool = True) -> dict:
    """Run the embedded demo into ``out`` and return its summary (see :func:`run_experiment`)."""
    t0 = time.perf_counter()
    summary = run_experiment(parse_config(demo_config(out, seed=seed), check_paths=False), verbose=verbose)
    summary["total_s"] = time.perf_counter() - t0
    return summary
