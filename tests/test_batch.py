"""Batch kernels (codegen.batch_kernel, runtime.BatchProgram): B instances of a program in
one call, each with its own widgets, inputs and state, equal bit for bit to B programs run
one at a time."""
from __future__ import annotations

import os
import re
import sys
import uuid

import numpy as np
import pytest

import faustdiff
from faustdiff.errors import FaustError

PROGRAMS = {
    # recursions, selects (real and int selectors), int arithmetic, casts
    "recursions": """
        import("stdfaust.lib");
        g = hslider("g", 0.5, 0, 0.99, 0.01);
        k = int(hslider("k", 3, 0, 10, 1));
        process = _ <: (+ ~ *(g)), select2(k > 4, _, _ * 2), select2(_, 1.5, -0.5),
                       float((int(_ * 1000) % 7) * k), float((k << 2) | (k >> 1)),
                       float(int(_ * 3e9)), select3(k % 3, _, sin(_), _ * g);
    """,
    # delay lines: registers (mem, @3), rings (a long fixed delay, a widget's, a
    # per-sample one), a whole history (a bound beyond HISTORY_LIMIT)
    "delays": """
        import("stdfaust.lib");
        d = int(hslider("d", 10, 0, 200, 1));
        far = int(hslider("far", 3, 0, 100000000, 1));
        process = _ <: mem, @(3), @(300), @(d), @(int(abs(_) * 50)), @(far),
                       (_ : + ~ (@(7) : *(0.5)));
    """,
    # tables filled from a widget (per instance), read-write tables, a waveform, a
    # bargraph, a prefix
    "tables": """
        import("stdfaust.lib");
        w = hslider("w", 0.1, 0, 1, 0.01);
        tab = rdtable(64, sin(float(ba.time) * w), int(abs(_) * 63));
        rw = rwtable(32, 0.0, int(ba.time % 32), _, int(abs(_) * 31));
        wave = waveform{1.0, 2.5, -3.0, 4.0} : !, _;
        process = _ <: tab, rw, (wave * _), (_ : hbargraph("lvl", -1, 1)), (1.5 : prefix(2.0));
    """,
    # no inputs: oscillators, the sample rate, int and real state
    "noinput": """
        import("stdfaust.lib");
        f = hslider("freq", 440, 20, 2000, 1);
        process = os.osc(f), float(ba.time % 5), no.noise * 0.0 + ma.SR / 1000.0;
    """,
}

SETTINGS = {
    "recursions": {"g": (0.1, 0.95), "k": (0, 10)},
    "delays": {"d": (0, 200), "far": (0, 5000)},
    "tables": {"w": (0.0, 1.0)},
    "noinput": {"freq": (20, 2000)},
}


def _values(name, batch, seed):
    rng = np.random.default_rng(seed)
    return {lab: np.round(rng.uniform(lo, hi, batch)) if lab in ("k", "d", "far")
            else rng.uniform(lo, hi, batch) for lab, (lo, hi) in SETTINGS[name].items()}


def _one_at_a_time(text, values, inputs, lengths):
    """Every instance on its own program: outputs of each call, concatenated."""
    outs = []
    for b in range(len(next(iter(values.values())))):
        p = faustdiff.compile_source(text)
        for lab, v in values.items():
            p.set_param(lab, float(v[b]))
        p.reset()
        rows, a = [], 0
        for n in lengths:
            x = None if inputs is None else inputs[b, :, a:a + n]
            rows.append(p.compute(x, n))
            a += n
        outs.append(np.concatenate(rows, axis=1))
    return np.stack(outs)


@pytest.mark.parametrize("batch", [1, 5, 11])
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_batch_equals_one_instance_at_a_time(name, batch):
    text = PROGRAMS[name]
    prog = faustdiff.compile_source(text)
    values = _values(name, batch, batch)
    lengths = (700, 1, 333)   # state carried between calls
    inputs = None
    if prog.num_inputs:
        inputs = np.random.default_rng(7).uniform(-1, 1, (batch, prog.num_inputs,
                                                          sum(lengths)))
    bp = prog.batch(batch)
    for lab, v in values.items():
        bp.set_param(lab, v)
    bp.reset()
    got, a = [], 0
    for n in lengths:
        got.append(bp.compute(None if inputs is None else inputs[:, :, a:a + n], n))
        a += n
    got = np.concatenate(got, axis=2)
    want = _one_at_a_time(text, values, inputs, lengths)
    assert got.shape == want.shape == (batch, prog.num_outputs, sum(lengths))
    assert np.array_equal(got, want, equal_nan=True)


