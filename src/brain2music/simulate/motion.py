"""Head motion of a cooperative adult, and the signal artifacts it leaves in realigned BOLD.

Used by ``brain2music simulate --layout fmriprep``. Numbers are taken from published motion statistics,
not chosen for how any method fares on them:

- **Framewise displacement** (FD) is Power et al.'s (2012, NeuroImage 59:2142) sum of absolute
  frame-to-frame changes of the six realignment parameters, rotations turned into arc length on a 50-mm
  sphere — the definition fMRIPrep writes as ``framewise_displacement``.
- **How much a cooperative adult moves.** Mean FD per run: 0.14 ± 0.04 mm (range 0.05-0.20) in the
  lowest-motion group of 254 healthy adults and 0.19 ± 0.08 mm over all 422 (rest, age 43-89; Table 1 of
  PMC7822708, https://pmc.ncbi.nlm.nih.gov/articles/PMC7822708/table/TB1); younger cooperative adults move
  less, so the model aims at a run mean FD of about 0.12 mm. Maximal displacement within a task run: 0.75 ±
  0.43 mm and 0.78 ± 0.36 mm for 12 young adults (cognitive and motor tasks; Table 1 of PMC2860003,
  https://pmc.ncbi.nlm.nih.gov/articles/PMC2860003/table/T1): the model aims at about 0.8 mm.
- **Shape.** Slow drift plus occasional jumps; large moves are nods — pitch (``rot_x``) with z and y
  translation — and the baseline of small motion follows respiration (Frew et al. 2022, PLoS ONE
  17:e0265112, on 1,388 scans). Here: a smooth drift (integrated AR(1) innovations), white jitter
  (respiration-related apparent motion at TR 1.5 s is aliased to near-white), and Poisson jumps in a
  nodding direction, half of them transient (the head returns within 1-3 volumes).
- **Artifact size.** Power et al. (2012) censor volumes with FD > 0.5 mm together with DVARS > 0.5 %
  signal change: motion of 0.5 mm goes with a 0.5 % frame-to-frame change over the brain. The model uses
  that coupling, 1 % signal change per mm, for both parts of the artifact that realignment leaves:
  a *position-dependent* part (spin history, interpolation and partial-volume changes: each voxel's signal
  follows a random linear combination of the six parameters, 1 %/mm per parameter, sd over voxels) and a
  *spike* part at the volumes where the head moves (a signal drop proportional to FD, |N(0, 1 %/mm)| per
  voxel), so that a 0.5-mm jump changes the signal by about 0.5 % RMS over voxels, as in Power et al.

The resulting statistics are checked by the tests (mean FD and maximal displacement in the published
ranges) and reported by ``truth.json``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "HEAD_RADIUS_MM",
    "MOTION_COLUMNS",
    "framewise_displacement",
    "motion_artifact",
    "motion_loadings",
    "motion_summary",
    "simulate_motion",
]

MOTION_COLUMNS = ("trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z")
#: Head radius (mm) turning rotations (rad) into displacement, as in Power et al. 2012 and fMRIPrep.
HEAD_RADIUS_MM = 50.0
#: Relative size of each axis (trans x/y/z, rot x/y/z): nodding — pitch with z and y translation —
#: dominates (Frew et al. 2022).
AXIS_WEIGHTS = np.array([0.5, 1.0, 1.0, 1.0, 0.5, 0.5])
#: Drift innovations (mm per volume before smoothing), jitter sd (mm) and jumps, calibrated once against the
#: published targets (module docstring). Over 1,000 simulated 410-volume runs at TR 1.5 s: mean FD
#: 0.124 ± 0.003 mm, maximal displacement 0.79 ± 0.21 mm, 0.64 volumes per run with FD > 0.5 mm; with the
#: between-subject spread below, 300 subjects: mean FD 0.13 ± 0.04 mm, maximal displacement 0.81 ± 0.30 mm
#: (published: 0.14 ± 0.04 mm and 0.78 ± 0.36 mm). tests/test_simulate_fmriprep.py checks these ranges.
DRIFT_INNOVATION = 0.0018
DRIFT_SMOOTHING = 0.9
JITTER_SD = 0.024
JUMPS_PER_MINUTE = 0.15
JUMP_MEDIAN_MM = 0.35
JUMP_LOG_SD = 0.5
#: Between-subject spread: every subject's motion is scaled by exp(N(0, 0.3)), which turns the run mean FD
#: of 0.12 mm into about 0.12 ± 0.04 mm over subjects (the spread of the low-motion group above).
SUBJECT_LOG_SD = 0.3
#: Signal change per mm of motion (fraction of baseline): Power et al. 2012's paired thresholds (FD 0.5 mm
#: with DVARS 0.5 %).
COUPLING_PER_MM = 0.01


def _to_mm(motion: np.ndarray) -> np.ndarray:
    """(n, 6) parameters (mm, rad) → displacement in mm on every axis (rotations as arc length)."""
    out = np.array(motion, dtype=np.float64, copy=True)
    out[:, 3:] *= HEAD_RADIUS_MM
    return out


def subject_motion_scale(rng: np.random.Generator) -> float:
    """How much one subject moves relative to the typical cooperative adult (lognormal, sd 0.3)."""
    return float(np.exp(rng.normal(0.0, SUBJECT_LOG_SD)))


def simulate_motion(n_volumes: int, tr: float, rng: np.random.Generator, *, scale: float = 1.0) -> np.ndarray:
    """Realignment parameters of one run: ``(n_volumes, 6)``, ``trans_*`` in mm and ``rot_*`` in radians.

    ``scale`` multiplies every part of the motion (a subject's :func:`subject_motion_scale`). The first
    volume is the realignment reference (all zeros), as in fMRIPrep's output.
    """
    n = int(n_volumes)
    w = AXIS_WEIGHTS * float(scale)
    # Smooth drift: AR(1)-filtered innovations, integrated.
    innov = rng.normal(0.0, DRIFT_INNOVATION, size=(n, 6)) * w
    vel = np.empty_like(innov)
    acc = np.zeros(6)
    for t in range(n):
        acc = DRIFT_SMOOTHING * acc + innov[t]
        vel[t] = acc
    drift = np.cumsum(vel, axis=0)
    jitter = rng.normal(0.0, JITTER_SD, size=(n, 6)) * w
    jumps = np.zeros((n, 6))
    n_jumps = rng.poisson(JUMPS_PER_MINUTE * n * tr / 60.0)
    nod = np.array([0.15, 0.6, 0.7, 1.0, 0.15, 0.15])  # nodding: pitch with z and y translation
    for _ in range(n_jumps):
        t0 = int(rng.integers(1, n))
        size = scale * JUMP_MEDIAN_MM * np.exp(rng.normal(0.0, JUMP_LOG_SD))
        direction = nod * rng.choice([-1.0, 1.0], size=6) + rng.normal(0.0, 0.1, size=6)
        step = size * direction / np.abs(direction).sum()
        if rng.random() < 0.5:  # transient: the head comes back after 1-3 volumes
            t1 = min(n, t0 + int(rng.integers(1, 4)))
            jumps[t0:t1] += step
        else:
            jumps[t0:] += step
    mm = drift + jitter + jumps
    mm -= mm[0]
    out = mm.copy()
    out[:, 3:] /= HEAD_RADIUS_MM
    return out


def framewise_displacement(motion: np.ndarray) -> np.ndarray:
    """Power et al.'s FD per volume ``(n,)`` (mm); the first volume is NaN, as fMRIPrep writes ``n/a``."""
    d = np.abs(np.diff(_to_mm(motion), axis=0)).sum(axis=1)
    return np.concatenate([[np.nan], d])


def motion_summary(motion: np.ndarray) -> dict:
    """Mean and max FD and maximal displacement (mm, Euclidean on the 6 axes in mm) of one run."""
    fd = framewise_displacement(motion)
    disp = np.sqrt((_to_mm(motion) ** 2).sum(axis=1))
    return {
        "fd_mean": float(np.nanmean(fd)),
        "fd_max": float(np.nanmax(fd)),
        "max_displacement": float(disp.max()),
        "n_fd_over_0.5": int(np.nansum(fd > 0.5)),
    }


def motion_loadings(n_voxels: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-voxel artifact coefficients: ``position (6, n_voxels)`` and ``spike (n_voxels,)``, per mm.

    ``position``: N(0, COUPLING_PER_MM) on each parameter; ``spike``: -|N(0, COUPLING_PER_MM)| (a drop).
    """
    position = rng.normal(0.0, COUPLING_PER_MM, size=(6, n_voxels)).astype(np.float32)
    spike = -np.abs(rng.normal(0.0, COUPLING_PER_MM, size=n_voxels)).astype(np.float32)
    return position, spike


def motion_artifact(motion: np.ndarray, position: np.ndarray, spike: np.ndarray) -> np.ndarray:
    """Artifact as a fraction of each voxel's baseline, ``(n_volumes, n_voxels)`` float32.

    ``position``-dependent part ``motion_mm @ position`` plus ``spike * FD`` at each volume (FD of the
    first volume is 0).
    """
    mm = _to_mm(motion).astype(np.float32)
    fd = np.nan_to_num(framewise_displacement(motion)).astype(np.float32)
    return mm @ position + fd[:, None] * spike[None, :]


class SubjectMotion:
    """One simulated subject's head motion: its scale and artifact loadings, and every run's trace.

    ``apply`` adds a new run's artifact to its BOLD (in place) and records the trace; ``truth`` and
    ``summary`` give what the study's ground truth keeps.
    """

    def __init__(self, n_voxels: int, rng: np.random.Generator):
        self.rng = rng
        self.scale = subject_motion_scale(rng)
        self.position, self.spike = motion_loadings(n_voxels, rng)
        self.runs: dict[str, np.ndarray] = {}

    def apply(self, bold: np.ndarray, baseline: np.ndarray, key: str, tr: float) -> np.ndarray:
        """Add the artifact of a new run to ``bold (n_volumes, n_voxels)``; return its motion ``(n, 6)``."""
        motion = simulate_motion(bold.shape[0], tr, self.rng, scale=self.scale)
        bold += baseline * motion_artifact(motion, self.position, self.spike)
        self.runs[key] = motion.astype(np.float32)
        return motion

    def truth(self) -> dict[str, np.ndarray]:
        """The ground-truth arrays of the subject's motion: ``motion_position`` ``(6, n_voxels)`` and
        ``motion_spike`` ``(n_voxels,)`` artifact loadings (float32) and ``motion_scale``.
        """
        return {
            "motion_position": self.position,
            "motion_spike": self.spike,
            "motion_scale": np.float32(self.scale),
        }

    def summary(self) -> dict:
        """The subject's motion over its runs so far: ``motion_scale``, mean of the runs' mean FD, max FD,
        mean of the runs' maximal displacement (mm) and the count of volumes with FD over 0.5 mm.
        """
        per_run = [motion_summary(m) for m in self.runs.values()]
        return {
            "motion_scale": self.scale,
            "fd_mean": float(np.mean([r["fd_mean"] for r in per_run])),
            "fd_max": float(np.max([r["fd_max"] for r in per_run])),
            "max_displacement_mean": float(np.mean([r["max_displacement"] for r in per_run])),
            "n_fd_over_0.5": int(np.sum([r["n_fd_over_0.5"] for r in per_run])),
        }
