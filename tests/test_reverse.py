"""Reverse-mode AD (`mode="reverse"`, `vjp`): each rule against its JVP by transposition,
whole programs against forward mode and finite differences, the API and its errors."""
from __future__ import annotations

import os

import numpy as np
import pytest

import faustdiff
from faustdiff.ad.forward import Algebra
from faustdiff.ad.reverse import _Cotangents
from faustdiff.backend.program import Program
from faustdiff.core.primitives import FFUN_JVP, FFUN_VJP, PRIMITIVES
from faustdiff.errors import FaustError
from faustdiff.signals import ir as S

from conftest import CONFORMANCE, EXAMPLES
from test_ad import PRIMS

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies


# ---------------------------------------------------------------- transposition, rule by rule

def _values(signals) -> list:
    """The values of control-rate signals (None: 0), by the reference interpreter."""
    sigs = [S.real_const(0.0) if s is None else S.to_real(s) for s in signals]
    return list(Program(sigs, 0, backend="interp").compute(n=1)[:, 0])


def _transposition(name, x, rule_jvp, rule_vjp, rng):
    """<ct, J dx> and <J^T ct, dx> for one rule pair at the operand values x."""
    xs = tuple(S.const(v) for v in x)
    y = S.prim(name, *xs) if name in PRIMITIVES else S.ffun(name, "real", ("float",) * len(x), xs)
    dx = rng.uniform(-1, 1, len(x))
    ct = float(rng.uniform(-1, 1))
    real = [s.type == "real" for s in xs]
    tangent = rule_jvp(xs, tuple(S.const(float(d)) if r else None for d, r in zip(dx, real)),
                       y, Algebra())
    cts = rule_vjp(xs, S.const(ct), y, _Cotangents(None))
    assert len(cts) == len(xs)
    (jdx,) = _values([tangent])
    back = _values(cts)
    lhs = ct * jdx
    rhs = sum(b * d for b, d, r in zip(back, dx, real) if r)
    return lhs, rhs


@pytest.mark.parametrize("name", sorted(PRIMS))
def test_each_vjp_rule_is_the_transpose_of_its_jvp(name):
    row = PRIMITIVES[name]
    rng = np.random.default_rng(7)
    for _ in range(5):
        x = PRIMS[name](rng)
        if name in ("select2", "select3", "int"):
            x = (int(x[0]),) + tuple(x[1:]) if name != "int" else x
        lhs, rhs = _transposition(name, x, row.jvp, row.vjp, rng)
        assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12), (name, x)


def test_every_row_with_a_jvp_has_a_vjp():
    assert [n for n, r in PRIMITIVES.items() if r.jvp is not None and r.vjp is None] == []
    assert set(FFUN_VJP) == set(FFUN_JVP)


FFUN_DOMAIN = {"acosh": (1.2, 3), "atanh": (-0.8, 0.8), "asin": (-0.8, 0.8),
               "acos": (-0.8, 0.8), "log": (0.2, 3), "log10": (0.2, 3), "log2": (0.2, 3),
               "log1p": (0.2, 3), "sqrt": (0.2, 3), "cbrt": (0.2, 3), "pow": (0.2, 2),
               "tan": (-1.2, 1.2)}


@pytest.mark.parametrize("name", sorted(FFUN_VJP))
def test_each_foreign_vjp_rule_is_the_transpose_of_its_jvp(name):
    from faustdiff.core.primitives import FFUNS
    rng = np.random.default_rng(11)
    nargs = 2 if name in ("hypot", "copysign", "fmin", "fmax", "pow", "atan2", "fmod",
                          "remainder") else 1
    lo, hi = FFUN_DOMAIN.get(name, (-2, 2))
    assert name in FFUNS
    for _ in range(4):
        x = tuple(float(v) * (1 if k or lo >= 0 else rng.choice([-1, 1]))
                  for k, v in enumerate(rng.uniform(max(lo, 0.25) if lo >= 0 else lo, hi, nargs)))
        if name in ("fmod", "remainder"):
            x = (x[0] + 3.1, 0.7)
        lhs, rhs = _transposition(name, x, FFUN_JVP[name], FFUN_VJP[name], rng)
        assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-12), (name, x)


# ---------------------------------------------------------------- whole programs

def _contracted(src, wrt, x, ct, n, settings=(), filename="t.dsp", include=()):
    """(forward-mode partials contracted with ct, reverse-mode d_params, d_inputs, y)."""
    fwd = faustdiff.compile_source(src, filename, wrt=wrt, backend="interp", include=include)
    rev = faustdiff.compile_source(src, filename, wrt=wrt, mode="reverse", backend="interp",
                                   include=include)
    for k, v in settings:
        fwd.set_param(k, v)
        rev.set_param(k, v)
    fwd.reset()
    rev.reset()
    y, partials = fwd.compute_with_grad(x, n)
    y2 = rev.compute(x, n)
    dp, dx = rev.vjp(ct)
    return np.einsum("pon,on->p", partials, ct), dp, dx, y, y2


