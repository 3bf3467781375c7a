"""musicnn without TensorFlow: checkpoint reader, forward pass against the original, encoder, tagger, CLI.

These tests use the real pretrained weights of the ``musicnn`` wheel (``tools/setup.sh`` installs it).
``tests/data/musicnn/reference.npz`` holds what the original TensorFlow implementation computed on the
deterministic signals of ``tests/musicnn_signals.py`` (see ``tests/data/musicnn/SOURCE.md``).
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from brain2music.embeddings import get_encoder
from brain2music.embeddings.musicnn import MusicnnEncoder, MusicnnTagger, get_tagger, tag_files
from brain2music.embeddings.musicnn import spectrogram as spec
from brain2music.embeddings.musicnn.checkpoint import CheckpointReader, crc32c
from brain2music.embeddings.musicnn.network import ARCHITECTURES, Network, expected_shapes
from brain2music.embeddings.musicnn.tags import MSD_TAGS, MTT_TAGS, TAG_GROUPS
from brain2music.embeddings.musicnn.weights import load_weights, model_dir
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError, MissingDependencyError
from musicnn_signals import SR, signals

FIXTURE = Path(__file__).parent / "data" / "musicnn" / "reference.npz"
NAMES = {
    "MSD_musicnn": "musicnn-msd",
    "MTT_musicnn": "musicnn-mtt",
    "MSD_vgg": "musicnn-vgg-msd",
    "MTT_vgg": "musicnn-vgg-mtt",
}


@pytest.fixture(scope="module")
def reference():
    with np.load(FIXTURE) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def sigs():
    return signals()


def _crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_matches_the_definition():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value of CRC-32C
    rng = np.random.default_rng(0)
    for n in (0, 1, 3, 4, 1000, 4096, 10_001):  # the short loop and the vectorised path
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert crc32c(data) == _crc32c_bitwise(data)


@pytest.mark.parametrize("model", list(ARCHITECTURES))
def test_checkpoint_holds_every_tensor_of_the_architecture(model):
    reader = CheckpointReader(model_dir(model))
    shapes = reader.shapes()
    for name, shape in expected_shapes(model).items():
        assert shapes[name] == shape, name
        value = reader.read(name)  # checksum verified
        assert value.dtype == np.float32 and value.shape == shape and np.all(np.isfinite(value))
    assert shapes["beta1_power"] == ()  # training state is there too, and ignored


@pytest.mark.parametrize("model", list(ARCHITECTURES))
def test_layers_match_the_original_tensorflow_run(model, reference, sigs):
    tagger = get_tagger(NAMES[model])
    assert tuple(reference[f"{model}/labels"]) == tagger.tags
    feature = "penultimate" if "musicnn" in model else "pool5"
    # brain2music tag's path: consecutive patches of each file's spectrogram
    assert np.abs(tagger.taggram(sigs["arpeggio"], SR) - reference[f"{model}/arpeggio/taggram"]).max() < 1e-3
    for name in ("arpeggio", "beat", "chirp"):
        frames = spec.log_mel(sigs[name])
        out = tagger.pretrained.network.forward_frames(frames, [0, 187], ["taggram", feature])
        for layer in ("taggram", feature):
            assert np.abs(out[layer] - reference[f"{model}/{name}/{layer}"]).max() < 1e-3, (name, layer)
    # the encoder's 9 overlapping windows of the 15-s clip
    enc = MusicnnEncoder(NAMES[model])
    assert np.array_equal(enc.patch_offsets(), reference[f"{model}/clip15_encoder/offsets"])
    emb = enc.embed(sigs["clip15"], SR)
    assert np.abs(emb - reference[f"{model}/clip15_encoder/{feature}"]).max() < 1e-3


def test_overlapping_patches_equal_patches_run_alone():
    net = Network(load_weights("MSD_musicnn"), "musicnn")
    frames = spec.log_mel(signals()["clip15"])
    offsets = [0, 3, 94, 181, 500, len(frames) - 187]
    shared = net.forward_frames(frames, offsets, ["penultimate", "max_pool", "mean_pool"])
    alone = net.forward(
        np.stack([frames[o : o + 187] for o in offsets]), ["penultimate", "max_pool", "mean_pool"]
    )
    for layer in shared:
        np.testing.assert_allclose(shared[layer], alone[layer], rtol=1e-5, atol=1e-5)


def test_solo_piano_is_tagged_piano():
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=90)
    piano = pretty_midi.Instrument(program=0)  # acoustic grand
    chords = [[60, 64, 67], [57, 60, 64], [53, 57, 60], [55, 59, 62]]
    melody = [72, 74, 76, 79, 77, 76, 74, 72]
    for bar in range(4):
        for beat in range(4):
            s = bar * 2.0 + beat * 0.5
            for p in chords[bar]:
                piano.notes.append(
                    pretty_midi.Note(velocity=70, pitch=p - 12 * (beat % 2), start=s, end=s + 0.5)
                )
            piano.notes.append(
                pretty_midi.Note(velocity=90, pitch=melody[(4 * bar + beat) % 8], start=s, end=s + 0.45)
            )
    pm.instruments.append(piano)
    audio = pm.fluidsynth(fs=22050).astype(np.float32)
    top5 = list(get_tagger("musicnn-mtt").tag(audio, 22050))[:5]
    assert "piano" in top5


def test_silence_gives_finite_outputs():
    silence = np.zeros(int(3.5 * SR), dtype=np.float32)
    tags = get_tagger("musicnn-msd").tag(silence, SR)
    assert len(tags) == 50 and all(np.isfinite(p) and 0 <= p <= 1 for p in tags.values())
    net = get_tagger("musicnn-mtt").pretrained.network
    layers = ["penultimate", "taggram", "mean_pool", "max_pool"]
    out = net.forward_frames(spec.log_mel(silence), [0], layers)
    assert [out[k].shape[1] for k in layers] == [200, 50, 753, 753]
    assert all(np.all(np.isfinite(v)) for v in out.values())
    assert np.all(np.isfinite(get_encoder("musicnn-vgg-msd").embed(silence, SR)))


def test_any_rate_and_channel_layout(sigs):
    from brain2music.stimuli.audio import resample

    tagger = get_tagger("musicnn-msd")
    mono = sigs["arpeggio"]
    at44 = resample(mono, SR, 44100)
    stereo = np.stack([at44, at44], axis=1)
    p16 = tagger.predict_proba(mono, SR)
    p44 = tagger.predict_proba(stereo, 44100)
    assert np.abs(tagger.predict_proba(stereo.T, 44100) - p44).max() == 0  # (channels, samples) too
    assert np.abs(p44 - p16).max() < 0.02  # only the resampler's ripple differs
    assert tagger.predict_proba((mono * 32767).astype(np.int16), SR).shape == (50,)
    enc = get_encoder("musicnn-msd")
    assert enc.embed(resample(mono, SR, 8000), 8000).shape == (9, 200)  # shorter than 15 s: zero-padded


def test_too_short_audio_is_an_error():
    with pytest.raises(DataError, match="too short for one 187-frame patch"):
        get_tagger("musicnn-msd").tag(np.zeros(2 * SR, np.float32), SR)
    with pytest.raises(DataError, match="shorter than one 3-s window"):
        get_encoder("musicnn-msd").embed(np.zeros(2 * SR, np.float32), SR)


def _copy_model(tmp_path: Path, model: str) -> Path:
    dest = tmp_path / model
    shutil.copytree(model_dir(model), dest)
    return dest


def test_corrupt_checkpoints_are_reported_with_file_and_tensor(tmp_path):
    folder = _copy_model(tmp_path, "MSD_musicnn")
    data = folder / ".data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    entry = CheckpointReader(folder).entries["dense/kernel"]
    raw[entry.offset + 100] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"corrupt: checksum mismatch in tensor 'dense/kernel'") as err:
        load_weights("MSD_musicnn", folder)
    assert str(data) in str(err.value)
    data.write_bytes(bytes(raw[: entry.offset]))  # truncated
    with pytest.raises(DataError, match="truncated"):
        CheckpointReader(folder).read("dense/kernel")
    index = folder / ".index"
    raw = bytearray(index.read_bytes())
    raw[40] ^= 0x55
    index.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"\.index is corrupt"):
        CheckpointReader(folder)
    index.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="too short"):
        CheckpointReader(folder)


def test_wrong_weights_folder_names_the_missing_tensor(tmp_path):
    vgg = _copy_model(tmp_path, "MSD_vgg")
    with pytest.raises(
        DataError, match=r"lacks tensor 'conv2d/kernel' of the MSD_musicnn architecture"
    ) as err:
        MusicnnEncoder("musicnn-msd", weights=vgg).embed(np.zeros(3 * SR, np.float32), SR)
    assert str(vgg / ".index") in str(err.value)
    mtt = _copy_model(tmp_path, "MTT_musicnn")  # same tensors as MSD_musicnn: config.json tells them apart
    with pytest.raises(DataError, match="trained on MTT"):
        get_tagger("musicnn-msd", weights=mtt).tag(np.zeros(3 * SR, np.float32), SR)
    with pytest.raises(DataFileNotFoundError, match="no TensorFlow checkpoint of MSD_musicnn"):
        get_tagger("musicnn-msd", weights=tmp_path / "MSD_vgg" / "..")
    with pytest.raises(DataFileNotFoundError, match="does not exist"):
        get_tagger("musicnn-msd", weights=tmp_path / "nowhere")
    # a folder holding <model>/ works, like the package folder
    assert get_tagger("musicnn-vgg-msd", weights=tmp_path).pretrained.folder == vgg


def test_missing_package_says_how_to_install(monkeypatch):
    from brain2music.embeddings.musicnn import weights

    monkeypatch.setattr(weights, "find_package_dir", lambda: None)
    monkeypatch.delenv(weights.ENV_VAR, raising=False)
    with pytest.raises(MissingDependencyError, match="pip install --no-deps musicnn"):
        get_encoder("musicnn-msd")


def test_encoder_protocol_layers_and_pickling(sigs):
    enc = get_encoder("musicnn-msd", layer="taggram")
    assert (enc.dim, enc.n_windows, enc.window, enc.sr) == (50, 9, 3.0, 16000)
    assert enc.config["layer"] == "taggram" and enc.config["model"] == "MSD_musicnn"
    assert enc.tags == MSD_TAGS and get_encoder("musicnn-mtt").tags == MTT_TAGS
    assert np.allclose(enc.windows[:, 1], 1.5 * np.arange(2, 11))  # windows end on TR boundaries
    out = enc.embed_many([sigs["clip15"], sigs["beat"]], SR)
    assert out.shape == (2, 9, 50) and np.all((out >= 0) & (out <= 1))
    clone = pickle.loads(pickle.dumps(enc))
    assert clone.pretrained._network is None  # weights are reloaded from disk, not shipped
    assert np.array_equal(clone.embed(sigs["beat"], SR), out[1])
    assert get_encoder("musicnn-vgg-mtt").dim == 256
    with pytest.raises(ConfigError, match="unknown layer 'pool5'"):
        get_encoder("musicnn-msd", layer="pool5")
    with pytest.raises(ConfigError, match="unknown tagger"):
        get_tagger("musicnn")


def test_tag_groups_use_real_tags():
    for dataset, groups in TAG_GROUPS.items():
        tags = MSD_TAGS if dataset == "MSD" else MTT_TAGS
        used = [t for g in groups.values() for t in g]
        assert set(used) <= set(tags) and len(used) == len(set(used))


def test_tag_command(tmp_path, sigs, capsys):
    from brain2music.cli import main

    for name in ("arpeggio", "beat"):
        sf.write(tmp_path / f"{name}.wav", sigs[name], SR, subtype="FLOAT")
    (tmp_path / "notes.txt").write_text("not audio")
    assert main(["tag", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [Path(r["file"]).name for r in result] == ["arpeggio.wav", "beat.wav"]
    probs = list(result[0]["tags"].values())
    assert len(probs) == 50 and probs == sorted(probs, reverse=True)
    expected = MusicnnTagger("musicnn-msd").tag(sigs["arpeggio"], SR)
    assert np.allclose([result[0]["tags"][t] for t in expected], list(expected.values()), atol=1e-5)
    assert main(["tag", str(tmp_path / "beat.wav"), "--tagger", "musicnn-mtt", "-k", "3"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(tmp_path / "beat.wav")) and line.count(",") == 2
    assert main(["tag", str(tmp_path / "missing.wav")]) == 2
    assert "not found" in capsys.readouterr().err
    assert tag_files([tmp_path / "beat.wav"], "musicnn-vgg-mtt")[0]["tags"].keys() == set(MTT_TAGS)


def test_embed_command_with_a_layer(tmp_path, sigs):
    from brain2music.cli import main
    from brain2music.embeddings import load_embeddings

    music = tmp_path / "music"
    music.mkdir()
    sf.write(music / "a.wav", sigs["clip15"], SR)
    sf.write(music / "b.wav", sigs["beat"], SR)
    out = tmp_path / "emb.npz"
    args = ["embed", str(music), "--encoder", "musicnn-msd", "--layer", "mean_pool", "--out", str(out)]
    assert main(args + ["--scheduler", "none", "--no-cache", "--no-progress"]) == 0
    emb = load_embeddings(out)
    assert emb.embeddings.shape == (2, 9, 753) and emb.config["layer"] == "mean_pool"


def test_window_geometry_follows_the_clip(sigs):
    """Windows come from clip_duration and tr only (what embedding longer audio relies on)."""
    clip = sigs["clip15"]
    long = MusicnnEncoder(
        "musicnn-msd", clip_duration=16.0
    )  # 16 s is no multiple of 1.5 s: last window ends at 16.5
    assert long.n_windows == 10 and long.windows[-1, 1] == 16.5
    emb = long.embed(np.concatenate([clip, np.zeros(SR, np.float32)]), SR)
    np.testing.assert_allclose(emb[:9], MusicnnEncoder("musicnn-msd").embed(clip, SR), rtol=1e-5, atol=1e-5)


def test_tag_agreement_known_answers():
    from brain2music.evaluate.tags import chance_top_k_agreement, group_agreement, top_k_agreement

    a = np.array([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4]])
    b = np.array([[0.7, 0.1, 0.9, 0.0], [0.1, 0.2, 0.3, 0.4]])
    assert top_k_agreement(a, b, 2).tolist() == [0.5, 1.0]  # {0,1} vs {2,0}; identical rows
    assert top_k_agreement(a, b, 1).tolist() == [0.0, 1.0]
    assert top_k_agreement(np.zeros((1, 4)), np.zeros((1, 4)), 2).tolist() == [1.0]  # ties: stable order
    rng = np.random.default_rng(0)
    orig, lib = rng.random((5, 10)), rng.random((40, 10))
    brute = np.array(
        [[top_k_agreement(orig[[i]], lib[[j]], 2)[0] for j in range(40)] for i in range(5)]
    ).mean(1)
    np.testing.assert_allclose(chance_top_k_agreement(orig, lib, 2), brute)
    p = rng.random((3, 50))
    same = group_agreement(p, p, MSD_TAGS, TAG_GROUPS["MSD"], {"genre": 2, "instrument": 2, "mood": 1})
    assert all(np.all(v == 1.0) for v in same.values())
    with pytest.raises(DataError, match="names tags the tagger does not have"):
        group_agreement(p, p, MSD_TAGS, TAG_GROUPS["MTT"], {"genre": 2, "instrument": 2, "mood": 1})


def test_offline_generator_steered_in_musicnn_space(tmp_path):
    """The offline generator searches in musicnn-msd's penultimate space and moves towards the target."""
    pytest.importorskip("fluidsynth")
    from brain2music.reconstruct.clip_embedding import clip_embedding, prepare_clip
    from brain2music.reconstruct.generators import get_generator

    opts = dict(n_bank=10, n_candidates=2, n_rounds=1, n_neighbors=1, sr=16000, progress=False)
    gen = get_generator("offline", encoder="musicnn-msd", cache=tmp_path / "bank.npz", **opts).fit()
    assert gen.config["encoder"] == "musicnn-msd" and gen.bank_embeddings_.shape == (10, 9, 200)
    target = gen.bank_embeddings_[3]
    audio, sr = gen.generate(target, duration=15.0, random_state=0)
    emb = clip_embedding(get_encoder("musicnn-msd"), prepare_clip(audio[0], sr, duration=15.0), sr)
    score = gen._score(emb[None], target)[0]
    assert score == pytest.approx(gen.last_score_, abs=1e-5)  # the score is computed in musicnn space
    assert score > np.median(gen._score(gen.bank_embeddings_, target))
