"""Confound regression of fMRIPrep runs with nilearn's ``load_confounds`` strategies.

A strategy is written as a comma-separated list (CLI ``--confounds``, config ``data.confounds``)::

    motion[:basic|power2|derivatives|full]   head-motion estimates (default full = 24 parameters)
    wm_csf[:basic|power2|derivatives|full]   mean white-matter and CSF signals (default basic)
    global_signal[:basic|...|full]           the global signal (default basic)
    high_pass                                fMRIPrep's discrete-cosine drift regressors (cosine*)
    scrub[:FD_MM]                            censor volumes with framewise displacement above FD_MM
                                             (default 0.5 mm, Power et al. 2012) and segments shorter
                                             than 5 volumes (Power et al. 2014)
    compcor[:anat_combined|anat_separated|temporal|temporal_anat_combined|temporal_anat_separated][:N]
                                             CompCor components (default anat_combined, every component
                                             fMRIPrep kept, i.e. 50 % of the variance; ``:N`` keeps the
                                             first N per mask); needs high_pass, as in nilearn
    none                                     no confound regression (detrend + z-score only)

e.g. ``motion,wm_csf,high_pass`` (nilearn's default) or ``motion:basic,scrub:0.3``.

:func:`clean_run` is the order of operations for one run ``(n_volumes, n_voxels)``:

1. the confounds are regressed out of the data as fMRIPrep wrote them (:func:`regress_confounds`, the
   confound removal of :func:`nilearn.signal.clean`; volumes censored by ``scrub`` and fMRIPrep's
   non-steady-state volumes are left out of the fit). The projection is linear, so an artifact that is a linear combination of the confounds is
   removed exactly, whatever the later nonlinear median filter does. (Filtering the regressors with the
   same filter as the data, as one should with a linear filter — Lindquist et al. 2019, Hum Brain Mapp
   40:2358 — does not carry over to a running median, which does not commute with the projection.);
2. censored volumes are filled by linear interpolation in time from their nearest kept neighbours (clips
   keep their 10 volumes; Power et al. 2014 interpolate censored frames the same way before filtering);
3. the 240-s running-median detrend (:func:`brain2music.data.detrend_median`) removes the drift the
   confounds do not model;
4. each voxel is z-scored with the mean and sd of the kept volumes.

With ``none`` the run gets steps 3 and 4 only, exactly like raw BIDS runs.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brain2music.errors import ConfigError, DataError, DataFileNotFoundError

__all__ = [
    "COMPONENTS",
    "ConfoundStrategy",
    "clean_run",
    "load_run_confounds",
    "read_confounds_table",
]

#: Noise components a strategy may name (nilearn's ``load_confounds`` strategies that fMRIPrep provides).
COMPONENTS = ("motion", "wm_csf", "global_signal", "high_pass", "scrub", "compcor")
_MODELS = ("basic", "power2", "derivatives", "full")
_COMPCOR = (
    "anat_combined",
    "anat_separated",
    "temporal",
    "temporal_anat_combined",
    "temporal_anat_separated",
)
_SUFFIXES = {
    "basic": (),
    "power2": ("_power2",),
    "derivatives": ("_derivative1",),
    "full": ("_derivative1", "_power2", "_derivative1_power2"),
}
MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")


@dataclass(frozen=True)
class ConfoundStrategy:
    """Which fMRIPrep confounds to regress out (see the module docstring for the text form).

    ``components`` is a subset of :data:`COMPONENTS` (empty: no regression). The other fields are the
    parameters of nilearn's :func:`~nilearn.interfaces.fmriprep.load_confounds` for those components.
    """

    components: tuple[str, ...] = ()
    motion: str = "full"
    wm_csf: str = "basic"
    global_signal: str = "basic"
    fd_threshold: float = 0.5
    scrub_segment: int = 5
    compcor: str = "anat_combined"
    n_compcor: int | str = "all"

    @classmethod
    def parse(cls, spec: str | ConfoundStrategy | None) -> ConfoundStrategy:
        """Parse ``"motion:full,wm_csf,high_pass"`` (or ``"none"``/``None``) into a strategy."""
        if isinstance(spec, ConfoundStrategy):
            return spec
        if spec is None:
            return cls()
        if isinstance(spec, (list, tuple)):
            spec = ",".join(str(s) for s in spec)
        items = [s.strip() for s in str(spec).replace(";", ",").split(",") if s.strip()]
        if not items or items == ["none"]:
            return cls()
        values: dict = {}
        components: list[str] = []
        for item in items:
            name, sep, arg = item.replace("=", ":").partition(":")
            name, arg = name.strip(), arg.strip()
            if name not in COMPONENTS:
                raise ConfigError(
                    f"--confounds: unknown component {name!r} in {spec!r}; choose from "
                    f"{', '.join(COMPONENTS)} (or 'none')"
                )
            if name in components:
                raise ConfigError(f"--confounds: component {name!r} given twice in {spec!r}")
            components.append(name)
            if name in ("motion", "wm_csf", "global_signal") and sep:
                if arg not in _MODELS:
                    raise ConfigError(f"--confounds: {name}:{arg} — expected {name}:{'|'.join(_MODELS)}")
                values[name] = arg
            elif name == "scrub" and sep:
                try:
                    fd = float(arg)
                except ValueError:
                    fd = math.nan
                if not fd > 0:
                    raise ConfigError(
                        f"--confounds: scrub:{arg} — expected a framewise-displacement threshold in mm, "
                        "e.g. scrub:0.5"
                    )
                values["fd_threshold"] = fd
            elif name == "compcor" and sep:
                kind, _, count = arg.partition(":")
                if kind.isdigit() and not count:
                    kind, count = "anat_combined", kind
                if kind not in _COMPCOR or (count and not (count.isdigit() and int(count) > 0)):
                    raise ConfigError(
                        f"--confounds: compcor:{arg} — expected compcor[:{'|'.join(_COMPCOR)}][:N components]"
                    )
                values["compcor"] = kind
                if count:
                    values["n_compcor"] = int(count)
            elif name == "high_pass" and sep:
                raise ConfigError(f"--confounds: high_pass takes no argument; got {item!r}")
        if "compcor" in components and "high_pass" not in components:
            raise ConfigError(
                f"--confounds {spec!r}: compcor needs high_pass too (fMRIPrep computes CompCor on high-pass "
                "filtered data; nilearn requires both)"
            )
        return cls(components=tuple(components), **values)

    def describe(self) -> str:
        """Canonical text form, e.g. ``"motion:full,wm_csf:basic,high_pass"`` (``"none"`` when empty)."""
        out = []
        for c in self.components:
            if c in ("motion", "wm_csf", "global_signal"):
                out.append(f"{c}:{getattr(self, c)}")
            elif c == "scrub":
                out.append(f"scrub:{self.fd_threshold:g}")
            elif c == "compcor":
                n = "" if self.n_compcor == "all" else f":{self.n_compcor}"
                out.append(f"compcor:{self.compcor}{n}")
            else:
                out.append(c)
        return ",".join(out) or "none"

    def __str__(self) -> str:
        return self.describe()

    @property
    def enabled(self) -> bool:
        """Whether any confound component is asked for (``False`` for the strategy ``"none"``)."""
        return bool(self.components)

    def required_columns(self) -> list[str]:
        """Columns the confounds table must have for this strategy (CompCor and cosines aside)."""
        cols: list[str] = []
        for comp, base in (
            ("motion", MOTION_COLUMNS),
            ("wm_csf", ("csf", "white_matter")),
            ("global_signal", ("global_signal",)),
        ):
            if comp in self.components:
                model = getattr(self, comp)
                cols += list(base) + [b + s for b in base for s in _SUFFIXES[model]]
        if "scrub" in self.components:
            # nilearn's scrub reads std_dvars even with the DVARS criterion switched off (threshold inf).
            cols += ["framewise_displacement", "std_dvars"]
        return cols

    def nilearn_kwargs(self) -> dict:
        """Keyword arguments of :func:`nilearn.interfaces.fmriprep.load_confounds` for this strategy."""
        return {
            "strategy": tuple(self.components),
            "motion": self.motion,
            "wm_csf": self.wm_csf,
            "global_signal": self.global_signal,
            "scrub": self.scrub_segment,
            "fd_threshold": self.fd_threshold,
            # Scrubbing censors by framewise displacement only: DVARS censoring stays off (threshold inf).
            "std_dvars_threshold": math.inf,
            "compcor": self.compcor,
            "n_compcor": self.n_compcor,
            "demean": True,
        }


def read_confounds_table(path: str | os.PathLike):
    """Read an fMRIPrep ``*_desc-confounds_timeseries.tsv`` (``n/a`` → NaN), naming the file on failure."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"confounds table not found: {path}")
    try:
        return pd.read_csv(path, sep="\t", na_values=["n/a", "N/A", "NaN", "nan"])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot parse as a tab-separated confounds table ({exc})") from exc


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read the confounds JSON sidecar ({exc})") from exc


