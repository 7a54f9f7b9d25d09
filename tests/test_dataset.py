"""Datasets (faustdiff.learn.dataset), Trainer.fit(dataset), per-file fitting, checkpoints,
and `faustdiff train --dataset`.

Every dataset is generated in a temporary folder by rendering a small program (a gain and an
offset, 8 kHz, a few hundred samples per file) with hidden parameter values; fitting must
recover them. The programs are compiled once per module.
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest

from faustdiff.audio_io import write_audio as write_wav
from faustdiff.backend import grad as G
from faustdiff.errors import FaustError
from faustdiff.learn.dataset import Dataset, write_table
from faustdiff.learn.train import Trainer
from conftest import diff_on_model

SR = 8000
GAIN_DC = 'process = _ * hslider("gain", 0.1, 0, 1, .001) + hslider("dc", 0, -1, 1, .001);'
DC = 'process = hslider("dc", 0, -1, 1, .001);'
HIDDEN = {"gain": 0.6, "dc": 0.2}
LENGTHS = [400, 450, 500, 550, 600, 650]


@pytest.fixture(scope="module")
def prog():
    return G.compile_source(GAIN_DC, "<gain_dc>", SR, (), ["gain", "dc"])


@pytest.fixture(scope="module")
def dc_prog():
    return G.compile_source(DC, "<dc>", SR, (), ["dc"])


def render(prog, x, n, values):
    for k, v in values.items():
        prog.set_param(k, v)
    prog.reset()
    return prog.compute(x, n)


def make_pairs(prog, folder, values_per_file, seed=0):
    """NAME.in.wav / NAME.target.wav for every entry of values_per_file."""
    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    for k, values in enumerate(values_per_file):
        n = LENGTHS[k % len(LENGTHS)]
        x = rng.uniform(-1, 1, (1, n))
        y = render(prog, x, n, values)
        write_wav(os.path.join(folder, f"ex{k}.in.wav"), x, SR, 64)
        write_wav(os.path.join(folder, f"ex{k}.target.wav"), y, SR, 64)
    return str(folder)


@pytest.fixture(scope="module")
def pairs_dir(prog, tmp_path_factory):
    return make_pairs(prog, tmp_path_factory.mktemp("pairs"), [HIDDEN] * 6)


PER_FILE = [{"gain": 0.3, "dc": -0.1}, {"gain": 0.8, "dc": 0.25}, {"gain": 0.55, "dc": 0.0}]


@pytest.fixture(scope="module")
def per_file_dir(prog, tmp_path_factory):
    return make_pairs(prog, tmp_path_factory.mktemp("perfile"), PER_FILE, seed=5)


def trainer(prog, **kw):
    kw.setdefault("optimizer", "adam")
    kw.setdefault("lr", 0.02)
    return Trainer(prog, **kw)


# ---------------------------------------------------------------- the dataset itself

def test_folder_pairs_segments_and_default_segment(pairs_dir, prog):
    ds = Dataset(pairs_dir, program=prog)
    assert [p.name for p in ds.pairs] == [f"ex{k}.target.wav" for k in range(6)]
    assert ds.sample_rate == SR and ds.inputs == 1 and ds.outputs == 1
    assert ds.segment == 400                       # default: the shortest pair
    assert len(ds.segments(ds.pairs)) == 6         # one whole segment per pair
    ds = Dataset(pairs_dir, program=prog, segment=0.025)   # 200 samples
    assert ds.segment == 200
    assert len(ds.segments(ds.pairs)) == 2 + 2 + 2 + 2 + 3 + 3
    x, t, w = ds.segments(ds.pairs[:1])[1]
    assert np.array_equal(t, ds.pairs[0].t[:, 200:400]) and w == 1.0


@pytest.mark.parametrize("val,nval", [(0.0, 0), (0.1, 1), (0.5, 3), (0.9, 5)])
def test_validation_split_sizes(pairs_dir, prog, val, nval):
    ds = Dataset(pairs_dir, program=prog, val=val, seed=3)
    assert len(ds.val) == nval and len(ds.train) == 6 - nval
    assert not {p.name for p in ds.val} & {p.name for p in ds.train}
    again = Dataset(pairs_dir, program=prog, val=val, seed=3)
    assert [p.name for p in again.val] == [p.name for p in ds.val]


def test_shuffling_is_deterministic_by_seed(pairs_dir, prog):
    ds = Dataset(pairs_dir, program=prog, batch=4, segment=0.025)
    a = ds.batches(np.random.default_rng(7))
    b = ds.batches(np.random.default_rng(7))
    assert [len(x) for x in a] == [4, 4, 4, 2]
    assert all(np.array_equal(s[1], r[1]) for x, y in zip(a, b) for s, r in zip(x, y))
    c = ds.batches(np.random.default_rng(8))
    assert not all(np.array_equal(s[1], r[1]) for x, y in zip(a, c) for s, r in zip(x, y))


def test_manifest_relative_paths_and_weights(pairs_dir, prog, tmp_path):
    man = tmp_path / "list.csv"
    rel = os.path.relpath(pairs_dir, tmp_path)
    man.write_text("input,target,weight\n"
                   f"{rel}/ex0.in.wav,{rel}/ex0.target.wav,2\n"
                   f"{rel}/ex1.in.wav,{rel}/ex1.target.wav\n")
    ds = Dataset(str(man), program=prog)
    assert [p.weight for p in ds.pairs] == [2.0, 1.0]
    assert ds.pairs[0].name == f"{rel}/ex0.target.wav"
    man.write_text(f"{rel}/ex0.in.wav,{rel}/ex0.target.wav,-1\n")
    with pytest.raises(FaustError) as e:
        Dataset(str(man), program=prog)
    assert e.value.message == (f"manifest '{man}', line 1: weight '-1' is not a positive "
                               "number")


# ---------------------------------------------------------------- bad files

def bad_case(kind, folder, prog):
    """Make a folder of two good pairs and one bad one; returns the bad file's path."""
    make_pairs(prog, folder, [HIDDEN] * 2)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 500))
    y = render(prog, x, 500, HIDDEN)
    ip, tp = os.path.join(folder, "zz.in.wav"), os.path.join(folder, "zz.target.wav")
    write_wav(ip, x, SR, 64)
    if kind == "channels":
        write_wav(tp, np.vstack([y, y]), SR, 64)
    elif kind == "rate":
        write_wav(tp, y, 16000, 64)
    elif kind == "nan":
        y = y.copy()
        y[0, 17] = np.nan
        os.remove(ip)
        ip = os.path.join(folder, "zz.in.npy")
        np.save(ip, x)
        tp = os.path.join(folder, "zz.target.npy")
        np.save(tp, y)
    elif kind == "unreadable":
        with open(tp, "wb") as f:
            f.write(b"not a wav file")
    elif kind == "no-input":
        os.remove(ip)
        write_wav(tp, y, SR, 64)
    return ip, tp