def _close(a, b, rel=1e-9):
    scale = max(1.0, float(np.max(np.abs(a))) if np.size(a) else 1.0)
    return np.allclose(a, b, rtol=rel, atol=rel * scale)


def _slider_labels(text):
    import re
    return sorted(set(re.findall(r'[hv]slider\("([^"\[]+)', text)))


CASES = sorted((CONFORMANCE / "diff").glob("*.dsp")) + sorted(EXAMPLES.glob("*.dsp"))


@pytest.mark.parametrize("dsp", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_reverse_equals_forward_on_every_diff_case_and_example(dsp):
    text = dsp.read_text()
    plain = faustdiff.compile_source(text, str(dsp), backend="interp")
    labels = [lab for lab in _slider_labels(text) if lab in plain.params]
    n = 300
    rng = np.random.default_rng(3)
    x = rng.standard_normal((plain.num_inputs, n)) * 0.5
    ct = rng.standard_normal((plain.num_outputs, n))
    if not labels:
        rev = faustdiff.compile_source(text, str(dsp), wrt=[], mode="reverse", backend="interp")
        y = rev.compute(x, n)
        dp, dx = rev.vjp(ct)
        assert dp.shape == (0,) and dx.shape == x.shape
        assert np.array_equal(y, plain.compute(x, n))
        return
    ref, dp, dx, y, y2 = _contracted(text, labels, x, ct, n, filename=str(dsp))
    assert np.array_equal(y, y2)
    assert _close(ref, dp), (labels, ref, dp)


def _fd_inputs(src, x, ct, points, eps=1e-6):
    p = faustdiff.compile_source(src, "t.dsp", backend="interp")
    out = {}
    for c, j in points:
        xp, xm = x.copy(), x.copy()
        xp[c, j] += eps
        xm[c, j] -= eps
        p.reset()
        yp = p.compute(xp, x.shape[1])
        p.reset()
        ym = p.compute(xm, x.shape[1])
        out[(c, j)] = float(np.sum((yp - ym) * ct) / (2 * eps))
    return out


PROGRAMS = {
    "gain": 'process = *(hslider("g", 0.5, 0, 1, 0.01));',
    "onepole": 'process = *(hslider("g", 0.5, 0, 1, 0.01)) : + ~ *(hslider("a", 0.3, 0, 1, 0.01));',
    "nested": 'process = (+ : *(hslider("a", 0.9, 0, 1, 0.01))) ~ (mem : *(hslider("b", 0.3, 0, 1, 0.01)) : (+ ~ *(0.5)));',
    "two_out": 'process = _ <: (sin : @(3)), (*(hslider("g", 0.5, 0, 1, 0.01)) : cos) : (+ ~ *(hslider("a", 0.2, 0, 1, 0.01))), _;',
    "lowpass": 'import("stdfaust.lib"); process = fi.lowpass(2, hslider("fc", 1000, 20, 20000, 1)) : ma.tanh;',
    "select": 'process = _ <: (_ > 0.2), _, *(hslider("g", 0.5, 0, 1, 0.01)) : select2 : mem : max(0.1);',
    "ctl_delay": 'process = _ <: _, @(int(hslider("d", 3, 0, 8, 1))) :> *(hslider("g", 0.5, 0, 1, 0.01));',
    "prefix": 'process = _ <: prefix(hslider("g", 0.5, 0, 1, 0.01) * 2, _ * _) : + ~ *(0.5);',
    "table": 'process = _ <: *(rdtable(waveform{1.5, -2, 0.25, 7}, int(abs(_ * 3)) % 4)) : *(hslider("g", 0.5, 0, 1, 0.01));',
    "tanh_ffun": 'process = *(hslider("g", 0.5, 0, 1, 0.01)) : ffunction(float tanh(float), <math.h>, "") : + ~ *(-0.5);',
    # a delay that changes every sample (a flanger's): its transpose scatters
    "var_delay": 'process = _ <: _, @(int(abs(_) * 10) % 7) :> *(hslider("g", 0.5, 0, 1, 0.01)) : + ~ *(0.3);',
    "var_delay_feedback": 'process = + ~ (_ <: @(int(abs(_) * 9) % 5 + 1) * hslider("g", 0.5, 0, 1, 0.01));',
    # a table written with a differentiable signal, read elsewhere
    "rwtable": 'process = _ <: rwtable(16, 0.0, int(abs(_ * 7)) % 16, *(hslider("g", 0.5, 0, 1, 0.01)), int(abs(_ * 5)) % 16) : + ~ *(0.25);',
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_gradients(name):
    src = PROGRAMS[name]
    labels = _slider_labels(src)
    n = 128
    rng = np.random.default_rng(5)
    plain = faustdiff.compile_source(src, "t.dsp", backend="interp")
    x = rng.standard_normal((plain.num_inputs, n))
    ct = rng.standard_normal((plain.num_outputs, n))
    ref, dp, dx, y, y2 = _contracted(src, labels, x, ct, n)
    assert np.array_equal(y, y2)
    assert _close(ref, dp), (ref, dp)
    fd = _fd_inputs(src, x, ct, [(0, 0), (0, 1), (0, 17), (0, n - 1)])
    for (c, j), v in fd.items():
        assert dx[c, j] == pytest.approx(v, rel=1e-5, abs=1e-6), (c, j)


@pytest.mark.parametrize("name", ["onepole", "lowpass", "two_out", "prefix", "var_delay",
                                  "rwtable"])
def test_numba_equals_interpreter(name):
    src = PROGRAMS[name]
    labels = _slider_labels(src)
    rng = np.random.default_rng(9)
    slow = faustdiff.compile_source(src, "t.dsp", wrt=labels, mode="reverse", backend="interp")
    fast = faustdiff.compile_source(src, "t.dsp", wrt=labels, mode="reverse")
    x = rng.standard_normal((slow.num_inputs, 200))
    ct = rng.standard_normal((slow.num_outputs, 200))
    assert np.array_equal(slow.compute(x), fast.compute(x))
    a, b = slow.vjp(ct), fast.vjp(ct)
    # the compiled backward pass contracts and reassociates (codegen.FASTMATH_OK): ulps
    assert _close(a[1], b[1], rel=1e-13)
    assert np.allclose(a[0], b[0], rtol=1e-12, atol=0)


def test_blocks_truncate_at_their_start_and_reset_gives_the_full_gradient():
    src = PROGRAMS["onepole"]
    rev = faustdiff.compile_source(src, "t.dsp", wrt=["a", "g"], mode="reverse", backend="interp")
    fwd = faustdiff.compile_source(src, "t.dsp", wrt=["a", "g"], backend="interp")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 100))
    ct = rng.standard_normal((1, 50))
    rev.compute(x[:, :50])
    rev.compute(x[:, 50:])
    dp, _ = rev.vjp(ct)
    # the second block alone, its start state held constant: a's effect through the state
    # that entered the block is missing, so it differs from the whole-history partials
    fwd.compute(x[:, :50])
    _, p = fwd.compute_with_grad(x[:, 50:])
    full = np.einsum("pon,on->p", p, ct)
    assert not np.allclose(dp, full)
    rev.reset()
    rev.compute(x[:, 50:])
    fwd.reset()
    _, p = fwd.compute_with_grad(x[:, 50:])
    assert _close(np.einsum("pon,on->p", p, ct), rev.vjp(ct)[0])


