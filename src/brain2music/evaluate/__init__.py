"""Evaluation: identification accuracy (paper Eq. 2–3), Pearson r, chance, per genre, noise ceilings, tag agreement.

See :mod:`brain2music.evaluate.identification` for how embedding windows are handled.
"""

from brain2music.evaluate.genre import leave_one_genre_out
from brain2music.evaluate.identification import (
    chance_identification,
    clip_vectors,
    identification_accuracy,
    identification_scores,
    mean_pearson_r,
    per_genre_accuracy,
    similarity_matrix,
    topk_chance,
    topk_scores,
)
from brain2music.evaluate.noise import (
    explainable_variance,
    half_splits,
    response_noise_ceiling,
    split_half_full_r,
    split_half_oracle,
    split_half_scores,
)
from brain2music.evaluate.tags import chance_top_k_agreement, group_agreement, top_k_agreement

__all__ = [
    "chance_identification",
    "chance_top_k_agreement",
    "group_agreement",
    "top_k_agreement",
    "clip_vectors",
    "explainable_variance",
    "half_splits",
    "identification_accuracy",
    "identification_scores",
    "leave_one_genre_out",
    "mean_pearson_r",
    "per_genre_accuracy",
    "response_noise_ceiling",
    "similarity_matrix",
    "split_half_full_r",
    "split_half_oracle",
    "split_half_scores",
    "topk_chance",
    "topk_scores",
]