BAD = {
    "channels": lambda ip, tp: f"dataset: '{tp}': 2 channels, the program has 1 output",
    "rate": lambda ip, tp: (f"dataset: '{tp}': sample rate 16000 Hz, the dataset's is 8000 Hz "
                            f"(the rate of '{os.path.dirname(tp)}/ex0.in.wav')"),
    "nan": lambda ip, tp: f"dataset: '{tp}': NaN sample (channel 1, sample 17)",
    "unreadable": lambda ip, tp: (f"dataset: '{tp}' is not a readable WAV file: format not "
                                  "recognised"),
    "no-input": lambda ip, tp: (f"dataset: '{tp}': no input file beside it (the program has "
                                "1 input)"),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_files_refused_by_name(kind, prog, tmp_path):
    ip, tp = bad_case(kind, str(tmp_path), prog)
    with pytest.raises(FaustError) as e:
        Dataset(str(tmp_path), program=prog)
    assert e.value.message == BAD[kind](ip, tp)
    # the same check when the channel counts come later (Trainer.fit -> require)
    if kind in ("channels", "no-input"):
        ds_error = None
        try:
            Dataset(str(tmp_path)).require(1, 1)
        except FaustError as err:
            ds_error = err.message
        assert ds_error == BAD[kind](ip, tp)


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_files_skipped_with_a_warning(kind, prog, tmp_path):
    ip, tp = bad_case(kind, str(tmp_path), prog)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = Dataset(str(tmp_path), program=prog, skip_bad=True)
    assert ds.skipped == [BAD[kind](ip, tp)]
    assert [str(w.message) for w in caught] == ["skipping a pair: " + BAD[kind](ip, tp)]
    assert [p.name for p in ds.pairs] == ["ex0.target.wav", "ex1.target.wav"]


def test_segment_longer_than_a_pair(pairs_dir, prog):
    with pytest.raises(FaustError) as e:
        Dataset(pairs_dir, program=prog, segment=0.06)      # 480 samples
    assert e.value.message == (f"dataset: '{pairs_dir}/ex0.target.wav': 400 samples, shorter "
                               "than the segment (480 samples)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = Dataset(pairs_dir, program=prog, segment=0.06, skip_bad=True)
    assert len(ds.pairs) == 4 and len(ds.skipped) == 2


# ---------------------------------------------------------------- fitting

def test_fit_dataset_recovers_hidden_parameters(pairs_dir, prog):
    ds = Dataset(pairs_dir, program=prog, val=0.2, batch=2, segment=0.025, seed=1)
    lines = []
    r = trainer(prog, lr=0.03).fit(ds, epochs=25, log=lines.append)
    assert abs(r.params["gain"] - 0.6) < 1e-3 and abs(r.params["dc"] - 0.2) < 1e-3
    assert len(r.history) == 25 and r.history[-1]["val_loss"] < 1e-5
    assert r.steps == 25 * 6 and len(r.losses) == r.steps
    assert lines[0].startswith("epoch 1/25: train ") and ", validation " in lines[0]
    assert lines[0].endswith(" segments/s)") and r.history[0]["examples_per_s"] > 0


def test_early_stopping_returns_the_best_epoch(pairs_dir, prog):
    ds = Dataset(pairs_dir, program=prog, val=0.2, batch=2, seed=1)
    r = trainer(prog, lr=0.2).fit(ds, epochs=60, patience=2)
    vals = [h["val_loss"] for h in r.history]
    assert len(vals) < 60
    best = int(np.argmin(vals))
    assert len(vals) == best + 3                 # two epochs without improvement
    assert r.final_loss == pytest.approx(vals[best], rel=1e-12)


def test_target_only_dataset(dc_prog, tmp_path):
    for k, dc in enumerate([0.4] * 3):
        write_wav(tmp_path / f"s{k}.target.wav", render(dc_prog, None, 300, {"dc": dc}), SR, 64)
    ds = Dataset(str(tmp_path), program=dc_prog, batch=3)
    r = Trainer(dc_prog, optimizer="adam", lr=0.02).fit(ds, epochs=200)
    assert abs(r.params["dc"] - 0.4) < 1e-3
    man = tmp_path / "m.csv"
    man.write_text("input,target\n,s0.target.wav\n,s1.target.wav\n")
    assert [p.x for p in Dataset(str(man), program=dc_prog).pairs] == [None, None]
    np.save(tmp_path / "s0.in.npy", np.zeros((1, 300)))
    with pytest.raises(FaustError) as e:
        Dataset(str(tmp_path), program=dc_prog)
    assert e.value.message == (f"dataset: '{tmp_path}/s0.in.npy': an input file, but the "
                               "program has no inputs")


def test_resume_continues_to_the_same_parameters(pairs_dir, prog, tmp_path):
    ds = Dataset(pairs_dir, program=prog, val=0.2, batch=2, segment=0.025, seed=2)
    kw = dict(lr=0.03, schedule="cosine")
    whole = trainer(prog, **kw).fit(ds, epochs=5, checkpoint=tmp_path / "a")

    class Killed(Exception):
        pass

    def kill(step, loss, params):
        if step == 2 * 6 + 3:                   # in the middle of the third epoch
            raise Killed
    with pytest.raises(Killed):
        trainer(prog, **kw).fit(ds, epochs=5, checkpoint=tmp_path / "b", callback=kill)
    ck = json.loads((tmp_path / "b" / "checkpoint.json").read_text())
    assert ck["epoch"] == 2 and ck["step"] == 12 and ck["optimizer"]["t"] == 12
    assert set(ck["params"]) == {"gain", "dc"}
    resumed = trainer(prog, **kw).fit(ds, epochs=5, checkpoint=tmp_path / "b", resume=True)
    assert resumed.params == whole.params             # exactly
    assert np.array_equal(resumed.losses, whole.losses)
    assert resumed.history[-1]["val_loss"] == whole.history[-1]["val_loss"]
    other = Dataset(pairs_dir, program=prog, val=0.2, batch=3, segment=0.025, seed=2)
    with pytest.raises(FaustError, match="a checkpoint of another run"):
        trainer(prog, **kw).fit(other, epochs=5, checkpoint=tmp_path / "b", resume=True)


def test_per_file_fits_and_table(per_file_dir, prog, tmp_path):
    ds = Dataset(per_file_dir, program=prog)
    rows = trainer(prog, lr=0.05).fit_each(ds, steps=250)
    assert [r["file"] for r in rows] == ["ex0.target.wav", "ex1.target.wav", "ex2.target.wav"]
    for row, hidden in zip(rows, PER_FILE):
        assert abs(row["gain"] - hidden["gain"]) < 1e-3
        assert abs(row["dc"] - hidden["dc"]) < 1e-3
        assert row["steps"] == 250 and row["loss"] < 1e-6
    write_table(tmp_path / "t.json", rows, ["gain", "dc"])
    assert json.loads((tmp_path / "t.json").read_text()) == rows
    write_table(tmp_path / "t.csv", rows, ["gain", "dc"])
    lines = (tmp_path / "t.csv").read_text().splitlines()
    assert lines[0] == "file,gain,dc,loss,steps" and len(lines) == 4
    assert lines[1].split(",")[0] == "ex0.target.wav"
    assert float(lines[2].split(",")[1]) == rows[1]["gain"]
    with pytest.raises(FaustError):
        write_table(tmp_path / "t.txt", rows, ["gain", "dc"])
    assert not (tmp_path / "t.txt").exists()


def test_per_file_fits_in_segments(per_file_dir, prog):
    """Each pair's fit in chunks (the state carried): a segment as long as the longest pair
    is the whole-pair fit, bit for bit; 100-sample segments of this memoryless program give
    the same loss and gradient up to rounding (the chunks' losses weighted by length)."""
    ds = Dataset(per_file_dir, program=prog)
    whole = trainer(prog, lr=0.05).fit_each(ds, steps=60)
    assert trainer(prog, lr=0.05).fit_each(ds, steps=60, segment=1.0) == whole
    chunked = trainer(prog, lr=0.05).fit_each(ds, steps=60, segment=100 / SR)
    for a, b in zip(chunked, whole):
        assert a["file"] == b["file"] and a["steps"] == b["steps"]
        assert abs(a["gain"] - b["gain"]) < 1e-9 and abs(a["dc"] - b["dc"]) < 1e-9
    with pytest.raises(FaustError, match=r"^error: segment must be a positive number of seconds, "
                                         r"got -1$"):
        trainer(prog).fit_each(ds, steps=1, segment=-1)


# ---------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return diff_on_model(tmp_path_factory, "gain_dc.dsp", GAIN_DC, ["gain", "dc"])


def test_cli_dataset_training(cli, model, pairs_dir, tmp_path):
    r = cli("train", model, "--dataset", pairs_dir, "--val", "0.2", "--batch", "2",
            "--segment", "0.025", "--epochs", "25", "--lr", "0.03", "--seed", "1",
            "--checkpoint", tmp_path / "ck", "--preset", tmp_path / "p.json")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith(f"{model}: dataset {pairs_dir}: 5 training, 1 validation "
                               "pair(s), segments of 200 samples at 8000 Hz, batch 2, loss l2, "
                               "adam, forward mode, 25 epoch(s), 150 steps in ")
    assert "epoch 25/25: train " in r.stderr
    values = json.loads((tmp_path / "p.json").read_text())["values"]
    assert abs(values["gain"] - 0.6) < 1e-3 and abs(values["dc"] - 0.2) < 1e-3
    ck = json.loads((tmp_path / "ck" / "checkpoint.json").read_text())
    assert ck["epoch"] == 25 and ck["step"] == 150


@pytest.mark.parametrize("table", ["t.csv", "t.json"])
def test_cli_per_file_table(cli, model, per_file_dir, tmp_path, table):
    out = tmp_path / table
    r = cli("train", model, "--dataset", per_file_dir, "--per-file", "--results", out,
            "--steps", "250", "--lr", "0.05", "-q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.endswith(f"  results: {out}\n")
    if table.endswith(".json"):
        rows = json.loads(out.read_text())
    else:
        lines = out.read_text().splitlines()
        assert lines[0] == "file,dc,gain,loss,steps"     # the program's order of [diff:on]
        rows = [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    assert [r["file"] for r in rows] == ["ex0.target.wav", "ex1.target.wav", "ex2.target.wav"]
    for row, hidden in zip(rows, PER_FILE):
        assert abs(float(row["gain"]) - hidden["gain"]) < 1e-3
        assert abs(float(row["dc"]) - hidden["dc"]) < 1e-3
        assert int(row["steps"]) == 250


def test_cli_per_file_in_segments(cli, model, per_file_dir, tmp_path):
    out = tmp_path / "t.csv"
    r = cli("train", model, "--dataset", per_file_dir, "--per-file", "--results", out,
            "--steps", "250", "--lr", "0.05", "--segment", "0.0125", "-q")
    assert r.exit_code == 0, r.stderr
    assert f"forward mode, 250 steps each (segments of 0.0125 s), in " in r.stdout
    lines = out.read_text().splitlines()
    rows = [dict(zip(lines[0].split(","), line.split(","))) for line in lines[1:]]
    for row, hidden in zip(rows, PER_FILE):
        assert abs(float(row["gain"]) - hidden["gain"]) < 1e-3
        assert abs(float(row["dc"]) - hidden["dc"]) < 1e-3


def test_cli_skip_bad_warns_by_name(cli, model, prog, tmp_path):
    ip, tp = bad_case("nan", str(tmp_path / "d"), prog)
    args = ["train", model, "--dataset", tmp_path / "d", "--epochs", "1", "-q"]
    r = cli(*args)
    assert (r.exit_code, r.stdout) == (1, "")
    assert r.stderr == f"faustdiff: error: {BAD['nan'](ip, tp)}\n"
    r = cli(*args, "--skip-bad")
    assert r.exit_code == 0, r.stderr
    assert r.stderr == f"faustdiff: warning: skipped: {BAD['nan'](ip, tp)}\n"
    assert ": 2 training, 0 validation pair(s)" in r.stdout


@pytest.mark.parametrize("extra,message", [
    (["--target", "x.wav"], "--dataset takes the pairs from DIR_OR_MANIFEST: drop --target"),
    (["--per-file"], "--per-file needs --results TABLE.csv|TABLE.json"),
    (["--per-file", "--results", "t.txt"],
     "cannot write 't.txt': the results table needs a .csv or .json file name"),
    (["--per-file", "--results", "t.csv", "--epochs", "3"],
     "--per-file fits every pair for --steps steps: drop --epochs"),
    (["--results", "t.csv"], "--results is the table of --per-file: add --per-file"),
    (["--steps", "5"], "--steps: training over --dataset takes one step per mini-batch; "
                       "give --epochs N (or add --per-file)"),
    (["--resume"], "--resume needs --checkpoint DIR"),
    (["--patience", "2"], "--patience stops on the validation loss: add --val F"),
])
def test_cli_bad_combinations(cli, model, pairs_dir, extra, message):
    r = cli("train", model, "--dataset", pairs_dir, *extra)
    assert (r.exit_code, r.stdout, r.stderr) == (1, "", f"faustdiff: error: {message}\n")


def test_cli_dataset_options_need_a_dataset(cli, model):
    r = cli("train", model, "--target", "t.wav", "--epochs", "3", "--val", "0.1")
    assert (r.exit_code, r.stderr) == (1, "faustdiff: error: --val/--epochs: only with "
                                          "--dataset DIR_OR_MANIFEST\n")
    r = cli("train", model)
    assert (r.exit_code, r.stderr) == (1, "faustdiff: error: train: give --target FILE (or "
                                          "--dataset DIR_OR_MANIFEST)\n")


# ---------------------------------------------------------------- the README's example

def test_readme_dataset_example(cli, tmp_path, monkeypatch, capsys):
    """The Python block after `<!-- dataset-example -->` and the two commands after it."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    part = readme[readme.index("<!-- dataset-example -->"):]
    code = part[part.index("```python\n") + 10:part.index("\n```\n")]
    commands = [line.split()[1:] for line in part.splitlines()
                if line.startswith("    faustdiff train ")][:2]
    assert len(commands) == 2 and "--per-file" in commands[1]
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(code, "README.md", "exec"), env)
    r = env["r"]
    assert abs(r.params["gain"] - 0.6) < 1e-3 and abs(r.params["dc"] - 0.2) < 1e-3
    for args in commands:
        res = cli(*args, "-q")
        assert res.exit_code == 0, res.stderr
    rows = (tmp_path / "presets.csv").read_text().splitlines()
    assert rows[0] == "file,dc,gain,loss,steps" and len(rows) == 7
    assert all(abs(float(row.split(",")[2]) - 0.6) < 1e-3 for row in rows[1:])


def test_manifest_weights_weight_the_batch_loss(pairs_dir, prog, tmp_path):
    man = tmp_path / "w.csv"
    man.write_text(f"{pairs_dir}/ex0.in.wav,{pairs_dir}/ex0.target.wav,3\n"
                   f"{pairs_dir}/ex1.in.wav,{pairs_dir}/ex1.target.wav,1\n")
    ds = Dataset(str(man), program=prog, batch=2)
    tr = trainer(prog)
    segs = ds.segments(ds.pairs)
    theta = np.array([0.3, 0.0])
    v, g, _ = tr.loss_and_grad(theta, [s[0] for s in segs], [s[1] for s in segs], [3, 1])
    v0, g0, _ = tr.loss_and_grad(theta, [segs[0][0]], [segs[0][1]])
    v1, g1, _ = tr.loss_and_grad(theta, [segs[1][0]], [segs[1][1]])
    assert v == pytest.approx((3 * v0 + v1) / 4, rel=1e-12)
    assert np.allclose(g, (3 * g0 + g1) / 4, rtol=1e-12)
    assert tr._dataset_loss(theta, segs, 2) == pytest.approx((3 * v0 + v1) / 4, rel=1e-12)


def test_reverse_mode_dataset_fit_matches_forward(pairs_dir, prog):
    from faustdiff.backend import reverse as R
    rev = R.compile_source(GAIN_DC, "<gain_dc>", SR, (), ["gain", "dc"], None,
                           input_grads=False)
    ds = Dataset(pairs_dir, program=rev, val=0.2, batch=2, segment=0.025, seed=1)
    a = trainer(prog, lr=0.03).fit(ds, epochs=4)
    b = trainer(rev, lr=0.03).fit(ds, epochs=4)
    assert b.params == pytest.approx(a.params, rel=1e-9)
    assert np.allclose(a.losses, b.losses, rtol=1e-9)


def test_cli_resume_equals_an_uninterrupted_run(cli, model, pairs_dir, tmp_path):
    base = ["train", model, "--dataset", pairs_dir, "--val", "0.2", "--batch", "2",
            "--segment", "0.025", "--lr", "0.03", "-q"]
    r = cli(*base, "--epochs", "4", "--preset", tmp_path / "whole.json")
    assert r.exit_code == 0, r.stderr
    r = cli(*base, "--epochs", "2", "--checkpoint", tmp_path / "ck")
    assert r.exit_code == 0, r.stderr
    r = cli(*base, "--epochs", "4", "--checkpoint", tmp_path / "ck", "--resume",
            "--preset", tmp_path / "resumed.json")
    assert r.exit_code == 0, r.stderr
    whole = json.loads((tmp_path / "whole.json").read_text())["values"]
    assert json.loads((tmp_path / "resumed.json").read_text())["values"] == whole
    r = cli(*base, "--epochs", "4", "--checkpoint", tmp_path / "none", "--resume")
    assert not (tmp_path / "none").exists()
    assert (r.exit_code, r.stderr) == (1, f"faustdiff: error: resume: no checkpoint "
                                          f"'{tmp_path / 'none' / 'checkpoint.json'}'\n")
