"""The 50 tags of the musicnn taggers and the genre / instrument / mood groups used to score tag agreement.

The tag lists are those of ``musicnn/configuration.py`` (musicnn 0.1.0, ISC licence, (c) Music Technology
Group, Universitat Pompeu Fabra 2019), in the order of the networks' outputs.

The paper (Denk et al. 2023) scores a reconstruction by whether a pretrained tagger gives the original and
the reconstruction the same classes, in three groups: genres (top 2), instruments (top 2) and moods
(top 1). The groups below split musicnn's tags by what they describe; tags that describe none of the
three (the decades ``60s`` .. ``00s`` and ``oldies``; ``no vocals``, ``no vocal``, ``no voice``; ``solo``,
``beat``, ``beats``, ``weird``) belong to no group. Near-duplicate tags (``female vocalist`` / ``female vocalists``,
``classical`` / ``classic``) are kept as the network has them.

=========  ==================================================================================================
group      tags
=========  ==================================================================================================
MSD genre  rock, pop, alternative, indie, electronic, dance, alternative rock, jazz, metal, classic rock, soul,
           indie rock, electronica, folk, punk, blues, hard rock, ambient, experimental, Hip-Hop, country,
           funk, electro, heavy metal, Progressive rock, rnb, indie pop, House
MSD instr  female vocalists, male vocalists, female vocalist, guitar, acoustic, instrumental
MSD mood   beautiful, chillout, Mellow, chill, party, easy listening, sexy, catchy, sad, happy
MTT genre  classical, techno, electronic, rock, ambient, indian, opera, pop, classic, new age, dance,
           country, metal
MTT instr  guitar, strings, drums, piano, violin, vocal, synth, female, male, singing, vocals, harpsichord,
           flute, woman, male vocal, sitar, man, choir, voice, male voice, female vocal, harp, cello,
           female voice, choral
MTT mood   slow, fast, loud, quiet, soft
=========  ==================================================================================================
"""

from __future__ import annotations

__all__ = ["MTT_TAGS", "MSD_TAGS", "TAG_GROUPS", "TOP_K", "tags_of"]

MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop",
    "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice",
    "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip

MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul",
    "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies",
    "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop",
    "70s", "party", "country", "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal",
    "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip

#: {dataset: {group: tags}}; see the module docstring
TAG_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "MSD": {
        "genre": (
            "rock", "pop", "alternative", "indie", "electronic", "dance", "alternative rock", "jazz", "metal",
            "classic rock", "soul", "indie rock", "electronica", "folk", "punk", "blues", "hard rock",
            "ambient", "experimental", "Hip-Hop", "country", "funk", "electro", "heavy metal",
            "Progressive rock", "rnb", "indie pop", "House",
        ),
        "instrument": ("female vocalists", "male vocalists", "female vocalist", "guitar", "acoustic", "instrumental"),
        "mood": ("beautiful", "chillout", "Mellow", "chill", "party", "easy listening", "sexy", "catchy", "sad", "happy"),
    },
    "MTT": {
        "genre": (
            "classical", "techno", "electronic", "rock", "ambient", "indian", "opera", "pop", "classic",
            "new age", "dance", "country", "metal",
        ),
        "instrument": (
            "guitar", "strings", "drums", "piano", "violin", "vocal", "synth", "female", "male", "singing",
            "vocals", "harpsichord", "flute", "woman", "male vocal", "sitar", "man", "choir", "voice",
            "male voice", "female vocal", "harp", "cello", "female voice", "choral",
        ),
        "mood": ("slow", "fast", "loud", "quiet", "soft"),
    },
}  # fmt: skip

#: how many top tags of each group the paper compares
TOP_K = {"genre": 2, "instrument": 2, "mood": 1}


def tags_of(model: str) -> tuple[str, ...]:
    """The 50 tags of ``model`` (``"MSD_musicnn"``, ``"MTT_vgg"``, ...), in output order."""
    return MSD_TAGS if model.startswith("MSD") else MTT_TAGS
