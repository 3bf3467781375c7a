"""Experiment configuration files: one YAML file describes a whole run.

Validation points at the line of the file: an unknown key or a missing path raises
:class:`~brain2music.errors.ConfigError` with ``FILE:LINE`` and the dotted key. :func:`example_config`
returns a commented example (``brain2music config --example``).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from brain2music.errors import ConfigError

# The schema: section -> {key: (default, kind)}. kind is one of "path", "path?", "int", "float", "bool",
# "str", "str?", "list", "list?", "dict".
SCHEMA: dict[str, dict[str, tuple[Any, str]]] = {
    "experiment": {
        "name": ("experiment", "str"),
        "out": (None, "str"),
        "seed": (0, "int"),
        "device": (None, "str?"),
        "dtype": (None, "str?"),
    },
    "simulate": {
        "enabled": (False, "bool"),
        "subjects": (2, "int"),
        "voxels": (2000, "int"),
        "clips_per_genre": (48, "int"),
        "test_clips_per_genre": (6, "int"),
        "train_runs": (12, "int"),
        "test_runs": (6, "int"),
        "library_tracks": (100, "int"),
        "layout": ("bids", "str"),
    },
    "data": {
        "bids": (None, "path?"),
        "derivatives": (None, "path?"),
        "stimuli": (None, "path?"),
        "subjects": (None, "list?"),
        "delay": (3, "int"),
        "mask": (None, "str?"),
        "fmriprep": (None, "path?"),
        "space": (None, "str?"),
        "confounds": (None, "str?"),
        "freesurfer_dir": (None, "path?"),
        "parcels": (None, "str?"),
    },
    "embeddings": {
        "encoders": (["acoustic"], "list"),
        "options": ({}, "dict"),
        "precomputed": ({}, "dict"),
    },
    "decoding": {
        "methods": (["ridge", "ensemble", "encsel", "aligned"], "list"),
        "n_jobs": (None, "int?"),
        "backend": ("numpy", "str"),
        "scheduler": (None, "str?"),
    },
    "library": {
        "music": (None, "path?"),
        "path": (None, "str?"),
        "encoder": (None, "str?"),
    },
    "reconstruction": {
        "enabled": (True, "bool"),
        "generator": ("offline", "str?"),
        "preset": ("default", "str"),
        "subjects": (None, "list?"),
        "n_clips": (10, "int?"),
        "top_k": (3, "int"),
        "tag_agreement": (True, "bool"),
        "tag_library": (200, "int"),
        "generator_options": ({}, "dict"),
        "best_of": (1, "int"),
        "score": ("embedding", "str"),
    },
    "report": {
        "enabled": (True, "bool"),
        "max_clips": (12, "int"),
    },
}

EXAMPLE = """\
# brain2music experiment configuration.  Run with:  brain2music run experiment.yaml
# Relative paths are relative to this file. Unknown keys are errors (they are usually typos).

experiment:
  name: my-experiment
  out: results/my-experiment      # output folder; stages whose inputs did not change are reused from it
  seed: 0
  device: null                    # neural models: auto (cuda if available), cpu, cuda, cuda:N, mps
  dtype: null                     # auto (float16 on cuda), float32, float16, bfloat16

# Either simulate a study (no downloads) ...
simulate:
  enabled: false
  subjects: 2                     # simulated subjects
  voxels: 2000                    # voxels per subject
  clips_per_genre: 48             # training clips per genre (ds003720: 48)
  test_clips_per_genre: 6         # test clips per genre, each heard 4 times (ds003720: 6)
  train_runs: 12                  # training runs (ds003720: 12)
  test_runs: 6                    # test runs (ds003720: 6)
  library_tracks: 100             # composed tracks for the retrieval library
  layout: bids                    # bids (raw BOLD, no head motion) or fmriprep (fMRIPrep derivatives with
                                  # simulated head motion, confounds and FreeSurfer parcels; read with them)

