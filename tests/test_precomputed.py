"""Precomputed embeddings of any name: a plain ``.npz`` from any tool, through the CLI and the config file."""

from __future__ import annotations

import json

import numpy as np
import pytest

import brain2music.study.context as context
import brain2music.study.reproduce as rep
import brain2music.study.settings as study_settings
from brain2music.cli import main
from brain2music.embeddings import EmbeddingSet, load_embeddings
from brain2music.errors import ConfigError, DataError
from brain2music.results import ResultsFolder
from brain2music.windows import infer_window, n_windows
from test_models_synth import make_embeddings
from test_reproduce import _one_thread, study  # noqa: F401  (fixtures)


@pytest.fixture
def plain(study, tmp_path):  # noqa: F811  (the fixture of test_reproduce)
    """:func:`test_reproduce.study`'s synthetic subjects, with the embedding as arrays to write files of."""
    return {"bids": study["bids"], "ids": np.array(study["ids"]), "emb": study["embeddings"], "tmp": tmp_path}


def _args(plain, out, *extra):
    return ["reproduce", str(plain["bids"]), "--out", str(out), "--methods", "ridge", "--no-logo",
            "--n-permutations", "20", "--n-bootstrap", "20", "--quiet", *extra]  # fmt: skip


def test_cli_decodes_a_plain_npz_of_an_unregistered_name(plain, capsys):
    """``--embeddings mfcc=FILE --encoders mfcc``: no registry entry, no config or version keys."""
    path = plain["tmp"] / "mfcc.npz"
    np.savez(path, clip_ids=plain["ids"], embeddings=plain["emb"], window=15.0)
    out = plain["tmp"] / "cli"
    assert main(_args(plain, out, "--embeddings", f"mfcc={path}", "--encoders", "mfcc")) == 0
    res = ResultsFolder(out).read()
    info = res.encoders["mfcc"]
    assert (info.window, info.r, info.dim, info.space) == (15.0, 1, 6, "standardized")
    for row in (r for r in res.rows if r.split == "test"):
        assert row.encoder == "mfcc" and row.space == "standardized" and row.id_acc > 0.95
    saved = ResultsFolder(out).read_embeddings(res, "mfcc")
    np.testing.assert_array_equal(saved.embeddings, plain["emb"])
    assert (saved.encoder, saved.window) == ("mfcc", 15.0)
    # The file says its space, or the command line does (the command line wins).
    np.savez(path, clip_ids=plain["ids"], embeddings=plain["emb"], window=15.0, space="paper")
    assert main(_args(plain, plain["tmp"] / "p", "--embeddings", f"mfcc={path}", "--encoders", "mfcc")) == 0
    assert ResultsFolder(plain["tmp"] / "p").read().encoders["mfcc"].space == "paper"
    extra = ("--embeddings", f"mfcc={path}", "--encoders", "mfcc", "--metric-space", "standardized")
    assert main(_args(plain, plain["tmp"] / "s", *extra)) == 0
    assert ResultsFolder(plain["tmp"] / "s").read().encoders["mfcc"].space == "standardized"
    # A precomputed embedding takes no encoder options.
    capsys.readouterr()
    extra = ("--embeddings", f"mfcc={path}", "--encoders", "mfcc", "--encoder-option", "mfcc:n_mels=8")
    assert main(_args(plain, plain["tmp"] / "o", *extra)) == 2
    assert "'mfcc' is precomputed" in capsys.readouterr().err
    assert main(["reproduce", str(plain["bids"]), "--check", "--encoders", "mfcc", "--embeddings",
                 f"mfcc={path}"]) == 0  # fmt: skip


def test_space_of_a_file_named_like_a_registry_encoder(plain):
    """The registry default applies only to a file that records it was computed by that encoder."""
    bare = plain["tmp"] / "plain.npz"
    np.savez(bare, clip_ids=plain["ids"], embeddings=plain["emb"], window=15.0)
    ours = plain["tmp"] / "ours.npz"
    EmbeddingSet(plain["ids"], plain["emb"], {"encoder": "clap", "window": 15.0}).save(ours)
    assert study_settings.precomputed_space(str(bare)) == "standardized"
    assert study_settings.precomputed_space(str(ours)) == "paper"  # clap's registered space
    assert study_settings.precomputed_space({"clip_ids": [], "embeddings": [], "space": "paper"}) == "paper"
    kw = dict(out=plain["tmp"] / "r", methods=["ridge"], logo=False, n_permutations=10, n_bootstrap=10,
              verbose=False, encoders=["clap"])  # fmt: skip
    res = rep.reproduce(plain["bids"], embeddings={"clap": bare}, **kw)
    assert res.encoders["clap"].space == "standardized"


