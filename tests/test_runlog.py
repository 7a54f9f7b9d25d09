"""The JSON Lines log of a training run (`fit(..., log_path=)`, `faustdiff train --log`)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from faustdiff.audio_io import write_audio
from faustdiff.backend import grad as G
from faustdiff.errors import FaustError
from faustdiff.learn.dataset import Dataset
from faustdiff.learn.train import Trainer

SR = 8000
GAIN_DC = 'process = _ * hslider("gain", 0.1, 0, 1, .001) + hslider("dc", 0, -1, 1, .001);'


@pytest.fixture(scope="module")
def prog():
    return G.compile_source(GAIN_DC, "<gain_dc>", SR, (), ["gain", "dc"])


def example(prog, n=300, seed=0):
    x = np.random.default_rng(seed).uniform(-1, 1, (1, n))
    prog.set_param("gain", 0.6)
    prog.set_param("dc", 0.2)
    prog.reset()
    return x, prog.compute(x, n)


def records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def check_steps(recs, result):
    steps = [r for r in recs if r["type"] == "step"]
    assert len(steps) == result.steps == len(result.losses)
    assert [r["step"] for r in steps] == list(range(result.steps))
    assert [r["loss"] for r in steps] == list(result.losses)
    for label, values in result.trajectory.items():
        assert [r["params"][label] for r in steps] == list(values[:-1])
    elapsed = [r["elapsed"] for r in recs]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    end = recs[-1]
    assert end["type"] == "end" and end["steps"] == result.steps
    assert end["final_loss"] == result.final_loss and end["params"] == result.params
    return steps


def test_fit_log_records_every_step(prog, tmp_path):
    x, t = example(prog)
    tr = Trainer(prog, lr=0.05)
    r = tr.fit(x, t, steps=12, log_path=tmp_path / "run.jsonl")
    recs = records(tmp_path / "run.jsonl")
    check_steps(recs, r)
    assert len(recs) == 13 and all("epoch" not in rec for rec in recs)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def pair_folder(prog, tmp_path, count: int):
    """A dataset folder of `count` pairs (400 samples each, from `example`)."""
    folder = tmp_path / "pairs"
    folder.mkdir()
    for k in range(count):
        x, t = example(prog, 400, seed=k)
        write_audio(folder / f"e{k}.in.wav", x, SR, 64)
        write_audio(folder / f"e{k}.target.wav", t, SR, 64)
    return folder


def test_dataset_log_has_epochs(prog, tmp_path):
    folder = pair_folder(prog, tmp_path, 4)
    ds = Dataset(folder, program=prog, val=0.25, batch=2, segment=0.025)
    r = Trainer(prog, lr=0.05).fit(ds, epochs=3, log_path=tmp_path / "ds.jsonl")
    recs = records(tmp_path / "ds.jsonl")
    steps = check_steps(recs, r)
    epochs = [rec for rec in recs if rec["type"] == "epoch"]
    assert len(epochs) == 3 and r.steps == 3 * 3   # 3 pairs x 2 segments, batches of 2
    assert [s["epoch"] for s in steps] == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    for e, h in zip(epochs, r.history):
        assert {k: e[k] for k in h} == h and e["val_loss"] is not None
        assert e["examples_per_s"] > 0 and "train_loss" in e


def test_failed_run_leaves_no_log(prog, tmp_path):
    x, t = example(prog)
    path = tmp_path / "run.jsonl"
    path.write_text("old\n")

    def stop(step, loss, params):
        if step == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        Trainer(prog).fit(x, t, steps=10, callback=stop, log_path=path)
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["run.jsonl"]


@pytest.mark.parametrize("where, message", [
    ("nowhere/run.jsonl", "no such folder"), (".", "it is a folder")])
def test_bad_log_path(prog, tmp_path, where, message):
    x, t = example(prog)
    calls = []
    with pytest.raises(FaustError, match=f"cannot write the log '.*': {message}"):
        Trainer(prog).fit(x, t, steps=3, log_path=tmp_path / where,
                          callback=lambda *a: calls.append(a))
    assert not calls


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    path = d / "gd.dsp"
    path.write_text(GAIN_DC.replace('"gain"', '"gain [diff:on]"')
                    .replace('"dc"', '"dc [diff:on]"') + "\n")
    p = G.compile_source(GAIN_DC, "<gain_dc>", SR, (), ["gain", "dc"])
    x2, t = example(p, 256, seed=3)
    np.save(d / "x.npy", x2)
    np.save(d / "t.npy", t)
    return str(path), str(d / "x.npy"), str(d / "t.npy")


def test_cli_log(cli, model, tmp_path):
    dsp, x, t = model
    out = tmp_path / "run.jsonl"
    r = cli("train", dsp, "-i", x, "-t", t, "--steps", "15", "--lr", "0.05", "-q",
            "--sr", SR, "--log", out)
    assert r.exit_code == 0, r.stderr
    assert f"  log: {out}" in r.stdout
    recs = records(out)
    steps = [rec for rec in recs if rec["type"] == "step"]
    assert len(steps) == 15 and recs[-1]["type"] == "end" and recs[-1]["steps"] == 15
    learned = dict(line.strip().split(" = ") for line in r.stdout.splitlines() if " = " in line)
    assert recs[-1]["params"]["gain"] == pytest.approx(float(learned["gain"]), rel=1e-8)
    assert steps[0]["params"] == {"gain": 0.1, "dc": 0.0}


@pytest.mark.parametrize("where, message", [
    ("nowhere/run.jsonl", "no such folder"), (".", "it is a folder")])
def test_cli_bad_log_path(cli, model, tmp_path, where, message):
    dsp, x, t = model
    r = cli("train", dsp, "-i", x, "-t", t, "--steps", "5", "--sr", SR,
            "--log", tmp_path / where)
    assert r.exit_code == 1 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("faustdiff: error: cannot write the log '")
    assert message in lines[0] and "Traceback" not in r.stderr


def test_cli_log_not_with_per_file(cli, model, tmp_path):
    dsp, _, _ = model
    r = cli("train", dsp, "--dataset", tmp_path, "--per-file", "--results", tmp_path / "t.csv",
            "--log", tmp_path / "run.jsonl")
    assert r.exit_code == 1 and "--log records one run: not with --per-file" in r.stderr


def test_cli_dataset_log(cli, model, prog, tmp_path):
    dsp, _, _ = model
    folder = pair_folder(prog, tmp_path, 3)
    out = tmp_path / "ds.jsonl"
    r = cli("train", dsp, "--dataset", folder, "--segment", "0.025", "--batch", "2",
            "--epochs", "4", "--val", "0.3", "-q", "--log", out)
    assert r.exit_code == 0, r.stderr
    recs = records(out)
    steps = [rec for rec in recs if rec["type"] == "step"]
    epochs = [rec for rec in recs if rec["type"] == "epoch"]
    assert len(steps) == 4 * 2 and [s["step"] for s in steps] == list(range(8))
    assert [s["epoch"] for s in steps] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4]
    assert all(e["val_loss"] is not None and e["examples_per_s"] > 0 for e in epochs)
    assert recs[-1]["type"] == "end" and recs[-1]["steps"] == 8
    assert "2 training, 1 validation pair(s)" in r.stdout and "8 steps" in r.stdout
