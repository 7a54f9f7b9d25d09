"""The reference interpreter on hand-built normal-form boxes, against the real Faust compiler.

Each case pairs a Faust program (its text) with the equivalent normal-form box built by hand
here. The renderings of the real compiler (`faust-ref`, double precision, one sample per
`compute`) are stored in tests/data/interp/NAME.ref.csv; regenerate them with

    python tests/test_interp.py      # needs /work/shared/tools/faust-ref (faust + g++)

Comparisons are exact (bit for bit, NaN == NaN) unless a case says otherwise.
"""
from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from faustdiff.frontend import boxes as B
from faustdiff.backend.program import Program

DATA = os.path.join(os.path.dirname(__file__), "data", "interp")
W, C = B.Wire(), B.Cut()


# ---------------------------------------------------------------- a tiny box DSL

def par(*bs):
    out = bs[-1]
    for b in reversed(bs[:-1]):
        out = B.Par(b, out)
    return out


def seq(*bs):
    out = bs[-1]
    for b in reversed(bs[:-1]):
        out = B.Seq(b, out)
    return out


def n(v):
    return B.Int(v) if isinstance(v, int) else B.Real(v)


def p(name):
    return B.Prim(name)


def op(name, k):
    """`op(k)` with Faust's infix partial application: `_ op k`."""
    return B.Seq(par(W, n(k) if not isinstance(k, B.Box) else k), p(name))


def app(name, *args):
    """`name(a1, ..., ak)` with all arguments given."""
    return B.Seq(par(*args), p(name))


def ui(kind, label, init=0.0, lo=0.0, hi=1.0, step=1.0):
    return B.UI(kind, label, init, lo, hi, step)


def bar(label, lo=-10.0, hi=10.0, kind="hbargraph"):
    return B.Bargraph(kind, label, lo, hi)


INT = p("int")


# ---------------------------------------------------------------- inputs

def _x1():
    special = [0.0, 0.5, -0.5, 1.0, -1.0, 2.5, 3.5, -2.5, -2.7, 7.3, 1e10, -1e10, 0.25,
               100.75, -0.0001, 3e9, 0.9999, -3.5, 4.5, 2147483647.0, -2147483648.0, 6.0]
    vals = special + [round(np.sin(0.37 * i) * 3 * (1 + i % 5), 4) for i in range(64)]
    return np.array([vals[:64]])


def _x2():
    pairs = [(7, 3), (-7, 3), (7, -3), (-7, -3), (7.5, 2), (-7.5, 2), (0, 0), (1, 0), (-1, 0),
             (1e5, 3e4), (-16, 2), (5, 33), (2, -1), (3, 0.5), (-8, 1 / 3), (0.1, 0.2),
             (2.5, 2.5), (1e300, 1e10), (-2, 0.5), (46341, 46341)]
    more = [(round(np.sin(0.7 * i) * 9, 3), round(np.cos(0.3 * i) * 5, 3)) for i in range(64)]
    return np.array((pairs + more)[:64], dtype=float).T


def _x2_int():
    """Two channels whose second one is never 0 after int() (int % would trap)."""
    x = _x2()
    b = x[1].copy()
    b[np.abs(b) < 1] = 3.0
    return np.array([x[0], b])


def _x3():
    x = _x2()
    return np.array([np.round(np.sin(np.arange(64) * 0.9) * 2.2, 2), x[0], x[1]])


def _x5():
    return np.concatenate([_x3(), _x2()])


INPUTS = {"x5": _x5, "x1": _x1, "x2": _x2, "x2i": _x2_int, "x3": _x3, "none": lambda: np.zeros((0, 64))}


# ---------------------------------------------------------------- the cases

BIN_REAL = ["+", "-", "*", "/", "%", "^", "<", "<=", ">", ">=", "==", "!=", "min", "max",
            "fmod", "remainder", "atan2", "pow"]
BIN_INT = ["+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&", "|", "xor", "<<",
           ">>", "min", "max", "^"]
UNARY = ["sin", "cos", "tan", "asin", "acos", "atan", "exp", "log", "log10", "sqrt", "abs",
         "floor", "ceil", "rint", "int", "float"]


def _both(ops):
    return B.Split(par(W, W), par(*[p(o) for o in ops]))


def _noise():
    return B.Rec(op("+", 12345), op("*", 1103515245))


def _onepole():
    return B.Rec(B.Seq(par(W, W), p("+")), op("*", 0.5))


