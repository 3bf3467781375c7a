"""Neural encoders with tiny random-weight transformers models built in the test (never a download)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

import torch  # noqa: E402
import transformers  # noqa: E402

from brain2music.embeddings import embed_clips, get_encoder  # noqa: E402
from brain2music.embeddings.neural import ClapEncoder, EncodecEncoder, MertEncoder  # noqa: E402
from brain2music.errors import ConfigError, DataError, DataFileNotFoundError  # noqa: E402

pytestmark = pytest.mark.neural

SR_TINY = 8000


def tiny_clap():
    torch.manual_seed(0)
    cfg = transformers.ClapConfig(
        text_config=dict(
            vocab_size=64,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=40,
            projection_dim=8,
        ),
        audio_config=dict(
            spec_size=64,
            num_mel_bins=16,
            window_size=4,
            patch_size=4,
            patch_stride=[4, 4],
            depths=[1, 1],
            num_attention_heads=[1, 2],
            hidden_size=32,
            patch_embeds_hidden_size=16,
            projection_dim=8,
            enable_fusion=False,
        ),
        projection_dim=8,
    )
    model = transformers.ClapModel(cfg).eval()
    # 10 s at 8 kHz with hop 400 gives 201 frames, within the tiny Swin's 64 * 4 = 256 input width.
    fe = transformers.ClapFeatureExtractor(
        feature_size=16,
        sampling_rate=SR_TINY,
        hop_length=400,
        max_length_s=10,
        fft_window_size=256,
        truncation="rand_trunc",
        padding="repeatpad",
        frequency_max=4000,
    )
    return model, fe


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[PAD]", "[UNK]", "<s>", "</s>", "a", "calm", "piano", "loud", "guitar", "with", "drums", "song"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", model_max_length=32
    )


def tiny_encodec():
    torch.manual_seed(0)
    cfg = transformers.EncodecConfig(
        target_bandwidths=[1.5],
        sampling_rate=SR_TINY,
        audio_channels=1,
        hidden_size=8,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=[8, 8],
        codebook_size=16,
        codebook_dim=8,
        num_lstm_layers=1,
    )
    return transformers.EncodecModel(cfg).eval()


def tiny_mert_like():
    """A HuBERT model (MERT's architecture family) with the MERT feature extractor settings."""
    torch.manual_seed(0)
    cfg = transformers.HubertConfig(
        hidden_size=16,
        num_hidden_layers=8,
        num_attention_heads=2,
        intermediate_size=32,
        conv_dim=(8, 8),
        conv_stride=(8, 8),
        conv_kernel=(8, 8),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
    )
    model = transformers.HubertModel(cfg).eval()
    fe = transformers.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=SR_TINY, do_normalize=True)
    return model, fe


def noise(seconds=15.0, sr=SR_TINY, seed=0):
    return (np.random.default_rng(seed).standard_normal(int(seconds * sr)) * 0.1).astype(np.float32)


@pytest.fixture(scope="module")
def clap():
    model, fe = tiny_clap()
    return ClapEncoder(model, fe, batch_size=3)


def test_clap_windows_shapes_and_norm(clap):
    assert (clap.sr, clap.dim, clap.window, clap.n_windows) == (SR_TINY, 8, 10.0, 4)
    out = clap.embed(noise(), SR_TINY)
    assert out.shape == (4, 8) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)
    # Window k is the 10-s excerpt ending at 10.5 + 1.5 k s: embedding it alone gives row k.
    y = noise()
    full = clap.embed(y, SR_TINY)
    a = int(round(clap.windows[2, 0] * SR_TINY))
    fe = clap.feature_extractor_
    feats = fe([y[a : a + 10 * SR_TINY]], sampling_rate=SR_TINY, return_tensors="pt")
    with torch.no_grad():
        direct = clap.model.get_audio_features(**feats).numpy()[0]
    np.testing.assert_allclose(full[2], direct, rtol=1e-4, atol=1e-5)


def test_clap_batching_and_resampling(clap):
    clips = [noise(seed=s) for s in range(3)]
    batched = clap.embed_many(clips, SR_TINY)
    single = np.stack([clap.embed(c, SR_TINY) for c in clips])
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-5)
    # Any input rate is resampled to the model's rate: a 16-kHz copy of low-passed content matches.
    import soxr

    t = np.arange(15 * 16000) / 16000
    y16 = (0.3 * np.sin(2 * np.pi * 300 * t) + 0.2 * np.sin(2 * np.pi * 1100 * t)).astype(np.float32)
    y8 = soxr.resample(y16, 16000, SR_TINY).astype(np.float32)
    np.testing.assert_allclose(clap.embed(y16, 16000), clap.embed(y8, SR_TINY), atol=2e-3)
    stereo = np.stack([y8, y8], axis=1)
    np.testing.assert_allclose(clap.embed(stereo, SR_TINY), clap.embed(y8, SR_TINY), atol=1e-5)