def test_signals_turn_sliders_into_inputs_with_per_sample_gradients():
    src = 'import("stdfaust.lib"); process = fi.lowpass(2, hslider("fc", 1000, 20, 20000, 1)) : *(hslider("g", 0.5, 0, 1, 0.01));'
    rng = np.random.default_rng(4)
    n = 96
    x = rng.standard_normal((1, n))
    fc = np.linspace(500, 3000, n)[None, :]
    plain = faustdiff.compile_source(src, "t.dsp", signals=["fc"], backend="interp")
    assert plain.num_inputs == 2
    rev = faustdiff.compile_source(src, "t.dsp", wrt=["g"], signals=["fc"], mode="reverse",
                                   backend="interp")
    xs = np.vstack([x, fc])
    y = rev.compute(xs)
    assert np.array_equal(y, plain.compute(xs))
    ct = rng.standard_normal((1, n))
    dp, dx = rev.vjp(ct)
    assert dx.shape == (2, n) and dp.shape == (1,)
    assert dp[0] == pytest.approx(float(np.sum(y * ct)) / 0.5, rel=1e-9)
    for j in (0, 10, n - 1):
        def render(v):
            z = xs.copy()
            z[1, j] = v
            plain.reset()
            return float(np.sum(plain.compute(z) * ct))
        eps = 1e-3
        fd = (render(fc[0, j] + eps) - render(fc[0, j] - eps)) / (2 * eps)
        assert dx[1, j] == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_input_gradients_only_with_an_empty_wrt():
    rev = faustdiff.compile_source("process = _ <: _ * _;", "t.dsp", wrt=[], mode="reverse")
    x = np.array([[1.0, 2.0, -3.0]])
    rev.compute(x)
    dp, dx = rev.vjp(np.ones((1, 3)))
    assert dp.shape == (0,)
    assert np.array_equal(dx, 2 * x)