def test_batch_render_bargraphs_params_and_threads():
    text = PROGRAMS["tables"]
    prog = faustdiff.compile_source(text)
    values = _values("tables", 6, 3)
    x = np.random.default_rng(1).uniform(-1, 1, (6, 1, 1000))
    bp = prog.batch(6, threads=2)
    bp.set_param("w", values["w"])
    bp.reset()
    y = bp.render(1000, block=64, inputs=x)
    assert [p["w"] for p in bp.params] == list(values["w"])
    for b in (0, 5):
        p = faustdiff.compile_source(text)
        p.set_param("w", values["w"][b])
        p.reset()
        assert np.array_equal(p.render(1000, block=64, inputs=x[b]), y[b])
        assert np.array_equal(p.bargraph_traces[0], bp.bargraph_traces[b, 0])
    # the same inputs for every instance: a (num_inputs, n) array
    bp.reset()
    same = bp.compute(x[0])
    bp.reset()
    assert np.array_equal(same, bp.compute(np.tile(x[0], (6, 1, 1))))
    with pytest.raises(ValueError, match=r"set_param: give one value or 6, got \(2,\)"):
        bp.set_param("w", [0.1, 0.2])
    with pytest.raises(ValueError, match=r"compute: inputs must have shape \(6, 1, 1000\), "
                                         r"got \(5, 1, 1000\)"):
        bp.compute(x[:5], 1000)


def test_batch_int_remainder_by_zero_is_an_error():
    prog = faustdiff.compile_source(
        'process = int(_ * 10) % int(hslider("m", 1, 0, 5, 1)) : float;')
    bp = prog.batch(3)
    bp.set_param("m", [1, 0, 2])
    with pytest.raises(FaustError, match=r"integer remainder by zero at run time"):
        bp.compute(np.ones((3, 1, 10)))


def test_batch_kernel_is_vectorised():
    """The lanes are packed into vector registers (a fresh compile: Numba does not keep
    the assembly of cached code)."""
    text = (f"// {uuid.uuid4().hex}\n" + 'import("stdfaust.lib");\n'
            'process = *(1 - p) : + ~ *(p) with { p = hslider("p", 0.5, 0, 1, 0.01); };\n')
    prog = faustdiff.compile_source(text)
    prog.batch(4).compute(np.zeros((4, 1, 16)))
    kernel = prog.BATCH_KERNELS[0]
    asm = kernel.inspect_asm(kernel.signatures[0])
    assert re.search(r"\bv(mul|add)pd\s[^\n]*%[yz]mm", asm), "no packed double arithmetic"


BIQUAD = """
import("stdfaust.lib");
process = fi.peak_eq(hslider("g0", 0, -12, 12, 0.1), hslider("f0", 300, 20, 20000, 1),
                     hslider("b0", 200, 20, 2000, 1)) : + ~ *(hslider("fb", 0.3, 0, 0.9, 0.01));
"""


@pytest.mark.parametrize("lanes", [False, True])
def test_reverse_batch_equals_one_instance_at_a_time(lanes):
    """Forward bit for bit; the gradient bit for bit when the backward pass runs instance by
    instance (the default), within the fast-math rounding in the backward batch kernel."""
    from faustdiff.backend import reverse as R
    labels = ["g0", "f0", "b0", "fb"]
    prog = R.compile_source(BIQUAD, wrt=labels)
    rng = np.random.default_rng(5)
    B, lengths = 6, (500, 300)
    vals = {"g0": rng.uniform(-10, 10, B), "f0": rng.uniform(100, 5000, B),
            "b0": rng.uniform(50, 1000, B), "fb": rng.uniform(0, 0.8, B)}
    x = rng.uniform(-1, 1, (B, 1, sum(lengths)))
    ct = rng.uniform(-1, 1, (B, 1, sum(lengths)))
    rb = prog.batch(B, lanes=lanes)
    for lab, v in vals.items():
        rb.set_param(lab, v)
    rb.reset()
    got, a = [], 0
    for n in lengths:   # state carried from one block to the next
        y = rb.compute(x[:, :, a:a + n])
        got.append((y,) + rb.vjp(ct[:, :, a:a + n]))
        a += n
    for b in range(B):
        q = prog.clone()
        for lab, v in vals.items():
            q.set_param(lab, float(v[b]))
        q.reset()
        a = 0
        for n, (y, dp, dx) in zip(lengths, got):
            assert np.array_equal(q.compute(x[b, :, a:a + n]), y[b])
            dp1, dx1 = q.vjp(ct[b, :, a:a + n])
            if not lanes:
                assert np.array_equal(dp1, dp[b]) and np.array_equal(dx1, dx[b])
            assert np.max(np.abs(dp1 - dp[b])) <= 1e-12 * np.max(np.abs(dp1))
            assert np.max(np.abs(dx1 - dx[b])) <= 1e-12 * np.max(np.abs(dx1))
            a += n
    # the lane groups on two threads: the same results, bit for bit
    rt = prog.batch(B, threads=2, lanes=lanes)
    for lab, v in vals.items():
        rt.set_param(lab, v)
    rt.reset()
    a = 0
    for n, (y, dp, dx) in zip(lengths, got):
        assert np.array_equal(rt.compute(x[:, :, a:a + n]), y)
        dp2, dx2 = rt.vjp(ct[:, :, a:a + n])
        assert np.array_equal(dp2, dp) and np.array_equal(dx2, dx)
        a += n
    with pytest.raises(FaustError, match=r"vjp: the cotangent must have shape \(6, 1, 300\) "
                                         r"\(dL/dy of the last block\), got \(6, 300\)"):
        rb.vjp(np.zeros((6, 300)))