def test_window_is_inferred_only_where_the_clip_grid_leaves_one_answer(plain, monkeypatch):
    # 10 volumes of 1.5 s per clip: r = 10 is one TR each, r = 1 the whole clip, r = 7 could be 5 s or 6 s.
    assert infer_window(10, n_trs=10, tr=1.5) == 1.5
    assert infer_window(1, n_trs=10, tr=1.5) == 15.0
    assert n_windows(5.0) == n_windows(6.0) == 7 and infer_window(7, n_trs=10, tr=1.5) is None
    monkeypatch.setattr(context, "subject_grid", lambda source, subject: (1.5, 10))
    kw = dict(out=plain["tmp"] / "w", methods=["ridge"], logo=False, n_permutations=10, n_bootstrap=10,
              verbose=False, encoders=["mfcc"])  # fmt: skip
    path = plain["tmp"] / "nowin.npz"
    np.savez(path, clip_ids=plain["ids"], embeddings=plain["emb"])
    assert rep.reproduce(plain["bids"], embeddings={"mfcc": path}, **kw).encoders["mfcc"].window == 15.0
    np.savez(path, clip_ids=plain["ids"], embeddings=np.repeat(plain["emb"], 7, axis=1))
    with pytest.raises(DataError, match=r"nowin.npz: no key 'window'.*r=7 windows per clip"):
        rep.reproduce(plain["bids"], embeddings={"mfcc": path}, **kw)


def test_window_of_a_file_without_one_comes_from_the_real_grid(tmp_path, capsys):
    """A BIDS tree with the real ds003720 events: r = 10 windows per clip are the 1.5-s TRs."""
    from brain2music.embeddings.clips import experiment_clips
    from conftest import make_bids_tree

    bids = make_bids_tree(tmp_path / "bids")
    assert context.subject_grid(context.DataSource("bids", bids), "sub-001") == (1.5, 10)
    ids = experiment_clips(bids).clip_id.to_numpy()  # Python objects: numpy pickles them
    path = tmp_path / "mfcc.npz"
    np.savez(path, clip_ids=ids, embeddings=make_embeddings(ids, r=10, dim=3, seed=2))
    with pytest.raises(DataError, match=r"mfcc.npz: .*saved as Python objects.*dtype=str"):
        load_embeddings(path)
    np.savez(path, clip_ids=ids.astype(str), embeddings=make_embeddings(ids, r=10, dim=3, seed=2))
    import nibabel as nib

    mask = tmp_path / "mask.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((3, 3, 2), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0])), str(mask))
    out = tmp_path / "out"
    args = ["reproduce", str(bids), "--out", str(out), "--embeddings", f"mfcc={path}", "--encoders", "mfcc",
            "--mask", str(mask), "--methods", "ridge", "--no-logo", "--n-permutations", "20", "--n-bootstrap",
            "20", "--quiet"]  # fmt: skip
    with pytest.warns(UserWarning):  # raw BOLD without motion correction
        assert main(args) == 0
    res = ResultsFolder(out).read()
    assert (res.encoders["mfcc"].window, res.encoders["mfcc"].r) == (1.5, 10)
    (row,) = [r for r in res.rows if r.split == "test"]
    assert abs(row.id_acc - 0.5) < 0.15  # noise voxels: chance


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"clip_ids": "IDS", "embeddings": "EMB2D"}, r"key 'embeddings' must have shape \(n_clips, r, dim\); "
         r"found shape \(540, 6\) \(one window per clip"),
        ({"clip_ids": "IDS_SHORT", "embeddings": "EMB"}, r"key 'clip_ids' has 537 entries but 'embeddings' "
         r"has 540 rows"),
        ({"clip_ids": "IDS", "embeddings": "EMB_NAN"}, r"key 'embeddings' must be finite; 1 clip\(s\)"),
        ({"clip_ids": "IDS", "embeddings": "EMB", "space": "zscored"},
         r"key 'space' must be one of paper, standardized; got 'zscored'"),
        ({"clip_ids": "IDS", "embeddings": "EMB", "window": -1.5}, r"key 'window' must be a positive number"),
        ({"clip_ids": "IDS", "embeddings": "EMB", "window": 15.0, "config": '{"window": 10.0}'},
         r"key 'window' is 15.0 but config\['window'\] is 10.0"),
        ({"clip_ids": "IDS_2D", "embeddings": "EMB"}, r"key 'clip_ids' must have shape \(n_clips,\)"),
        ({"clip_ids": "IDS"}, r"lacks key\(s\) \['embeddings'\]"),
    ],
)  # fmt: skip
def test_malformed_files_name_the_file_the_key_and_what_was_found(plain, arrays, message):
    ids, emb = plain["ids"], plain["emb"]
    nan = emb.copy()
    nan[3, 0, 2] = np.nan
    values = {"IDS": ids, "IDS_SHORT": ids[:-3], "IDS_2D": ids[:, None], "EMB": emb, "EMB2D": emb[:, 0],
              "EMB_NAN": nan}  # fmt: skip
    path = plain["tmp"] / "bad.npz"
    np.savez(path, **{k: values.get(v, v) if isinstance(v, str) else v for k, v in arrays.items()})
    with pytest.raises(DataError, match=message) as info:
        load_embeddings(path)
    assert str(path) in str(info.value)
    kw = dict(out=plain["tmp"] / "o", encoders=["mfcc"], methods=["ridge"], verbose=False)
    with pytest.raises(DataError, match=message):  # before the results folder is written
        rep.reproduce(plain["bids"], embeddings={"mfcc": path}, **kw)
    assert not (plain["tmp"] / "o").exists()