def test_vjp_errors():
    rev = faustdiff.compile_source("process = *(hslider(\"g\", 0.5, 0, 1, 0.01));", "t.dsp",
                                   wrt=["g"], mode="reverse", backend="interp")
    with pytest.raises(FaustError) as e:
        rev.vjp(np.ones((1, 4)))
    assert str(e.value) == "error: vjp: compute a block first (vjp differentiates the last one)"
    rev.compute(np.ones((1, 4)))
    with pytest.raises(FaustError) as e:
        rev.vjp(np.ones((2, 4)))
    assert str(e.value) == ("error: vjp: the cotangent must have shape (1, 4) (dL/dy of the "
                            "last block), got (2, 4)")
    with pytest.raises(FaustError) as e:
        rev.vjp(np.array([[1.0, np.nan, 0, 0]]))
    assert str(e.value) == "error: vjp: the cotangent holds NaN or infinity"


TABLE_INIT_CASES = {
    # the read index from the input; the contents a recursion scaled by the parameter
    "rdtable": ('g = hslider("g", 0.5, 0, 1, 0.01);\n'
                'process = rdtable(8, (+(1) ~ _) * g, int(abs(_ * 3)) % 8);'),
    # sin of the parameter in the contents, and the parameter outside the table too
    "rdtable-sin": ('import("stdfaust.lib");\n'
                    'g = hslider("g", 0.5, 0, 1, 0.01); w = hslider("w", 0.3, 0, 1, 0.01);\n'
                    'process = (abs : *(7.9) : int : rdtable(8, sin(g * float(ba.time)))) * w;'),
    # written slots lose the contents' gradient; written values carry w's
    "rwtable": ('import("stdfaust.lib");\n'
                'g = hslider("g", 0.5, 0, 1, 0.01); w = hslider("w", 0.3, 0, 1, 0.01);\n'
                'process = _ <: rwtable(8, g * g * float(ba.time), '
                'int(ba.time % 16), _ * w, abs : *(7.9) : int);'),
}


@pytest.mark.parametrize("name", sorted(TABLE_INIT_CASES))
def test_tables_whose_contents_depend_on_parameters(name):
    src = TABLE_INIT_CASES[name]
    rng = np.random.default_rng(3)
    x, ct = rng.uniform(-1, 1, (1, 40)), rng.normal(size=(1, 40))
    labels = _slider_labels(src)
    want, dp, _, y, y2 = _contracted(src, labels, x, ct, 40)
    assert np.array_equal(y, y2)
    assert np.all(want != 0)
    assert _close(want, dp), (want, dp)


def test_table_contents_gradient_compiled_with_input_gradients_off():
    src = TABLE_INIT_CASES["rdtable"]
    rng = np.random.default_rng(4)
    x, ct = rng.uniform(-1, 1, (1, 30)), rng.normal(size=(1, 30))
    fwd = faustdiff.compile_source(src, "t.dsp", wrt=["g"], backend="interp")
    rev = faustdiff.compile_source(src, "t.dsp", wrt=["g"], mode="reverse", input_grads=False)
    _, partials = fwd.compute_with_grad(x, 30)
    rev.compute(x, 30)
    dp, _ = rev.vjp(ct)
    assert _close(np.einsum("pon,on->p", partials, ct), dp)


def test_mode_and_signals_errors():
    with pytest.raises(FaustError) as e:
        faustdiff.compile_source("process = _;", "t.dsp", mode="sideways")
    assert str(e.value) == "error: unknown mode 'sideways' (forward or reverse)"
    with pytest.raises(FaustError) as e:
        faustdiff.compile_source('process = hslider("a", 0, 0, 1, 0.1);', "t.dsp",
                                 signals=["b"], backend="interp")
    assert "unknown parameter 'b'" in str(e.value)


# ---------------------------------------------------------------- random programs

SMOOTH = ["sin", "cos", "atan", "exp(0.3 * _)", "tanh_"]
FEEDBACK = ["0.5", "-0.9", 'hslider("s1", 0.4, -1, 1, 0.01) * 0.9']
SLIDER2 = 'hslider("s2", 0.4, -1, 1, 0.01)'


