"""Live decoding: music from a brain while it is being scanned.

Each volume, as a replayed run or a real-time export delivers it, goes through the decoder's voxels,
causal preprocessing (:mod:`brain2music.live.preprocess`: drift removal and z-scoring from past volumes
and the decoder's training statistics), the hemodynamic delay and the decoder's window, the decoder, and
a library search; each TR gives one record (JSON lines, a Python generator, a local web page).

Typical use::

    from brain2music.live import live_decode
    for rec in live_decode("results/decoders/acoustic/ridge/sub-001.joblib", "lib/",
                           replay="bids/sub-001/func/sub-001_task-Test_run-01_bold.nii.gz", speed=0):
        print(rec["volume"], rec["top"][0]["title"], rec["top_genre"], rec["latency_ms"])
"""

from brain2music.live.model import LiveModel, bold_tr, load_live_model
from brain2music.live.pipeline import LivePipeline, check_library, window_volumes
from brain2music.live.preprocess import (
    CausalPreprocessor,
    causal_detrend,
    causal_preprocess,
    causal_zscore,
    training_statistics,
)
from brain2music.live.session import LiveOutput, LiveSettings, live_decode, open_live, run_live, summarize
from brain2music.live.sources import Arrival, FolderWatcher, ReplaySource
from brain2music.live.volumes import IncompleteFile, read_volume
from brain2music.results.grid import VoxelGrid

__all__ = [
    "Arrival",
    "CausalPreprocessor",
    "FolderWatcher",
    "IncompleteFile",
    "LiveModel",
    "LiveOutput",
    "LivePipeline",
    "LiveSettings",
    "ReplaySource",
    "VoxelGrid",
    "bold_tr",
    "causal_detrend",
    "causal_preprocess",
    "causal_zscore",
    "check_library",
    "live_decode",
    "load_live_model",
    "open_live",
    "read_volume",
    "run_live",
    "summarize",
    "training_statistics",
    "window_volumes",
]
