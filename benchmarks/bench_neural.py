"""Throughput of the neural path at the real models' sizes, with random weights (no checkpoint needed).

Every model is built from the architecture of its published checkpoint (configs in this file; the parameter
count printed beside each one matches the checkpoint's file size, e.g. MusicLDM's UNet 185.0 M params =
740 MB in float32), so the time per clip is the real one even though the numbers it computes are noise.

    python benchmarks/bench_neural.py [clap mert encodec musicldm] [--device cpu|cuda] [--dtype auto]
        [--clips 8] [--repeats 3] [--steps 3]

``clap``/``mert``/``encodec`` time :meth:`Encoder.embed_many` on ``--clips`` 15-s clips of noise (the
encoders' own windowing and batching). ``musicldm`` times the parts of one 15-s clip alone (a UNet step on
the 2 latents of classifier-free guidance at MusicLDM's default guidance 2.0, the VAE decode, the vocoder),
checks them against :meth:`MusicLDMGenerator.generate_many` end to end at ``--steps`` steps, and reports the
time per clip at the default 200 steps and at 50. Medians over ``--repeats``. Results and load averages:
benchmarks/neural.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def _params(model) -> str:
    # state_dict, not parameters(): EnCodec's codebooks are buffers, and the files hold them too.
    n = sum(t.numel() for t in model.state_dict().values() if t.is_floating_point())
    return f"{n / 1e6:.1f} M weights = {n * 4 / 1e6:.0f} MB float32"


def clap_model():
    import transformers

    # laion/larger_clap_music config.json (HTSAT audio tower, RoBERTa text tower, 512-d projection).
    model = transformers.ClapModel(
        transformers.ClapConfig(
            audio_config=dict(depths=[2, 2, 12, 2], hidden_size=1024, patch_embeds_hidden_size=128),
            projection_dim=512,
        )
    )
    # preprocessor of the LAION "larger" CLAPs: 48 kHz, 64 mel, hop 480, 10-s inputs, rand_trunc.
    fe = transformers.ClapFeatureExtractor(truncation="rand_trunc")
    return model.eval(), fe


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _report(name: str, times: list[float], n_clips: int, extra: str = "") -> None:
    med = statistics.median(times)
    print(
        f"{name:10s} {n_clips / med:8.3f} clips/s  {med / n_clips:8.3f} s/clip  "
        f"(median of {len(times)}: {', '.join(f'{t:.2f}' for t in times)} s for {n_clips} clips) {extra}"
    )


def bench_encoder(name: str, args) -> None:
    import transformers

    from brain2music.embeddings.neural import ClapEncoder, EncodecEncoder, MertEncoder

    if name == "clap":
        model, fe = clap_model()
        enc = ClapEncoder(model, fe, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    elif name == "mert":
        # m-a-p/MERT-v1-95M: HuBERT-base geometry (768-d, 12 layers, 7 conv layers of 512), 24 kHz.
        model = transformers.HubertModel(transformers.HubertConfig())
        fe = transformers.Wav2Vec2FeatureExtractor(sampling_rate=24000, do_normalize=True)
        enc = MertEncoder(model, fe, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    else:
        model = transformers.EncodecModel(transformers.EncodecConfig())  # the 24-kHz defaults
        enc = EncodecEncoder(model, device=args.device, dtype=args.dtype, batch_size=args.batch_size)
    clips = [
        np.random.default_rng(i).standard_normal(15 * enc.sr).astype(np.float32) * 0.1
        for i in range(args.clips)
    ]
    enc.embed_many(clips[:1], enc.sr)  # warm-up
    times = _time(lambda: enc.embed_many(clips, enc.sr), args.repeats)
    _report(name, times, len(clips), f"[{_params(model)}; {enc.n_windows} windows/clip, dtype {enc.dtype}]")


def musicldm_pipeline():
    import diffusers
    import transformers

    # ucsd-reach/musicldm: the UNet (740 MB), VAE (222 MB), HiFi-GAN vocoder (221 MB) and CLAP (776 MB)
    # below have exactly the parameter counts of the published files.
    unet = diffusers.UNet2DConditionModel(
        in_channels=8,
        out_channels=8,
        down_block_types=(
            "DownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
        ),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(128, 256, 384, 640),
        layers_per_block=2,
        cross_attention_dim=(128, 256, 384, 640),
        class_embed_type="simple_projection",
        projection_class_embeddings_input_dim=512,
        class_embeddings_concat=True,
    )
    vae = diffusers.AutoencoderKL(
        in_channels=1,
        out_channels=1,
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        block_out_channels=[128, 256, 512],
        latent_channels=8,
        layers_per_block=2,
    )
    vocoder = transformers.SpeechT5HifiGan(
        transformers.SpeechT5HifiGanConfig(
            model_in_dim=64,
            sampling_rate=16000,
            upsample_initial_channel=1024,
            upsample_rates=[5, 4, 2, 2, 2],
            upsample_kernel_sizes=[16, 16, 8, 4, 4],
            resblock_kernel_sizes=[3, 7, 11],
            resblock_dilation_sizes=[[1, 3, 5]] * 3,
            normalize_before=False,
        )
    )
    clap, fe = clap_model()
    scheduler = diffusers.DDIMScheduler(
        beta_start=0.0015, beta_end=0.0195, beta_schedule="scaled_linear", num_train_timesteps=1000
    )
    pipe = diffusers.MusicLDMPipeline(
        vae=vae,
        text_encoder=clap,
        tokenizer=_offline_tokenizer(),
        feature_extractor=fe,
        unet=unet,
        scheduler=scheduler,
        vocoder=vocoder,
    )
    sizes = {k: _params(m) for k, m in (("unet", unet), ("vae", vae), ("vocoder", vocoder), ("clap", clap))}
    return pipe, sizes


def _offline_tokenizer():
    """A word-level stand-in for CLAP's RoBERTa tokenizer (the vocabulary files are not here; the
    prompt_embeds path tokenises only the empty unconditional prompt, so its cost is negligible)."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"<pad>": 1, "<unk>": 3, "<s>": 0, "</s>": 2}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", model_max_length=77
    )