CASES = {
    # name: (faust source, box, input set, settings)
    "bin_real": ("process = _,_ <: " + ", ".join(BIN_REAL) + ";",
                 _both(BIN_REAL), "x2", {}),
    "bin_int": ("process = int, int <: " + ", ".join(BIN_INT) + ";",
                B.Seq(par(INT, INT), _both(BIN_INT)), "x2i", {}),
    "bin_mixed": ("process = int, _ <: +, -, *, /, %, <, min, max, ^;",
                  B.Seq(par(INT, W), _both(["+", "-", "*", "/", "%", "<", "min", "max",
                                            "^"])), "x2i", {}),
    "unary": ("process = _ <: " + ", ".join(UNARY) + ", (int : abs), (int : float);",
              B.Split(W, par(*[p(o) for o in UNARY], seq(INT, p("abs")),
                             seq(INT, p("float")))), "x1", {}),
    "pow_consts": ("process = _ <: ^(0), ^(1), ^(2), ^(3), ^(0.5), ^(0.25), ^(8), ^(9), "
                   "^(-2), (int : ^(3)), (int : ^(3.0)), (int : ^(9)), (int : ^(1.0));",
                   B.Split(W, par(op("^", 0), op("^", 1), op("^", 2), op("^", 3),
                                  op("^", 0.5), op("^", 0.25), op("^", 8), op("^", 9),
                                  op("^", -2), seq(INT, op("^", 3)), seq(INT, op("^", 3.0)),
                                  seq(INT, op("^", 9)), seq(INT, op("^", 1.0)))), "x1", {}),
    "div_consts": ("process = _ <: /(3), /(0.1), /(7), /(2147483647.0), (int : /(2)), "
                   "*(0), (log : *(0)), +(0), -(0), *(1);",
                   B.Split(W, par(op("/", 3), op("/", 0.1), op("/", 7),
                                  op("/", 2147483647.0), seq(INT, op("/", 2)), op("*", 0),
                                  seq(p("log"), op("*", 0)), op("+", 0), op("-", 0),
                                  op("*", 1))), "x1", {}),
    "noise": ("process = (+(12345) ~ *(1103515245)) / 2147483647.0, "
              "(+(12345) ~ *(1103515245));",
              par(seq(par(_noise(), n(2147483647.0)), p("/")), _noise()), "none", {}),
    "select": ("process = _,_,_ <: select2(_,_,_), select3(_,_,_,_), "
               "(int, _, _ : select2), select2(_ > 0, int, _ * 2), select3(_ > 0, 1, 2.5, int);",
               B.Split(par(W, W, W), par(
                   p("select2"), p("select3"),
                   seq(par(INT, W, W), p("select2")),
                   seq(par(op(">", 0), INT, op("*", 2)), p("select2")),
                   seq(par(op(">", 0), n(1), n(2.5), INT), p("select3")))),
               "x3", {}),
    "delays": ("process = _ <: mem, (mem : mem), @(3), @(0), @(7.3), "
               "(_, (int(abs(_) * 10) & 15) : @), prefix(2.5, _), (int : mem), "
               "(_ , 3 : @);",
               B.Split(W, par(p("mem"), seq(p("mem"), p("mem")), op("@", 3), op("@", 0),
                              op("@", 7.3),
                              seq(par(W, seq(p("abs"), op("*", 10), INT, op("&", 15))),
                                  p("@")),
                              seq(par(n(2.5), W), p("prefix")), seq(INT, p("mem")),
                              seq(par(W, n(3)), p("@")))), "x1", {}),
    "variable_delay": (
        "process = _ <: _, ((+(1) ~ _) : %(9)) : @;",
        seq(B.Split(W, par(W, seq(B.Rec(op("+", 1), W), op("%", 9)))), p("@")), "x1", {}),
    "recursion": ("process = (+ ~ *(0.5)), ((+,*) ~ (_,_)), (*(3) ~ !), (_ ~ _), "
                  "(((+ <: _, _) ~ *(0.5)) : _, *(2)), (+(1) ~ _), (_ ~ +(0.5));",
                  par(_onepole(), B.Rec(par(p("+"), p("*")), par(W, W)),
                      B.Rec(op("*", 3), C), B.Rec(W, W),
                      seq(B.Rec(seq(p("+"), B.Split(W, par(W, W))), op("*", 0.5)),
                          par(W, op("*", 2))),
                      B.Rec(op("+", 1), W), B.Rec(W, op("+", 0.5))), "x5", {}),
    "nested_rec": ("process = (+ : (+ ~ *(0.3))) ~ (*(0.5) : (+ ~ -(0.1)) : @(2));",
                   B.Rec(seq(p("+"), B.Rec(p("+"), op("*", 0.3))),
                         seq(op("*", 0.5), B.Rec(p("+"), op("-", 0.1)), op("@", 2))), "x1", {}),
    "route_merge": ("process = _,_,_ : route(3, 4, (1,2), (2,2), (3,1), (4,1), (1,9)) "
                    ":> _,_ <: _,_,_,_,_,_;",
                    B.Merge(B.Seq(par(W, W, W),
                                  B.Route(3, 4, ((1, 2), (2, 2), (3, 1), (4, 1), (1, 9)))),
                            B.Split(par(W, W), par(W, W, W, W, W, W))), "x3", {}),
    "tables": ("process = _ <: rdtable(waveform{0.0, 0.5, 1.0, -1.0, 0.25}, int(_ * 3)), "
               "rdtable(8, (+(1) ~ _) * 3, int(_)), "
               "rwtable(16, 0.0, ((+(1) ~ _) - 1) % 16, _ * 2, int(abs(_)) % 16), "
               "rwtable(4, 1, 0, _, 0), (waveform{1, 2, 3} : !, _), "
               "(waveform{1, 2.5} : _, !);",
               B.Split(W, par(
                   seq(par(B.Waveform((n(0.0), n(0.5), n(1.0), n(-1.0), n(0.25))),
                           seq(op("*", 3), INT)), p("rdtable")),
                   seq(par(n(8), seq(B.Rec(op("+", 1), W), op("*", 3)), INT), p("rdtable")),
                   seq(par(n(16), n(0.0), seq(B.Rec(op("+", 1), W), op("-", 1), op("%", 16)),
                           op("*", 2), seq(p("abs"), INT, op("%", 16))), p("rwtable")),
                   seq(par(n(4), n(1), n(0), W, n(0)), p("rwtable")),
                   seq(B.Waveform((n(1), n(2), n(3))), par(C, W)),
                   seq(B.Waveform((n(1), n(2.5))), par(W, C)))), "x1", {}),
    "bargraphs": ('process = _ : (+ : *(0.5)) ~ _ <: attach(_, hbargraph("level", -10, 10)), '
                  'vbargraph("v", -10, 10), (_ : hbargraph("[0]z", 0, 1)), '
                  'hgroup("g", _ : hbargraph("a[unit:dB]", 0, 1)), '
                  '(int : hbargraph("b", 0, 1));',
                  B.Split(B.Rec(seq(p("+"), op("*", 0.5)), W), par(
                      seq(par(W, bar("level")), p("attach")),
                      bar("v", kind="vbargraph"), seq(W, bar("[0]z", 0, 1)),
                      B.Group("hgroup", "g", seq(W, bar("a[unit:dB]", 0, 1))),
                      seq(INT, bar("b", 0, 1)))), "x1", {}),
    "ui": ('process = _ * hslider("gain", 0.25, 0, 1, 0.01) + vslider("freq [unit:Hz]", 100, '
           '20, 2000, 1) / 1000 + button("gate") + checkbox("on") + '
           'hgroup("h", nentry("steps", 3, 0, 10, 1)), _ @ hslider("d", 2, 0, 5, 1);',
           par(seq(par(seq(par(seq(par(seq(par(seq(par(
               W, ui("hslider", "gain", 0.25, 0, 1, 0.01)), p("*")),
               seq(ui("vslider", "freq [unit:Hz]", 100, 20, 2000, 1), op("/", 1000))), p("+")),
               ui("button", "gate")), p("+")), ui("checkbox", "on")), p("+")),
               B.Group("hgroup", "h", ui("nentry", "steps", 3, 0, 10, 1))), p("+")),
               seq(par(W, ui("hslider", "d", 2, 0, 5, 1)), p("@"))),
           "x2", {"gain": 0.5, "/ui/h/steps": 4.0, "d": 3.7}),
    "foreign": ("process = _ <: ffunction(float tanhf|tanh|tanhl (float), <math.h>, \"\"), "
                "ffunction(float hypotf|hypot|hypotl (float, float), <math.h>, \"\")(_, 2), "
                "ffunction(int isnan (float), <math.h>, \"\")(log(_)), "
                "ffunction(float cbrtf|cbrt|cbrtl (float), <math.h>, \"\"), "
                "ffunction(float copysignf|copysign|copysignl (float, float), <math.h>, \"\")"
                "(1, _), fconstant(int fSamplingFreq, <math.h>), "
                "fvariable(int count, <math.h>), "
                "min(192000.0, max(1.0, fconstant(int fSamplingFreq, <math.h>))) / _;",
                B.Split(W, par(
                    B.FFun("float", "tanhf|tanh|tanhl", ("float",)),
                    seq(par(W, n(2)), B.FFun("float", "hypotf|hypot|hypotl",
                                             ("float", "float"))),
                    seq(p("log"), B.FFun("int", "isnan", ("float",))),
                    B.FFun("float", "cbrtf|cbrt|cbrtl", ("float",)),
                    seq(par(n(1), W), B.FFun("float", "copysignf|copysign|copysignl",
                                             ("float", "float"))),
                    seq(C, B.FConst("int", "fSamplingFreq")),
                    seq(C, B.FVar("int", "count")),
                    seq(par(app("min", n(192000.0), app("max", n(1.0),
                                                        B.FConst("int", "fSamplingFreq"))),
                            W), p("/")))), "x1", {}),
    "symbolic": ("f(x, y) = x * 10 + y; process = f;",
                 B.Symbolic(B.Slot(1), B.Symbolic(B.Slot(2), seq(
                     par(seq(par(B.Slot(1), n(10)), p("*")), B.Slot(2)), p("+")))), "x2", {}),
}