@st.composite
def diff_expr(draw, depth=0):
    """A differentiable one-output expression of `x` and the sliders s0..s2."""
    if depth >= 4 or draw(st.integers(0, 9)) < 2 + depth:
        kind = draw(st.integers(0, 3))
        if kind == 0:
            return draw(st.sampled_from(["0.5", "-1.25", "2", "3"]))
        if kind == 1:
            return f'hslider("s{draw(st.integers(0, 2))}", 0.4, -1, 1, 0.01)'
        return "x"
    sub = lambda: draw(diff_expr(depth + 1))   # noqa: E731
    kind = draw(st.integers(0, 13))
    if kind <= 2:
        return f"({sub()} {draw(st.sampled_from(['+', '-', '*']))} {sub()})"
    if kind == 3:
        f = draw(st.sampled_from(SMOOTH))
        return f"({sub()} : {f})" if "_" in f else f"{f}({sub()})"
    if kind == 4:
        return f"({sub()})'"
    if kind == 5:
        return f"({sub()} @ {draw(st.sampled_from(['1', '3', '17']))})"
    if kind == 6:
        return f"({sub()} : + ~ *({draw(st.sampled_from(FEEDBACK))}))"
    if kind == 7:
        return f"select2({sub()} > 0, {sub()}, {sub()})"
    if kind == 8:
        return f"({sub()} : (+ : *(0.5)) ~ (mem : *({sub()} * 0 + 0.3)))"
    if kind == 9:
        return f"({sub()} / (2 + {sub()} * {sub()}))"
    if kind == 10:
        return f"(({sub()}) @ int({SLIDER2} * 3 + 3))"
    if kind == 11:
        return f"({sub()} @ (int(abs({sub()}) * 4) % 6))"
    if kind == 12:
        return (f"rwtable(8, 0.0, int(abs({sub()}) * 3) % 8, {sub()}, "
                f"int(abs({sub()}) * 5) % 8)")
    return f"max({sub()}, {sub()})"