# ... or point at real data (ignored when simulate.enabled is true).
data:
  bids: /data/ds003720            # BIDS root laid out like OpenNeuro ds003720
  derivatives: null               # folder with sub-00N_Resp_Training.npy ... to use instead of raw BOLD
  fmriprep: null                  # or fMRIPrep derivatives to use instead of raw BOLD (events from data.bids)
  space: null                     # fMRIPrep output space (null = T1w; e.g. MNI152NLin2009cAsym:res-2)
  confounds: null                 # fMRIPrep confounds regressed per run (null = motion,wm_csf,high_pass; none)
  freesurfer_dir: null            # FreeSurfer subjects folder (null = <fmriprep>/sourcedata/freesurfer)
  parcels: null                   # ensemble parcels: destrieux (FreeSurfer, with fmriprep), a label image,
                                  # or null = <bids>/derivatives/parcels.nii.gz when present
  stimuli: /data/gtzan            # GTZAN folder (genres/<genre>/<genre>.000NN.wav)
  subjects: null                  # null = every subject; or [sub-001, sub-002]
  delay: 3                        # hemodynamic delay in TRs
  mask: null                      # NIfTI voxel mask; null = derivatives/brain_mask.nii.gz or computed;
                                  # with fmriprep also brain (its brain masks, the default) or cortex

embeddings:
  encoders: [acoustic]            # acoustic (no weights), musicnn-msd, musicnn-mtt (weights in the
                                  # musicnn package), clap, encodec, mert, clap-text
  options: {}                     # encoder options, as --encoder-option: {batch_size: 16} for every
                                  # encoder that takes it, {mert: {trust_remote_code: true}} for one
  precomputed: {}                 # embeddings computed elsewhere, as --embeddings: {mfcc: mfcc.npz};
                                  # a .npz with clip_ids (n,), embeddings (n, r, dim), optionally window
                                  # (s) and space (paper/standardized); list the name in encoders too

decoding:
  methods: [ridge, ensemble, encsel, aligned]
  n_jobs: null                    # CPU threads of the decoding stage's linear algebra (null = all)
  backend: numpy                  # numpy, torch, torch_cuda or cupy (himalaya backends; GPU: float32 on the device)
  scheduler: null                 # null (in-process), threads, local (Dask processes) or tcp://host:8786

library:
  music: null                     # folder of audio to build a retrieval library from (null: skip retrieval)
  path: null                      # or an existing library folder
  encoder: null                   # encoder of the library; null = the first of embeddings.encoders

reconstruction:
  enabled: true
  generator: offline              # offline (no weights), musicldm, musicgen, or null for retrieval only
  preset: default                 # offline generator effort: demo (fast) or default
  subjects: null                  # null = every subject
  n_clips: 10                     # test clips to reconstruct per subject (null = all)
  top_k: 3                        # retrieved tracks per clip
  tag_agreement: true             # class agreement with the musicnn taggers (genres, instruments, moods)
  tag_library: 200                # library tracks (at most) tagged for its Chance level
  generator_options: {}           # as --generator-option, e.g. {num_inference_steps: 50}
  best_of: 1                      # candidates generated per clip; the best by `score` is kept
  score: embedding                # embedding (cosine to the decoded embedding) or encoding (encoding model)

report:
  enabled: true
  max_clips: 12                   # clips shown with audio players in the report
"""


@dataclass
class Config:
    """A validated configuration: ``values[section][key]``, the file it came from, and key line numbers."""

    values: dict[str, dict[str, Any]]
    path: Path | None = None
    lines: dict[str, int] | None = None

    def __getitem__(self, section: str) -> dict[str, Any]:
        return self.values[section]

    def where(self, dotted: str) -> str:
        """``"<file>:<line>: <section.key>"`` for error messages (the key alone for a config with no file)."""
        line = (self.lines or {}).get(dotted)
        if self.path is None:
            return dotted
        return f"{self.path}:{line}: {dotted}" if line else f"{self.path}: {dotted}"

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """A deep copy of every section's values, as plain dicts."""
        return copy.deepcopy(self.values)


def example_config() -> str:
    """A commented example configuration (YAML text)."""
    return EXAMPLE


def _defaults() -> dict[str, dict[str, Any]]:
    return {s: {k: copy.deepcopy(v[0]) for k, v in keys.items()} for s, keys in SCHEMA.items()}