# Faust's normaliser also hoists the control-rate terms of a sum together
# (`x*g + f/1000 + b + c` becomes `(f*0.001 + b + ...) + g*x`), which we do not copy
# (faust-language.md §6.3): such cases are compared with a tolerance.
TOLERANCE = {"ui": 1e-12}

# The reference renders with blocks of one sample, so `count` (ma.BS) is 1 there.
BLOCK1 = {"foreign"}


# ---------------------------------------------------------------- running

def _read_ref(name):
    with open(os.path.join(DATA, name + ".ref.csv"), newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    return rows[0], np.array([[float(v) for v in r] for r in rows[1:]])


def _render(name, block=None):
    src, box, inset, settings = CASES[name]
    prog = Program.from_box(box, name="ui" if name == "ui" else name)
    for k, v in settings.items():
        prog.set_param(k, v)
    x = INPUTS[inset]()
    total = x.shape[1]
    block = block or total
    cols, bars = [], {}
    outs = []
    traces = []
    for start in range(0, total, block):
        m = min(block, total - start)
        outs.append(prog.compute(x[:, start:start + m] if prog.num_inputs else None, m))
        traces.append(dict(prog.bargraphs))
    y = np.concatenate(outs, axis=1)
    cols = [y[i] for i in range(prog.num_outputs)]
    seen: dict = {}
    for label in prog.bargraph_labels:
        k = seen.get(label, 0)
        seen[label] = k + 1
        parts = []
        for t in traces:
            v = t[label]
            parts.append(v[k] if isinstance(v, list) else v)
        cols.append(np.concatenate(parts))
    header = [f"out{i}" for i in range(prog.num_outputs)] + list(prog.bargraph_labels)
    return header, np.array(cols).T


def _same(got, ref, tol=0.0):
    both_nan = np.isnan(got) & np.isnan(ref)
    with np.errstate(invalid="ignore"):
        close = np.abs(got - ref) <= tol + tol * np.abs(ref)
    return (got == ref) | both_nan | close


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_faust(name):
    ref_header, ref = _read_ref(name)
    header, got = _render(name, 1 if name in BLOCK1 else None)
    assert header == ref_header
    assert got.shape == ref.shape
    ok = _same(got, ref, TOLERANCE.get(name, 0.0))
    if not ok.all():
        i, j = np.argwhere(~ok)[0]
        pytest.fail(f"{name}: first mismatch at sample {i}, column {header[j]}: "
                    f"{got[i, j]!r} != {ref[i, j]!r} ({(~ok).sum()} values differ)")


@pytest.mark.parametrize("name", ["recursion", "delays", "tables", "bargraphs", "noise",
                                  "variable_delay", "nested_rec", "ui"])
@pytest.mark.parametrize("block", [1, 7, 64])
def test_block_size_invariance(name, block):
    _, ref = _read_ref(name)
    _, got = _render(name, block)
    assert _same(got, ref, TOLERANCE.get(name, 0.0)).all()


def test_reset_restarts_state():
    prog = Program.from_box(CASES["noise"][1])
    a = prog.compute(n=10)
    b = prog.compute(n=10)
    prog.reset()
    assert np.array_equal(prog.compute(n=10), a)
    assert not np.array_equal(a, b)


def test_params_and_errors():
    prog = Program.from_box(CASES["ui"][1], name="ui")
    assert prog.params == {"gain": 0.25, "freq": 100.0, "gate": 0.0, "on": 0.0,
                           "steps": 3.0, "d": 2.0}
    prog.set_param("/ui/freq", 200)
    prog.set_param("freq [unit:Hz]", 300)
    assert prog.params["freq"] == 300
    from faustdiff.errors import FaustError
    with pytest.raises(FaustError) as e:
        prog.set_param("nope", 1)
    assert "unknown parameter 'nope'" in str(e.value) and "gain" in str(e.value)


def test_deep_programs_render():
    # a 5,000-term sum and a 2,000-stage seq: propagate must not hit the recursion limit
    s = n(0)
    for i in range(1, 5001):
        s = seq(par(s, n(float(i))), p("+"))
    prog = Program.from_box(B.Seq(par(W, s), p("+")))
    y = prog.compute(np.ones((1, 3)))
    assert y[0].tolist() == [1 + 5000 * 5001 / 2] * 3
    chain = W
    for _ in range(2000):
        chain = B.Seq(op("+", 1), chain)
    prog = Program.from_box(chain)
    assert prog.compute(np.zeros((1, 2)))[0].tolist() == [2000.0, 2000.0]


def test_speed_50_nodes_one_second_of_audio():
    import time
    box = W
    for _ in range(8):
        box = B.Seq(box, seq(B.Rec(seq(par(seq(op("*", 0.3), op("+", 0.1)), W), p("+")),
                                   seq(op("*", 0.7), p("sin"))), op("@", 3)))
    prog = Program.from_box(box)
    assert len(prog._backend.order) >= 50
    t = time.perf_counter()
    prog.compute(np.random.default_rng(0).standard_normal((1, 44100)))
    assert time.perf_counter() - t < 3.0


# ---------------------------------------------------------------- regenerating references

def _write_inputs(path, x):
    with open(path, "w") as f:
        for row in x.T:
            f.write(",".join(repr(float(v)) for v in row) + "\n")


def regenerate(names=None):
    ref_tool = "/work/shared/tools/faust-ref"
    os.makedirs(DATA, exist_ok=True)
    for name in names or sorted(CASES):
        src, box, inset, settings = CASES[name]
        dsp = os.path.join(DATA, name + ".dsp")
        with open(dsp, "w") as f:
            f.write(src + "\n")
        x = INPUTS[inset]()
        cmd = [ref_tool, dsp, str(x.shape[1])]
        if x.shape[0]:
            inp = os.path.join(DATA, name + ".in.csv")
            _write_inputs(inp, x)
            cmd.append(inp)
        cmd += [f"{k}={v}" for k, v in settings.items()]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        with open(os.path.join(DATA, name + ".ref.csv"), "w") as f:
            f.write(out)
        print("wrote", name)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    regenerate(sys.argv[1:] or None)


def test_unbounded_delay_is_refused():
    # an input is [-1, 1] (as in Faust): int of it may be negative (Faust refuses it too);
    # a recursion without a bound has no known maximum
    from faustdiff.errors import FaustError
    with pytest.raises(FaustError, match=r"possible negative values of int\(in1\)"):
        Program.from_box(B.Seq(par(W, INT), p("@")))
    with pytest.raises(FaustError, match="can't compute the min and max values of"):
        Program.from_box(B.Seq(par(W, B.Rec(op("+", 1), W)), p("@")))


def test_huge_delay_bound_keeps_whole_history():
    # a bound above 2**22 samples: the interpreter keeps the whole history
    # (inputs are [-1, 1]: the amount int(|in1| * 5e6) is in [0, 5e6])
    bounded = B.Seq(par(W, seq(p("abs"), op("*", 5_000_000), INT)), p("@"))
    prog = Program.from_box(bounded)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(300)
    d = rng.integers(0, 250, 300).astype(float)
    y = prog.compute(np.array([x, (d + 0.5) / 5_000_000]))[0]
    expected = [x[t - int(d[t])] if t - int(d[t]) >= 0 else 0.0 for t in range(300)]
    assert y.tolist() == expected
