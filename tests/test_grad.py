"""Derivatives from the outside: `compile_source(..., wrt=...)` (faustdiff.backend.grad).

The partials are checked against central differences of the plain program (the parameter
moved by ±h, state reset), through recursion, delays and several outputs, on both backends.
"""
from __future__ import annotations

import numpy as np
import pytest

import faustdiff
from faustdiff.backend import grad
from faustdiff.errors import FaustError

GAIN_DC = '''
gain = hslider("gain", 0.5, 0, 1, 0.01);
dc = hslider("dc", 0.1, -1, 1, 0.01);
process = _ * gain + dc, (_ : + ~ *(gain));
'''

RICH = '''import("stdfaust.lib");
fc = hslider("cutoff [scale:log]", 800, 20, 20000, 1);
q = hslider("q", 2, 0.5, 10, 0.01);
d = hslider("delay", 3.5, 0, 8, 1);
process = fi.resonlp(fc, q, 1), (_ <: _@int(d) * q + sin(_ * fc / 1000));
'''


def _fd(prog, x, label, value, h):
    outs = []
    for v in (value + h, value - h):
        prog.set_param(label, v)
        prog.reset()
        outs.append(prog.compute(x))
    prog.set_param(label, value)
    return (outs[0] - outs[1]) / (2 * h)


@pytest.mark.parametrize("backend", ["interp", None])
def test_partials_match_central_differences(backend):
    p = faustdiff.compile_source(GAIN_DC, wrt=["gain", "dc"], backend=backend)
    assert isinstance(p, grad.GradProgram)
    assert p.wrt == ["gain", "dc"] and p.num_outputs == 2 and p.num_wrt == 2
    x = np.sin(np.arange(64) * 0.3).reshape(2, 32)
    y, d = p.compute_with_grad(x)
    assert y.shape == (2, 32) and d.shape == (2, 2, 32)
    assert np.array_equal(d, p.partials)
    plain = faustdiff.compile_source(GAIN_DC, backend=backend)
    assert np.array_equal(y, plain.compute(x))
    for i, (label, v) in enumerate([("gain", 0.5), ("dc", 0.1)]):
        fd = _fd(p, x, label, v, 1e-6)
        assert np.allclose(d[i], fd, atol=1e-7, rtol=1e-6), label
    assert np.array_equal(d[1, 0], np.ones(32))      # ∂(x·g + dc)/∂dc
    assert np.array_equal(d[1, 1], np.zeros(32))     # the recursion does not use dc


def test_partials_through_filters_delays_and_tables():
    p = faustdiff.compile_source(RICH, wrt=["cutoff", "q"])
    x = np.random.default_rng(0).uniform(-1, 1, (2, 400))
    _, d = p.compute_with_grad(x)
    for i, (label, v, h) in enumerate([("cutoff", 800.0, 1e-3), ("q", 2.0, 1e-6)]):
        fd = _fd(p, x, label, v, h)
        scale = np.abs(fd).max()
        assert np.abs(d[i] - fd).max() <= 1e-6 * scale + 1e-9, label


def test_declared_parameters_and_compile_file(tmp_path):
    src = ('g = hslider("gain [diff:on]", 0.5, 0, 1, 0.01);\n'
           'f = hslider("freq [diff:1][scale:log]", 100, 10, 1000, 1);\n'
           'k = hslider("other", 1, 0, 2, 0.1);\n'
           'process = _ * g * k + f;\n')
    path = tmp_path / "m.dsp"
    path.write_text(src)
    p = faustdiff.compile_file(path, wrt="auto")
    assert p.wrt == ["freq", "gain"]      # Faust's UI order: sorted by (raw) label
    specs = {s.label: s for s in p.param_specs}
    assert specs["freq"].scale == "log" and specs["gain"].scale == "lin"
    assert (specs["freq"].lo, specs["freq"].hi, specs["freq"].init) == (10, 1000, 100)
    y, d = p.compute_with_grad(np.ones((1, 4)))
    assert np.allclose(d[0, 0], 1.0) and np.allclose(d[1, 0], 1.0)
    assert p.column_names() == ["out0", "dout0/dfreq", "dout0/dgain"]


def test_wrt_errors():
    with pytest.raises(FaustError, match="unknown parameter 'nope'.*gain"):
        faustdiff.compile_source(GAIN_DC, wrt=["nope"])
    with pytest.raises(FaustError, match="declares no parameter"):
        faustdiff.compile_source(GAIN_DC, wrt="auto")
    with pytest.raises(FaustError, match="button or checkbox"):
        faustdiff.compile_source('process = button("go") * hslider("g", 0, 0, 1, .1);',
                                 wrt=["go"])
    with pytest.raises(FaustError, match="named twice"):
        faustdiff.compile_source(GAIN_DC, wrt="gain,gain")


