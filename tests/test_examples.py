"""The examples/ programs learn what their header says they learn.

Each learning example is rendered for a second or two of audio and its learned bargraph
values are checked against the hidden parameters; the estimation example is driven by
gradient descent from Python on the partial derivatives it outputs. Every example also runs
through the command line, and says in its header what it learns and what it converges to.
"""
from __future__ import annotations

import numpy as np
import pytest

import faustdiff

from conftest import EXAMPLES


SR = 44100
# (hello.dsp renders noise; ddsp_filter.dsp is the filter examples/torch_ddsp.py trains)
DIFF_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("*.dsp")
                       if p.name not in ("hello.dsp", "ddsp_filter.dsp"))


def render(name: str, seconds: float, **params):
    program = faustdiff.compile_file(str(EXAMPLES / name))
    for k, v in params.items():
        program.set_param(k, v)
    program.reset()
    program.compute(n=int(SR * seconds))
    return program.bargraphs


def at(trace, seconds: float) -> float:
    return float(trace[int(SR * seconds) - 1])


def test_there_are_nine_examples_with_a_header():
    assert len(DIFF_EXAMPLES) >= 9   # the nine diff.lib learners, and *_auto.dsp (test_train)
    for name in DIFF_EXAMPLES:
        text = (EXAMPLES / name).read_text()
        head = text.split("\n\n")[0]
        assert head.startswith(f"// {name}:"), name
        assert "Learns" in text or "learns" in head, name
        assert "onverges to" in head, name


@pytest.mark.parametrize("name", DIFF_EXAMPLES)
def test_runs_from_the_command_line(name, cli, tmp_path):
    out = tmp_path / "out.csv"
    r = cli("run", EXAMPLES / name, "--samples", "64", "-o", out)
    assert (r.exit_code, r.stderr) == (0, ""), r
    assert out.read_text().startswith("out0,")


def test_gain_dc_learn_seed():
    bars = render("gain_dc_learn_seed.dsp", 1.0)
    assert abs(at(bars["gain"], 1.0) - 0.5) < 1e-3
    assert abs(at(bars["DC"], 1.0) + 0.5) < 1e-3


def test_gain_learn_l1():
    g = render("gain_learn_l1.dsp", 2.0)["learned gain"]
    assert abs(at(g, 0.5) - 0.5) < 0.01
    assert np.max(np.abs(g[SR // 2:] - 0.5)) < 0.01
    assert abs(np.mean(g[SR // 2:]) - 0.5) < 1e-3


def test_gain_dc_learn_l2():
    bars = render("gain_dc_learn_l2.dsp", 1.0)
    assert at(bars["g"], 1.0) == pytest.approx(0.5, abs=1e-9)
    assert at(bars["dc"], 1.0) == pytest.approx(-0.25, abs=1e-9)


def test_onepole_learn():
    a = render("onepole_learn.dsp", 1.0)["learned a"]
    assert abs(at(a, 0.1) - 0.5) < 1e-2
    assert at(a, 1.0) == pytest.approx(0.5, abs=1e-9)


def test_delay_gain_learn():
    bars = render("delay_gain_learn.dsp", 1.0)
    assert int(at(bars["delay"], 1.0)) == 10
    assert at(bars["gain"], 1.0) == pytest.approx(0.5, abs=1e-6)
    assert at(bars["loss"], 1.0) < 1e-20


def test_fir8_learn():
    bars = render("fir8_learn.dsp", 1.0)
    for i in range(8):
        assert at(bars[f"b{i}"], 1.0) == pytest.approx(np.sin(i), abs=1e-6), i


def test_lowpass_cutoff_learn():
    fc = render("lowpass_cutoff_learn.dsp", 1.0)["cutoff Hz"]
    assert abs(at(fc, 0.1) - 100) > 200          # it moved a long way in 0.1 s
    assert at(fc, 1.0) == pytest.approx(440, abs=0.1)


@pytest.mark.parametrize("hidden,seconds", [(440, 1.0), (3000, 0.25)])
def test_osc_freq_learn(hidden, seconds):
    f = render("osc_freq_learn.dsp", seconds, freq=hidden)["freq Hz"]
    assert at(f, seconds) == pytest.approx(hidden, abs=0.1)


def test_gain_dc_estimate_by_gradient_descent_from_python():
    # The program only reports the loss and its partials; descend on them from outside.
    program = faustdiff.compile_file(str(EXAMPLES / "gain_dc_estimate.dsp"))
    gain, dc = 1.0, 0.0
    block = 441                                   # 10 ms: 4.41 periods of the 440 Hz input
    first = None
    for k in range(300):
        program.set_param("gain", gain)
        program.set_param("dc", dc)
        loss, dgain, ddc = program.compute(n=block).mean(axis=1)
        first = loss if first is None else first
        step = 0.1 / (1 + k / 10)                 # L1 partials do not shrink: decay the step
        gain -= step * dgain
        dc -= step * ddc
    assert first > 0.4
    assert loss < 5e-3
    assert gain == pytest.approx(0.5, abs=0.01) and dc == pytest.approx(-0.5, abs=0.01)
