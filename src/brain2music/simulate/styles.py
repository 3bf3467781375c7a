"""The composer's musical tables: scales, chord progressions, drum patterns, and the style of each of the
10 GTZAN genres (:data:`STYLES`, one frozen :class:`GenreStyle` each). Data only; the composition and
rendering code is :mod:`brain2music.simulate.composer`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BASS_STYLES",
    "CHORD_STYLES",
    "DRUM_KITS",
    "DRUM_NOTES",
    "DRUM_PATTERNS",
    "GenreStyle",
    "MODES",
    "PROGRESSIONS",
    "ROLES",
    "SCALES",
    "STYLES",
]

MODES: tuple[str, ...] = ("major", "minor", "dorian", "mixolydian", "phrygian", "blues")
SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "blues": (0, 3, 5, 6, 7, 10),
}

# Chord progressions as scale degrees (0 = tonic), one chord per bar; a global table so a progression is
# one integer in the numeric encoding.
PROGRESSIONS: tuple[tuple[int, ...], ...] = (
    (0, 0, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4),  # 0 12-bar blues
    (0, 3, 4, 0),  # 1 I-IV-V-I
    (0, 4, 5, 3),  # 2 I-V-vi-IV (pop)
    (5, 3, 0, 4),  # 3 vi-IV-I-V
    (1, 4, 0, 0),  # 4 ii-V-I
    (0, 5, 1, 4),  # 5 I-vi-ii-V (jazz turnaround)
    (0, 3),  # 6 i-iv vamp (disco/reggae)
    (0, 0, 6, 5),  # 7 i-i-VII-VI (metal/rock, minor)
    (0, 6, 5, 6),  # 8 i-VII-VI-VII
    (0, 3, 0, 4),  # 9 I-IV-I-V (country)
    (0, 2, 3, 4),  # 10 I-iii-IV-V
    (0, 1),  # 11 i-ii vamp (dorian/hip-hop)
)

# Drum patterns on a 16-step grid per bar of 4 beats (12 steps for 3 beats): (kick, snare, hat, open hat,
# ride, crash-at-bar-1) as step sets.
DRUM_PATTERNS: tuple[dict, ...] = (
    {"kick": (0, 8), "snare": (4, 12), "hat": (0, 2, 4, 6, 8, 10, 12, 14)},  # 0 rock/pop backbeat
    {"kick": (0, 4, 8, 12), "snare": (4, 12), "hat": (), "open": (2, 6, 10, 14)},  # 1 four on the floor
    {"kick": (0, 7, 10), "snare": (4, 12), "hat": (0, 2, 4, 6, 8, 10, 12, 14)},  # 2 boom-bap
    {"kick": (8,), "snare": (8,), "hat": (2, 6, 10, 14)},  # 3 one drop
    {"ride": (0, 4, 6, 8, 12, 14), "hat": (4, 12), "kick": (0,)},  # 4 jazz swing ride
    {"kick": (0, 2, 4, 6, 8, 10, 12, 14), "snare": (4, 12), "crash": (0,)},  # 5 double-kick metal
    {"kick": (0, 8), "snare": (4, 12), "hat": (0, 4, 8, 12)},  # 6 country train / shuffle
    {"kick": (0, 3, 8, 11), "snare": (4, 12), "hat": tuple(range(16))},  # 7 16th-hat pop/hiphop
    {"kick": (0, 6, 8), "snare": (4, 12), "hat": (0, 2, 4, 6, 8, 10, 12, 14), "crash": (0,)},  # 8 rock
    {},  # 9 no drums (classical)
)
DRUM_NOTES = {"kick": 36, "snare": 38, "hat": 42, "open": 46, "ride": 51, "crash": 49}

BASS_STYLES = ("whole", "root_fifth", "walking", "octaves", "offbeat", "eighths", "sub", "alberti")
CHORD_STYLES = ("block", "strum", "arpeggio", "skank", "stabs", "pad", "power", "comp")
ROLES = ("bass", "chords", "melody", "pad")
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40)


@dataclass(frozen=True)
class GenreStyle:
    """The style of one genre: ranges ``(low, high)`` drawn uniformly and tuples of choices drawn with equal
    probability by :func:`~brain2music.simulate.composer.sample_params` (a repeated choice weighs more)."""

    tempo: tuple  # tempo range (BPM)
    modes: tuple  # scale modes (see MODES)
    meter: tuple  # beats per bar
    swing: tuple  # swing range (fraction of a beat)
    drums: tuple  # indices into DRUM_PATTERNS
    kits: tuple  # General-MIDI drum kits
    bass: tuple  # bass styles (see BASS_STYLES)
    prog: tuple  # indices into PROGRESSIONS
    chords: tuple  # chord styles (see CHORD_STYLES)
    bass_prog: tuple  # General-MIDI programs of the bass
    chord_prog: tuple  # programs of the chords
    melody_prog: tuple  # programs of the melody
    pad_prog: tuple  # programs of the pad (None: no pad)
    density: tuple  # range of TrackParams.melody_density
    register: tuple  # lowest and highest TrackParams.melody_register (MIDI pitch)
    distortion: tuple  # guitar distortion drive range (dB)
    reverb: tuple  # reverb room size range
    compression: tuple  # compression amount range
    lowpass: tuple  # low-pass amount range (0: off)


# Per-genre style, written from common textbook descriptions of each genre.
STYLES: dict[str, GenreStyle] = {
    "blues": GenreStyle(
        tempo=(70, 110),
        modes=("blues", "mixolydian"),
        meter=(4,),
        swing=(0.22, 0.33),
        drums=(6, 0),
        kits=(0, 8),
        bass=("walking", "root_fifth"),
        prog=(0,),
        chords=("comp", "stabs"),
        bass_prog=(33, 32),
        chord_prog=(0, 16, 27),
        melody_prog=(29, 22, 65, 26),
        pad_prog=(None, 16),
        density=(0.8, 1.8),
        register=(62, 74),
        distortion=(0.0, 12.0),
        reverb=(0.2, 0.45),
        compression=(0.2, 0.5),
        lowpass=(0.0, 0.0),
    ),
    "classical": GenreStyle(
        tempo=(60, 120),
        modes=("major", "minor"),
        meter=(3, 4),
        swing=(0.0, 0.0),
        drums=(9,),
        kits=(0,),
        bass=("whole", "alberti"),
        prog=(1, 4, 5, 10, 3),
        chords=("arpeggio", "pad", "block"),
        bass_prog=(42, 43, 32),
        chord_prog=(0, 48, 46, 6),
        melody_prog=(40, 73, 71, 68, 60, 0),
        pad_prog=(48, 49, None),
        density=(0.8, 2.0),
        register=(67, 79),
        distortion=(0.0, 0.0),
        reverb=(0.55, 0.9),
        compression=(0.0, 0.1),
        lowpass=(0.0, 0.0),
    ),
    "country": GenreStyle(
        tempo=(90, 135),
        modes=("major", "mixolydian"),
        meter=(4,),
        swing=(0.0, 0.12),
        drums=(6, 0),
        kits=(0, 40),
        bass=("root_fifth",),
        prog=(1, 9, 10),
        chords=("strum",),
        bass_prog=(32, 33),
        chord_prog=(25, 24),
        melody_prog=(40, 105, 27, 22),
        pad_prog=(None, 21),
        density=(1.0, 2.2),
        register=(64, 76),
        distortion=(0.0, 0.0),
        reverb=(0.15, 0.35),
        compression=(0.2, 0.5),
        lowpass=(0.0, 0.0),
    ),
    "disco": GenreStyle(
        tempo=(110, 132),
        modes=("minor", "dorian", "major"),
        meter=(4,),
        swing=(0.0, 0.05),
        drums=(1,),
        kits=(0, 24),
        bass=("octaves",),
        prog=(6, 11, 4, 3),
        chords=("stabs", "skank"),
        bass_prog=(38, 39, 33),
        chord_prog=(4, 5, 48, 27),
        melody_prog=(49, 61, 81, 56),
        pad_prog=(48, 50, None),
        density=(1.2, 2.4),
        register=(67, 79),
        distortion=(0.0, 0.0),
        reverb=(0.25, 0.45),
        compression=(0.5, 0.8),
        lowpass=(0.0, 0.0),
    ),
    "hiphop": GenreStyle(
        tempo=(78, 98),
        modes=("minor", "dorian"),
        meter=(4,),
        swing=(0.08, 0.2),
        drums=(2, 7),
        kits=(25, 0, 24),
        bass=("sub",),
        prog=(11, 6, 3),
        chords=("pad", "comp"),
        bass_prog=(38, 87, 33),
        chord_prog=(4, 11, 0, 89),
        melody_prog=(54, 85, 11, 80),
        pad_prog=(89, 95, None),
        density=(1.5, 3.5),
        register=(55, 67),
        distortion=(0.0, 3.0),
        reverb=(0.1, 0.3),
        compression=(0.6, 0.9),
        lowpass=(0.4, 0.9),
    ),
    "jazz": GenreStyle(
        tempo=(110, 200),
        modes=("dorian", "major", "mixolydian"),
        meter=(4,),
        swing=(0.25, 0.33),
        drums=(4,),
        kits=(32, 40),
        bass=("walking",),
        prog=(4, 5),
        chords=("comp",),
        bass_prog=(32,),
        chord_prog=(0, 1, 4, 26),
        melody_prog=(65, 66, 56, 11, 71),
        pad_prog=(None,),
        density=(1.6, 3.2),
        register=(62, 77),
        distortion=(0.0, 0.0),
        reverb=(0.25, 0.5),
        compression=(0.1, 0.3),
        lowpass=(0.0, 0.0),
    ),
    "metal": GenreStyle(
        tempo=(100, 180),
        modes=("phrygian", "minor"),
        meter=(4,),
        swing=(0.0, 0.0),
        drums=(5, 8),
        kits=(16, 0),
        bass=("eighths",),
        prog=(7, 8),
        chords=("power",),
        bass_prog=(34, 33),
        chord_prog=(30, 29),
        melody_prog=(30, 29),
        pad_prog=(None, 48),
        density=(2.0, 4.0),
        register=(64, 82),
        distortion=(25.0, 40.0),
        reverb=(0.2, 0.45),
        compression=(0.6, 0.9),
        lowpass=(0.0, 0.0),
    ),
    "pop": GenreStyle(
        tempo=(95, 125),
        modes=("major",),
        meter=(4,),
        swing=(0.0, 0.05),
        drums=(0, 7),
        kits=(0, 24, 25),
        bass=("eighths", "octaves", "root_fifth"),
        prog=(2, 3, 10),
        chords=("block", "stabs", "arpeggio"),
        bass_prog=(33, 38, 34),
        chord_prog=(0, 4, 5, 81),
        melody_prog=(53, 80, 81, 0, 11),
        pad_prog=(89, 88, 48),
        density=(1.0, 2.0),
        register=(64, 76),
        distortion=(0.0, 0.0),
        reverb=(0.3, 0.55),
        compression=(0.5, 0.8),
        lowpass=(0.0, 0.0),
    ),
    "reggae": GenreStyle(
        tempo=(64, 90),
        modes=("minor", "major", "dorian"),
        meter=(4,),
        swing=(0.0, 0.12),
        drums=(3,),
        kits=(0, 8),
        bass=("offbeat", "sub"),
        prog=(6, 1, 11),
        chords=("skank",),
        bass_prog=(33, 34, 38),
        chord_prog=(27, 16, 17),
        melody_prog=(16, 56, 65, 22),
        pad_prog=(None, 16),
        density=(0.6, 1.4),
        register=(60, 72),
        distortion=(0.0, 0.0),
        reverb=(0.35, 0.6),
        compression=(0.3, 0.6),
        lowpass=(0.0, 0.3),
    ),
    "rock": GenreStyle(
        tempo=(110, 150),
        modes=("major", "mixolydian", "minor"),
        meter=(4,),
        swing=(0.0, 0.0),
        drums=(0, 8),
        kits=(0, 16, 8),
        bass=("eighths", "root_fifth"),
        prog=(1, 7, 3, 9),
        chords=("power", "strum"),
        bass_prog=(34, 33),
        chord_prog=(29, 30, 27),
        melody_prog=(29, 30, 27, 53),
        pad_prog=(None, 16),
        density=(1.2, 2.6),
        register=(62, 76),
        distortion=(10.0, 25.0),
        reverb=(0.2, 0.45),
        compression=(0.4, 0.7),
        lowpass=(0.0, 0.0),
    ),
}