def test_clone_is_independent():
    p = faustdiff.compile_source(GAIN_DC, wrt="gain")
    x = np.ones((2, 8))
    a = p.compute(x)
    q = p.clone()
    q.set_param("gain", 0.25)
    assert np.array_equal(p.compute(x)[0], a[0])   # p untouched (gain 0.5)
    assert np.allclose(q.compute(x)[0], 0.25 + 0.1)


def test_param_spec_maps():
    s = grad.ParamSpec("f", 100.0, 20.0, 20000.0, "log")
    u = s.to_unit(632.455532)
    assert abs(u - 0.5) < 1e-9
    assert abs(s.from_unit(0.5) - 632.455532) < 1e-5
    h = 1e-7
    assert abs(s.dp_du(0.3) - (s.from_unit(0.3 + h) - s.from_unit(0.3 - h)) / (2 * h)) < 1e-3
    lin = grad.ParamSpec("g", 0.0, -1.0, 1.0)
    assert lin.to_unit(0.0) == 0.5 and lin.dp_du(0.2) == 2.0
    with pytest.raises(FaustError, match="positive range"):
        grad.ParamSpec("x", 0.0, 0.0, 1.0, "log")


# ---------------------------------------------------------------- the command line

def test_run_grad_writes_partial_columns(cli, tmp_path):
    path = tmp_path / "gd.dsp"
    path.write_text(GAIN_DC)
    out = tmp_path / "o.csv"
    r = cli("run", path, "--input", "sine", "-n", "16", "--grad", "gain,dc", "-o", out)
    assert r.exit_code == 0, r
    lines = out.read_text().splitlines()
    assert lines[0] == "out0,out1,dout0/dgain,dout1/dgain,dout0/ddc,dout1/ddc"
    data = np.loadtxt(out, delimiter=",", skiprows=1)
    x = np.sin(2 * np.pi * 440 * np.arange(16) / 44100)
    assert np.allclose(data[:, 2], x)           # ∂(x·gain + dc)/∂gain
    assert np.allclose(data[:, 4], 1.0) and np.allclose(data[:, 5], 0.0)
    r = cli("run", path, "--input", "sine", "-n", "16", "--grad", "gain")
    assert r.exit_code == 0 and "dout1/dgain: peak" in r.stdout
    npy = tmp_path / "o.npy"
    assert cli("run", path, "-n", "8", "--grad", "dc", "-o", npy).exit_code == 0
    assert np.load(npy).shape == (4, 8)
    r = cli("run", path, "-n", "8", "--grad", "nope")
    assert r.exit_code == 1 and "unknown parameter 'nope'" in r.stderr


def test_train_command(cli, tmp_path):
    from faustdiff.audio_io import read_audio, write_audio
    from faustdiff.learn.train import render
    path = tmp_path / "gd.dsp"
    path.write_text('process = _ * hslider("gain", 0.1, 0, 1, .001) '
                    '+ hslider("dc [diff:on]", 0, -1, 1, .001);')
    x = np.random.default_rng(2).uniform(-1, 1, (1, 512))
    write_audio(tmp_path / "in.flac", x, 44100)           # 24-bit PCM: read back for the target
    x = read_audio(tmp_path / "in.flac")[0]
    write_audio(tmp_path / "t.aiff", render(str(path), x, params={"gain": 0.5, "dc": -0.3}),
                44100, 64)
    r = cli("train", path, "--input", tmp_path / "in.flac", "--target", tmp_path / "t.aiff",
            "--params", "gain,dc", "--loss", "mse", "--optimizer", "adam", "--steps", "200",
            "--lr", "0.05")
    assert r.exit_code == 0, r
    learned = dict(line.strip().split(" = ") for line in r.stdout.splitlines() if " = " in line)
    assert abs(float(learned["gain"]) - 0.5) < 1e-4 and abs(float(learned["dc"]) + 0.3) < 1e-4
    assert "step 200/200" in r.stderr and "loss" in r.stderr
    # default --params auto: the [diff:on] slider only; --set starts it elsewhere
    r = cli("train", path, "-i", tmp_path / "in.flac", "-t", tmp_path / "t.aiff", "-q",
            "--steps", "5", "--set", "dc=0.2", "--set", "gain=0.5")
    assert r.exit_code == 0 and "dc = " in r.stdout and "gain" not in r.stdout.split("\n", 2)[2]
    r = cli("train", path, "-t", tmp_path / "t.aiff", "--params", "gain")
    assert r.exit_code == 1 and "give inputs" in r.stderr