@hypothesis.settings(max_examples=int(os.environ.get("FAUSTDIFF_RANDOM_EXAMPLES", "12")),
                     deadline=None, derandomize=not os.environ.get("FAUSTDIFF_RANDOM_FRESH"),
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(exprs=st.lists(diff_expr(), min_size=1, max_size=3))
def test_random_programs_reverse_equals_forward(exprs):
    defs = "tanh_ = ffunction(float tanh(float), <math.h>, \"\");\n"
    defs += "".join(f"f{k}(x) = {e};\n" for k, e in enumerate(exprs))
    text = defs + "process = _ <: " + ", ".join(f"f{k}" for k in range(len(exprs))) + ";\n"
    plain = faustdiff.compile_source(text, "<random>", backend="interp")
    labels = sorted(plain.params)
    n = 64
    rng = np.random.default_rng(len(text))
    x = rng.standard_normal((1, n))
    ct = rng.standard_normal((plain.num_outputs, n))
    with np.errstate(all="ignore"):
        if labels:
            ref, dp, dx, y, y2 = _contracted(text, labels, x, ct, n, filename="<random>")
            assert np.array_equal(y, y2)
            hypothesis.assume(np.all(np.isfinite(ref)))
            assert _close(ref, dp, 1e-8), (text, ref, dp)
        else:
            rev = faustdiff.compile_source(text, "<random>", wrt=[], mode="reverse",
                                           backend="interp")
            rev.compute(x)
            _, dx = rev.vjp(ct)
    fd = _fd_inputs(text, x, ct, [(0, 0), (0, n // 2)])
    for (c, j), v in fd.items():
        hypothesis.assume(np.isfinite(v) and abs(v) < 1e6)
        assert dx[c, j] == pytest.approx(v, rel=1e-4, abs=1e-5), (text, j)


# ---------------------------------------------------------------- where gradients are used

FIR = 'process = _ <: par(i, 6, @(i) * hslider("h%i", 0.1, -1, 1, 0.001)) :> _;'


def test_trainer_modes_agree_and_auto_picks_by_parameter_count():
    from faustdiff.learn import train
    rng = np.random.default_rng(8)
    x = rng.uniform(-1, 1, (2, 1, 400))
    t = np.stack([train.render(FIR, xb, params={f"h{i}": 0.5 - 0.1 * i for i in range(6)})
                  for xb in x])
    labels = [f"h{i}" for i in range(6)]
    fwd = train.Trainer(FIR, params=labels, grad_mode="forward")
    rev = train.Trainer(FIR, params=labels, grad_mode="reverse", lr=0.02)
    assert (fwd.grad_mode, rev.grad_mode) == ("forward", "reverse")
    assert train.Trainer(FIR, params=labels).grad_mode == "reverse"
    assert train.Trainer(FIR, params=labels[:2]).grad_mode == "forward"
    theta = np.linspace(-0.3, 0.4, 6)
    vf, gf, _ = fwd.loss_and_grad(theta, list(x), list(t))
    vr, gr, _ = rev.loss_and_grad(theta, list(x), list(t))
    assert vf == vr
    assert np.allclose(gf, gr, rtol=1e-9, atol=0)
    r = rev.fit(list(x), list(t), steps=300)
    assert all(abs(r.params[f"h{i}"] - (0.5 - 0.1 * i)) < 1e-3 for i in range(6))
    with pytest.raises(FaustError) as e:
        train.Trainer(FIR, params=labels, grad_mode="sideways")
    assert str(e.value) == "error: grad_mode: one of auto, forward, reverse, not 'sideways'"


def test_auto_grad_mode_counts_declared_parameters():
    from faustdiff.learn.train import choose_grad_mode
    src = 'process = _ <: par(i, 3, @(i) * hslider("h%i [diff:on]", 0.1, -1, 1, 0.001)) :> _;'
    assert choose_grad_mode(src, "t.dsp", "auto") == "reverse"
    assert choose_grad_mode(src, "t.dsp", "h0,h1") == "forward"
    assert choose_grad_mode(src, "t.dsp", "auto", "forward") == "forward"


def test_checkpointed_blocks_equal_whole_blocks(monkeypatch):
    from faustdiff.backend import reverse
    src = PROGRAMS["lowpass"]
    rev = faustdiff.compile_source(src, "t.dsp", wrt=["fc"], mode="reverse")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((1, 10_000))
    ct = rng.standard_normal((1, 10_000))
    y = rev.compute(x)
    whole = rev.vjp(ct)
    assert rev._block[0] == "whole"
    after = rev.compute(x[:, :100])
    monkeypatch.setattr(reverse, "TAPE_BUDGET", 1 << 12)
    monkeypatch.setattr(reverse, "SEGMENT", 1000)
    rev.reset()
    y2 = rev.compute(x)
    assert rev._block[0] == "segments" and rev._block[3][1] < 10_000
    seg = rev.vjp(ct)
    assert np.array_equal(y, y2)
    assert np.array_equal(whole[1], seg[1])
    assert np.allclose(whole[0], seg[0], rtol=1e-12, atol=0)
    assert np.array_equal(rev.compute(x[:, :100]), after)   # vjp left the state alone


def test_cli_train_and_run_grad_modes(cli, tmp_path):
    dsp = tmp_path / "fir.dsp"
    dsp.write_text(FIR)
    from faustdiff.learn import train
    x = np.random.default_rng(1).uniform(-1, 1, (1, 2000))
    t = train.render(FIR, x, params={f"h{i}": 0.5 - 0.1 * i for i in range(6)})
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "t.npy", t)
    r = cli("train", str(dsp), "-i", str(tmp_path / "x.npy"), "-t", str(tmp_path / "t.npy"),
            "--params", ",".join(f"h{i}" for i in range(6)), "--steps", "150", "--lr", "0.02",
            "-q")
    assert r.exit_code == 0, r.stderr
    assert "reverse mode" in r.stdout
    r = cli("train", str(dsp), "-i", str(tmp_path / "x.npy"), "-t", str(tmp_path / "t.npy"),
            "--params", "h0", "--steps", "3", "-q", "--grad-mode", "reverse")
    assert r.exit_code == 0 and "reverse mode" in r.stdout
    outs = {}
    for mode in ("forward", "reverse"):
        out = tmp_path / f"{mode}.csv"
        r = cli("run", str(dsp), "-n", "40", "--grad", "h0,h3", "--grad-mode", mode,
                "-o", str(out))
        assert r.exit_code == 0, r.stderr
        outs[mode] = np.loadtxt(out, delimiter=",", skiprows=1)
    assert np.allclose(outs["forward"], outs["reverse"], rtol=1e-9, atol=1e-15)
    r = cli("run", str(dsp), "-n", "5000", "--grad", "h0", "--grad-mode", "reverse")
    assert r.exit_code == 1
    assert r.stderr.strip() == ("faustdiff: error: --grad-mode reverse runs one backward pass "
                                "per output sample: at most 4096 samples, got 5000 (forward "
                                "mode computes the partials in one pass)")


STEREO_GAIN = ('g = hslider("g", 0.5, 0, 1, 0.01);\n'
               'process = _ <: *(g), (+ ~ *(g)) * g;')


@pytest.mark.parametrize("backend", [None, "interp"])
def test_the_cotangent_check_runs_inside_the_backward_pass(backend):
    # the backward pass sums dL/dy: NaN or ±inf anywhere in any output row is refused,
    # finite values whose sum overflows are not
    rev = faustdiff.compile_source(STEREO_GAIN, "t.dsp", wrt=["g"], mode="reverse",
                                   backend=backend)
    rev.compute(np.ones((1, 5)))
    for bad in ((1, 4, np.nan), (0, 0, np.inf), (1, 2, -np.inf)):
        ct = np.zeros((2, 5))
        ct[bad[0], bad[1]] = bad[2]
        with pytest.raises(FaustError) as e:
            rev.vjp(ct)
        assert str(e.value) == "error: vjp: the cotangent holds NaN or infinity"
    big = np.full((2, 5), 1e308)
    dp, dx = rev.vjp(big)
    assert dx.shape == (1, 5)
    dp, dx = rev.vjp(np.ones((2, 5)))
    fwd = faustdiff.compile_source(STEREO_GAIN, "t.dsp", wrt=["g"], backend=backend)
    _, p = fwd.compute_with_grad(np.ones((1, 5)))
    assert dp[0] == pytest.approx(p.sum(), rel=1e-12)


def test_moving_parameters_between_blocks_recomputes_the_control_rate_jacobian():
    src = ('f = hslider("f", 0.3, 0, 0.9, 0.01);\n'
           'process = *(1 - f) : + ~ *(f) : *(cos(f) * 2);')
    rev = faustdiff.compile_source(src, "t.dsp", wrt=["f"], mode="reverse")
    fwd = faustdiff.compile_source(src, "t.dsp", wrt=["f"])
    x = np.random.default_rng(3).uniform(-1, 1, (1, 64))
    for value in (0.3, 0.3, 0.7, 0.3):
        for prog in (rev, fwd):
            prog.set_param("f", value)
            prog.reset()
        rev.compute(x)
        dp, _ = rev.vjp(np.ones((1, 64)))
        _, p = fwd.compute_with_grad(x)
        assert dp[0] == pytest.approx(p.sum(), rel=1e-10)


@pytest.mark.parametrize("backend", ["interp", None])
def test_jacobian_inline_or_interpreted_agree(monkeypatch, backend):
    """Small Jacobians are kept values of the backward kernel, large ones run in the
    interpreter (JACOBIAN_INLINE): the same d_params, and `count` seen the same way."""
    from faustdiff.backend import reverse as R
    src = ('import("stdfaust.lib");\n'
           'f = hslider("f", 0.3, 0, 0.9, 0.01); g = hslider("g", 0.5, 0, 2, 0.01);\n'
           'process = *(1 - f) : + ~ *(f) : *(cos(f) * g + ma.BS * g * g);')
    x = np.random.default_rng(5).uniform(-1, 1, (1, 48))
    ct = np.random.default_rng(6).normal(size=(1, 48))
    got = {}
    for limit in (R.JACOBIAN_INLINE, 0):
        monkeypatch.setattr(R, "JACOBIAN_INLINE", limit)
        rev = faustdiff.compile_source(src + f"\n// {limit}", "t.dsp", wrt=["f", "g"],
                                       mode="reverse", backend=backend)
        assert rev._spec["jacobian_inline"] == (limit > 0)
        rev.set_param("g", 0.8)
        rev.compute(x)
        got[limit] = rev.vjp(ct)[0]
    fwd = faustdiff.compile_source(src, "t.dsp", wrt=["f", "g"], backend="interp")
    fwd.set_param("g", 0.8)
    fwd.reset()
    _, p = fwd.compute_with_grad(x)
    want = np.einsum("pon,on->p", p, ct)
    for dp in got.values():
        assert _close(want, dp)


def test_without_input_gradients_d_inputs_are_read_only_zeros():
    rev = faustdiff.compile_source(STEREO_GAIN, "t.dsp", wrt=["g"], mode="reverse",
                                   input_grads=False)
    rev.compute(np.ones((1, 6)))
    _, dx = rev.vjp(np.ones((2, 6)))
    assert dx.shape == (1, 6) and not dx.any() and not dx.flags.writeable


def test_only_the_backward_kernel_may_round_differently_from_faust():
    """The forward part renders bit for bit as Faust (no fast-math flag); the backward pass
    is contracted and reassociated, never with flags that change what inf/NaN mean."""
    from faustdiff.backend import codegen
    from faustdiff.backend.reverse import _parts
    from faustdiff.frontend.source import evaluate_source
    box = evaluate_source(PROGRAMS["onepole"], "t.dsp", ())
    parts, _ = _parts(box, ["a", "g"], [])
    # (a recursion: no reassociation, see reverse._fastmath)
    assert parts["backward"][4]["fastmath"] == ("contract", "nsz")
    assert "fastmath" not in parts["forward"][4]
    srcs = {p: codegen.generate_from_signals(o, b, i, 44100, keep=k, **opts)[0]
            for p, (o, b, i, k, opts) in parts.items() if p != "jacobian"}
    assert "fastmath=False," in srcs["forward"]
    assert "fastmath={'contract', 'nsz'}," in srcs["backward"]
    fir, _ = _parts(evaluate_source(PROGRAMS["ctl_delay"], "t.dsp", ()), ["d", "g"], [])
    assert fir["backward"][4]["fastmath"] == codegen.FASTMATH_OK
    with pytest.raises(ValueError, match=r"fast-math flags \['nnan'\] are not allowed"):
        codegen._jit(("contract", "nnan"))


# Three peaking bands: 12 parameter adjoints (sums) from 6 adjoint signals, enough for the
# backward kernel to take the sums out of its serial loop (backend/reductions.py)
BANDS = ('import("stdfaust.lib");\n'
         'band(i) = fi.peak_eq(hslider("g%i", 4 - 3 * i, -12, 12, 0.1),\n'
         '                     hslider("f%i", 300 * (i + 1), 20, 20000, 1),\n'
         '                     hslider("b%i", 150, 20, 2000, 1));\n'
         'process = seq(i, 3, band(i));')
BAND_LABELS = [f"{k}{i}" for k in "bfg" for i in range(3)]


# A memoryless layer: its 8 weights' sums need no cut value, and the weights (control
# values c1, c2, ... of the generated kernel) are read in the serial loop too
LAYER = ('import("stdfaust.lib");\n'
         'process = _ <: par(i, 8, *(hslider("w%i", (i + 1) / 9 - 0.4, -1, 1, 0.01)) : ma.tanh)'
         ' :> _;')
LAYER_LABELS = [f"w{i}" for i in range(8)]


def _backward_source(src, labels):
    from faustdiff.backend import codegen
    from faustdiff.backend.reverse import _parts
    from faustdiff.frontend.source import evaluate_source
    parts, _ = _parts(evaluate_source(src, "t.dsp", ()), labels, [])
    o, b, i, k, opts = parts["backward"]
    return codegen.generate_from_signals(o, b, i, 44100, keep=k, **opts)[0]


def test_many_sums_leave_the_serial_loop_and_one_sum_stays():
    code = _backward_source(LAYER, LAYER_LABELS)
    # (and the sum of the cotangent, which vjp checks for NaN: 9)
    assert code.count("# sum ") == 9 and "cutb = stack(" in code
    one = _backward_source(PROGRAMS["onepole"], ["a", "g"])
    assert "# sum " not in one and "cutb" not in one
    # a recursion's backward kernel does not reassociate: its sums leave the loop all the
    # same, their additions alone reassociable (`radd`), the kernel's flags without it
    bands = _backward_source(BANDS, BAND_LABELS)
    assert "cutb = stack(" in bands and bands.count("= radd(") == 13
    assert "fastmath={'contract', 'nsz'}," in bands


def test_sums_out_of_a_recursive_loop_equal_forward_mode():
    """The three bands' 12 sums, vectorised apart from the adjoint recursions, over a block
    of several chunks and a partial one."""
    n = 3 * 64 + 17
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (1, n))
    ct = rng.standard_normal((1, n))
    fwd = faustdiff.compile_source(BANDS, "t.dsp", wrt=BAND_LABELS, backend="interp")
    y, partials = fwd.compute_with_grad(x, n)
    rev = faustdiff.compile_source(BANDS, "t.dsp", wrt=BAND_LABELS, mode="reverse",
                                   input_grads=False)
    assert _close(rev.compute(x, n), y, rel=1e-12)
    dp, _ = rev.vjp(ct)
    assert _close(np.einsum("pon,on->p", partials, ct), dp, rel=1e-10)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 300])
