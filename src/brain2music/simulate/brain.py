"""The generative model of the simulated brains.

Space. All subjects share a template grid (2-mm voxels) with an ellipsoidal brain mask of exactly
``n_voxels`` voxels, cut into ``n_parcels`` compact parcels (k-means on voxel coordinates, like an atlas in
template space such as the Destrieux atlas the paper used). Parcel ids ``1..n_parcels`` are ordered by
hemisphere then front-to-back; names are neutral (``L_parcel-007``): which parcels are auditory is
truth, not metadata. The ``n_auditory_parcels`` parcels nearest to a point on each lateral side, half-way
along the anterior-posterior axis (a "superior temporal" location), are auditory: per hemisphere, the
nearest 40 % are *core* and the rest *belt*.

Features. Each clip's stimulus gives the time-varying spectro-temporal modulation features of
:mod:`brain2music.simulate.features` (46, in 0.5-s bins), three clip-level timbre factors, and four
genre factors (a random vector per genre, drawn once per study: a categorical genre representation, as
Nakai et al. 2021 reported). Presentations are placed at their onsets, the bin series convolved with the
Glover HRF (nilearn), averaged over each TR (1.5 s) and z-scored over the whole study, giving the run's
design matrix ``X_run (n_volumes, n_features)``.

Voxels. Each subject draws its own tuning: a fraction of the voxels of every auditory parcel is tuned
(90 % in core, 70 % in belt). A tuned voxel has a preferred frequency band (a tonotopic gradient along a
subject-specific direction, plus scatter) and a preferred modulation rate; its weights on the rate and
level features are a Gaussian bump around those preferences plus a random part, its weights on spectral
modulation, timbre and genre factors are random. The share of variance carried by the slow (timbre and
genre) factors is higher in belt (25-60 %) than in core (5-25 %), a hierarchy as in real auditory cortex.
Weights are scaled so that the noise-free signal ``s = X_run @ w`` has unit variance over the study.

Noise. Every voxel has noise ``n = σ (√0.8 · AR(1) + √0.1 · drift + √0.1 · global)``: an AR(1) process
(coefficient 0.2-0.5 per voxel, i.e. temporal autocorrelation at TR 1.5 s), a slow drift (random cosines
with periods of 150-600 s plus a linear trend), and a global component (three AR(1) time courses with
coefficient 0.8 shared by all voxels, random loadings): all of unit variance. Tuned voxels get a target
explainable variance ``ev`` (core 0.7 · Beta(2.2, 3.5), belt 0.45 · Beta(2, 4)), scaled by the ``snr``
option as ``snr·ev / (snr·ev + 1 - ev)``, and ``σ² = (1 - ev) / ev``; untuned voxels have no signal
(``ev = 0``, ``σ = 1``). The image is ``baseline (1 + psc/100 · (s + n) / sqrt(var))`` with a baseline
of 700-1300 and a total fluctuation ``psc`` of 0.5-2 % per voxel, rounded to int16 like scanner data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Atlas", "SubjectModel", "make_atlas", "make_subject", "simulate_run"]

VOXEL_SIZE = 2.0
NOISE_SHARES = {"ar": 0.8, "drift": 0.1, "global": 0.1}


@dataclass
class Atlas:
    """The shared template: mask, parcels and which parcels are auditory.

    ``mask`` (nx, ny, nz) bool with ``n_voxels`` True; ``parcels`` (nx, ny, nz) int16, 0 outside;
    ``voxel_parcel`` (n_voxels,) the parcel of each mask voxel in C order (the loader's voxel order);
    ``coords`` (n_voxels, 3) voxel coordinates in mm; ``core`` / ``belt`` auditory parcel ids.
    """

    mask: np.ndarray
    parcels: np.ndarray
    affine: np.ndarray
    names: list
    voxel_parcel: np.ndarray
    coords: np.ndarray
    core: list
    belt: list

    @property
    def n_voxels(self) -> int:
        """Number of voxels in the mask."""
        return int(self.voxel_parcel.size)

    @property
    def auditory(self) -> list:
        """The auditory parcel ids (core and belt), sorted."""
        return sorted(self.core + self.belt)


def ellipsoid_axes(n_voxels: int) -> np.ndarray:
    """Semi-axes (in voxels; x: left-right, y: back-front, z: bottom-top) of the brain of ``n_voxels``."""
    ratios = np.array([1.0, 1.25, 0.9])
    scale = (n_voxels * 1.02 / (4.0 / 3.0 * np.pi * ratios.prod())) ** (1.0 / 3.0)
    return scale * ratios


def normalized_radius(atlas: Atlas) -> np.ndarray:
    """Ellipsoid radius of every mask voxel (0 at the centre, about 1 at the brain's surface)."""
    axes = ellipsoid_axes(atlas.n_voxels) * VOXEL_SIZE
    return np.sqrt(((atlas.coords / axes) ** 2).sum(axis=1))


def make_atlas(n_voxels: int, n_parcels: int, n_auditory_parcels: int, rng: np.random.Generator) -> Atlas:
    """Draw the template grid, mask and parcellation (see the module docstring)."""
    from scipy.spatial import cKDTree

    axes = ellipsoid_axes(n_voxels)
    dims = tuple(int(np.ceil(2 * a)) + 4 for a in axes)
    grid = np.stack(np.meshgrid(*[np.arange(d) - (d - 1) / 2.0 for d in dims], indexing="ij"), axis=-1)
    radius = np.sqrt(((grid / axes) ** 2).sum(axis=-1)).ravel()
    # The n_voxels voxels closest to the centre (in ellipsoid metric): an exact voxel count.
    keep = np.sort(np.argsort(radius, kind="stable")[:n_voxels])
    mask = np.zeros(radius.size, dtype=bool)
    mask[keep] = True
    mask = mask.reshape(dims)
    coords = grid.reshape(-1, 3)[keep] * VOXEL_SIZE  # mm, origin at the centre

    # Parcels: k-means (Lloyd) from random voxel seeds; a Voronoi cell of its own seed is never empty.
    centers = coords[rng.choice(n_voxels, size=n_parcels, replace=False)]
    labels = cKDTree(centers).query(coords)[1]
    for _ in range(6):
        sums = np.zeros((n_parcels, 3))
        np.add.at(sums, labels, coords)
        counts = np.bincount(labels, minlength=n_parcels)
        if (counts == 0).any():
            break
        new_labels = cKDTree(sums / counts[:, None]).query(coords)[1]
        if np.bincount(new_labels, minlength=n_parcels).min() == 0:
            break
        labels = new_labels
    counts = np.bincount(labels, minlength=n_parcels)
    centroids = np.zeros((n_parcels, 3))
    np.add.at(centroids, labels, coords)
    centroids /= counts[:, None]
    # Order parcel ids by hemisphere then back-to-front then bottom-to-top, like an atlas table.
    hemi = (centroids[:, 0] >= 0).astype(int)
    order = np.lexsort((centroids[:, 2], centroids[:, 1], hemi))
    new_id = np.empty(n_parcels, dtype=int)
    new_id[order] = np.arange(1, n_parcels + 1)
    voxel_parcel = new_id[labels].astype(np.int16)
    centroids, hemi = centroids[order], hemi[order]
    names = [f"{'LR'[h]}_parcel-{i + 1:03d}" for i, h in enumerate(hemi)]

    core, belt = [], []
    per_side = [n_auditory_parcels // 2 + n_auditory_parcels % 2, n_auditory_parcels // 2]
    for side, n_side in zip((0, 1), per_side):
        if n_side == 0:
            continue
        target = np.array([(-1 if side == 0 else 1) * axes[0] * 0.8, 0.0, -0.15 * axes[2]]) * VOXEL_SIZE
        dist = np.linalg.norm(centroids - target, axis=1)
        dist[hemi != side] = np.inf
        nearest = [int(i) + 1 for i in np.argsort(dist)[:n_side] if np.isfinite(dist[i])]
        n_core = max(1, int(round(0.4 * len(nearest))))
        core += nearest[:n_core]
        belt += nearest[n_core:]
    parcels = np.zeros(mask.size, dtype=np.int16)
    parcels[keep] = voxel_parcel
    affine = np.diag([VOXEL_SIZE, VOXEL_SIZE, VOXEL_SIZE, 1.0])
    affine[:3, 3] = -VOXEL_SIZE * (np.array(dims) - 1) / 2.0
    return Atlas(
        mask=mask,
        parcels=parcels.reshape(dims),
        affine=affine,
        names=names,
        voxel_parcel=voxel_parcel,
        coords=coords.astype(np.float32),
        core=sorted(core),
        belt=sorted(belt),
    )


@dataclass
class SubjectModel:
    """One subject's voxel tuning and noise (all arrays have one entry per mask voxel, loader order)."""

    weights: np.ndarray  # (n_features, n_voxels) float32: noise-free signal = X_run @ weights
    tuned: np.ndarray  # (n_voxels,) bool
    ev: np.ndarray  # (n_voxels,) target explainable variance
    noise_sd: np.ndarray  # σ, noise standard deviation relative to the unit-variance signal
    ar_coef: np.ndarray
    drift_loadings: np.ndarray  # (n_drift_basis, n_voxels)
    global_loadings: np.ndarray  # (3, n_voxels), unit norm per voxel
    baseline: np.ndarray
    psc: np.ndarray  # total fluctuation in percent of baseline
    pref_freq: np.ndarray  # preferred band group (0-7), NaN for untuned voxels
    pref_rate: np.ndarray  # preferred modulation-rate index (0-3), NaN for untuned voxels
    slow_share: np.ndarray  # share of signal variance carried by the slow factors

    @property
    def scale(self) -> np.ndarray:
        """BOLD units per unit of (signal + noise): ``baseline · psc/100 / sqrt(var(s) + σ²)``."""
        total = self.tuned.astype(np.float64) + self.noise_sd.astype(np.float64) ** 2
        return (self.baseline * self.psc / 100.0 / np.sqrt(total)).astype(np.float32)


def _tuning_bump(names: list[str], f: float, r: float) -> np.ndarray:
    """Gaussian preference over (band group, rate) for rate features and over band group for levels."""
    from brain2music.simulate.features import RATES

    w = np.zeros(len(names))
    for i, name in enumerate(names):
        if name.startswith("rate"):
            rate = float(name[4 : name.index("Hz")])
            g = int(name.rsplit("band", 1)[1])
            k = RATES.index(rate)
            w[i] = np.exp(-((g - f) ** 2) / (2 * 1.2**2) - (k - r) ** 2 / (2 * 0.8**2))
        elif name.startswith("level_band"):
            g = int(name.rsplit("band", 1)[1])
            w[i] = np.exp(-((g - f) ** 2) / (2 * 1.2**2))
    return w


def make_subject(
    atlas: Atlas,
    feature_names: list[str],
    slow: np.ndarray,
    cov: np.ndarray,
    n_drift_basis: int,
    rng: np.random.Generator,
    *,
    snr: float = 1.0,
) -> SubjectModel:
    """Draw one subject's tuning and noise parameters.

    ``slow`` marks the slow (timbre/genre) features; ``cov`` is the features' covariance over the study
    (used to give every tuned voxel's signal unit variance).
    """
    n_vox = atlas.n_voxels
    n_feat = len(feature_names)
    parcel = atlas.voxel_parcel
    core = np.isin(parcel, atlas.core)
    belt = np.isin(parcel, atlas.belt)
    tuned = (core & (rng.random(n_vox) < 0.90)) | (belt & (rng.random(n_vox) < 0.70))
    idx = np.flatnonzero(tuned)
    # Tonotopy: position along a subject-specific direction, ranked within each auditory parcel.
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    proj = atlas.coords @ direction
    pref_freq = np.full(n_vox, np.nan)
    pref_rate = np.full(n_vox, np.nan)
    for p in atlas.auditory:
        members = idx[parcel[idx] == p]
        if members.size == 0:
            continue
        rank = np.argsort(np.argsort(proj[members])) / max(members.size - 1, 1)
        pref_freq[members] = np.clip(7.0 * rank + rng.normal(0, 0.7, members.size), 0, 7)
    pref_rate[idx] = rng.uniform(0, 3, idx.size)
    slow_share = np.zeros(n_vox)
    slow_share[core] = rng.uniform(0.05, 0.25, core.sum())
    slow_share[belt] = rng.uniform(0.25, 0.60, belt.sum())
    slow_share[~tuned] = 0.0

    weights = np.zeros((n_feat, n_vox), dtype=np.float64)
    fast_idx, slow_idx = np.flatnonzero(~slow), np.flatnonzero(slow)
    fast_names = [feature_names[i] for i in fast_idx]
    cov_ff = cov[np.ix_(fast_idx, fast_idx)]
    cov_ss = cov[np.ix_(slow_idx, slow_idx)]
    for v in idx:
        fast = _tuning_bump(fast_names, pref_freq[v], pref_rate[v]) + 0.3 * rng.normal(size=fast_idx.size)
        fast /= np.sqrt(max(fast @ cov_ff @ fast, 1e-12))
        sl = rng.normal(size=slow_idx.size)
        sl /= np.sqrt(max(sl @ cov_ss @ sl, 1e-12))
        weights[fast_idx, v] = np.sqrt(1 - slow_share[v]) * fast
        weights[slow_idx, v] = np.sqrt(slow_share[v]) * sl
        weights[:, v] /= np.sqrt(max(weights[:, v] @ cov @ weights[:, v], 1e-12))

    ev = np.zeros(n_vox)
    ev[core] = 0.7 * rng.beta(2.2, 3.5, core.sum())
    ev[belt] = 0.45 * rng.beta(2.0, 4.0, belt.sum())
    ev[~tuned] = 0.0
    ev = np.where(tuned, snr * ev / (snr * ev + 1 - ev), 0.0)
    ev = np.clip(ev, 0.0, 0.999)
    noise_sd = np.where(tuned, np.sqrt((1 - ev) / np.maximum(ev, 1e-6)), 1.0)
    glob = rng.normal(size=(3, n_vox))
    glob /= np.linalg.norm(glob, axis=0, keepdims=True)
    return SubjectModel(
        weights=weights.astype(np.float32),
        tuned=tuned,
        ev=ev.astype(np.float32),
        noise_sd=noise_sd.astype(np.float32),
        ar_coef=rng.uniform(0.2, 0.5, n_vox).astype(np.float32),
        drift_loadings=rng.normal(size=(n_drift_basis, n_vox)).astype(np.float32),
        global_loadings=glob.astype(np.float32),
        baseline=rng.uniform(700, 1300, n_vox).astype(np.float32),
        psc=rng.uniform(0.5, 2.0, n_vox).astype(np.float32),
        pref_freq=pref_freq.astype(np.float32),
        pref_rate=pref_rate.astype(np.float32),
        slow_share=slow_share.astype(np.float32),
    )


def _ar1(n: int, coef: np.ndarray, rng: np.random.Generator, width: int) -> np.ndarray:
    """Stationary unit-variance AR(1) series ``(n, width)`` with per-column coefficients."""
    out = np.empty((n, width), dtype=np.float32)
    innov = np.sqrt(1 - coef**2).astype(np.float32)
    prev = rng.standard_normal(width, dtype=np.float32)
    for t in range(n):
        out[t] = prev
        prev = coef * prev + innov * rng.standard_normal(width, dtype=np.float32)
    return out


def drift_basis(n_volumes: int, tr: float, n_basis: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_volumes, n_basis)`` slow regressors: a linear trend and cosines with periods of 150-600 s."""
    t = np.arange(n_volumes) * tr
    cols = [(t - t.mean()) / max(t.std(), 1e-9)]
    for _ in range(n_basis - 1):
        period = rng.uniform(150.0, 600.0)
        c = np.cos(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        cols.append((c - c.mean()) / max(c.std(), 1e-9))
    return np.stack(cols, axis=1).astype(np.float32)


def simulate_run(
    model: SubjectModel, design: np.ndarray, tr: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One run of BOLD data.

    Parameters
    ----------
    model : the subject.
    design : ndarray, shape (n_volumes, n_features): the run's z-scored, HRF-convolved features.

    Returns
    -------
    bold : ndarray (n_volumes, n_voxels) float32, in scanner units (before int16 rounding).
    signal : ndarray (n_volumes, n_voxels) float32, the noise-free signal ``design @ weights``.
    noise : ndarray (n_volumes, n_voxels) float32, the noise ``n`` (same units as ``signal``).
    """
    n = design.shape[0]
    n_vox = model.weights.shape[1]
    signal = design.astype(np.float32) @ model.weights
    noise = np.sqrt(NOISE_SHARES["ar"], dtype=np.float32) * _ar1(n, model.ar_coef, rng, n_vox)
    basis = drift_basis(n, tr, model.drift_loadings.shape[0], rng)
    drift = basis @ model.drift_loadings
    drift /= np.maximum(drift.std(axis=0, keepdims=True), 1e-6)
    noise += np.sqrt(NOISE_SHARES["drift"], dtype=np.float32) * drift
    del drift
    glob = _ar1(n, np.full(3, 0.8, dtype=np.float32), rng, 3)
    noise += np.sqrt(NOISE_SHARES["global"], dtype=np.float32) * (glob @ model.global_loadings)
    noise *= model.noise_sd
    bold = model.baseline + model.scale * (signal + noise)
    return bold.astype(np.float32, copy=False), signal, noise