@pytest.mark.parametrize("grad_mode, params", [("forward", ["cutoff"]),
                                               ("reverse", ["cutoff", "gain"])])
def test_trainer_vectorized_equals_threads(grad_mode, params):
    from faustdiff.learn.train import Trainer
    text = """import("stdfaust.lib");
    process = *(hslider("gain", 0.5, 0, 2, 0.01)) : *(1 - p) : + ~ *(p)
        with { p = exp(-2 * ma.PI * hslider("cutoff [scale:log]", 1000, 20, 20000, 1) / ma.SR); };
    """
    rng = np.random.default_rng(2)
    xs = rng.uniform(-1, 1, (9, 1, 800))   # (lane groups of 4, 4 and 1: run at once)
    ts = 0.3 * xs
    res = {}
    for mode in ("threads", "vectorized"):
        tr = Trainer(text, params=params, lr=0.05, parallel=mode, grad_mode=grad_mode)
        res[mode] = (tr.loss_and_grad(tr.theta, list(xs), list(ts)),
                     tr.loss_and_grad(tr.theta, list(xs), list(ts), segment=300))
    for whole_or_chunked in (0, 1):
        (v0, g0, y0), (v1, g1, y1) = (res[m][whole_or_chunked] for m in ("threads", "vectorized"))
        assert all(np.array_equal(a, b) for a, b in zip(y0, y1))
        assert v0 == v1
        if grad_mode == "forward":
            assert np.array_equal(g0, g1)
        else:
            assert np.allclose(g0, g1, rtol=1e-12, atol=0)


