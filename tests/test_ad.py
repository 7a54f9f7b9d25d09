"""Forward-mode AD (faustdiff/ad.py, the `jvp` column of primitives.py, diff.lib's `diff`)
against central finite differences.

* Every differentiable primitive, alone in a `Dual` box, on its own input domain, at random
  points along random directions (two directions at once: the tangent blocks must not mix).
* Whole programs (recursions, delays, tables, library functions, merges, selections)
  differentiated with `df.diff(E, N)` w.r.t. parameters fed in as `df.var` sliders, against
  central differences of the same compiled program with the sliders perturbed.
* The structural properties: zero tangents skip terms (no NaN from 0*inf), a value shared
  inside E gets no tangent from the input, merges sum duals, seed-mode rules.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import faustdiff
from faustdiff.frontend import boxes as B
from faustdiff.signals import ir as S
from faustdiff.ad.forward import jvp
from faustdiff.errors import FaustError
from faustdiff.backend.program import Program



RNG_SEED = 20240317


def _slider(label, init=0.0):
    return B.UI("hslider", label, 0.0, -1e9, 1e9, 1e-12)


def _par(items):
    acc = items[-1]
    for x in reversed(items[:-1]):
        acc = B.Par(x, acc)
    return acc


def dual_program(prim: str, mode: str = "auto", nvars: int = 2) -> Program:
    """`Dual(prim)` fed with slider duals: x_j, dx_j_1..dx_j_N for each operand j."""
    ins = B.Prim(prim)
    from faustdiff.frontend.arity import arity
    k = arity(ins)[0]
    sliders = []
    for j in range(k):
        sliders.append(_slider(f"x{j}"))
        sliders += [_slider(f"d{j}_{d}") for d in range(nvars)]
    box = B.Seq(_par(sliders), B.Dual(ins, nvars, mode))
    return Program.from_box(box)


def run1(program, values: dict) -> np.ndarray:
    program.reset()
    known = program.params
    for k, v in values.items():
        if k in known:   # widgets that no output uses are dropped (zero tangents)
            program.set_param(k, v)
    return program.compute(n=1)[:, 0]


# name -> (sampler of one operand tuple, relative step). The samplers keep away from the
# places where the primitive is not differentiable (jumps, kinks, domain edges).
def _u(lo, hi):
    return lambda r: (r.uniform(lo, hi),)


def _away_from_int(r, lo, hi):
    while True:
        x = r.uniform(lo, hi)
        if abs(x - round(x)) > 0.05:
            return x


def _pair_apart(r):
    while True:
        u, v = r.uniform(-2, 2, 2)
        if abs(u - v) > 0.05:
            return (u, v)


def _fmod_args(r):
    while True:
        u, v = r.uniform(-3, 3), r.uniform(0.3, 1.5) * r.choice([-1, 1])
        q = u / v
        if abs(q - round(q)) > 0.05 and abs(q - math.trunc(q)) > 0.05 and abs(q) > 0.05:
            return (u, v)


def _sel(r):
    return (float(r.integers(0, 2)), r.uniform(-2, 2), r.uniform(-2, 2))


PRIMS = {
    "+": lambda r: tuple(r.uniform(-2, 2, 2)),
    "-": lambda r: tuple(r.uniform(-2, 2, 2)),
    "*": lambda r: tuple(r.uniform(-2, 2, 2)),
    "/": lambda r: (r.uniform(-2, 2), r.uniform(0.3, 2) * r.choice([-1, 1])),
    "^": lambda r: (r.uniform(0.2, 2), r.uniform(-2, 2)),
    "pow": lambda r: (r.uniform(0.2, 2), r.uniform(-2, 2)),
    "%": _fmod_args,
    "fmod": _fmod_args,
    "remainder": _fmod_args,
    "atan2": lambda r: (r.uniform(0.2, 2) * r.choice([-1, 1]), r.uniform(0.2, 2)),
    "min": _pair_apart,
    "max": _pair_apart,
    "sin": _u(-4, 4), "cos": _u(-4, 4), "tan": _u(-1.3, 1.3),
    "asin": _u(-0.9, 0.9), "acos": _u(-0.9, 0.9), "atan": _u(-4, 4),
    "exp": _u(-3, 3), "log": _u(0.1, 4), "log10": _u(0.1, 4), "sqrt": _u(0.1, 4),
    "abs": lambda r: (r.uniform(0.1, 2) * r.choice([-1, 1]),),
    "floor": lambda r: (_away_from_int(r, -3, 3),),
    "ceil": lambda r: (_away_from_int(r, -3, 3),),
    "rint": lambda r: (r.uniform(-3, 3),),
    "round": lambda r: (r.uniform(-3, 3),),
    "int": lambda r: (_away_from_int(r, -3, 3),),
    "float": _u(-3, 3),
    "select2": _sel,
    "select3": lambda r: (float(r.integers(0, 3)),) + tuple(r.uniform(-2, 2, 3)),
    "<": _pair_apart, ">": _pair_apart, "<=": _pair_apart, ">=": _pair_apart,
    "==": _pair_apart, "!=": _pair_apart,
    "attach": lambda r: tuple(r.uniform(-2, 2, 2)),
    "enable": lambda r: (r.uniform(-2, 2), 1.0),
    "assertbounds": lambda r: (-10.0, 10.0, r.uniform(-2, 2)),
}


def _kinks_ok(prim, point, h):
    """rint/round jump at half-integers: keep the perturbed points on one side."""
    if prim in ("rint", "round"):
        x = point[0]
        return abs(x - math.floor(x) - 0.5) > 10 * h + 1e-3
    return True


# Seed mode differs from auto on / and tan only by guards (inactive here); int and @ are
# tested below.
@pytest.mark.parametrize("prim,mode", [(p, "auto") for p in sorted(PRIMS)]
                         + [("/", "seed"), ("tan", "seed")])
def test_primitive_against_central_differences(prim, mode):
    rng = np.random.default_rng(RNG_SEED + sum(map(ord, prim)))
    nvars = 2
    program = dual_program(prim, mode, nvars)
    k = len(PRIMS[prim](rng))
    checked = 0
    for trial in range(6):
        point = PRIMS[prim](rng)
        dirs = rng.standard_normal((nvars, k))
        if prim in ("select2", "select3", "assertbounds", "enable"):
            dirs[:, 0] = 0.0   # the selector/bounds/condition is piecewise constant
        h = 1e-6
        if not _kinks_ok(prim, point, h):
            continue
        values = {}
        for j in range(k):
            values[f"x{j}"] = point[j]
            for d in range(nvars):
                values[f"d{j}_{d}"] = dirs[d, j]
        out = run1(program, values)
        assert out.shape == (nvars + 1,)
        for d in range(nvars):
            plus = dict(values, **{f"x{j}": point[j] + h * dirs[d, j] for j in range(k)})
            minus = dict(values, **{f"x{j}": point[j] - h * dirs[d, j] for j in range(k)})
            fd = (run1(program, plus)[0] - run1(program, minus)[0]) / (2 * h)
            scale = max(1.0, abs(fd))
            assert abs(out[1 + d] - fd) <= 1e-7 * scale, (prim, point, dirs[d], out, fd)
        checked += 1
    assert checked >= 4


def test_every_row_with_a_rule_is_covered():
    from faustdiff.core.primitives import PRIMITIVES
    stateful = {"@", "mem", "prefix", "rdtable", "rwtable"}   # tested in whole programs
    bitwise = {"&", "|", "xor", "<<", ">>"}                   # int-only, rule 0
    constant = {"lowest", "highest", "control"}
    covered = set(PRIMS) | stateful | bitwise | constant
    assert set(PRIMITIVES) <= covered, set(PRIMITIVES) - covered
    assert all(row.jvp is not None for row in PRIMITIVES.values())


def test_seed_rules_guards_and_impulses():
    # (u/v)' and tan' are guarded by max(., 1e-10) in seed mode only
    div_seed, div_auto = dual_program("/", "seed", 1), dual_program("/", "auto", 1)
    vals = {"x0": 1.0, "d0_0": 0.0, "x1": 0.0, "d1_0": 1.0}
    assert run1(div_seed, vals)[1] == pytest.approx(-1e10)
    assert math.isinf(run1(div_auto, vals)[1])
    tan_seed = dual_program("tan", "seed", 1)
    out = run1(tan_seed, {"x0": math.pi / 2, "d0_0": 1.0})
    assert out[1] == pytest.approx(1 / max(math.cos(math.pi / 2) ** 2, 1e-10))
    # int: auto gives 0, seed an impulse u' at exact integers, signed by the direction
    int_seed, int_auto = dual_program("int", "seed", 1), dual_program("int", "auto", 1)
    assert run1(int_auto, {"x0": 2.0, "d0_0": 3.0})[1] == 0.0
    assert run1(int_seed, {"x0": 2.0, "d0_0": 3.0})[1] == 3.0     # rising from u[-1] = 0
    assert run1(int_seed, {"x0": -2.0, "d0_0": 3.0})[1] == -3.0   # falling
    assert run1(int_seed, {"x0": 2.5, "d0_0": 3.0})[1] == 0.0


def test_structural_zeros_make_no_nan():
    # x^2 of a negative x: the ln(x) term is dropped when the exponent has no tangent
    p = _compile('process = df.var(1, hslider("x", -1.5, -2, 2, 0.1), 1), df.diff(2, 1) '
                 ': df.diff(^, 1);')
    out = p.compute(n=1)[:, 0]
    assert out.tolist() == [2.25, -3.0]

    # log(0) * 0: a zero tangent is not multiplied by inf
    p = dual_program("*", "auto", 1)
    out = run1(p, {"x0": 0.0, "d0_0": 0.0, "x1": 1.0, "d1_0": 1.0})
    assert out[1] == 0.0


# ---------------------------------------------------------------------------- programs

# (name, E's definition with parameters a, b then the audio input x, extra definitions,
#  slider inits). E is differentiated w.r.t. a and b by df.diff(E, 2).
PROGRAMS = [
    ("onepole", "E(a, b, x) = x * b : + ~ *(a);", (0.6, 0.7)),
    ("gain_dc_tanh", "E(a, b, x) = ma.tanh(x * a + b);", (0.8, -0.2)),
    ("feedback_comb", "E(a, b, x) = x : (+ : @(7)) ~ *(a) : *(b);", (0.5, 0.9)),
    ("frac_phasor_sin", "E(a, b, x) = sin(2 * ma.PI * ph) * b with "
     "{ ph = (+(a * 2000 / ma.SR) : ma.frac) ~ _; };", (0.44, 0.8)),
    ("biquad_stdlib", "E(a, b, x) = x : fi.tf2(b, 0.3 * a, 0.1, -0.5 * a, 0.2 * b);",
     (0.5, 0.8)),
    ("lowpass_tan", "E(a, b, x) = x : fi.lowpass(2, 500 + 3000 * a) : *(b);", (0.3, 0.6)),
    ("select_min_max", "E(a, b, x) = select2(x > 0, min(x * a, b), max(x, a * b)) "
     "+ abs(x - a);", (0.4, 0.3)),
    ("pow_exp_log", "E(a, b, x) = exp(a * x) * (1.5 + b) ^ a + log10(2 + x * x * b) "
     "+ sqrt(1 + a * a) + atan2(x, 1 + b);", (0.5, 0.4)),
    ("nested_recursion", "E(a, b, x) = x : (+ : (+ ~ *(0.5 * b))) ~ *(a * 0.4);",
     (0.7, 0.6)),
    ("merge_route_split", "E(a, b, x) = (x <: *(a), *(b), (_, a : -), *(a * b)) :> "
     "(sin, (route(1, 2, (1, 2), (1, 1)) : *)) : +;", (0.3, 0.5)),
    ("table_read", "E(a, b, x) = rdtable(64, sin(float(ba.time) * a * 0.1), "
     "int(abs(x) * 30) % 64) * b;", (0.5, 0.5)),
    ("rwtable_feedback", "E(a, b, x) = rwtable(16, 0.0, int(ba.time) % 16, x * a, "
     "(int(ba.time) + 9) % 16) * b + x;", (0.5, 0.5)),
    ("delays_prefix_mem", "E(a, b, x) = (x * a)@3 + (x * b)' + prefix(a, x * b) "
     "+ fmod(x * a * 3, 1.3 + b);", (0.35, 0.45)),
    ("letrec_smooth", "E(a, b, x) = y letrec { 'y = (1 - 0.3 * a) * x + 0.3 * a * y "
     "+ 0.1 * b * z; 'z = 0.5 * y; } : si.smooth(0.9 * b);", (0.5, 0.5)),
]

N_SAMPLES = 200


def _source(defn: str, inits) -> str:
    a, b = inits
    return f"""
