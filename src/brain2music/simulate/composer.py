"""A composer of short tracks in the style of the 10 GTZAN genres, rendered with a real SoundFont.

The layers are separate so that a search (the offline generator) can tweak a track:

- :class:`TrackParams` — everything that defines a track (genre, tempo, key/mode, meter, swing, drum
  pattern, bass style, chord progression and voicing, instruments as General-MIDI programs, melody
  density/register, effect amounts, a seed for the note-level choices);
- :func:`sample_params` — draw the parameters of a new track of a genre;
- :func:`compose` — parameters → a :class:`pretty_midi.PrettyMIDI` score (deterministic for the params);
- :func:`render` — parameters → audio: FluidSynth (pretty_midi's ``fluidsynth()`` event loop with the
  General-MIDI SoundFont pretty_midi ships, ``TimGM6mb.sf2``, a fresh synthesiser per track) per stem, then pedalboard effects: distortion on guitars
  for metal/rock (and a little for blues), compression, reverb, a low-pass for lo-fi hip-hop;
- :func:`params_to_vector` / :func:`params_from_vector` — a numeric encoding in ``[0, 1]^d``
  (:data:`PARAM_NAMES` names the coordinates) so that parameters can be searched numerically.

Genre styles are written from common textbook descriptions (12-bar shuffle blues, boom-chick country,
four-on-the-floor disco, boom-bap hip-hop, swing ride + walking bass jazz, palm-muted power chords for
metal, I–V–vi–IV pop, one-drop reggae with off-beat skank, eighth-note rock), not tuned to any decoder.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from brain2music._checks import check_choice
from brain2music.data.events import GENRES
from brain2music.errors import ConfigError
from brain2music.simulate.styles import (
    BASS_STYLES,
    CHORD_STYLES,
    DRUM_KITS,
    DRUM_NOTES,
    DRUM_PATTERNS,
    MODES,
    PROGRESSIONS,
    ROLES,
    SCALES,
    STYLES,
)

__all__ = [
    "PARAM_NAMES",
    "TrackParams",
    "compose",
    "params_from_vector",
    "params_to_vector",
    "render",
    "sample_params",
]


@dataclass
class TrackParams:
    """Everything that defines one composed track.

    ``instruments`` maps a role (``bass``, ``chords``, ``melody``, ``pad``) to a General-MIDI program
    (0–127) or ``None`` when the role is silent. ``progression`` indexes :data:`PROGRESSIONS`,
    ``drum_pattern`` :data:`DRUM_PATTERNS` (9 = no drums), ``drum_kit`` a GM drum-kit program.
    Effect amounts: ``distortion`` drive in dB on guitar stems, ``reverb`` room size 0–1,
    ``compression`` 0–1 (threshold and ratio grow with it), ``lowpass`` 0–1 (0 = off; 1 = 1.5 kHz).
    ``seed`` drives the note-level choices (melody, fills, velocities), so two tracks with the same
    params are identical and tracks with different seeds differ.
    """

    genre: str
    tempo: float
    key: int
    mode: str
    meter: int
    swing: float
    drum_pattern: int
    drum_kit: int
    bass_style: str
    progression: int
    chord_style: str
    instruments: dict = field(default_factory=dict)
    melody_density: float = 1.5
    melody_register: int = 69
    distortion: float = 0.0
    reverb: float = 0.3
    compression: float = 0.3
    lowpass: float = 0.0
    velocity: float = 0.8
    seed: int = 0

    def to_dict(self) -> dict:
        """JSON-ready dict (for the metadata table)."""
        return dataclasses.asdict(self)


def _check_genre(genre: str) -> str:
    return check_choice(genre, GENRES, what="genre")


def sample_params(genre: str, rng: np.random.Generator | int | None = None) -> TrackParams:
    """Draw the parameters of a new track in the style of ``genre`` (one of the 10 GTZAN genres)."""
    s = STYLES[_check_genre(genre)]
    rng = np.random.default_rng(rng)

    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    def uniform(lo_hi):
        lo, hi = lo_hi
        return float(lo if hi <= lo else rng.uniform(lo, hi))

    return TrackParams(
        genre=genre,
        tempo=round(uniform(s.tempo), 1),
        key=int(rng.integers(12)),
        mode=pick(s.modes),
        meter=int(pick(s.meter)),
        swing=round(uniform(s.swing), 3),
        drum_pattern=int(pick(s.drums)),
        drum_kit=int(pick(s.kits)),
        bass_style=pick(s.bass),
        progression=int(pick(s.prog)),
        chord_style=pick(s.chords),
        instruments={
            "bass": int(pick(s.bass_prog)),
            "chords": int(pick(s.chord_prog)),
            "melody": int(pick(s.melody_prog)),
            "pad": pick(s.pad_prog),
        },
        melody_density=round(uniform(s.density), 3),
        melody_register=int(rng.integers(s.register[0], s.register[1] + 1)),
        distortion=round(uniform(s.distortion), 2),
        reverb=round(uniform(s.reverb), 3),
        compression=round(uniform(s.compression), 3),
        lowpass=round(uniform(s.lowpass), 3),
        velocity=round(float(rng.uniform(0.65, 0.95)), 3),
        seed=int(rng.integers(2**31 - 1)),
    )


# ---------------------------------------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------------------------------------


def _scale_pitch(p: TrackParams, degree: int, octave: int) -> int:
    scale = SCALES[p.mode]
    n = len(scale)
    return 12 * (octave + degree // n) + p.key + scale[degree % n]


def _chord(p: TrackParams, degree: int, octave: int, size: int = 3) -> list[int]:
    """Triad (or 7th chord with ``size=4``) on a scale degree; the blues mode uses dominant 7ths."""
    if p.mode == "blues":
        root = 12 * octave + p.key + {0: 0, 3: 5, 4: 7}.get(degree, 0)
        return [root, root + 4, root + 7, root + 10][:size]
    scale_len = len(SCALES[p.mode])
    return [_scale_pitch(p, degree + 2 * k, octave) for k in range(size)][:scale_len]


class _Timing:
    """Beat → seconds with swing (delays every off-beat 8th note by ``swing`` of a beat)."""

    def __init__(self, p: TrackParams):
        self.beat = 60.0 / p.tempo
        self.swing = p.swing
        self.meter = p.meter

    def t(self, bar: int, step16: float) -> float:
        beat, frac = divmod(step16 / 4.0, 1.0)
        if self.swing and abs(frac - 0.5) < 1e-6:
            frac += self.swing * 0.5
        return (bar * self.meter + beat + frac) * self.beat


def _add(inst, pitch: int, start: float, dur: float, vel: float, duration: float):
    import pretty_midi

    if start >= duration:
        return
    pitch = int(np.clip(pitch, 0, 127))
    end = min(start + max(dur, 0.03), duration)
    inst.notes.append(pretty_midi.Note(int(np.clip(vel, 1, 127)), pitch, float(start), float(end)))


@dataclass
class _Score:
    """What every part of an arrangement needs (the rng is shared, so parts draw in a fixed order)."""

    p: TrackParams
    tm: _Timing
    rng: np.random.Generator
    steps: int
    bar_len: float
    n_bars: int
    prog: tuple
    vel: float
    duration: float


def compose(params: TrackParams, duration: float = 30.0):
    """The score of a track: a :class:`pretty_midi.PrettyMIDI` with drums, bass, chords, melody (and pad).

    Deterministic for ``params`` (the note-level randomness comes from ``params.seed``).
    """
    import pretty_midi

    p = params
    _check_genre(p.genre)
    rng = np.random.default_rng(p.seed)
    tm = _Timing(p)
    bar_len = p.meter * tm.beat
    sc = _Score(p, tm, rng, 4 * p.meter, bar_len, int(np.ceil(duration / bar_len)) + 1,
                PROGRESSIONS[p.progression % len(PROGRESSIONS)], 127 * p.velocity, duration)  # fmt: skip
    pm = pretty_midi.PrettyMIDI(initial_tempo=float(p.tempo))
    # Arrangement: the melody enters after an intro, drums drop out for one break bar in some tracks.
    intro = int(rng.integers(0, 3))
    break_bar = int(rng.integers(6, 14)) if rng.random() < 0.5 else -1
    drums = _drums(sc, break_bar)
    if drums is not None:
        pm.instruments.append(drums)
    pm.instruments.append(_bass(sc))
    pm.instruments.append(_chords_part(sc))
    if p.instruments.get("pad") is not None:
        pm.instruments.append(_pad(sc))
    pm.instruments.append(_melody(sc, intro))
    return pm


def _drums(sc: _Score, break_bar: int):
    import pretty_midi

    p, tm, rng, vel, steps, duration = sc.p, sc.tm, sc.rng, sc.vel, sc.steps, sc.duration
    pattern = DRUM_PATTERNS[p.drum_pattern % len(DRUM_PATTERNS)]
    if not pattern:
        return None
    drums = pretty_midi.Instrument(program=p.drum_kit, is_drum=True, name="drums")
    for bar in range(sc.n_bars):
        if bar == break_bar:
            continue
        for name, hits in pattern.items():
            if name == "crash" and bar % 4:
                continue
            for s in hits:
                if s >= steps:
                    continue
                accent = 1.0 if s % 4 == 0 else 0.8
                v = vel * accent * rng.uniform(0.85, 1.05) * (0.7 if name in ("hat", "ride") else 1.0)
                _add(drums, DRUM_NOTES[name], tm.t(bar, s), 0.1, v, duration)
        if bar % 4 == 3 and rng.random() < 0.6:  # a fill of snare 16ths at the end of a phrase
            for s in range(steps - 4, steps):
                _add(drums, 38, tm.t(bar, s), 0.08, vel * rng.uniform(0.6, 0.95), duration)
    return drums


def _bass(sc: _Score):
    import pretty_midi

    p, tm, rng, vel, steps, duration, prog = sc.p, sc.tm, sc.rng, sc.vel, sc.steps, sc.duration, sc.prog
    bass = pretty_midi.Instrument(program=p.instruments["bass"], name="bass")
    for bar in range(sc.n_bars):
        deg = prog[bar % len(prog)]
        root = _chord(p, deg, 3)[0]
        fifth = root + 7
        style = p.bass_style
        if style == "whole":
            _add(bass, root, tm.t(bar, 0), sc.bar_len * 0.95, vel * 0.9, duration)
        elif style == "root_fifth":
            for b in range(p.meter):
                _add(
                    bass,
                    root if b % 2 == 0 else fifth - 12,
                    tm.t(bar, 4 * b),
                    tm.beat * 0.8,
                    vel * 0.9,
                    duration,
                )
        elif style == "walking":
            nxt = _chord(p, prog[(bar + 1) % len(prog)], 3)[0]
            third = root + (4 if p.mode in ("major", "mixolydian", "blues") else 3)
            line = [root, third, fifth, nxt + rng.choice([-1, 1])]
            for b in range(p.meter):
                _add(bass, line[b % 4], tm.t(bar, 4 * b), tm.beat * 0.9, vel * 0.85, duration)
        elif style == "octaves":
            for s in range(0, steps, 2):
                _add(bass, root + (12 if (s // 2) % 2 else 0), tm.t(bar, s), tm.beat * 0.4, vel, duration)
        elif style == "offbeat":
            for s in (0, 3, 6, 10, 12):
                if s < steps:
                    _add(
                        bass,
                        root + int(rng.choice([0, 0, 7, 12, 10])),
                        tm.t(bar, s),
                        tm.beat * 0.7,
                        vel,
                        duration,
                    )
        elif style == "eighths":
            for s in range(0, steps, 2):
                _add(bass, root, tm.t(bar, s), tm.beat * 0.45, vel * (1.0 if s % 4 == 0 else 0.85), duration)
        elif style == "sub":
            _add(bass, root - 12 if root > 40 else root, tm.t(bar, 0), tm.beat * 1.5, vel, duration)
            _add(bass, root, tm.t(bar, 10), tm.beat * 1.2, vel * 0.9, duration)
        else:  # alberti: root-fifth-third-fifth in 8ths
            third = _chord(p, deg, 3)[1]
            for i, s in enumerate(range(0, steps, 2)):
                _add(
                    bass,
                    (root, fifth, third + 12, fifth)[i % 4],
                    tm.t(bar, s),
                    tm.beat * 0.45,
                    vel * 0.7,
                    duration,
                )
    return bass


def _chords_part(sc: _Score):
    import pretty_midi

    p, tm, rng, vel, steps, duration, prog = sc.p, sc.tm, sc.rng, sc.vel, sc.steps, sc.duration, sc.prog
    chords = pretty_midi.Instrument(program=p.instruments["chords"], name="chords")
    for bar in range(sc.n_bars):
        deg = prog[bar % len(prog)]
        size = 4 if p.chord_style == "comp" else 3
        notes = _chord(p, deg, 4, size)
        cs = p.chord_style
        if cs == "block":
            for b in range(0, p.meter, 2):
                for n in notes:
                    _add(chords, n, tm.t(bar, 4 * b), tm.beat * 1.9, vel * 0.7, duration)
        elif cs == "strum":
            for s in (0, 4, 6, 8, 12, 14):
                if s < steps:
                    for k, n in enumerate(notes + [notes[0] + 12]):
                        _add(chords, n, tm.t(bar, s) + 0.012 * k, tm.beat * 0.45, vel * 0.65, duration)
        elif cs == "arpeggio":
            arp = notes + [notes[0] + 12] + notes[1:][::-1]
            for i, s in enumerate(range(0, steps, 2)):
                _add(chords, arp[i % len(arp)], tm.t(bar, s), tm.beat * 0.6, vel * 0.6, duration)
        elif cs == "skank":
            for b in range(p.meter):
                for n in notes:
                    _add(chords, n + 12, tm.t(bar, 4 * b + 2), tm.beat * 0.2, vel * 0.7, duration)
        elif cs == "stabs":
            for s in (2, 6, 10, 14) if rng.random() < 0.5 else (0, 3, 6, 10):
                if s < steps:
                    for n in notes:
                        _add(chords, n + 12, tm.t(bar, s), tm.beat * 0.25, vel * 0.75, duration)
        elif cs == "pad":
            for n in notes:
                _add(chords, n, tm.t(bar, 0), sc.bar_len * 0.98, vel * 0.55, duration)
        elif cs == "power":
            root = notes[0] - 12
            for s in range(0, steps, 2):
                palm = 0.3 if s % 8 else 0.6
                for n in (root, root + 7, root + 12):
                    _add(chords, n, tm.t(bar, s), tm.beat * palm, vel * 0.8, duration)
        else:  # comp: syncopated 7th chords
            for s in sorted(rng.choice(steps, size=2, replace=False)):
                for n in notes:
                    _add(chords, n, tm.t(bar, int(s)), tm.beat * 0.6, vel * 0.6, duration)
    return chords


def _pad(sc: _Score):
    import pretty_midi

    pad = pretty_midi.Instrument(program=int(sc.p.instruments["pad"]), name="pad")
    for bar in range(0, sc.n_bars, 2):
        for n in _chord(sc.p, sc.prog[bar % len(sc.prog)], 4):
            _add(pad, n, sc.tm.t(bar, 0), 2 * sc.bar_len * 0.98, sc.vel * 0.4, sc.duration)
    return pad


def _melody(sc: _Score, intro: int):
    """A two-bar motif (random walk on the scale), repeated with variations over the track."""
    import pretty_midi

    p, tm, rng, steps = sc.p, sc.tm, sc.rng, sc.steps
    melody = pretty_midi.Instrument(program=p.instruments["melody"], name="melody")
    n_scale = len(SCALES[p.mode])
    center = (p.melody_register - 12 * 5 - p.key) * n_scale // 12
    motif_len = 2 * steps
    density = min(p.melody_density / 4.0, 0.95)
    onsets = [s for s in range(motif_len) if rng.random() < density or s == 0]
    degrees, d = [], center
    for _ in onsets:
        d += int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]))
        d = int(np.clip(d, center - n_scale, center + n_scale))
        degrees.append(d)
    for bar in range(intro, sc.n_bars, 2):
        vary = rng.random() < 0.4
        shift = int(rng.choice([-2, 0, 0, 2])) if vary else 0
        for i, s in enumerate(onsets):
            nxt = onsets[i + 1] if i + 1 < len(onsets) else motif_len
            if vary and rng.random() < 0.2:
                continue
            pitch = _scale_pitch(p, degrees[i] + shift, 5)
            length = (nxt - s) / 4.0 * tm.beat * 0.9
            _add(
                melody,
                pitch,
                tm.t(bar + s // steps, s % steps),
                length,
                sc.vel * rng.uniform(0.75, 1.0),
                sc.duration,
            )
    return melody


# ---------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------


def render(params: TrackParams, sr: int = 22050, duration: float = 30.0) -> np.ndarray:
    """Render a track to mono audio of ``round(duration * sr)`` samples (float32, peak ≤ 0.99).

    The score of :func:`compose` synthesised and mixed by :func:`brain2music.simulate.synth.render_score`
    (FluidSynth with the General-MIDI SoundFont pretty_midi ships, then pedalboard effects).
    """
    from brain2music.simulate.synth import render_score

    return render_score(compose(params, duration), params, sr=sr, n=int(round(duration * sr)))


# ---------------------------------------------------------------------------------------------------------
# Numeric encoding
# ---------------------------------------------------------------------------------------------------------

_CONT = {  # name: (low, high)
    "tempo": (40.0, 220.0),
    "swing": (0.0, 0.4),
    "melody_density": (0.2, 4.0),
    "melody_register": (48.0, 88.0),
    "distortion": (0.0, 40.0),
    "reverb": (0.0, 1.0),
    "compression": (0.0, 1.0),
    "lowpass": (0.0, 1.0),
    "velocity": (0.3, 1.0),
}
_CAT = {  # name: choices
    "key": tuple(range(12)),
    "mode": MODES,
    "meter": (3, 4),
    "drum_pattern": tuple(range(len(DRUM_PATTERNS))),
    "drum_kit": DRUM_KITS,
    "bass_style": BASS_STYLES,
    "progression": tuple(range(len(PROGRESSIONS))),
    "chord_style": CHORD_STYLES,
}
PARAM_NAMES: tuple[str, ...] = (
    tuple(f"genre={g}" for g in GENRES)
    + tuple(_CONT)
    + tuple(_CAT)
    + tuple(f"program.{r}" for r in ROLES)
    + ("pad_on",)
)
"""Names of the coordinates of :func:`params_to_vector` (genre one-hot, continuous, categorical, GM programs)."""


def params_to_vector(params: TrackParams) -> np.ndarray:
    """Encode ``params`` as a vector in ``[0, 1]^d`` (``d = len(PARAM_NAMES)``); the seed is not encoded.

    Continuous fields are scaled to their range, categorical fields to ``index / (n_choices - 1)``,
    programs to ``program / 127``, the genre as a one-hot block.
    """
    v = [1.0 if params.genre == g else 0.0 for g in GENRES]
    for name, (lo, hi) in _CONT.items():
        v.append((float(getattr(params, name)) - lo) / (hi - lo))
    for name, choices in _CAT.items():
        value = getattr(params, name)
        idx = choices.index(value) if value in choices else 0
        v.append(idx / (len(choices) - 1))
    for role in ROLES:
        prog = params.instruments.get(role)
        v.append((0 if prog is None else int(prog)) / 127.0)
    v.append(0.0 if params.instruments.get("pad") is None else 1.0)
    return np.clip(np.asarray(v, dtype=np.float64), 0.0, 1.0)


def params_from_vector(vector: np.ndarray, *, seed: int = 0) -> TrackParams:
    """Decode a vector of :func:`params_to_vector` (values are clipped to ``[0, 1]`` and rounded)."""
    v = np.clip(np.asarray(vector, dtype=np.float64).ravel(), 0.0, 1.0)
    if v.size != len(PARAM_NAMES):
        raise ConfigError(f"vector has {v.size} values; expected {len(PARAM_NAMES)} (see PARAM_NAMES)")
    genre = GENRES[int(np.argmax(v[: len(GENRES)]))]
    i = len(GENRES)
    kw: dict = {"genre": genre, "seed": int(seed)}
    for name, (lo, hi) in _CONT.items():
        kw[name] = float(lo + v[i] * (hi - lo))
        i += 1
    kw["melody_register"] = int(round(kw["melody_register"]))
    for name, choices in _CAT.items():
        kw[name] = choices[int(round(v[i] * (len(choices) - 1)))]
        i += 1
    programs = {role: int(round(v[i + k] * 127)) for k, role in enumerate(ROLES)}
    if v[i + len(ROLES)] < 0.5:
        programs["pad"] = None
    kw["instruments"] = programs
    return TrackParams(**kw)