STEREO_GRAD = """import("stdfaust.lib");
g = hslider("gain", 0.5, 0, 2, 0.01);
lp(x) = x * (1 - p) : + ~ *(p)
    with { p = exp(-2 * ma.PI * hslider("cutoff [scale:log]", 1000, 20, 20000, 1) / ma.SR); };
process = par(i, 2, *(g) : lp) : _, @(3);
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_l2_sums_equal_the_sums_of_the_outputs(threads):
    """BatchProgram.l2_sums (the batch kernel with the L2 loss in place of its outputs) of a
    forward-mode program with two outputs and two parameters, 11 instances (a padded lane
    group), two blocks: Σ e_c² and Σ partial · e of `compute`'s outputs, each summed in
    sample order as losses._l2_rows sums (bit for bit), and the state advanced as
    `compute` advances it."""
    from faustdiff.learn.losses import _l2_rows
    prog = faustdiff.compile_source(STEREO_GRAD, wrt=["gain", "cutoff"]).program
    assert prog.LOSS_ROWS == 2 and prog.LOSS_KERNELS
    B, rng = 11, np.random.default_rng(4)
    x = rng.uniform(-1, 1, (B, 2, 1100))
    t = rng.uniform(-1, 1, (B, 2, 1100))
    a, b = prog.batch(B, threads), prog.batch(B, threads)
    cutoffs = rng.uniform(50, 15000, B)
    for bp in (a, b):
        bp.set_param("cutoff", cutoffs)
        bp.reset()
    for s0, n in ((0, 700), (700, 400)):
        got = a.l2_sums(x[:, :, s0:s0 + n], t[:, :, s0:s0 + n], n)
        y = b.compute(x[:, :, s0:s0 + n], n)
        e = y[:, :2] - t[:, :, s0:s0 + n]
        want = np.concatenate([np.sum(e * e, axis=2)] + [
            np.sum(y[:, r] * e[:, (r - 2) % 2], axis=1)[:, None] for r in range(2, 6)], axis=1)
        assert got.shape == (B, 6)
        assert np.allclose(got, want, rtol=1e-12, atol=1e-300)
        for k in range(B):
            s, g = _l2_rows(y[k, :2], t[k, :, s0:s0 + n], y[k, 2:].reshape(2, 2, n))
            assert np.array_equal(got[k], np.concatenate([s, g.reshape(-1)]))
    with pytest.raises(ValueError, match=r"l2_sums: targets must have shape \(11, 2, 5\), "
                                         r"got \(11, 1, 5\)"):
        a.l2_sums(x[:, :, :5], t[:, :1, :5], 5)


@pytest.mark.parametrize("P", [0, 1, 3, 5])
def test_l2_rows_sum_each_row_in_sample_order(P):
    """losses._l2_rows (four sums a pass) gives each sum exactly as one serial loop from
    0.0 in sample order gives it: the order the batch kernel's lanes sum in."""
    from faustdiff.learn.losses import _l2_rows
    rng = np.random.default_rng(P)
    y, t = rng.standard_normal((2, 300)), rng.standard_normal((2, 300))
    d = rng.standard_normal((P, 2, 300))
    s, g = _l2_rows(y, t, d)

    def serial(terms):
        acc = 0.0
        for v in terms:
            acc += v
        return acc
    for c in range(2):
        e = [y[c, j] - t[c, j] for j in range(300)]
        assert s[c] == serial(v * v for v in e)
        for i in range(P):
            assert g[i, c] == serial(d[i, c, j] * e[j] for j in range(300))


def test_trainer_vectorized_step_sums_the_loss_in_the_kernel():
    """A training step in forward mode, vectorised, with the L2 loss (no outputs asked
    for): the fused kernel's loss and gradient are the threads', bit for bit, and `fit`
    takes the same steps."""
    from faustdiff.learn import train as T
    rng = np.random.default_rng(8)
    xs = rng.uniform(-1, 1, (9, 2, 900))
    ts = 0.3 * xs
    trs = {m: T.Trainer(STEREO_GRAD, params=["gain", "cutoff"], lr=0.05, parallel=m)
           for m in ("threads", "vectorized")}
    v0, g0, _ = trs["threads"].loss_and_grad(trs["threads"].theta, list(xs), list(ts),
                                             outputs=False)
    tv = trs["vectorized"]
    calls = []
    from faustdiff.backend import runtime
    orig = runtime.BatchProgram.l2_sums

    def spy(self, *a):
        calls.append(self.batch)
        return orig(self, *a)
    runtime.BatchProgram.l2_sums = spy
    try:
        v1, g1, ys = tv.loss_and_grad(tv.theta, list(xs), list(ts), outputs=False)
        r = {m: tr.fit(xs, ts, steps=4) for m, tr in trs.items()}
    finally:
        runtime.BatchProgram.l2_sums = orig
    assert calls and set(calls) == {9} and ys is None
    assert v1 == v0 and np.array_equal(g1, g0)
    assert np.array_equal(r["vectorized"].losses, r["threads"].losses)
    assert r["vectorized"].params == r["threads"].params


def test_stack_inputs_reuses_the_array_the_examples_are_rows_of():
    """`fit` on a (B, inputs, n) array cuts it into views: the vectorised step reads that
    array itself; anything else (a shorter n, copies, other arrays) is stacked anew."""
    from faustdiff.learn.train import _batch, stack_inputs
    xs = np.random.default_rng(0).uniform(-1, 1, (3, 2, 50))
    rows, _ = _batch(xs, "inputs", 2)
    assert stack_inputs(rows, 2, 50) is xs
    cut = stack_inputs(rows, 2, 40)
    assert cut is not xs and np.array_equal(cut, xs[:, :, :40])
    copies = [r.copy() for r in rows]
    again = stack_inputs(copies, 2, 50)
    assert again is not xs and np.array_equal(again, xs)
    assert stack_inputs(rows[::-1], 2, 50) is not xs
    assert np.array_equal(stack_inputs(rows[::-1], 2, 50), xs[::-1])


# ---------------------------------------------------------------- random programs