import("stdfaust.lib");
df = library("diff.lib");
{defn}
process = df.var(1, hslider("a", {a}, -10, 10, 1e-9), 2),
          df.var(2, hslider("b", {b}, -10, 10, 1e-9), 2),
          df.input(2) : df.diff(E, 2);
"""


@pytest.mark.parametrize("name,defn,inits", PROGRAMS, ids=[p[0] for p in PROGRAMS])
def test_program_against_central_differences(name, defn, inits):
    program = faustdiff.compile_source(_source(defn, inits), f"<{name}>")
    assert program.num_inputs == 1 and program.num_outputs == 3
    x = np.random.default_rng(RNG_SEED).uniform(-1, 1, (1, N_SAMPLES))

    def render(a, b):
        program.set_param("a", a)
        program.set_param("b", b)
        program.reset()   # after the sliders: tables are filled at reset
        return program.compute(x)

    base = render(*inits)
    assert np.all(np.isfinite(base))
    for d, label in enumerate("ab"):
        h = 1e-6
        da = (h, 0) if d == 0 else (0, h)
        plus = render(inits[0] + da[0], inits[1] + da[1])[0]
        minus = render(inits[0] - da[0], inits[1] - da[1])[0]
        fd = (plus - minus) / (2 * h)
        ad = base[1 + d]
        scale = max(1.0, float(np.max(np.abs(fd))))
        err = float(np.max(np.abs(ad - fd)))
        assert err <= 1e-7 * scale, (name, label, err, scale)   # measured: <= 1e-9
        assert np.any(ad != 0), (name, label, "tangent identically zero")


# ---------------------------------------------------------------------------- structure

def _compile(src):
    return faustdiff.compile_source('df = library("diff.lib");\nimport("stdfaust.lib");\n' + src)


def test_a_shared_value_inside_E_gets_no_tangent_from_the_input():
    # s is both E's input (with tangent 1) and a constant inside E: d(s * s_inner)/ds_input = s
    p = _compile('s = hslider("s", 0.25, 0, 1, 0.01);\n'
                 'process = df.var(1, s, 1) : df.diff(*(s), 1);')
    out = p.compute(n=2)
    assert out[:, 0].tolist() == [0.0625, 0.25]


def test_merge_sums_duals_componentwise():
    p = _compile('N = 2;\nprocess = df.var(1, 3, N), df.var(2, 5, N), df.input(N) '
                 ': df.diff((_, _, _ :> _), N);')
    out = p.compute(np.full((1, 1), 0.5))
    assert out[:, 0].tolist() == [8.5, 1.0, 1.0]


def test_a_box_without_inputs_gives_its_value_then_zeros():
    p = _compile('process = df.diff(hslider("g", 0.3, 0, 1, 0.1), 3), df.diff(2 * ma.PI, 1);')
    assert p.num_outputs == 6
    out = p.compute(n=1)[:, 0]
    assert out.tolist() == [0.3, 0, 0, 0, 2 * math.pi, 0]


def test_seed_delay_time_difference_rule():
    # y = u@d with d a variable: y' = u'@d - d' (y - y[n-1])
    p = _compile('N = 1;\nd = df.var(1, hslider("d", 3, 0, 8, 1), N);\n'
                 'process = df.input(N), d : df.diff(@, N);')
    x = np.arange(1.0, 11.0)[None, :] ** 2
    out = p.compute(x)
    y = np.concatenate([[0, 0, 0], x[0, :-3]])
    assert out[0].tolist() == y.tolist()
    assert out[1].tolist() == (-(y - np.concatenate([[0], y[:-1]]))).tolist()


def test_auto_delay_rule_through_a_composite():
    # in auto mode int(d) is piecewise constant: (u@d)' = u'@d, no time difference
    p = _compile('N = 1;\nd = df.var(1, hslider("d", 3, 0, 8, 1), N);\n'
                 'process = df.input(N), d : df.diff(\\(x, e).(x @ e), N);')
    out = p.compute(np.ones((1, 6)))
    assert out[1].tolist() == [0.0] * 6


def test_library_path_falls_back_on_the_bundled_file():
    p = faustdiff.compile_source('df = library("/no/such/folder/diff.lib");\n'
                                 'process = df.input(2) : df.diff(sin, 2);')
    assert p.num_inputs == 1 and p.num_outputs == 3


def test_no_rule_for_an_unknown_foreign_function():
    with pytest.raises(FaustError, match="no derivative rule for the foreign function 'lgamma'"):
        _compile('f = ffunction(float lgamma(float), <math.h>, "");\n'
                 'process = df.var(1, 0.5, 1) : df.diff(f, 1);')


def test_builtin_needs_a_constant_number_of_variables():
    with pytest.raises(FaustError, match="number of variables must be a constant"):
        _compile('process = df.diff(+, hslider("n", 1, 0, 2, 1));')


def test_recursion_tangent_group_is_shared_not_copied():
    # The value group stays the one the value path uses: one group for y, one for y'.
    box = faustdiff.api.evaluate_source(
        'df = library("diff.lib");\n'
        'process = df.var(1, hslider("a", 0.5, 0, 1, 0.1), 1), df.input(1) '
        ': df.diff(\\(a, x).(x : + ~ *(a)), 1);')
    from faustdiff.signals.propagate import propagate
    outs = propagate(box)
    order = S.topo_order(outs)
    groups = {id(s.attrs[0]) for s in order if s.op in ("recvar", "proj")}
    assert len(groups) == 2
    assert not any(s.op == "placeholder" for s in order)


def test_jvp_on_sliders_directly():
    # the automatic front door: seeds on sliders, no Dual box
    box = faustdiff.api.evaluate_source(
        'process = hslider("a", 0.5, 0, 1, 0.1) : sin : *(3);')
    from faustdiff.signals.propagate import propagate
    (y,) = propagate(box)
    a = next(s for s in S.topo_order([y]) if s.op == "ui")
    (ty,) = jvp([y], {a: [S.const(1.0)]}, 1)
    p = Program([y, ty[0]], 0)
    out = p.compute(n=1)[:, 0]
    assert out[1] == pytest.approx(3 * math.cos(0.5))


def test_nested_duals_give_second_order_terms():
    # inner: <sin a, cos a> with a's own unit tangent; outer: d/da (sin a cos a x) = cos(2a) x
    p = _compile('E(a, x) = ((a, 1) : df.diff(sin, 1)) : * : *(x);\n'
                 'process = df.var(1, hslider("a", 0.3, -1, 1, 0.01), 1), df.input(1) '
                 ': df.diff(E, 1);')
    out = p.compute(np.array([[1.0, 2.0]]))
    assert out[0] == pytest.approx([math.sin(0.3) * math.cos(0.3) * k for k in (1, 2)])
    assert out[1] == pytest.approx([math.cos(0.6) * k for k in (1, 2)])


def test_a_bargraph_inside_a_dual_is_kept_once():
    p = _compile('E(a, x) = x * (a : hbargraph("inner", 0, 1));\n'
                 'process = df.var(1, hslider("a", 0.25, 0, 1, 0.01), 1), df.input(1) '
                 ': df.diff(E, 1);')
    out = p.compute(np.full((1, 3), 2.0))
    assert p.bargraph_labels == ["inner"]
    assert p.bargraphs["inner"].tolist() == [0.25] * 3
    assert out.tolist() == [[0.5] * 3, [2.0] * 3]


def test_select2_takes_three_duals():
    p = _compile('N = 1;\nprocess = df.input(N), df.var(1, hslider("a", 0.5, 0, 1, 0.1), N), '
                 'df.diff(2, N) : df.diff(select2, N);')
    out = p.compute(np.array([[0.0, 1.0]]))
    assert out.tolist() == [[0.5, 2.0], [1.0, 0.0]]


FFUNS = {   # name: (C signature, arguments)
    "tanh": ("float tanh(float)", (0.3,)), "sinh": ("float sinh(float)", (0.7,)),
    "cosh": ("float cosh(float)", (0.7,)), "asinh": ("float asinh(float)", (0.4,)),
    "acosh": ("float acosh(float)", (1.7,)), "atanh": ("float atanh(float)", (0.4,)),
    "exp2": ("float exp2(float)", (0.6,)), "expm1": ("float expm1(float)", (0.2,)),
    "log2": ("float log2(float)", (1.3,)), "log1p": ("float log1p(float)", (0.4,)),
    "cbrt": ("float cbrt(float)", (1.9,)), "erf": ("float erf(float)", (0.5,)),
    "hypot": ("float hypot(float, float)", (0.3, 0.8)),
    "fmin": ("float fmin(float, float)", (0.3, 0.8)),
    "fmax": ("float fmax(float, float)", (0.3, 0.8)),
    "copysign": ("float copysign(float, float)", (0.3, -0.8)),
}


@pytest.mark.parametrize("name", sorted(FFUNS))
def test_foreign_function_rules_against_central_differences(name):
    sig, args = FFUNS[name]
    k = len(args)
    duals = ", ".join(f'df.var({j + 1}, hslider("x{j}", {a}, -9, 9, 1e-9), {k})'
                      for j, a in enumerate(args))
    p = _compile(f'f = ffunction({sig}, <math.h>, "");\n'
                 f'process = {duals} : df.diff(f, {k});')
    out = p.compute(n=1)[:, 0]
    h = 1e-6
    for j, a in enumerate(args):
        vals = []
        for s in (+1, -1):
            p.set_param(f"x{j}", a + s * h)
            vals.append(p.compute(n=1)[0, 0])
        p.set_param(f"x{j}", a)
        fd = (vals[0] - vals[1]) / (2 * h)
        assert out[1 + j] == pytest.approx(fd, rel=1e-7, abs=1e-7), (name, j)


def test_backprop_with_a_two_input_ground_truth():
    # K = inputs(groundTruth) = 2: inputs [x1, x2] for the truth, then [x1, x2] for the
    # learnable, whose own inputs are x1, x2 and then the step of its variable.
    p = _compile('N = 1;\n'
                 'process = no.noise, os.osc(100) <: df.backprop(truth, learnable, '
                 'df.learnL2(4, 0.05, N))\nwith {\n'
                 '    truth = _ * 0.7 + _;\n'
                 '    learnable = route(3, 3, (1, 1), (2, 3), (3, 2)) : df.input(N), '
                 'df.var(1, g, N), df.input(N) : df.diff(*, N), _, _ : df.diff(+, N)\n'
                 '    with { g = -~_ <: attach(hbargraph("g", 0, 1)); };\n};')
    assert (p.num_inputs, p.num_outputs) == (0, 3)
    p.compute(n=44100)
    assert p.bargraphs["g"][-1] == pytest.approx(0.7, abs=1e-9)


def test_sumall_of_many_wide_duals():
    n = 40   # 40 duals of 41 signals: buses of up to 1600 wires between the fold's stages
    p = _compile(f'N = {n};\nprocess = par(i, N, df.var(i + 1, i, N)) : df.sumall(N);')
    out = p.compute(n=1)[:, 0]
    assert out.tolist() == [n * (n - 1) / 2] + [1.0] * n
