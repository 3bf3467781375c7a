"""The encoder protocol: audio of any rate and layout → ``(r, dim)`` embeddings on the paper's windows.

Every encoder embeds one clip of ``clip_duration`` seconds (15 s, the length of a stimulus) on the windows
of :func:`brain2music.windows.embedding_windows`: windows of ``window`` seconds that end on a TR boundary.
Those are the windows the fMRI side averages over, so embedding window ``k`` and response window ``k``
describe the same stretch of music.

Input handling shared by all encoders (:meth:`Encoder.prepare`):

- ``audio`` is ``(n_samples,)`` or ``(n_samples, n_channels)`` (the layout of
  :func:`brain2music.stimuli.read_audio`); a ``(n_channels, n_samples)`` array with at most 8 channels is
  recognised and transposed. Channels are averaged to mono.
- Any sample rate: the audio is resampled to the encoder's ``sr`` with soxr.
- Audio longer than ``clip_duration`` is cut to its first ``clip_duration`` seconds; shorter audio is
  zero-padded (windows past its end embed silence). Audio shorter than one window is an error.

Audio of any length (:meth:`Encoder.embed_span`, used for library tracks and search queries): every window
of ``window`` seconds that the recording really covers and that ends on a multiple of ``hop`` (default
``tr``) is embedded, nothing is cut or padded. It is generic: long audio is cut into chunks of
``span_chunk`` seconds (windows continue seamlessly across chunks) and each chunk goes through the
encoder's own ``_embed_batch`` on a shallow copy whose ``clip_duration`` is the chunk length and whose
``tr`` is the hop. ``_embed_batch`` must therefore take its window geometry only from ``self.windows``,
``self.window_samples()``, ``self.n_windows`` and the length of the array it gets; an encoder that
cannot may override ``_embed_span``. For 15-s audio and ``hop == tr``, ``embed_span`` equals ``embed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from brain2music.errors import ConfigError, DataError
from brain2music.stimuli.audio import resample
from brain2music.windows import CLIP_DURATION, TR, embedding_windows

__all__ = ["Encoder", "SpanEmbedding", "frame_window_means", "span_windows"]

_MAX_CHANNELS = 8
_EPS = 1e-6


def span_windows(window: float, duration: float, *, hop: float = TR) -> np.ndarray:
    """``(n, 2)`` ``[start, end)`` (s) of every ``window``-s window inside ``[0, duration]`` ending on a multiple of ``hop``.

    For ``duration = 15`` and ``hop = tr`` these are the paper's windows (:func:`brain2music.windows.embedding_windows`).
    An empty array when the audio is shorter than one window.
    """
    if window <= 0 or hop <= 0:
        raise DataError(f"window and hop must be positive seconds, got window={window!r}, hop={hop!r}")
    first = int(np.ceil(window / hop - _EPS))
    last = int(np.floor(duration / hop + _EPS))
    ends = hop * np.arange(max(first, 1), last + 1, dtype=np.float64)
    return np.stack([ends - window, ends], axis=1) if len(ends) else np.zeros((0, 2))


@dataclass(frozen=True)
class SpanEmbedding:
    """Embeddings of every window a recording covers (:meth:`Encoder.embed_span`).

    Attributes
    ----------
    embeddings : ndarray, shape ``(n_windows, dim)``, float32
    windows : ndarray, shape ``(n_windows, 2)``
        ``[start, end)`` of each window in seconds from the start of the audio.
    duration : float
        Length of the audio in seconds.
    hop : float
        Spacing of the window ends (s).
    """

    embeddings: np.ndarray
    windows: np.ndarray
    duration: float
    hop: float

    @property
    def starts(self) -> np.ndarray:
        """``(n_windows,)`` window start times (s)."""
        return self.windows[:, 0]

    def __len__(self) -> int:
        return len(self.embeddings)


class Encoder:
    """Base class of all encoders.

    Subclasses set ``name``, ``sr`` (Hz), ``dim`` and ``window`` (s) and implement :meth:`_embed_batch`,
    which receives ``(n_clips, n_samples)`` mono float32 audio at ``sr``, exactly ``clip_duration`` long,
    and returns ``(n_clips, r, dim)``.

    Attributes
    ----------
    name : str
        Registry name.
    sr : int
        Sample rate the encoder works at; input is resampled to it.
    dim : int
        Embedding dimension.
    window : float
        Window length in seconds.
    modality : {"audio", "text"}
        What :meth:`embed` takes; text encoders embed captions with ``embed_texts``.
    """

    name: str = "base"
    modality: str = "audio"
    sr: int = 22050
    dim: int = 0
    window: float = 1.5
    clip_duration: float = CLIP_DURATION
    tr: float = TR
    #: Seconds of audio per ``_embed_batch`` call in :meth:`embed_span` (bounds memory on long tracks).
    span_chunk: float = 60.0

    # -- window geometry -------------------------------------------------------------------------------
    @property
    def windows(self) -> np.ndarray:
        """``(r, 2)`` window ``[start, end)`` times in seconds within the clip."""
        return embedding_windows(self.window, clip_duration=self.clip_duration, tr=self.tr)

    @property
    def n_windows(self) -> int:
        """Number of windows ``r`` per clip (paper Table 1: 10, 7, 4 or 1)."""
        return len(self.windows)

    def _check_window(self) -> None:
        """Raise DataError early when ``window`` does not fit the clip (called by constructors)."""
        embedding_windows(self.window, clip_duration=self.clip_duration, tr=self.tr)

    def window_samples(self) -> np.ndarray:
        """``(r, 2)`` integer sample bounds of the windows at ``sr``."""
        return np.round(self.windows * self.sr).astype(np.int64)

    @property
    def config(self) -> dict[str, Any]:
        """Everything that determines the output (stored with every embedding file and in cache keys)."""
        return {
            "encoder": self.name,
            "sr": int(self.sr),
            "dim": int(self.dim),
            "window": float(self.window),
            "n_windows": int(self.n_windows),
            "clip_duration": float(self.clip_duration),
            "tr": float(self.tr),
            **self._extra_config(),
        }

    def _extra_config(self) -> dict[str, Any]:
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, sr={self.sr}, dim={self.dim}, window={self.window}, r={self.n_windows})"

    # -- input handling --------------------------------------------------------------------------------
    def _as_mono(self, audio: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
        """Validated mono float32 audio at its own rate, and that rate."""
        if self.modality != "audio":
            raise ConfigError(
                f"encoder {self.name!r} embeds text, not audio; use embed_texts() or brain2music.embeddings.embed_captions()"
            )
        try:
            sr_int = int(sr)
        except (TypeError, ValueError):
            raise DataError(f"sr must be a positive integer sample rate in Hz, got {sr!r}") from None
        if sr_int <= 0 or sr_int != sr:
            raise DataError(f"sr must be a positive integer sample rate in Hz, got {sr!r}")
        x = np.asarray(audio)
        if x.dtype.kind not in "fiu":
            raise DataError(f"audio must be a numeric array, got dtype {x.dtype}")
        if x.ndim == 2:
            if x.shape[0] <= _MAX_CHANNELS and x.shape[1] > x.shape[0]:
                x = x.T  # (n_channels, n_samples) as torch/librosa lay it out
            x = mono_mix(x)
        elif x.ndim != 1:
            raise DataError(
                f"audio must have shape (n_samples,) or (n_samples, n_channels), got shape {np.shape(audio)}"
            )
        if x.size == 0:
            raise DataError("audio is empty (0 samples)")
        x = x.astype(np.float32, copy=False)
        if not np.all(np.isfinite(x)):
            raise DataError("audio contains NaN or infinite samples")
        duration = x.shape[0] / sr_int
        if duration < self.window - 1e-3:
            raise DataError(
                f"clip is {duration:.3f} s long, shorter than one {self.window:g}-s window of encoder "
                f"{self.name!r}; expected at least {self.window:g} s of audio"
            )
        return x, sr_int

    def prepare(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Mono, resampled to ``self.sr``, cut or zero-padded to ``clip_duration``: ``(n_samples,)`` float32."""
        x, sr_int = self._as_mono(audio, sr)
        # Cut before resampling: cheaper, and the result is the same excerpt.
        x = x[: int(round(self.clip_duration * sr_int))]
        x = resample(x, sr_int, self.sr)
        n = int(round(self.clip_duration * self.sr))
        if x.shape[0] < n:
            x = np.pad(x, (0, n - x.shape[0]))
        return np.ascontiguousarray(x[:n], dtype=np.float32)

    def prepare_span(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Mono, resampled to ``self.sr``, neither cut nor padded: ``(n_samples,)`` float32."""
        x, sr_int = self._as_mono(audio, sr)
        return np.ascontiguousarray(resample(x, sr_int, self.sr), dtype=np.float32)

    # -- embedding -------------------------------------------------------------------------------------
    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """Embed one clip.

        Parameters
        ----------
        audio : ndarray, shape ``(n_samples,)`` or ``(n_samples, n_channels)``
        sr : int
            Sample rate of ``audio``.

        Returns
        -------
        embeddings : ndarray, shape ``(r, dim)``, float32
        """
        return self.embed_many([audio], sr)[0]

    def embed_many(self, audios: Sequence[np.ndarray], sr: int | Sequence[int]) -> np.ndarray:
        """Embed several clips at once (neural encoders batch their windows): ``(n_clips, r, dim)`` float32.

        ``sr`` is one rate for all clips or one per clip.
        """
        audios = list(audios)
        rates = [sr] * len(audios) if np.ndim(sr) == 0 else list(sr)
        if len(rates) != len(audios):
            raise DataError(f"got {len(audios)} clips but {len(rates)} sample rates")
        if not audios:
            return np.zeros((0, self.n_windows, self.dim), dtype=np.float32)
        x = np.stack([self.prepare(a, s) for a, s in zip(audios, rates)])
        out = np.asarray(self._embed_batch(x), dtype=np.float32)
        expected = (len(audios), self.n_windows, self.dim)
        if out.shape != expected:  # pragma: no cover - guards subclasses
            raise RuntimeError(f"encoder {self.name!r} returned shape {out.shape}, expected {expected}")
        if not np.all(np.isfinite(out)):  # pragma: no cover - guards subclasses
            raise RuntimeError(f"encoder {self.name!r} returned non-finite embeddings")
        return out

    def _embed_batch(self, audio: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def span_windows(self, duration: float, *, hop: float | None = None) -> np.ndarray:
        """``(n, 2)`` windows (s) of :meth:`embed_span` for audio of ``duration`` s (see :func:`span_windows`)."""
        return span_windows(self.window, duration, hop=self.tr if hop is None else float(hop))

    def embed_span(self, audio: np.ndarray, sr: int, *, hop: float | None = None) -> SpanEmbedding:
        """Embed every window that ``audio`` really covers: no cut to ``clip_duration``, no padding.

        Parameters
        ----------
        audio : ndarray, shape ``(n_samples,)`` or ``(n_samples, n_channels)``
            Any length of at least one window, any sample rate.
        sr : int
        hop : float, optional
            Window ends lie on multiples of ``hop`` seconds (default ``tr``, the paper's grid).

        Returns
        -------
        SpanEmbedding with ``embeddings (n_windows, dim)`` and ``windows (n_windows, 2)``.
        """
        hop = self.tr if hop is None else float(hop)
        if hop <= 0:
            raise DataError(f"hop must be a positive number of seconds, got {hop!r}")
        x = self.prepare_span(audio, sr)
        duration = x.shape[0] / self.sr
        windows = self.span_windows(duration, hop=hop)
        if len(windows) == 0:
            raise DataError(
                f"audio is {duration:.3f} s long, shorter than one {self.window:g}-s window of encoder "
                f"{self.name!r} (ending on a {hop:g}-s grid); expected at least {windows_min(self.window, hop):g} s"
            )
        out = np.asarray(self._embed_span(x, windows, hop), dtype=np.float32)
        if out.shape != (len(windows), self.dim):  # pragma: no cover - guards subclasses
            raise RuntimeError(
                f"encoder {self.name!r} returned shape {out.shape}, expected {(len(windows), self.dim)}"
            )
        if not np.all(np.isfinite(out)):  # pragma: no cover - guards subclasses
            raise RuntimeError(f"encoder {self.name!r} returned non-finite embeddings")
        return SpanEmbedding(out, windows, float(duration), hop)

    def _with_geometry(self, clip_duration: float, tr: float) -> Encoder:
        """A shallow copy (model shared, ``__getstate__`` bypassed) with another clip length and window grid."""
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.clip_duration = float(clip_duration)
        clone.tr = float(tr)
        return clone

    def _embed_span(self, x: np.ndarray, windows: np.ndarray, hop: float) -> np.ndarray:
        """``x (n_samples,)`` mono at ``sr`` → ``(len(windows), dim)``; generic: chunks through ``_embed_batch``.

        A chunk starts on the hop grid and spans a whole number of hops, so the windows of its copy of
        the encoder (ending on multiples of ``hop`` inside the chunk) are exactly the global windows that
        end inside it.
        """
        first_end = float(windows[0, 1])  # end of the first window, relative to any chunk start
        chunk = max(first_end, hop * np.floor(max(self.span_chunk, first_end) / hop + _EPS))
        total_end = float(windows[-1, 1])
        out, start = [], 0.0
        while start + first_end <= total_end + _EPS:
            length = min(chunk, hop * np.floor((total_end - start) / hop + _EPS))
            a = int(round(start * self.sr))
            seg = x[a : a + int(round(length * self.sr))]
            seg = np.pad(seg, (0, int(round(length * self.sr)) - len(seg)))  # rounding slack only
            clone = self._with_geometry(length, hop)
            emb = np.asarray(clone._embed_batch(seg[None, :]), dtype=np.float32)
            if emb.shape != (1, clone.n_windows, self.dim):  # pragma: no cover - guards subclasses
                raise RuntimeError(
                    f"encoder {self.name!r} returned shape {emb.shape} for a {length:g}-s chunk, expected "
                    f"{(1, clone.n_windows, self.dim)}; its _embed_batch must follow self.windows"
                )
            out.append(emb[0])
            start += length + hop - first_end  # the next chunk's first window ends one hop later
        return np.concatenate(out)[: len(windows)]


def mono_mix(audio: np.ndarray) -> np.ndarray:
    """``(n_samples, n_channels)`` → ``(n_samples,)`` float32 channel average.

    A matrix-vector product: 20x faster than ``mean(axis=1)`` over a short last axis (which costs more
    than embedding a 5-s query), and bit-identical to it for stereo.
    """
    x = np.asarray(audio, dtype=np.float32)
    return x @ np.full(x.shape[1], 1.0 / x.shape[1], dtype=np.float32)


def windows_min(window: float, hop: float) -> float:
    """Shortest audio (s) that holds one ``window``-s window ending on the ``hop`` grid."""
    return hop * np.ceil(window / hop - _EPS)


def frame_window_means(frames: np.ndarray, frame_times: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Average frame features over windows.

    Parameters
    ----------
    frames : ndarray, shape ``(..., n_frames, n_features)``
    frame_times : ndarray, shape ``(n_frames,)``
        Centre time of each frame (s).
    windows : ndarray, shape ``(r, 2)``
        ``[start, end)`` of each window (s).

    Returns
    -------
    ndarray, shape ``(..., r, n_features)``. A frame belongs to a window when its centre lies in it; a window
    that holds no frame centre takes the nearest frame (only possible for windows shorter than a frame).
    """
    inside = (frame_times[None, :] >= windows[:, :1]) & (frame_times[None, :] < windows[:, 1:])
    empty = ~inside.any(axis=1)
    if empty.any():
        mids = windows[empty].mean(axis=1)
        nearest = np.abs(frame_times[None, :] - mids[:, None]).argmin(axis=1)
        inside[np.flatnonzero(empty), nearest] = True
    weights = inside / inside.sum(axis=1, keepdims=True)
    return np.einsum("rt,...tf->...rf", weights.astype(frames.dtype), frames)
