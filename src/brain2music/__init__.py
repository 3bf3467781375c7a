"""brain2music: reconstruct the music a person heard from fMRI.

The package is organised by stage of the data flow (see ``docs`` in the repository):

- :mod:`brain2music.data` reads a BIDS dataset laid out like OpenNeuro ds003720 and preprocesses it;
- :mod:`brain2music.stimuli` turns GTZAN-style folders into the 15-s stimuli the subjects heard;
- later stages (simulate, embeddings, models, evaluate, reconstruct, report) build on plain arrays;
- :mod:`brain2music.results` is the typed results model every stage exchanges (records, the
  :class:`~brain2music.results.ResultsFolder` that reads and writes them, the voxel grid, and the frozen
  settings each stage takes, :mod:`brain2music.results.settings`);
- :mod:`brain2music.study` holds the study stages (``reproduce``, ``reconstruct``);
- :mod:`brain2music.pipeline` runs every stage from one config file (``run_experiment``, the demo).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("brain2music")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from brain2music.errors import (
    Brain2MusicError,
    ConfigError,
    DataError,
    DataFileNotFoundError,
    MissingDependencyError,
)

__all__ = [
    "__version__",
    "Brain2MusicError",
    "ConfigError",
    "DataError",
    "DataFileNotFoundError",
    "MissingDependencyError",
]
