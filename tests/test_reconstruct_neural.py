"""Neural generators with tiny random-weight models built in the test (never a download)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
diffusers = pytest.importorskip("diffusers")

from brain2music.errors import ConfigError, DataError, DataFileNotFoundError  # noqa: E402
from brain2music.reconstruct.generators import get_generator  # noqa: E402
from brain2music.reconstruct.generators.neural import (  # noqa: E402
    ClapAligner,
    MusicGenGenerator,
    MusicLDMGenerator,
)

pytestmark = pytest.mark.neural


def word_tokenizer(words):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = ["[PAD]", "[UNK]", *words]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", model_max_length=32
    )


def tiny_musicldm(dim=8):
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=(8, 16),
        class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=dim,
        class_embeddings_concat=True,
    )
    scheduler = diffusers.DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=[8, 16],
        in_channels=1,
        out_channels=1,
        norm_num_groups=8,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
        latent_channels=4,
    )
    clap = transformers.ClapModel(
        transformers.ClapConfig(
            text_config=dict(
                vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=32, max_position_embeddings=40, projection_dim=dim,
            ),
            audio_config=dict(
                spec_size=64, num_mel_bins=16, window_size=4, patch_size=4, patch_stride=[4, 4], depths=[1, 1],
                num_attention_heads=[1, 2], hidden_size=32, patch_embeds_hidden_size=16, projection_dim=dim,
                enable_fusion=False,
            ),
            projection_dim=dim,
        )
    ).eval()  # fmt: skip
    vocoder = transformers.SpeechT5HifiGan(
        transformers.SpeechT5HifiGanConfig(
            model_in_dim=16, sampling_rate=16000, upsample_initial_channel=16, upsample_rates=[2, 2],
            upsample_kernel_sizes=[4, 4], resblock_kernel_sizes=[3, 7],
            resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5]], normalize_before=False,
        )
    )  # fmt: skip
    return diffusers.MusicLDMPipeline(
        vae=vae,
        text_encoder=clap,
        tokenizer=word_tokenizer(["low", "quality"]),
        feature_extractor=None,
        unet=unet,
        scheduler=scheduler,
        vocoder=vocoder,
    )


def tiny_musicgen():
    torch.manual_seed(0)
    encodec = transformers.EncodecConfig(
        target_bandwidths=[1.5], sampling_rate=8000, audio_channels=1, hidden_size=8, num_filters=4,
        num_residual_layers=1, upsampling_ratios=[8, 8], codebook_size=16, codebook_dim=8, num_lstm_layers=1,
    )  # fmt: skip
    t5 = transformers.T5Config(vocab_size=64, d_model=16, d_ff=32, num_layers=1, num_heads=2, d_kv=8)
    dec = transformers.MusicgenDecoderConfig(
        vocab_size=16, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, ffn_dim=32,
        num_codebooks=1, max_position_embeddings=512, pad_token_id=16, bos_token_id=16, audio_channels=1,
    )  # fmt: skip
    model = transformers.MusicgenForConditionalGeneration(
        transformers.MusicgenConfig.from_sub_models_config(t5, encodec, dec)
    ).eval()
    model.generation_config.decoder_start_token_id = 16
    model.generation_config.pad_token_id = 16
    return model


# Tiny MusicLDM: the mel has duration / (4 / 16000) frames, so keep clips to a few hundredths of a second.
DUR = 0.032


@pytest.fixture(scope="module")
def ldm():
    """One tiny pipeline for the tests that do not change it (building one takes seconds)."""
    return tiny_musicldm()


def test_musicldm_prompt_embeds_path(ldm):
    pipe = ldm
    gen = get_generator("musicldm", pipeline=pipe, num_inference_steps=2, progress=False)
    target = np.random.default_rng(0).standard_normal((4, 8))
    a1, sr = gen.generate(target, n_samples=2, duration=DUR, random_state=3)
    a2, _ = gen.generate(target, n_samples=2, duration=DUR, random_state=3)
    assert sr == 16000 and a1.shape == (2, int(DUR * 16000)) and a1.dtype == np.float32
    assert np.all(np.isfinite(a1)) and np.array_equal(a1, a2)  # seeded
    # the conditioning is the L2-normalised window average
    cond = gen.conditioning(target)
    assert np.allclose(cond, target.mean(0) / np.linalg.norm(target.mean(0)))
    # a negative prompt is embedded by the pipeline's own text encoder
    neg = MusicLDMGenerator(
        pipeline=pipe, num_inference_steps=2, negative_prompt="low quality", progress=False
    )
    assert neg.generate(target, duration=DUR, random_state=0)[0].shape == (1, int(DUR * 16000))
    with pytest.raises(DataError, match="8-d CLAP"):
        gen.generate(np.ones(5), duration=DUR)


def test_clap_aligner_recovers_a_linear_map(tmp_path):
    rng = np.random.default_rng(0)
    audio = rng.standard_normal((200, 6))
    A = rng.standard_normal((5, 6))
    text = audio @ A.T + 0.5
    aligner = ClapAligner(alphas=[1e-6]).fit(audio, text)
    assert np.allclose(aligner.coef_, A, atol=1e-4) and np.allclose(aligner.intercept_, 0.5, atol=1e-4)
    expect = text[:3] / np.linalg.norm(text[:3], axis=1, keepdims=True)
    assert np.allclose(aligner.transform(audio[:3]), expect, atol=1e-4)
    aligner.save(tmp_path / "al.npz")
    assert np.allclose(ClapAligner.load(tmp_path / "al.npz").transform(audio[:3]), expect, atol=1e-4)
    with pytest.raises(DataError, match="6-d"):
        aligner.transform(np.ones((1, 4)))
    with pytest.raises(ConfigError, match="not fitted"):
        ClapAligner().transform(audio)


def test_musicldm_with_aligner_conditions_on_text_space(ldm):
    rng = np.random.default_rng(1)
    audio, text = rng.standard_normal((50, 8)), rng.standard_normal((50, 8))
    aligner = ClapAligner().fit(audio, text)
    gen = MusicLDMGenerator(pipeline=ldm, aligner=aligner, num_inference_steps=1, progress=False)
    assert np.allclose(gen.conditioning(audio[0]), aligner.transform(audio[:1])[0])
    assert gen.generate(audio[0], duration=DUR)[0].shape == (1, int(DUR * 16000))


def test_missing_checkpoints_name_them(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataFileNotFoundError, match="nobody/no-such-musicldm.*huggingface-cli download"):
        MusicLDMGenerator("nobody/no-such-musicldm").generate(np.ones(8), duration=DUR)
    with pytest.raises(DataFileNotFoundError, match="nobody/no-such-musicgen"):
        MusicGenGenerator(
            "nobody/no-such-musicgen", vocabulary=["a", "b"], vocabulary_embeddings=np.eye(2)
        ).generate(np.ones(2), duration=0.1)


def test_musicgen_prompt_from_nearest_tags():
    vocab = ["jazz", "piano", "metal", "drums", "calm"]
    gen = MusicGenGenerator(
        model=tiny_musicgen(),
        processor=word_tokenizer(vocab),
        vocabulary=vocab,
        vocabulary_embeddings=np.eye(5, 8)[:, None, :],
        n_terms=2,
        device="cpu",
    )
    target = np.array([0, 0.9, 0, 0.5, 0, 0, 0, 0.0])
    assert gen.prompt_for(target) == "piano, drums"
    audio, sr = gen.generate(target, n_samples=2, duration=0.1, random_state=0)
    assert sr == 8000 and audio.shape[0] == 2 and audio.shape[1] >= 0.05 * sr and np.all(np.isfinite(audio))
    assert gen.last_prompt_ == "piano, drums"
    with pytest.raises(DataError, match="CLAP-space"):
        gen.prompt_for(np.ones(3))


def test_musicgen_vocabulary_from_captions_csv(tmp_path):
    (tmp_path / "caps.csv").write_text("ID,DescEN\nblues.00017_15s,a slow blues\njazz.00001_15s,fast jazz\n")
    gen = MusicGenGenerator(vocabulary=tmp_path / "caps.csv", vocabulary_embeddings=np.eye(2))
    assert gen.vocabulary == ["a slow blues", "fast jazz"]
    assert gen.prompt_for(np.array([0.1, 1.0])) == "fast jazz, a slow blues"


# -- conditioning space: MusicLDM reads embeddings of its own CLAP ------------------------------------
def tiny_clap_features():
    return transformers.ClapFeatureExtractor(
        feature_size=16, sampling_rate=8000, hop_length=400, max_length_s=10, fft_window_size=256,
        truncation="rand_trunc", padding="repeatpad", frequency_max=4000,
    )  # fmt: skip


def test_musicldm_refuses_targets_from_another_clap(ldm):
    import copy

    from brain2music.embeddings.neural import ClapEncoder

    pipe = ldm
    fe = tiny_clap_features()
    same = ClapEncoder(pipe.text_encoder, fe, device="cpu")
    other_clap = copy.deepcopy(pipe.text_encoder)
    with torch.no_grad():  # the same towers, other projection weights: another embedding space
        for p in other_clap.text_projection.parameters():
            p.add_(0.05 * torch.randn_like(p))
    other = ClapEncoder(other_clap, fe, device="cpu")
    assert other.clap_space_ != same.clap_space_ and other.dim == same.dim == 8  # dims alone agree
    target = np.random.default_rng(0).standard_normal(8)

    gen = MusicLDMGenerator(pipeline=pipe, encoder=same, num_inference_steps=1, progress=False)
    assert (
        gen.generate(target, duration=DUR)[0].shape == (1, int(DUR * 16000)) and gen.pairing_ == "same CLAP"
    )
    for mismatched in (other, other.config):  # an encoder object, or the config a results folder recorded
        bad = MusicLDMGenerator(pipeline=pipe, encoder=mismatched, num_inference_steps=1, progress=False)
        with pytest.raises(ConfigError, match="conditioned on embeddings of its own CLAP.*aligner"):
            bad.generate(target, duration=DUR)
    acoustic = {"encoder": "acoustic", "dim": 8}
    with pytest.raises(ConfigError, match="not a CLAP"):
        MusicLDMGenerator(pipeline=pipe, encoder=acoustic, progress=False).load()
    rng = np.random.default_rng(1)
    aligner = ClapAligner().fit(rng.standard_normal((30, 8)), rng.standard_normal((30, 8)))
    ok = MusicLDMGenerator(
        pipeline=pipe, encoder=other, aligner=aligner, num_inference_steps=1, progress=False
    )
    assert ok.load().pairing_ == "aligned"


def test_clap_encoder_reads_the_pipelines_own_clap_from_disk(tmp_path):
    from brain2music.embeddings import get_encoder

    pipe = tiny_musicldm()
    pipe.register_modules(feature_extractor=tiny_clap_features())
    pipe.save_pretrained(tmp_path / "musicldm")
    enc = get_encoder("clap", model=str(tmp_path / "musicldm"), device="cpu")
    assert enc.sr == 8000 and enc.dim == 8
    gen = MusicLDMGenerator(
        tmp_path / "musicldm", encoder=enc, num_inference_steps=1, device="cpu", progress=False
    )
    assert gen.load().pairing_ == "same CLAP"
    assert gen.clap_encoder().clap_space_ == enc.clap_space_
    # the text tower of the same pipeline embeds captions into the same space
    text = get_encoder("clap-text", model=str(tmp_path / "musicldm"), device="cpu")
    assert text.clap_space_ == enc.clap_space_ and text.embed_texts(["low quality"]).shape == (1, 1, 8)


def test_musicldm_batches_do_not_change_the_result(ldm):
    pipe = ldm
    targets = np.random.default_rng(2).standard_normal((2, 8))
    one = MusicLDMGenerator(pipeline=pipe, num_inference_steps=1, batch_size=1, progress=False)
    two = MusicLDMGenerator(pipeline=pipe, num_inference_steps=1, batch_size=2, progress=False)
    a, sr = one.generate_many(targets, n_samples=2, duration=DUR, random_state=5)
    b, _ = two.generate_many(targets, n_samples=2, duration=DUR, random_state=5)
    assert a.shape == (2, 2, int(DUR * sr))
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(a[0, 0], a[0, 1])  # the samples of one target differ
