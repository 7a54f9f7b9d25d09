"""Long files in chunks: segments rendered in turn with the state carried
(`Trainer.fit(x, t, segment=)`, `loss_and_grad(..., segment=)`, `Dataset(carry=True)`)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from faustdiff.audio_io import write_audio
from faustdiff.errors import FaustError
from faustdiff.learn.dataset import Dataset
from faustdiff.learn.train import Trainer, render
from conftest import diff_on_model

SR = 8000
# a biquad: state that lasts (a resonance), two learned parameters
BIQUAD = '''import("stdfaust.lib");
process = fi.resonlp(hslider("cutoff [scale:log]", 3000, 20, 4000, 1),
                     hslider("q", 2, 0.5, 10, 0.01), 1);'''
HIDDEN = {"cutoff": 700.0, "q": 3.0}
START = [1200.0, 1.5]
N = 2000


@pytest.fixture(scope="module")
def data():
    x = np.random.default_rng(3).uniform(-1, 1, (1, N))
    return x, render(BIQUAD, x, params=HIDDEN, sample_rate=SR)


@pytest.fixture(scope="module", params=["forward", "reverse"])
def tr(request):
    return Trainer(BIQUAD, params=["cutoff", "q"], sample_rate=SR, lr=0.05,
                   grad_mode=request.param)


def test_carried_segments_render_the_whole_file(tr, data):
    x, t = data
    _, _, whole = tr.loss_and_grad(START, [x], [t])
    for seg in (N, 700, 512, 1):
        _, _, parts = tr.loss_and_grad(START, [x], [t], segment=seg)
        assert np.array_equal(parts[0], whole[0]), seg


@pytest.mark.parametrize("grad_mode", ["forward", "reverse"])
def test_carried_segments_in_the_interpreter(grad_mode, data):
    x, t = data[0][:, :300], data[1][:, :300]
    tr = Trainer(BIQUAD, params=["cutoff", "q"], sample_rate=SR, grad_mode=grad_mode,
                 backend="interp")
    v, g, whole = tr.loss_and_grad(START, [x], [t])
    vs, gs, parts = tr.loss_and_grad(START, [x], [t], segment=70)
    assert np.array_equal(parts[0], whole[0]) and vs == pytest.approx(v, rel=1e-12)
    assert np.allclose(gs, g, rtol=1e-10 if grad_mode == "forward" else 0.05)


def test_segment_as_long_as_the_file_is_the_whole_file_gradient(tr, data):
    x, t = data
    v, g, _ = tr.loss_and_grad(START, [x], [t])
    for seg in (N, N + 1000):
        vs, gs, _ = tr.loss_and_grad(START, [x], [t], segment=seg)
        assert vs == v and np.array_equal(gs, g)
    tr.theta = np.array(START)
    whole = tr.fit(x, t, steps=6)
    tr.theta = np.array(START)
    tr.optimizer.reset()
    chunked = tr.fit(x, t, steps=6, segment=N / SR)
    tr.optimizer.reset()
    assert np.array_equal(whole.losses, chunked.losses)
    assert whole.params == chunked.params


def test_chunked_loss_and_gradient(tr, data):
    # l2 is a mean over samples: the segments' length-weighted losses are the whole loss;
    # forward mode carries the tangents (the whole-file gradient), reverse mode truncates
    # at segment boundaries (close for segments much longer than the filter's memory)
    x, t = data
    v, g, _ = tr.loss_and_grad(START, [x], [t])
    vs, gs, _ = tr.loss_and_grad(START, [x], [t], segment=512)
    assert vs == pytest.approx(v, rel=1e-12)
    if tr.grad_mode == "forward":
        assert np.allclose(gs, g, rtol=1e-10, atol=0)
    else:
        assert not np.array_equal(gs, g)
        assert np.allclose(gs, g, rtol=0.02)


def test_chunked_steps_keep_to_a_segment(tr, data):
    x, t = data
    seen = []
    inner = tr._evaluate

    def spy(progs, xs, ts, n):
        seen.append(n)
        return inner(progs, xs, ts, n)
    tr._evaluate = spy
    try:
        tr.theta = np.array(START)
        r = tr.fit(x, t, steps=2, segment=0.1)          # 800 samples: 800, 800, 400
    finally:
        del tr._evaluate
    assert seen == [800, 800, 400] * 3 and r.steps == 2


def test_chunked_fit_learns(data):
    x, t = data
    tr = Trainer(BIQUAD, params=["cutoff", "q"], sample_rate=SR, lr=0.05,
                 grad_mode="reverse", init=dict(zip(["cutoff", "q"], START)))
    r = tr.fit(x, t, steps=150, segment=0.05)
    assert r.final_loss < 1e-3 * r.losses[0]
    assert abs(r.params["cutoff"] - 700) < 10 and abs(r.params["q"] - 3) < 0.1


def test_bad_segment():
    tr = Trainer('process = _ * hslider("gain", 0.1, 0, 1, .001);', params=["gain"])
    for bad in (0, -1, float("inf"), "x"):
        with pytest.raises(FaustError, match="segment must be a positive number of seconds"):
            tr.fit(np.zeros((1, 10)), np.zeros((1, 10)), steps=1, segment=bad)


# ---------------------------------------------------------------- datasets

@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    rng = np.random.default_rng(9)
    for k, n in enumerate((1500, 2200, 900, 1800)):
        x = rng.uniform(-1, 1, (1, n))
        write_audio(folder / f"f{k}.in.wav", x, SR, 64)
        write_audio(folder / f"f{k}.target.wav",
                    render(BIQUAD, x, params=HIDDEN, sample_rate=SR), SR, 64)
    return str(folder)


def test_carry_dataset_examples_are_whole_pairs(pairs):
    ds = Dataset(pairs, inputs=1, outputs=1, segment=0.125, carry=True, batch=2)
    assert ds.segment == 1000 and len(ds.pairs) == 4        # the 900-sample pair stays
    segs = ds.segments(ds.train)
    assert [s[1].shape[1] for s in segs] == [1500, 2200, 900, 1800]
    assert ds.unit == "pairs" and "state carried" in repr(ds)
    assert Dataset(pairs, inputs=1, outputs=1, carry=True).segment == 2200
    assert Dataset(pairs, inputs=1, outputs=1).segment == 900


def test_carry_dataset_loss_is_the_whole_pairs_loss(pairs, tr):
    ds = Dataset(pairs, program=tr, segment=0.0625, carry=True, batch=3)
    segs = ds.segments(ds.train)
    whole = [tr.loss_and_grad(START, [s[0]], [s[1]])[0] for s in segs]
    ns = np.array([s[1].shape[1] for s in segs])
    want = float(np.dot(whole, ns) / ns.sum())
    assert tr._dataset_loss(START, segs, 3, ds.segment) == pytest.approx(want, rel=1e-12)


def test_carry_dataset_training(pairs, tmp_path):
    tr = Trainer(BIQUAD, params=["cutoff", "q"], sample_rate=SR, lr=0.05,
                 init=dict(zip(["cutoff", "q"], START)))
    ds = Dataset(pairs, program=tr, segment=0.05, carry=True, batch=2, val=0.25)
    lines = []
    r = tr.fit(ds, epochs=60, log=lines.append, checkpoint=tmp_path / "ck")
    assert r.steps == 60 * 2 and lines[0].endswith(" pairs/s)")
    assert abs(r.params["cutoff"] - 700) < 10 and abs(r.params["q"] - 3) < 0.1
    ck = json.loads((tmp_path / "ck" / "checkpoint.json").read_text())
    assert ck["signature"]["carry"] is True


# ---------------------------------------------------------------- the command line

@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return diff_on_model(tmp_path_factory, "bq.dsp", BIQUAD, ["cutoff [scale:log]", "q"])


def test_cli_segment_with_a_target(cli, model, pairs):
    x, t = os.path.join(pairs, "f1.in.wav"), os.path.join(pairs, "f1.target.wav")
    r = cli("train", model, "-i", x, "-t", t, "--steps", "3", "--segment", "0.1", "-q")
    assert r.exit_code == 0, r.stderr
    assert "1 example(s), 2200 samples in segments of 800 (state carried) at 8000 Hz" \
        in r.stdout


def test_cli_carry_state(cli, model, pairs):
    r = cli("train", model, "--dataset", pairs, "--carry-state", "--segment", "0.1",
            "--epochs", "2", "--batch", "2", "-q")
    assert r.exit_code == 0, r.stderr
    assert "4 training, 0 validation pair(s), segments of 800 samples (state carried) at " \
           "8000 Hz, batch 2" in r.stdout and "2 epoch(s), 4 steps" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--carry-state"], "--carry-state: only with --dataset"),
    (["--segment", "0"], "--segment must be a positive number of seconds, got 0.0"),
    (["--segment", "-1"], "--segment must be a positive number of seconds"),
])
def test_cli_bad_chunk_options(cli, model, pairs, args, message):
    x, t = os.path.join(pairs, "f1.in.wav"), os.path.join(pairs, "f1.target.wav")
    r = cli("train", model, "-i", x, "-t", t, "--steps", "3", *args)
    assert r.exit_code == 1 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
