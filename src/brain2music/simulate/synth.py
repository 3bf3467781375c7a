"""Synthesis of a composed score: FluidSynth per stem (deterministic), then pedalboard effects.

Each stem is synthesised with FluidSynth and the General-MIDI SoundFont pretty_midi ships (the event loop
of pretty_midi's ``Instrument.fluidsynth``, made deterministic, see :func:`_synth`); guitar stems get
pedalboard distortion when ``params.distortion > 0``; the mix gets compression, an optional low-pass and
reverb, then a peak normaliser.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from brain2music.simulate.composer import TrackParams

__all__ = ["render_score"]

_GUITARS = set(range(24, 32))


def _new_synthesizer(sr: int):
    """A FluidSynth instance with the General-MIDI SoundFont that pretty_midi ships (``TimGM6mb.sf2``).

    FluidSynth's own reverb and chorus are off: effects come from pedalboard, per genre. Every track gets
    a fresh synthesiser: a reused one keeps voice and filter state that changes the first notes of the
    next track, and a track must not depend on what was rendered before it.
    """
    import os
    from importlib.resources import files

    from pretty_midi.fluidsynth import DEFAULT_SF2

    from brain2music.errors import require

    fluidsynth = require("fluidsynth", "simulate", "Rendering composed tracks (pyfluidsynth + libfluidsynth)")
    synth = fluidsynth.Synth(samplerate=float(sr), **{"synth.reverb.active": 0, "synth.chorus.active": 0})
    sfid = synth.sfload(os.path.join(str(files("pretty_midi")), DEFAULT_SF2))
    return synth, sfid


def _write_float():
    import ctypes

    import fluidsynth

    fn = fluidsynth._fl.fluid_synth_write_float
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    fn.argtypes += [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def _synth(inst, synth, sfid: int, sr: int, n: int) -> np.ndarray:
    """Synthesise one pretty_midi instrument to ``n`` mono samples.

    The event loop is pretty_midi's ``Instrument.fluidsynth`` with two changes: FluidSynth writes floats
    straight into the output buffer (its 16-bit path adds dither noise whose position carries over from
    call to call, which would make a track depend on what was rendered before it), and the synthesiser
    is shared by the stems of a track (its SoundFont loaded once).
    """
    write = _write_float()
    # No sounding voices or controller state from the previous stem: reset, then let the killed voices
    # finish (they are removed only when a block is rendered).
    synth.system_reset()
    scratch = np.zeros(4096, dtype=np.float32)
    write(synth.synth, 4096, scratch.ctypes.data, 0, 1, scratch.ctypes.data, 0, 1)
    if inst.is_drum:
        channel = 9
        if synth.program_select(channel, sfid, 128, inst.program) == -1:
            synth.program_select(channel, sfid, 128, 0)
    else:
        channel = 0
        synth.program_select(channel, sfid, 0, inst.program)
    events = []
    for note in inst.notes:
        events.append((int(note.start * sr), 1, note.pitch, note.velocity))
        events.append((int(note.end * sr), 0, note.pitch, 0))
    events.sort()  # note-offs before note-ons at the same sample
    # FluidSynth renders in blocks of 64 samples and keeps a partly used block between calls: writing a
    # whole number of blocks per stem starts every stem at the same block phase (determinism).
    total = n
    n = -(-n // 64) * 64
    left = np.zeros(n, dtype=np.float32)
    right = np.zeros(n, dtype=np.float32)
    pos = 0
    for sample, kind, pitch, velocity in events:
        sample = min(sample, n)
        if sample > pos:
            write(
                synth.synth, sample - pos, left.ctypes.data + 4 * pos, 0, 1, right.ctypes.data + 4 * pos, 0, 1
            )
            pos = sample
        if pos >= n:
            break
        if kind:
            synth.noteon(channel, pitch, velocity)
        else:
            synth.noteoff(channel, pitch)
    if pos < n:
        write(synth.synth, n - pos, left.ctypes.data + 4 * pos, 0, 1, right.ctypes.data + 4 * pos, 0, 1)
    return 0.5 * (left[:total] + right[:total])


def render_score(pm, params: TrackParams, *, sr: int, n: int) -> np.ndarray:
    """Mix the instruments of the :class:`pretty_midi.PrettyMIDI` score ``pm`` into ``n`` mono samples.

    ``params`` supplies the effect amounts (``distortion``, ``compression``, ``lowpass``, ``reverb``).
    Returns float32 audio with peak 0.99.
    """
    import pedalboard as pb

    mix = np.zeros(n, dtype=np.float32)
    synth, sfid = _new_synthesizer(sr)
    gains = {"drums": 0.9, "bass": 1.0, "chords": 0.55, "pad": 0.35, "melody": 0.75}
    for inst in pm.instruments:
        if not inst.notes:
            continue
        stem = _synth(inst, synth, sfid, sr, n)
        peak = float(np.max(np.abs(stem))) or 1.0
        stem /= peak
        if params.distortion > 0 and not inst.is_drum and inst.program in _GUITARS:
            stem = pb.Pedalboard([pb.Distortion(drive_db=float(params.distortion)), pb.Gain(-6.0)])(stem, sr)
            stem /= float(np.max(np.abs(stem))) or 1.0
        mix += gains.get(inst.name, 0.6) * stem
    synth.delete()
    board = []
    if params.compression > 0:
        board.append(
            pb.Compressor(threshold_db=-6 - 24 * params.compression, ratio=1.5 + 6 * params.compression)
        )
    if params.lowpass > 0:
        board.append(
            pb.LowpassFilter(cutoff_frequency_hz=float(8000 * (1 - params.lowpass) + 1500 * params.lowpass))
        )
    if params.reverb > 0:
        board.append(
            pb.Reverb(room_size=float(params.reverb), wet_level=0.12 + 0.25 * params.reverb, dry_level=0.8)
        )
    peak = float(np.max(np.abs(mix))) or 1.0
    mix /= peak
    if board:
        mix = pb.Pedalboard(board)(mix, sr)
    mix = np.asarray(mix, dtype=np.float32).reshape(-1)[:n]
    peak = float(np.max(np.abs(mix))) or 1.0
    return (mix * (0.99 / peak)).astype(np.float32)