hypothesis = pytest.importorskip("hypothesis")
from test_codegen import faust_expr  # noqa: E402 (the random programs of the scalar kernels)

SETTINGS_RANDOM = [-7.0, 0.0, 0.3, 2.0, 1e9]


def _run(prog, x, rows):
    """Two calls (70 + 130 samples) of a program or a batch, with its bargraph traces
    (rows: the number of bargraphs), or ("error", message)."""
    try:
        with np.errstate(all="ignore"):
            a = prog.compute(x[..., :70], 70)
            ta = prog.bargraph_traces
            b = prog.compute(x[..., 70:], 130)
            tb = prog.bargraph_traces
    except FaustError as e:
        return ("error", str(e))
    traces = [np.asarray(t).reshape(a.shape[:-2] + (rows, n))
              for t, n in ((ta, 70), (tb, 130))]
    return ("ok", np.concatenate([a, b], axis=-1), np.concatenate(traces, axis=-1))


@hypothesis.settings(max_examples=int(os.environ.get("FAUSTDIFF_RANDOM_EXAMPLES", "12")),
                     deadline=None, derandomize=not os.environ.get("FAUSTDIFF_RANDOM_FRESH"),
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(exprs=hypothesis.strategies.lists(faust_expr(), min_size=3, max_size=6),
                  seed=hypothesis.strategies.integers(0, 2**16))
def test_random_programs_batch_equals_one_instance_at_a_time(exprs, seed):
    """The batch kernel (every operation on vectors of the lanes' values, or lane by lane)
    against each instance's scalar kernel: 11 instances (a group and a padded one), each
    with its own sliders and inputs, bit for bit (NaN where NaN), bargraphs included."""
    defs = "".join(f"f{k}(x) = {e};\n" for k, e in enumerate(exprs))
    text = defs + "process = _ <: " + ", ".join(f"f{k}" for k in range(len(exprs))) + ";\n"
    try:
        prog = faustdiff.compile_source(text, "<random>")
    except FaustError:
        hypothesis.assume(False)
    B = 11
    rng = np.random.default_rng(seed)
    specials = np.array([0.0, -0.0, 1.0, -1.0, 0.5, 2.5, 1e10, -3e9, np.nan, np.inf, -np.inf,
                         7.0, 1e-300, 65537.0, -0.75])
    x = np.concatenate([np.tile(specials, (B, 1)), rng.standard_normal((B, 185)) * 4],
                       axis=1)[:, None, :]
    values = {k: rng.choice(SETTINGS_RANDOM, B) for k in prog.params}
    bp = prog.batch(B)
    for k, v in values.items():
        bp.set_param(k, v)
    bp.reset()
    got = _run(bp, x, len(prog.bargraph_labels))
    want = []
    for b in range(B):
        p = faustdiff.compile_source(text, "<random>")
        for k, v in values.items():
            p.set_param(k, float(v[b]))
        p.reset()
        want.append(_run(p, x[b], len(prog.bargraph_labels)))
    errors = [w for w in want if w[0] == "error"]
    if errors:
        assert got == errors[0], text
        return
    assert got[0] == "ok", (text, got)
    assert np.array_equal(got[1], np.stack([w[1] for w in want]), equal_nan=True), text
    assert np.array_equal(got[2], np.stack([w[2] for w in want]), equal_nan=True), text


def test_eight_lanes_give_the_same_results(tmp_path):
    """FAUSTDIFF_LANES=8 (one AVX-512 register of doubles; its own cache key): the batch of
    the `recursions` and `delays` programs, 11 instances, equals one instance at a time."""
    import subprocess
    code = f"""
import numpy as np, faustdiff
from faustdiff.backend import simd
assert simd.LANES == 8
for text in {[PROGRAMS["recursions"], PROGRAMS["delays"]]!r}:
    p = faustdiff.compile_source(text)
    x = np.random.default_rng(1).uniform(-1, 1, (11, p.num_inputs, 500))
    bp = p.batch(11)
    lab = sorted(p.params)[0]
    bp.set_param(lab, np.linspace(0, 1, 11) * p.params[lab] + 1)
    y = bp.compute(x)
    for b in range(11):
        q = faustdiff.compile_source(text)
        q.set_param(lab, float(np.linspace(0, 1, 11)[b] * p.params[lab] + 1))
        q.reset()
        assert np.array_equal(q.compute(x[b]), y[b], equal_nan=True), b
assert p.LANES == 8
print("ok")
"""
    env = dict(os.environ, FAUSTDIFF_LANES="8", FAUSTDIFF_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
