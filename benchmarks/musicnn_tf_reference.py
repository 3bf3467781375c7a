"""Run the ORIGINAL musicnn (TensorFlow) on audio files; save every layer. Runs inside its own venv.

Not part of brain2music and never imported by it: ``bench_musicnn_reference.py`` calls this script with
the Python of a separate virtual environment that holds TensorFlow::

    python3 -m venv /work/refenv/musicnn-tf
    /work/refenv/musicnn-tf/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 librosa soundfile
    /work/refenv/musicnn-tf/bin/pip install --no-deps musicnn
    TF_USE_LEGACY_KERAS=1 /work/refenv/musicnn-tf/bin/python benchmarks/musicnn_tf_reference.py OUT.npz JOB.json

Two changes to the original, both on purpose:

- ``musicnn.extractor.batch_data`` casts the mel spectrogram to float16 before the log, which overflows
  to inf on loud passages (then NaN in every layer). It is replaced by a copy that differs only in that
  cast (float32). ``"float16": true`` in the job keeps the original cast, to show the failure.
- ``musicnn.extractor.extractor`` returns, for every patch after the first, the *first* patch's
  ``penultimate`` (and ``cnn1..3``): its loop appends ``penultimate_``, a variable of the first batch.
  Its taggram, ``mean_pool`` and ``max_pool`` are right. So this script builds the same graph with
  ``musicnn.models.define_model``, restores the same checkpoint with the same ``Saver`` and runs it on
  each patch (batch size 1), as ``extractor`` does, reading every layer of every patch.

Everything else (librosa.load at 16 kHz, the mel spectrogram, 187-frame non-overlapping patches, the
graph and the checkpoint) is the package's own code.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def _patched_batch_data(dtype):
    import librosa
    import numpy as np
    from musicnn import configuration as config

    def batch_data(audio_file, n_frames, overlap):
        # musicnn/extractor.py batch_data, with the float16 cast made a parameter.
        audio, sr = librosa.load(audio_file, sr=config.SR)
        audio_rep = librosa.feature.melspectrogram(
            y=audio, sr=sr, hop_length=config.FFT_HOP, n_fft=config.FFT_SIZE, n_mels=config.N_MELS
        ).T
        audio_rep = audio_rep.astype(dtype)
        audio_rep = np.log10(10000 * audio_rep + 1)
        last_frame = audio_rep.shape[0] - n_frames + 1
        patches = [audio_rep[t : t + n_frames, :] for t in range(0, last_frame, overlap)]
        return np.stack(patches), audio_rep

    return batch_data


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="output .npz: '<model>/<file index>/<layer>' arrays (n_patches, size)")
    p.add_argument(
        "job",
        help='JSON: {"models": [...], "files": [{"path": ..., "offsets": null or [frame, ...]}], '
        '"float16": false}; offsets cut patches at those frames of the spectrogram instead of '
        "extractor's consecutive 187-frame patches",
    )
    args = p.parse_args(argv)

    import json

    import numpy as np
    import tensorflow as tf

    job = json.loads(open(args.job).read())
    arrays = {"tf_version": np.array(tf.__version__), "float16": np.array(bool(job.get("float16")))}
    for model in job["models"]:
        arrays.update(_run_model(model, job["files"], bool(job.get("float16"))))
    np.savez(args.out, **arrays)
    print(
        f"wrote {args.out}: {len(job['files'])} files x {len(job['models'])} models, TF {tf.__version__}",
        file=sys.stderr,
    )
    return 0


def _run_model(model: str, files: list[dict], float16: bool) -> dict:
    import numpy as np
    import tensorflow as tf
    from musicnn import configuration as config
    from musicnn import extractor as ext
    from musicnn import models

    ext.batch_data = _patched_batch_data(np.float16 if float16 else np.float32)
    labels = config.MTT_LABELS if "MTT" in model else config.MSD_LABELS
    n_frames = 187
    # The graph and restore of musicnn.extractor.extractor, verbatim apart from which tensors are read.
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, n_frames, config.N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        outs = models.define_model(x, is_training, model, len(labels))
        taggram_t = tf.nn.sigmoid(outs[0])
    if "vgg" in model:
        read = {"taggram": taggram_t, "pool5": tf.compat.v1.layers.flatten(outs[5])}
    else:
        read = {"taggram": taggram_t, "mean_pool": outs[6], "max_pool": outs[7], "penultimate": outs[8]}
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    tf.compat.v1.train.Saver().restore(sess, os.path.dirname(ext.__file__) + "/" + model + "/")

    arrays = {f"{model}/labels": np.array(labels)}
    for i, item in enumerate(files):
        batch, spectrogram = ext.batch_data(item["path"], n_frames, n_frames)
        if item.get("offsets") is not None:
            batch = np.stack([spectrogram[o : o + n_frames] for o in item["offsets"]])
        arrays[f"{model}/{i}/logmel"] = spectrogram.astype(np.float32)
        per_patch = [
            sess.run(read, feed_dict={x: batch[j : j + 1], is_training: False}) for j in range(len(batch))
        ]
        for name in read:
            value = np.concatenate([np.reshape(r[name], (1, -1)) for r in per_patch]).astype(np.float32)
            arrays[f"{model}/{i}/{name}"] = value
        if item.get("offsets") is None:
            # The package's own entry point, for its taggram: equals the per-patch run above.
            taggram, _ = ext.extractor(
                item["path"], model=model, input_length=3, input_overlap=False, extract_features=False
            )
            arrays[f"{model}/{i}/extractor_taggram"] = np.atleast_2d(taggram).astype(np.float32)
    sess.close()
    return arrays


if __name__ == "__main__":
    sys.exit(main())