def test_clap_short_clip_error(clap):
    with pytest.raises(DataError, match="shorter than one 10-s window"):
        clap.embed(noise(9.0), SR_TINY)


def test_clap_text_tower():
    model, _ = tiny_clap()
    enc = get_encoder("clap-text", model=model, processor=tiny_tokenizer())
    assert enc.modality == "text" and enc.n_windows == 1 and enc.dim == 8
    out = enc.embed_texts(["a calm piano song", "loud guitar with drums", "a calm piano song"])
    assert out.shape == (3, 1, 8)
    np.testing.assert_allclose(out[0], out[2], rtol=1e-6)
    assert not np.allclose(out[0], out[1])
    np.testing.assert_allclose(np.linalg.norm(out[:, 0], axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ConfigError, match="embeds text"):
        enc.embed(noise(), SR_TINY)
    with pytest.raises(DataError, match="empty caption"):
        enc.embed_texts(["  "])


def test_encodec_latent_window_average():
    model = tiny_encodec()
    enc = EncodecEncoder(model, batch_size=2)
    assert (enc.sr, enc.dim, enc.n_windows) == (SR_TINY, 8, 10)
    y = noise()
    out = enc.embed(y, SR_TINY)
    assert out.shape == (10, 8)
    with torch.no_grad():
        latent = model.encoder(torch.from_numpy(y)[None, None, :])[0].numpy()  # (8, n_frames)
    fps = SR_TINY / 64  # 125 latent frames per second
    # Window 3 is 4.5-6.0 s: frames whose centre lies in it.
    centres = (np.arange(latent.shape[1]) + 0.5) / fps
    sel = (centres >= 4.5) & (centres < 6.0)
    np.testing.assert_allclose(out[3], latent[:, sel].mean(axis=1), rtol=1e-4, atol=1e-6)
    three = enc.embed_many([noise(seed=s) for s in range(3)], SR_TINY)
    np.testing.assert_allclose(three[1], enc.embed(noise(seed=1), SR_TINY), rtol=1e-4, atol=1e-6)


def test_mert_like_layer_average():
    model, fe = tiny_mert_like()
    enc = MertEncoder(model, fe, layer=7, batch_size=4)
    assert (enc.sr, enc.dim, enc.n_windows, enc.window) == (SR_TINY, 16, 7, 5.0)
    y = noise()
    out = enc.embed(y, SR_TINY)
    assert out.shape == (7, 16)
    a = int(round(enc.windows[4, 0] * SR_TINY))
    feats = fe([y[a : a + 5 * SR_TINY]], sampling_rate=SR_TINY, return_tensors="pt")
    with torch.no_grad():
        states = model(feats["input_values"], output_hidden_states=True).hidden_states[7]
    np.testing.assert_allclose(out[4], states[0].mean(dim=0).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="layer must be between 0 and 8"):
        MertEncoder(model, fe, layer=9)


def test_mert_needs_opt_in_for_remote_code():
    with pytest.raises(ConfigError, match="trust_remote_code=True.*--encoder-option trust_remote_code=true"):
        get_encoder("mert")


@pytest.mark.parametrize("name", ["clap", "encodec", "clap-text"])
def test_missing_checkpoint_names_it(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(DataFileNotFoundError, match="huggingface-cli download") as info:
        get_encoder(name)
    default = "facebook/encodec_24khz" if name == "encodec" else "laion/larger_clap_music"
    assert default in str(info.value)
    with pytest.raises(DataFileNotFoundError, match="local folder"):
        get_encoder(name, model=str(tmp_path))


def test_model_object_checks():
    with pytest.raises(ConfigError, match="checkpoint name, a local folder or a loaded"):
        get_encoder("encodec", model=42)
    model, _ = tiny_clap()
    with pytest.raises(ConfigError, match="pass processor="):
        get_encoder("clap", model=model)


def test_cache_key_tells_random_models_apart(tmp_path):
    from brain2music.embeddings import AudioClip
    from brain2music.stimuli import write_audio

    write_audio(tmp_path / "a.wav", noise(), SR_TINY)
    clip = [AudioClip("a", str(tmp_path / "a.wav"))]
    m1, m2 = tiny_encodec(), tiny_encodec()
    torch.manual_seed(1)
    with torch.no_grad():
        for p in m2.parameters():
            p.add_(0.1 * torch.randn_like(p))
    e1 = embed_clips(clip, EncodecEncoder(m1), cache_dir=tmp_path / "c", progress=False)
    e2 = embed_clips(clip, EncodecEncoder(m2), cache_dir=tmp_path / "c", progress=False)
    assert e2.n_computed_ == 1 and not np.allclose(e1.embeddings, e2.embeddings)
    again = embed_clips(clip, EncodecEncoder(m1), cache_dir=tmp_path / "c", progress=False)
    assert again.n_computed_ == 0
    np.testing.assert_array_equal(again.embeddings, e1.embeddings)


def test_injected_model_pickles_with_weights():
    enc = EncodecEncoder(tiny_encodec())
    clone = pickle.loads(pickle.dumps(enc))
    y = noise()
    np.testing.assert_allclose(clone.embed(y, SR_TINY), enc.embed(y, SR_TINY), rtol=1e-5, atol=1e-6)
    assert clone.config == enc.config


# -- MERT checkpoints whose shipped code predates transformers 4.48 (transformers issues 35656, 36134) --
_MERT_CONFIG_PY = '''
from transformers import PretrainedConfig


class MERTConfig(PretrainedConfig):
    """Like MERT's shipped config: a PretrainedConfig with HuBERT's fields, written before 4.48."""

    model_type = "mert_model"

    def __init__(self, **kwargs):
        fields = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("return_dict", "torch_dtype")}
        super().__init__(**kwargs)
        for k, v in fields.items():
            setattr(self, k, v)
'''

_MERT_MODEL_PY = """
from transformers.models.hubert.modeling_hubert import HubertModel

from .configuration_MERT import MERTConfig


class MERTModel(HubertModel):
    config_class = MERTConfig
    base_model_prefix = "mert_model"
"""


def remote_mert_checkpoint(folder, *, model_code=_MERT_MODEL_PY):
    """A local MERT-style checkpoint: remote code (auto_map) + a config lacking conv_pos_batch_norm."""
    import json

    hubert, fe = tiny_mert_like()
    hubert.save_pretrained(folder)
    fe.save_pretrained(folder)
    cfg = {k: v for k, v in hubert.config.to_dict().items() if k != "conv_pos_batch_norm"}
    cfg.update(
        model_type="mert_model",
        architectures=["MERTModel"],
        auto_map={"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"},
    )
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "configuration_MERT.py").write_text(_MERT_CONFIG_PY)
    (folder / "modeling_MERT.py").write_text(model_code)
    return hubert, fe


@pytest.fixture
def modules_cache(tmp_path, monkeypatch):
    """Keep the remote code transformers copies out of the user's ~/.cache."""
    import transformers.dynamic_module_utils as dyn

    monkeypatch.setattr(dyn, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "modules"


def test_mert_remote_code_without_conv_pos_batch_norm_loads(tmp_path, modules_cache):
    folder = tmp_path / "mert-ckpt-a"
    hubert, fe = remote_mert_checkpoint(folder)
    # The failure the fix is for: the shipped config lacks the attribute HuBERT's code reads since 4.48.
    with pytest.raises(AttributeError, match="conv_pos_batch_norm"):
        transformers.AutoModel.from_pretrained(str(folder), trust_remote_code=True, local_files_only=True)
    enc = get_encoder("mert", model=str(folder), trust_remote_code=True, layer=3, device="cpu")
    assert type(enc.model).__name__ == "MERTModel" and enc.config_patched_ == ["conv_pos_batch_norm"]
    assert enc.model.config.conv_pos_batch_norm is False  # the weight-normed conv MERT was trained with
    # Same weights as the HuBERT they were saved from: same layer-3 window averages.
    y = noise()
    reference = MertEncoder(hubert, fe, layer=3).embed(y, SR_TINY)
    np.testing.assert_allclose(enc.embed(y, SR_TINY), reference, rtol=1e-4, atol=1e-5)
    assert enc.config["model"] == str(folder) and enc.config["layer"] == 3


def test_mert_incompatible_remote_code_is_a_clear_error(tmp_path, modules_cache):
    folder = tmp_path / "mert-ckpt-b"
    broken = _MERT_MODEL_PY + (
        "\n    def __init__(self, config):\n"
        "        super().__init__(config)\n"
        "        self.extra = config.attribute_from_the_future\n"
    )
    remote_mert_checkpoint(folder, model_code=broken)
    with pytest.raises(
        DataError, match=r"could not be built with transformers .*AttributeError.*attribute_from_the_future"
    ):
        get_encoder("mert", model=str(folder), trust_remote_code=True, device="cpu")


def test_half_precision_and_placement(clap):
    model, fe = tiny_clap()
    half = ClapEncoder(model, fe, dtype="bfloat16", device="cpu")
    assert next(half.model.parameters()).dtype == torch.bfloat16 and half.config["dtype"] == "bfloat16"
    assert "dtype" not in clap.config  # float32, the reference numerics, is not recorded
    y = noise()
    out = half.embed(y, SR_TINY)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, clap.embed(y, SR_TINY), atol=0.05)
    # The space id is precision-blind: a float16 copy of the weights is still the same CLAP.
    f16 = ClapEncoder(tiny_clap()[0].half(), fe, dtype="float16", device="cpu")
    assert f16.clap_space_ == clap.clap_space_ and f16.config["dtype"] == "float16"
    with pytest.raises(ConfigError, match="dtype must be auto, float32, float16, bfloat16"):
        ClapEncoder(model, fe, dtype="int8")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="sees no CUDA GPU"):
            ClapEncoder(model, fe, device="cuda")
