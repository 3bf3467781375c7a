"""Encoder.embed_span: audio of any length, only the windows it covers, for every encoder of the registry.

An encoder satisfies the protocol when ``embed_span`` on 15-s audio equals ``embed`` (add new encoders to
``ENCODERS``): its ``_embed_batch`` then takes the window geometry from ``self.windows``.
"""

from __future__ import annotations

import numpy as np
import pytest

from brain2music.embeddings import get_encoder
from brain2music.embeddings.base import span_windows
from brain2music.errors import DataError


def _tiny(name):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from brain2music.embeddings.neural import ClapEncoder, EncodecEncoder, MertEncoder
    from test_embeddings_neural import tiny_clap, tiny_encodec, tiny_mert_like

    if name == "clap":
        return ClapEncoder(*tiny_clap(), batch_size=4)
    if name == "encodec":
        return EncodecEncoder(tiny_encodec())
    return MertEncoder(*tiny_mert_like())


#: name -> (factory, a window's embedding ignores audio after it, ... and audio before it)
ENCODERS = {
    "debug": (lambda: get_encoder("debug"), True, True),
    "acoustic": (lambda: get_encoder("acoustic"), False, False),  # STFT edges, 8.9-s tempo context
    "musicnn-msd": (lambda: get_encoder("musicnn-msd"), True, False),  # centred STFT frames at the start
    "clap": (lambda: _tiny("clap"), True, True),
    "encodec": (lambda: _tiny("encodec"), False, False),  # convolutional receptive field
    "mert": (lambda: _tiny("mert"), True, True),
}


@pytest.fixture(scope="module", params=list(ENCODERS))
def encoder(request):
    factory, causal, local = ENCODERS[request.param]
    enc = factory()
    enc.causal_windows_, enc.local_windows_ = causal, local
    return enc


def _noise(seconds, sr, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    # a slowly changing tone in noise: windows differ from each other
    return (0.3 * np.sin(2 * np.pi * (200 + 20 * t) * t) + 0.05 * rng.standard_normal(t.size)).astype(
        np.float32
    )


def test_span_of_a_15s_clip_equals_embed(encoder):
    y = _noise(15.0, encoder.sr)
    span = encoder.embed_span(y, encoder.sr)
    np.testing.assert_allclose(span.embeddings, encoder.embed(y, encoder.sr), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(span.windows, encoder.windows)


def test_short_audio_gets_only_its_own_windows(encoder):
    y = _noise(15.0, encoder.sr, seed=1)
    cut = y[: int(12.0 * encoder.sr)]
    span = encoder.embed_span(cut, encoder.sr)
    expected = span_windows(encoder.window, 12.0, hop=encoder.tr)
    np.testing.assert_allclose(span.windows, expected)
    assert span.windows[-1, 1] == pytest.approx(12.0) and len(span) < encoder.n_windows  # no padding
    if encoder.causal_windows_:
        # the windows inside the first 12 s embed exactly as within the whole clip
        np.testing.assert_allclose(
            span.embeddings, encoder.embed(y, encoder.sr)[: len(span)], rtol=1e-4, atol=1e-5
        )


def test_long_audio_is_embedded_in_seamless_chunks(encoder):
    y = _noise(25.0, encoder.sr, seed=2)
    whole = encoder.embed_span(y, encoder.sr)
    assert whole.windows[-1, 1] == pytest.approx(24.0) and whole.duration == pytest.approx(25.0)
    chunk, encoder.span_chunk = encoder.span_chunk, 10.5
    try:
        chunked = encoder.embed_span(y, encoder.sr)
    finally:
        encoder.span_chunk = chunk
    np.testing.assert_allclose(chunked.windows, whole.windows)
    if encoder.local_windows_:
        np.testing.assert_allclose(chunked.embeddings, whole.embeddings, rtol=1e-4, atol=1e-5)


def test_too_short_is_an_error(encoder):
    with pytest.raises(DataError, match=rf"shorter than one {encoder.window:g}-s window"):
        encoder.embed_span(_noise(encoder.window * 0.8, encoder.sr), encoder.sr)


def test_span_windows_geometry():
    # 10-s windows on the 1.5-s grid start at 0.5 s, as the paper's 4 CLAP windows of a 15-s clip do
    w = span_windows(10.0, 15.0)
    np.testing.assert_allclose(w[:, 0], [0.5, 2.0, 3.5, 5.0])
    assert len(span_windows(1.5, 30.0)) == 20 and len(span_windows(1.5, 30.0, hop=0.75)) == 39
    assert span_windows(5.0, 4.9).shape == (0, 2)
    dbg = get_encoder("debug")
    stereo = np.stack([_noise(6.2, 44100)] * 2, axis=1)  # any rate, any layout
    span = dbg.embed_span(stereo, 44100, hop=0.75)
    assert span.embeddings.shape == (7, 4) and span.starts[-1] == pytest.approx(4.5)