def _check_kind(value: Any, kind: str, where: str) -> Any:
    optional = kind.endswith("?")
    base = kind.rstrip("?")
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: a value is required ({base})")
    if base == "bool" and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, found {value!r}")
    if base == "int" and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{where}: expected a whole number, found {value!r}")
    if base == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{where}: expected a number, found {value!r}")
    if base in ("str", "path") and not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{where}: expected a string, found {value!r}")
    if base == "dict" and not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of options (KEY: VALUE), found {value!r}")
    if base == "list":
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, found {value!r}")
        value = [str(v) for v in value]
    return value


def _line_numbers(text: str, source: str) -> dict[str, int]:
    import yaml

    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML ({exc})") from exc
    lines: dict[str, int] = {}
    if root is None or not isinstance(root, yaml.MappingNode):
        return lines
    for key_node, value_node in root.value:
        section = key_node.value
        lines[section] = key_node.start_mark.line + 1
        if isinstance(value_node, yaml.MappingNode):
            for k, _ in value_node.value:
                lines[f"{section}.{k.value}"] = k.start_mark.line + 1
    return lines


def parse_config(
    data: dict | str, *, path: str | os.PathLike | None = None, check_paths: bool = True
) -> Config:
    """Validate a configuration given as a dict or YAML text; fill in defaults; resolve relative paths.

    Relative paths are resolved against the config file's folder (or the working directory).
    """
    import yaml

    source = str(path) if path is not None else "<config>"
    lines: dict[str, int] = {}
    if isinstance(data, str):
        lines = _line_numbers(data, source)
        try:
            data = yaml.safe_load(data) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of sections ({', '.join(SCHEMA)}), found {type(data).__name__}"
        )

    def where(dotted: str) -> str:
        line = lines.get(dotted)
        return f"{source}:{line}: {dotted}" if line else f"{source}: {dotted}"

    base = Path(path).resolve().parent if path is not None else Path.cwd()
    values = _defaults()
    values = _read_sections(data, values, where, base)
    _check_values(values, where, check_paths)
    return Config(values=values, path=Path(path) if path is not None else None, lines=lines)


def _resolve(value: str, base: Path) -> str:
    p = Path(os.path.expanduser(str(value)))
    return str(p if p.is_absolute() else (base / p))


def _read_sections(data: dict, values: dict, where, base: Path) -> dict:
    for section, content in data.items():
        if section not in SCHEMA:
            raise ConfigError(
                f"{where(section)}: unknown section {section!r}; known sections: {', '.join(SCHEMA)}"
            )
        if content is None:
            continue
        if not isinstance(content, dict):
            raise ConfigError(f"{where(section)}: expected a mapping of keys, found {content!r}")
        for key, value in content.items():
            dotted = f"{section}.{key}"
            if key not in SCHEMA[section]:
                raise ConfigError(
                    f"{where(dotted)}: unknown key {key!r} in section {section!r}; "
                    f"known keys: {', '.join(SCHEMA[section])}"
                )
            kind = SCHEMA[section][key][1]
            value = _check_kind(value, kind, where(dotted))
            if kind.startswith("path") and value is not None:
                value = _resolve(value, base)
            values[section][key] = value
    if values["experiment"]["out"] is not None:
        values["experiment"]["out"] = _resolve(values["experiment"]["out"], base)
    precomputed = values["embeddings"]["precomputed"]
    for name, value in precomputed.items():
        if not isinstance(value, (str, os.PathLike)):
            raise ConfigError(
                f"{where('embeddings.precomputed')}: {name}: expected the path of an embeddings .npz, "
                f"found {value!r}"
            )
        precomputed[name] = _resolve(value, base)
    # Keys that are a path or a keyword: a path resolves like the others.
    for key, words in (("mask", ("brain", "cortex")), ("parcels", ("destrieux",))):
        value = values["data"][key]
        if value is not None and value not in words:
            values["data"][key] = _resolve(value, base)
    return values


