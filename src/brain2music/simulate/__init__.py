"""A simulated study: composed 10-genre music and simulated brains in the ds003720 layout.

Typical use::

    from brain2music.simulate import simulate_study, load_truth
    out = simulate_study("sim", n_subjects=2, n_voxels=5000, seed=0)
    # out/bids (BIDS, read by brain2music.data), out/stimuli (GTZAN layout), out/truth (ground truth)
    truth = load_truth(out)

The composer (:mod:`brain2music.simulate.composer`) is reusable on its own: ``sample_params``,
``compose``, ``render``, ``params_to_vector`` / ``params_from_vector``. The brain model is documented in
:mod:`brain2music.simulate.brain`, its feature space in :mod:`brain2music.simulate.features`.
"""

from brain2music.simulate.composer import (
    PARAM_NAMES,
    TrackParams,
    compose,
    params_from_vector,
    params_to_vector,
    render,
    sample_params,
)
from brain2music.simulate.features import auditory_features
from brain2music.simulate.settings import SimulationSettings
from brain2music.simulate.study import simulate_study
from brain2music.simulate.truth import StudyTruth, load_truth

__all__ = [
    "SimulationSettings",
    "PARAM_NAMES",
    "StudyTruth",
    "TrackParams",
    "auditory_features",
    "compose",
    "load_truth",
    "params_from_vector",
    "params_to_vector",
    "render",
    "sample_params",
    "simulate_study",
]