def check_confounds(
    table, strategy: ConfoundStrategy, *, tsv: Path, n_volumes: int | None = None, meta: dict | None = None
) -> None:
    """Raise a :class:`DataError` naming ``tsv`` when the table cannot serve ``strategy``.

    Checks the row count against the BOLD's ``n_volumes`` and that every column the strategy needs is there
    (motion/wm_csf/global_signal expansions, ``framewise_displacement`` for scrub, ``cosine*`` for
    high_pass, CompCor columns listed in the JSON sidecar for compcor).
    """
    if n_volumes is not None and len(table) != n_volumes:
        raise DataError(
            f"{tsv}: {len(table)} rows; expected one per volume of its BOLD run ({n_volumes} volumes)"
        )
    missing = [c for c in strategy.required_columns() if c not in table.columns]
    if "high_pass" in strategy.components and not any(str(c).startswith("cosine") for c in table.columns):
        missing.append("cosine*")
    if "compcor" in strategy.components:
        prefixes = {"anat": "a_comp_cor_", "temporal": "t_comp_cor_"}
        wanted = [p for k, p in prefixes.items() if k in strategy.compcor]
        for prefix in wanted:
            if not any(str(c).startswith(prefix) for c in table.columns):
                missing.append(prefix + "*")
        if meta is not None and wanted and not any(k.startswith(tuple(wanted)) for k in meta):
            missing.append(
                f"{' / '.join(w + '*' for w in wanted)} entries in {tsv.with_suffix('.json').name}"
            )
    if missing:
        shown = ", ".join(map(str, table.columns[:12])) + (" …" if len(table.columns) > 12 else "")
        raise DataError(
            f"{tsv}: confounds strategy {strategy.describe()!r} needs column(s) {missing} that the table "
            f"lacks; found {len(table.columns)} columns ({shown}). Choose another strategy with --confounds."
        )