def test_sums_taken_out_of_the_loop_equal_forward_mode(n):
    """Chunks of reductions.CHUNK samples: blocks shorter than one, exactly one, and one
    past a chunk boundary."""
    labels = LAYER_LABELS
    rng = np.random.default_rng(n)
    x = rng.uniform(-1, 1, (1, n))
    ct = rng.standard_normal((1, n))
    fwd = faustdiff.compile_source(LAYER, "t.dsp", wrt=labels, backend="interp")
    y, partials = fwd.compute_with_grad(x, n)
    rev = _compiled_layer()
    rev.reset()
    assert np.array_equal(rev.compute(x, n), y)
    dp, _ = rev.vjp(ct)
    assert _close(np.einsum("pon,on->p", partials, ct), dp, rel=1e-12)


_LAYER_REV: list = []


def _compiled_layer():
    if not _LAYER_REV:
        _LAYER_REV.append(faustdiff.compile_source(LAYER, "t.dsp", wrt=LAYER_LABELS,
                                                   mode="reverse", input_grads=False))
    return _LAYER_REV[0]


def test_sums_out_of_the_loop_keep_the_control_values_and_the_input_gradients():
    labels = LAYER_LABELS
    assert "cutb = stack(" in _backward_source(LAYER, labels)
    n = 200
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (1, n))
    ct = rng.standard_normal((1, n))
    got = []
    for backend in ("interp", None):
        rev = faustdiff.compile_source(LAYER, "t.dsp", wrt=labels, mode="reverse",
                                       backend=backend)
        rev.compute(x, n)
        got.append(rev.vjp(ct))
    assert _close(got[0][0], got[1][0], rel=1e-12)
    assert _close(got[0][1], got[1][1], rel=1e-12)