def bench_musicldm(args) -> None:
    import torch

    from brain2music.reconstruct.generators.neural import MusicLDMGenerator

    pipe, sizes = musicldm_pipeline()
    print("musicldm parts: " + "; ".join(f"{k} {v}" for k, v in sizes.items()))
    gen = MusicLDMGenerator(
        pipeline=pipe, num_inference_steps=args.steps, device=args.device, dtype=args.dtype, progress=False
    )
    target = np.random.default_rng(0).standard_normal((1, 512))
    gen.load()
    # The parts of one 15-s clip, timed alone: a UNet call on the 2 latents of classifier-free guidance,
    # the VAE decode of the latent to a mel spectrogram, the vocoder from mel to 16-kHz audio.
    dtype, device = pipe.unet.dtype, pipe._execution_device
    frames = int(15.0 / 0.01)  # vocoder hop 160 at 16 kHz
    latent = torch.randn(2, 8, frames // 4, 16, dtype=dtype, device=device)
    cond = torch.randn(2, 512, dtype=dtype, device=device)
    mel = torch.randn(1, frames, 64, dtype=dtype, device=device)

    def sync():
        if str(device).startswith("cuda"):
            torch.cuda.synchronize()

    def unet():
        with torch.no_grad():
            pipe.unet(latent, 10, encoder_hidden_states=None, class_labels=cond, return_dict=False)
        sync()

    def vae():
        with torch.no_grad():
            pipe.vae.decode(latent[:1] / pipe.vae.config.scaling_factor)
        sync()

    def vocoder():
        with torch.no_grad():
            pipe.vocoder(mel)
        sync()

    part = {}
    for name, fn in (("unet step", unet), ("vae decode", vae), ("vocoder", vocoder)):
        fn()  # warm-up
        part[name] = statistics.median(_time(fn, args.repeats))
        print(f"musicldm   {name:10s} {part[name]:7.2f} s per 15-s clip")
    gen.generate_many(target, duration=15.0, random_state=0)  # warm-up of the whole pipeline
    whole = statistics.median(
        _time(lambda: gen.generate_many(target, duration=15.0, random_state=0), max(1, args.repeats - 1))
    )
    predicted = args.steps * part["unet step"] + part["vae decode"] + part["vocoder"]
    print(
        f"musicldm   whole pipeline at {args.steps} steps: {whole:.1f} s measured, {predicted:.1f} s from the "
        f"parts (the rest is the scheduler, CLAP of the empty prompt and copies)"
    )
    overhead = max(0.0, whole - predicted)
    for steps in (200, 50):
        t = steps * part["unet step"] + part["vae decode"] + part["vocoder"] + overhead
        print(f"musicldm   {steps:3d} steps: {t:8.1f} s/clip = {1 / t:.5f} clips/s (dtype {gen.dtype_})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", nargs="*", default=["clap", "mert", "encodec", "musicldm"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="musicldm: steps of the end-to-end check")
    args = ap.parse_args()
    import torch

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
        f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
    )
    torch.manual_seed(0)
    for name in args.which:
        if name == "musicldm":
            bench_musicldm(args)
        else:
            bench_encoder(name, args)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
