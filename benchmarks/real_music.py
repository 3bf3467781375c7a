"""Real recordings for benchmarks: the music that Debian's game and music packages ship.

Benchmarks must show that a descriptor, index or generator works on music its author did not make.
Debian ships real, human-made recordings (Ogg/MP3, 44.1 kHz stereo) in its game-data packages. This
module finds the ones that are installed and labels each track by its collection, whose composers and
production share a style (a coarse stand-in for a genre label; collections differ in more than genre, so
say so next to any "collection accuracy").

Install (benchmarks only, never CI)::

    apt-get update && apt-get install -y wesnoth-1.16-music hyperrogue-music drascula-music \
        fretsonfire-songs-muldjord fretsonfire-songs-sectoid lincity-ng-data asc-music

    python benchmarks/real_music.py        # prints what is installed

Collections (tracks of at least 30 s, as installed on Debian 12):

| collection | package | style | tracks |
|---|---|---|---|
| wesnoth | wesnoth-1.16-music | orchestral film/game score | 35 |
| drascula | drascula-music | adventure-game score (mixed instrumentation) | 28 |
| hyperrogue | hyperrogue-music | ambient / electronic | 17 |
| fretsonfire | fretsonfire-songs-* | rock / metal band recordings (the `song.ogg` backing mix) | 8 |
| lincity | lincity-ng-data | electronic / blues | 3 |
| asc | asc-music | electronic / rock game score (MP3) | 3 |
"""

from __future__ import annotations

import glob
import sys
from dataclasses import dataclass

__all__ = ["COLLECTIONS", "RealTrack", "real_tracks", "INSTALL"]

INSTALL = (
    "apt-get update && apt-get install -y wesnoth-1.16-music hyperrogue-music drascula-music "
    "fretsonfire-songs-muldjord fretsonfire-songs-sectoid lincity-ng-data asc-music"
)

#: collection -> (glob of its audio files, style)
COLLECTIONS: dict[str, tuple[str, str]] = {
    "wesnoth": ("/usr/share/games/wesnoth/*/data/core/music/*.ogg", "orchestral"),
    "drascula": ("/usr/share/scummvm/drascula/audio/*.ogg", "adventure score"),
    "hyperrogue": ("/usr/share/hyperrogue/music/*.ogg", "ambient/electronic"),
    "fretsonfire": ("/usr/share/games/fretsonfire/data/songs/*/*/song.ogg", "rock/metal"),
    "lincity": ("/usr/share/games/lincity-ng/music/*/*.ogg", "electronic/blues"),
    "asc": ("/usr/share/games/asc/music/*.mp3", "electronic/rock"),
}


@dataclass(frozen=True)
class RealTrack:
    path: str
    collection: str
    style: str
    duration: float
    sr: int
    channels: int


def real_tracks(
    min_duration: float = 30.0, collections: list[str] | None = None, require: bool = True
) -> list[RealTrack]:
    """Installed real recordings of at least ``min_duration`` seconds, sorted by collection and path.

    ``require``: raise ``SystemExit`` with the install command when none is installed.
    """
    import soundfile as sf

    out: list[RealTrack] = []
    for name, (pattern, style) in COLLECTIONS.items():
        if collections is not None and name not in collections:
            continue
        for path in sorted(glob.glob(pattern)):
            try:
                info = sf.info(path)
            except Exception:  # noqa: BLE001 - a file libsndfile cannot read is not a benchmark track
                continue
            if info.duration >= min_duration:
                out.append(RealTrack(path, name, style, float(info.duration), info.samplerate, info.channels))
    if require and not out:
        raise SystemExit(f"no real recordings installed; install them with:\n  {INSTALL}")
    return out


if __name__ == "__main__":
    tracks = real_tracks(require=False)
    if not tracks:
        print(f"none installed; {INSTALL}", file=sys.stderr)
        sys.exit(1)
    by: dict[str, list[RealTrack]] = {}
    for t in tracks:
        by.setdefault(t.collection, []).append(t)
    for name, ts in by.items():
        minutes = sum(t.duration for t in ts) / 60
        print(f"{name:12s} {len(ts):3d} tracks  {minutes:6.1f} min  {ts[0].style}")
    print(f"{'total':12s} {len(tracks):3d} tracks")