def test_a_single_array_or_an_unreadable_file_is_named(plain):
    kw = dict(out=plain["tmp"] / "o", encoders=["mfcc"], methods=["ridge"], verbose=False)
    np.save(plain["tmp"] / "one.npy", plain["emb"])
    with pytest.raises(DataError, match=r"one.npy: expected an .npz archive.*found a single array"):
        rep.reproduce(plain["bids"], embeddings={"mfcc": plain["tmp"] / "one.npy"}, **kw)
    (plain["tmp"] / "text.npz").write_text("clip_ids,embeddings\n")
    with pytest.raises(DataError, match=r"text.npz: cannot read as an embeddings .npz"):
        load_embeddings(plain["tmp"] / "text.npz")


def test_clips_of_the_study_missing_from_the_file_are_named(plain):
    path = plain["tmp"] / "few.npz"
    np.savez(path, clip_ids=plain["ids"][3:], embeddings=plain["emb"][3:], window=15.0)
    kw = dict(out=plain["tmp"] / "o", encoders=["mfcc"], methods=["ridge"], verbose=False)
    with pytest.raises(DataError, match=r"3 clip\(s\) have no 'mfcc' embedding in .*few.npz"):
        rep.reproduce(plain["bids"], embeddings={"mfcc": path}, **kw)
    assert not (plain["tmp"] / "o" / "results.json").exists()
    with pytest.raises(
        ConfigError, match=r"a mapping with 'clip_ids' and 'embeddings'; found dict with keys"
    ):
        rep.reproduce(plain["bids"], embeddings={"mfcc": {"ids": plain["ids"]}}, **kw)


def test_options_are_resolved_for_computed_encoders_only():
    assert study_settings.resolve_study_encoders(["mfcc"], None, "cuda", None, precomputed=["mfcc"]) == {}
    out = study_settings.resolve_study_encoders(["mfcc", "debug"], {"window": 15.0}, precomputed=["mfcc"])
    assert out == {"debug": {"window": 15.0}}
    with pytest.raises(ConfigError, match="every embedding of this run is precomputed"):
        study_settings.resolve_study_encoders(["mfcc"], {"batch_size": 4}, precomputed=["mfcc"])
    with pytest.raises(ConfigError, match="unknown encoder 'mfcc'"):  # not precomputed: it must exist
        study_settings.resolve_study_encoders(["mfcc"])
    assert study_settings.check_reproduce("mfcc,debug", embeddings=["mfcc=x.npz"])[0].name.startswith("debug")


def test_config_file_runs_precomputed_embeddings_end_to_end(plain, capsys):
    path = plain["tmp"] / "mfcc.npz"
    np.savez(path, clip_ids=plain["ids"], embeddings=plain["emb"], window=15.0)
    yaml_path = plain["tmp"] / "exp.yaml"
    yaml_path.write_text(
        f"experiment: {{out: {plain['tmp'] / 'exp'}}}\n"
        f"data: {{bids: {plain['bids']}}}\n"  # no stimuli: every embedding is precomputed
        "embeddings: {encoders: [mfcc], precomputed: {mfcc: mfcc.npz}}\n"  # relative to the file
        "decoding: {methods: [ridge]}\n"
        "reconstruction: {enabled: false}\nreport: {enabled: false}\n"
    )
    assert main(["config", "--check", str(yaml_path)]) == 0
    assert str(path) in capsys.readouterr().out
    assert main(["run", str(yaml_path), "--check"]) == 0  # nothing to build: every embedding is given
    assert main(["run", str(yaml_path)]) == 0
    res = json.loads((plain["tmp"] / "exp" / "results.json").read_text())
    assert res["encoders"]["mfcc"]["space"] == "standardized"
    assert min(r["id_acc"] for r in res["rows"] if r["split"] == "test") > 0.95
    bad = plain["tmp"] / "bad.yaml"
    bad.write_text(yaml_path.read_text().replace("encoders: [mfcc]", "encoders: [acoustic]"))
    assert main(["config", "--check", str(bad)]) == 2
    assert "'mfcc' is not among embeddings.encoders" in capsys.readouterr().err


def test_a_library_needs_an_encoder_of_the_registry(tmp_path):
    from brain2music.config import parse_config
    from brain2music.pipeline import experiment

    values = {"experiment": {"out": "out"}, "data": {"bids": "bids", "stimuli": "stim"}, "library": {"music": "m"},
              "embeddings": {"encoders": ["mfcc", "acoustic"], "precomputed": {"mfcc": "mfcc.npz"}}}  # fmt: skip
    config = parse_config(values, path=tmp_path / "exp.yaml", check_paths=False)
    with pytest.raises(ConfigError, match=r"library.encoder: 'mfcc' is no encoder of the registry"):
        experiment._plan(config)
    values["library"]["encoder"] = "acoustic"
    plan = experiment._plan(parse_config(values, path=tmp_path / "exp.yaml", check_paths=False))
    assert "library" in plan.enabled and experiment._library_options(plan) == {}