def load_run_confounds(
    bold: str | os.PathLike, strategy: ConfoundStrategy, *, n_volumes: int, tsv: str | os.PathLike
) -> tuple[np.ndarray | None, np.ndarray | None, list[str]]:
    """The confound matrix and sample mask of one fMRIPrep run, through nilearn's ``load_confounds``.

    Parameters
    ----------
    bold : the run's ``*_desc-preproc_bold.nii.gz`` (nilearn finds the confounds table next to it).
    strategy : what to regress.
    n_volumes : volumes of the BOLD run (the table must have as many rows).
    tsv : the confounds table (for the checks and error messages).

    Returns
    -------
    confounds : ndarray (n_volumes, n_regressors) float64, or None when the strategy is empty.
    sample_mask : ndarray of kept volume indices, or None when no volume is censored.
    columns : the regressor names.
    """
    from nilearn.interfaces.fmriprep import load_confounds

    tsv = Path(tsv)
    table = read_confounds_table(tsv)
    meta = _read_json(tsv.with_suffix(".json")) if "compcor" in strategy.components else None
    check_confounds(table, strategy, tsv=tsv, n_volumes=n_volumes, meta=meta)
    kwargs = strategy.nilearn_kwargs()
    if not strategy.enabled:
        kwargs["strategy"] = ()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "strategy is empty" for `none`
            conf, sample_mask = load_confounds(str(bold), **kwargs)
    except (ValueError, KeyError) as exc:
        raise DataError(f"{tsv}: nilearn could not load confounds {strategy.describe()!r} ({exc})") from exc
    if sample_mask is not None and len(sample_mask) < 2:
        raise DataError(
            f"{tsv}: scrubbing with FD > {strategy.fd_threshold:g} mm censors {n_volumes - len(sample_mask)} "
            f"of {n_volumes} volumes; nothing left to fit the confounds on"
        )
    if conf is None or conf.shape[1] == 0:
        return None, sample_mask, []
    values = conf.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        bad = [str(c) for c in conf.columns[~np.isfinite(values).all(axis=0)]]
        raise DataError(f"{tsv}: confound column(s) {bad[:5]} have missing values beyond the first row")
    return values, sample_mask, [str(c) for c in conf.columns]