def _check_values(values: dict, where, check_paths: bool) -> None:
    if values["experiment"]["out"] is None:
        raise ConfigError(f"{where('experiment.out')}: experiment.out (the output folder) is required")
    _check_precomputed(values, where, check_paths)
    if not values["simulate"]["enabled"]:
        if values["data"]["bids"] is None and values["data"]["derivatives"] is None:
            raise ConfigError(
                f"{where('data.bids')}: set data.bids (or data.derivatives), or simulate.enabled: true"
            )
        computed = [
            e for e in values["embeddings"]["encoders"] if e not in values["embeddings"]["precomputed"]
        ]
        if values["data"]["stimuli"] is None and computed:
            raise ConfigError(
                f"{where('data.stimuli')}: data.stimuli (the stimulus folder) is required to compute "
                f"{', '.join(computed)} (or give them in embeddings.precomputed)"
            )
        if check_paths:
            for key in ("bids", "derivatives", "stimuli", "mask", "fmriprep", "freesurfer_dir", "parcels"):
                p = values["data"][key]
                if p in ("brain", "cortex", "destrieux") or "{subject}" in str(p):
                    continue
                if p is not None and not Path(p).exists():
                    raise ConfigError(f"{where('data.' + key)}: path does not exist: {p}")
    if (
        check_paths
        and values["library"]["music"] is not None
        and not Path(values["library"]["music"]).exists()
    ):
        raise ConfigError(f"{where('library.music')}: path does not exist: {values['library']['music']}")
    _check_neural(values, where)
    if values["simulate"]["enabled"] and values["simulate"]["subjects"] < 1:
        raise ConfigError(
            f"{where('simulate.subjects')}: must be at least 1, found {values['simulate']['subjects']}"
        )
    if values["simulate"]["layout"] not in ("bids", "fmriprep"):
        raise ConfigError(
            f"{where('simulate.layout')}: expected bids or fmriprep, found {values['simulate']['layout']!r}"
        )
    n_jobs = values["decoding"]["n_jobs"]
    if n_jobs is not None and n_jobs < 1:
        raise ConfigError(f"{where('decoding.n_jobs')}: must be at least 1 (or null), found {n_jobs}")


def _check_precomputed(values: dict, where, check_paths: bool) -> None:
    """Every precomputed embedding is one of ``embeddings.encoders`` and (with ``check_paths``) exists."""
    emb = values["embeddings"]
    for name, path in emb["precomputed"].items():
        if name not in emb["encoders"]:
            raise ConfigError(
                f"{where('embeddings.precomputed')}: {name!r} is not among embeddings.encoders "
                f"{emb['encoders']}; add it there to use it"
            )
        if check_paths and not Path(path).is_file():
            raise ConfigError(f"{where('embeddings.precomputed')}: {name}: file does not exist: {path}")


def _check_neural(values: dict, where) -> None:
    """Placement and best-of-N keys, with the same choices as the command-line flags."""
    import re

    device, dtype = values["experiment"]["device"], values["experiment"]["dtype"]
    if device is not None and not re.match(r"^(auto|cpu|mps|cuda(:\d+)?)$", device):
        raise ConfigError(
            f"{where('experiment.device')}: expected auto, cpu, cuda, cuda:N or mps; found {device!r}"
        )
    if dtype is not None and dtype not in ("auto", "float32", "float16", "bfloat16"):
        raise ConfigError(
            f"{where('experiment.dtype')}: expected auto, float32, float16 or bfloat16; found {dtype!r}"
        )
    recon = values["reconstruction"]
    if recon["best_of"] < 1:
        raise ConfigError(f"{where('reconstruction.best_of')}: must be at least 1, found {recon['best_of']}")
    if recon["score"] not in ("embedding", "encoding"):
        raise ConfigError(
            f"{where('reconstruction.score')}: expected embedding or encoding; found {recon['score']!r}"
        )


def load_config(path: str | os.PathLike, *, check_paths: bool = True) -> Config:
    """Read and validate a YAML configuration file."""
    path = Path(path)
    if not path.is_file():
        from brain2music.errors import DataFileNotFoundError

        raise DataFileNotFoundError(f"configuration file not found: {path}")
    return parse_config(path.read_text(encoding="utf-8"), path=path, check_paths=check_paths)
