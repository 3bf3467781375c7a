"""The offline generator: composed audio of the asked length and rate, reproducible from its seed, and
steered towards its conditioning (the output embeds closer to its own target than to another's)."""

from __future__ import annotations

import numpy as np
import pytest

from brain2music.errors import ConfigError
from brain2music.reconstruct.clip_embedding import clip_embedding, prepare_clip
from brain2music.reconstruct.generators import get_generator

SR = 16000  # the lowest rate the composer's effects allow: cheaper to render than the stimuli's 22050 Hz


@pytest.fixture(scope="module")
def generator(tmp_path_factory):
    cache = tmp_path_factory.mktemp("offline") / "bank.npz"
    gen = get_generator(
        "offline", encoder="acoustic", n_bank=10, n_candidates=2, n_rounds=1, n_neighbors=1,
        genres=("metal", "classical"), sr=SR, cache=cache, progress=False,
    )  # fmt: skip
    return gen.fit()


def _embed(gen, audio):
    return clip_embedding(gen._enc(), prepare_clip(audio, SR), SR, source="test")


def test_length_rate_and_determinism(generator):
    target = generator.bank_embeddings_[0]
    audio, sr = generator.generate(target, duration=6.0, random_state=3)
    assert sr == SR and audio.shape == (1, 6 * SR) and audio.dtype == np.float32
    assert np.all(np.isfinite(audio)) and 0.5 < np.max(np.abs(audio)) <= 0.99 + 1e-6
    again, _ = generator.generate(target, duration=6.0, random_state=3)
    np.testing.assert_array_equal(audio, again)
    other, _ = generator.generate(target, duration=6.0, random_state=4)
    assert not np.array_equal(audio, other)


def test_output_is_closer_to_its_conditioning_than_to_another(generator):
    genres = list(generator.bank_genres_)
    metal, classical = genres.index("metal"), genres.index("classical")
    targets = generator.bank_embeddings_[[metal, classical]]
    for own, other in ((0, 1), (1, 0)):
        audio, _ = generator.generate(targets[own], duration=15.0, random_state=0)
        emb = _embed(generator, audio[0])[None]
        to_own = generator._score(emb, targets[own])[0]
        to_other = generator._score(emb, targets[other])[0]
        assert to_own > to_other + 0.1, (own, to_own, to_other)


def test_bank_is_reused_from_its_cache(generator):
    again = get_generator(
        "offline", encoder="acoustic", n_bank=10, genres=("metal", "classical"), sr=SR,
        cache=generator.cache, progress=False,
    ).fit()  # fmt: skip
    np.testing.assert_array_equal(again.bank_embeddings_, generator.bank_embeddings_)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ConfigError, match="preset must be one of default, demo; got 'huge'"):
        get_generator("offline", encoder="acoustic", preset="huge")