def _fill_censored(cleaned: np.ndarray, kept: np.ndarray, n_volumes: int) -> np.ndarray:
    """Put the kept rows back at their volumes; censored volumes interpolated linearly (edges: nearest)."""
    out = np.empty((n_volumes, cleaned.shape[1]), dtype=np.float32)
    out[kept] = cleaned
    censored = np.setdiff1d(np.arange(n_volumes), kept)
    if censored.size:
        pos = np.searchsorted(kept, censored)
        left = kept[np.clip(pos - 1, 0, kept.size - 1)]
        right = kept[np.clip(pos, 0, kept.size - 1)]
        span = np.where(right > left, right - left, 1).astype(np.float32)
        w = np.clip((censored - left) / span, 0.0, 1.0).astype(np.float32)
        # Before the first / after the last kept volume, left == right: the nearest kept value.
        out[censored] = (1 - w)[:, None] * out[left] + w[:, None] * out[right]
    return out


def regress_confounds(data: np.ndarray, confounds: np.ndarray | None) -> np.ndarray:
    """Residuals of ``data (n, v)`` after projecting out ``confounds (n, k)`` (float32 out).

    The confound removal of :func:`nilearn.signal.clean` (z-scored confounds, pivoted QR, columns with a
    negligible pivot dropped, projection on the orthogonal complement; the tests check equality with
    nilearn), computed as ``Q (Qᵀ X)`` instead of nilearn's ``(Q Qᵀ) X``: at 410 volumes × 60,000 voxels
    that is 3 instead of 20 GFLOP per run. The QR of the small confound matrix runs on one BLAS thread
    (BLAS threads on a busy machine made it 50× slower).
    """
    from scipy import linalg
    from threadpoolctl import threadpool_limits

    x = np.array(data, dtype=np.float32)
    if confounds is None:
        return x
    c = np.asarray(confounds, dtype=np.float64)
    sd = c.std(axis=0, ddof=1)
    c = (c - c.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    with threadpool_limits(limits=1, user_api="blas"):
        q, r, _ = linalg.qr(c, mode="economic", pivoting=True)
    q = q[:, np.abs(np.diag(r)) > np.finfo(np.float64).eps * 100.0].astype(np.float32)
    x -= q @ (q.T @ x)
    return x


def clean_run(
    data: np.ndarray,
    *,
    tr: float,
    confounds: np.ndarray | None = None,
    sample_mask: np.ndarray | None = None,
    detrend_window: float | None = 240.0,
) -> np.ndarray:
    """Regress confounds, fill censored volumes, detrend and z-score one run (module docstring).

    Parameters
    ----------
    data : ndarray, shape (n_volumes, n_voxels)
    tr : repetition time (s).
    confounds : ndarray, shape (n_volumes, n_regressors), or None (no regression).
    sample_mask : indices of the volumes kept for the fit (None: all).
    detrend_window : seconds of the running-median detrend (None: none).

    Returns
    -------
    ndarray (n_volumes, n_voxels) float32, z-scored per voxel over the kept volumes; voxels constant over
    the kept volumes are NaN (dropped by the loader).
    """
    from brain2music.data.preprocess import _check_2d, detrend_median

    data = np.asarray(_check_2d(data), dtype=np.float32)
    n = data.shape[0]
    kept = np.arange(n) if sample_mask is None else np.sort(np.asarray(sample_mask, dtype=int))
    if confounds is not None:
        confounds = np.asarray(confounds, dtype=np.float64)
        if confounds.ndim != 2 or confounds.shape[0] != n:
            raise DataError(f"confounds must be ({n}, n_regressors); got {confounds.shape}")
        # A column constant over the kept volumes (e.g. all zeros) carries nothing.
        confounds = confounds[:, confounds[kept].std(axis=0) > 1e-12]
        if confounds.shape[1] == 0:
            confounds = None
    if confounds is not None or kept.size < n:
        cleaned = regress_confounds(data[kept], None if confounds is None else confounds[kept])
        data = _fill_censored(cleaned, kept, n) if kept.size < n else cleaned
    if detrend_window:
        data = detrend_median(data, tr=tr, window=detrend_window)
    data = np.asarray(data, dtype=np.float32)
    mean = data[kept].mean(axis=0, dtype=np.float64)
    std = data[kept].std(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(std > 1e-8 * (1 + np.abs(mean)), 1.0 / std, np.nan)
    return ((data - mean.astype(np.float32)) * scale.astype(np.float32)).astype(np.float32, copy=False)
