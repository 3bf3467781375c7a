"""musicnn (Pons & Serra 2019): pretrained music taggers, run without TensorFlow.

The ``musicnn`` package (``pip install --no-deps musicnn``) ships the weights; brain2music reads its TF
checkpoints (:mod:`.checkpoint`), computes the same input (:mod:`.spectrogram`) and runs the same networks
in numpy (:mod:`.network`). Use them as encoders (:class:`MusicnnEncoder`, registry names
``musicnn-msd``, ``musicnn-mtt``, ``musicnn-vgg-msd``, ``musicnn-vgg-mtt``) or taggers
(:class:`MusicnnTagger`, ``brain2music tag``). ``benchmarks/bench_musicnn_reference.py`` compares every
layer with the original TensorFlow implementation.
"""

from brain2music.embeddings.musicnn.encoder import MusicnnEncoder
from brain2music.embeddings.musicnn.model import MODEL_NAMES, PretrainedMusicnn
from brain2music.embeddings.musicnn.tagger import MusicnnTagger, get_tagger, list_taggers, tag_files
from brain2music.embeddings.musicnn.tags import MSD_TAGS, MTT_TAGS, TAG_GROUPS, TOP_K

__all__ = [
    "MODEL_NAMES",
    "MSD_TAGS",
    "MTT_TAGS",
    "MusicnnEncoder",
    "MusicnnTagger",
    "PretrainedMusicnn",
    "TAG_GROUPS",
    "TOP_K",
    "get_tagger",
    "list_taggers",
    "tag_files",
]
