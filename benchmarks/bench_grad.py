"""Value and gradient of an L2 loss: forward mode vs reverse mode vs the plain render.

    python benchmarks/bench_grad.py [--seconds 1.0] [--repeat 5] [--no-jax] [--no-cold]
                                    [--memory MINUTES] [PROGRAM ...]

Four programs of benchmarks/dsp (1, 2, 32 and 30 parameters), 1 s of noise at 44.1 kHz,
every slider a parameter. Per program, side by side in one run (best of --repeat, the
measurements interleaved so that load changes reach all of them alike; wall
time, one thread):

* forward  -- `compute` of the plain program (the forward render);
* fwd-mode -- one value+gradient step in forward mode: `compute_with_grad` (the outputs and
              their partials, one tangent per parameter) and dL/dθ = Σ dL/dy ∂y/∂θ;
* reverse  -- the same step in reverse mode: `compute` (the outputs and the tapes) then
              `vjp(dL/dy)`, compiled with input_grads=False (what training uses: dL/dθ);
* +dx      -- the reverse step with dL/dx too (the default `input_grads=True`);
* kernel   -- the reverse step's two kernels alone (forward+tapes, backward) on buffers
              made once, without the Python around them (checks, the Jacobian);
* jax      -- with jax and the faust compiler installed: Faust's JAX back end
              (`faust -lang jax -double`), `jax.lax.scan` over its `tick`, `jax.jit(jax.
              value_and_grad)` with respect to every slider.

Ratios are to the forward render. "cold" is the compile time from an empty cache, in a fresh
process (parse, evaluate, AD, code generation, Numba), until the first result: wall and
(in parentheses) CPU seconds, the steadier figure when the machine is shared.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PROGRAMS = ["onepole", "drive_lowpass_dc", "fir32", "peq10"]
SR = 44100


def _interleaved(fns: dict, repeat: int) -> dict:
    """Best time of each function over `repeat` rounds; every round calls each function in
    turn, twice, and times the second call (its caches warm, as in a loop of training
    steps), so that a change of load on a shared machine reaches all of them alike and
    their ratios stay fair."""
    best = {k: float("inf") for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            fn()
            t0 = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - t0)
    return best


def _best(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _labels(prog) -> list:
    return sorted(prog.params)


def bench_faustdiff(name: str, n: int, repeat: int) -> dict:
    import faustdiff
    path = str(HERE / "dsp" / f"{name}.dsp")
    rng = np.random.default_rng(0)
    plain = faustdiff.compile_file(path)
    x = rng.uniform(-1, 1, (plain.num_inputs, n))
    labels = _labels(plain)
    fwd = faustdiff.compile_file(path, wrt=labels)
    rev = faustdiff.compile_file(path, wrt=labels, mode="reverse", input_grads=False)
    revx = faustdiff.compile_file(path, wrt=labels, mode="reverse")

    # Training moves the parameters every step: so does each step here (one slider nudged
    # back and forth), so that nothing computed from the parameters alone is reused.
    first, v0 = labels[0], plain.params[labels[0]]
    turn: dict = {}

    def moved(prog):
        k = turn[id(prog)] = 1 - turn.get(id(prog), 1)   # 0 on a program's first step
        prog.set_param(first, v0 + k * 1e-9 * max(1.0, abs(v0)))

    def step_fwd():
        moved(fwd)
        y, p = fwd.compute_with_grad(x, n)
        ct = y * (2.0 / y.size)   # dL/dy of the mean square
        return np.einsum("pon,on->p", p, ct)

    def step_rev():
        moved(rev)
        y = rev.compute(x, n)
        return rev.vjp(y * (2.0 / y.size))

    def step_revx():
        moved(revx)
        y = revx.compute(x, n)
        return revx.vjp(y * (2.0 / y.size))

    assert np.allclose(step_fwd(), step_rev()[0], rtol=1e-9, atol=1e-12 * n)
    from faustdiff.backend.reverse import _buffer, _Compiled
    fk, bk = _Compiled(rev.forward), _Compiled(rev.backward)
    tapes = _buffer(rev.num_outputs + rev.num_tapes, rev.history + n)
    d = _buffer(max(1, rev.backward.num_outputs), n)
    none = np.zeros((0, 0))

    def kernels():
        fk.run(x, tapes, none, 0, n, n)
        bk.state.clear()
        bk.run(tapes, d, none, 0, n, n)

    times = _interleaved({"forward": lambda: plain.compute(x, n), "fwd-mode": step_fwd,
                          "reverse": step_rev, "reverse+dx": step_revx,
                          "kernel": kernels}, repeat)
    return {"params": len(labels), "tapes": rev.num_tapes, "boundary": rev.num_boundary,
            **times}


COLD = r'''
import sys, time
import numpy as np
import numba   # imports are not compile time
import faustdiff
path, mode = sys.argv[1], sys.argv[2]
labels = sorted(faustdiff.compile_file(path, backend="interp").params)
t0, c0 = time.perf_counter(), time.process_time()
if mode == "plain":
    p = faustdiff.compile_file(path)
    p.compute(np.zeros((p.num_inputs, 64)), 64)
elif mode == "forward":
    p = faustdiff.compile_file(path, wrt=labels)
    p.compute_with_grad(np.zeros((p.num_inputs, 64)), 64)
else:
    p = faustdiff.compile_file(path, wrt=labels, mode="reverse")
    y = p.compute(np.zeros((p.num_inputs, 64)), 64)
    p.vjp(np.ones_like(y))
print(time.perf_counter() - t0, time.process_time() - c0)
'''


def cold(name: str, mode: str) -> tuple:
    """(wall, CPU) seconds to compile from an empty cache (fresh process), until the first
    result. On a loaded machine the CPU time is the steadier figure (compiling is one
    thread: wall = CPU on a quiet machine)."""
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, FAUSTDIFF_CACHE_DIR=d)
        out = subprocess.run([sys.executable, "-c", COLD, str(HERE / "dsp" / f"{name}.dsp"),
                              mode], env=env, capture_output=True, text=True, check=True)
        wall, cpu = out.stdout.strip().splitlines()[-1].split()
        return float(wall), float(cpu)


MEMORY = r'''
import resource, sys, time
import numpy as np
import faustdiff
path, minutes = sys.argv[1], float(sys.argv[2])
prog = faustdiff.compile_file(path, wrt=sorted(faustdiff.compile_file(path).params),
                              mode="reverse")
n = int(minutes * 60 * 44100)
x = np.random.default_rng(0).uniform(-1, 1, (prog.num_inputs, n))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
y = prog.compute(x)
dp, dx = prog.vjp(2 * y / y.size)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak / 2**20, base / 2**20, dt, prog._block[0])
'''


def memory(name: str, minutes: float) -> tuple:
    """(peak RSS GB, RSS before the step GB, seconds, 'whole'|'segments') of one reverse
    value+gradient step on `minutes` of audio, in a fresh process."""
    out = subprocess.run([sys.executable, "-c", MEMORY, str(HERE / "dsp" / f"{name}.dsp"),
                          str(minutes)], capture_output=True, text=True, check=True)
    peak, base, dt, kind = out.stdout.split()
    return float(peak), float(base), float(dt), kind


def bench_jax(name: str, n: int, repeat: int):
    """Faust's JAX back end + jax.value_and_grad, seconds per step (None if unavailable)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    from faust_jax import faust_jax
    loaded = faust_jax(str(HERE / "dsp" / f"{name}.dsp"), SR, n)
    if loaded is None:
        return None
    dsp, state0 = loaded
    keys = sorted(k for k in state0 if k.startswith(("fHslider", "fVslider", "fEntry")))
    ins = int(dsp.getNumInputs(dsp)) if hasattr(dsp, "getNumInputs") else 1

    def loss(params, x):
        st = dict(state0)
        st.update(params)

        def step(s, xin):
            s, y = dsp.tick(s, xin)
            return s, y
        _, y = jax.lax.scan(step, st, x)
        return jnp.mean(y ** 2)

    x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (n, ins)))
    params = {k: state0[k] for k in keys}
    fn = jax.jit(jax.value_and_grad(loss))

    def run():
        v, g = fn(params, x)
        jax.block_until_ready(g)
    try:
        return _best(run, max(1, repeat // 2))
    except Exception as e:   # noqa: BLE001 - a back end that cannot run this program
        print(f"jax: {name}: {type(e).__name__}: {e}"[:200])
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--no-cold", action="store_true")
    ap.add_argument("--tape-budget", type=float, default=None,
                    help="MB of tapes kept whole before checkpointing (default: the library's)")
    ap.add_argument("--memory", type=float, metavar="MINUTES", default=None,
                    help="also: peak memory of one reverse step on MINUTES of audio")
    ap.add_argument("programs", nargs="*", default=PROGRAMS)
    a = ap.parse_args()
    if a.tape_budget is not None:
        from faustdiff.backend import reverse
        reverse.TAPE_BUDGET = int(a.tape_budget * 2**20)
    n = int(a.seconds * SR)
    print(f"{a.seconds} s of audio ({n} samples), best of {a.repeat}, wall time; "
          f"load average {os.getloadavg()[0]:.2f}\n")
    head = (f"{'program':<18}{'θ':>3}{'tapes':>6} {'forward':>9} {'fwd-mode':>16} "
            f"{'reverse':>16} {'+dx':>16} {'kernel':>16}")
    if not a.no_jax:
        head += f" {'jax':>18}"
    if not a.no_cold:
        head += f"  {'cold, wall (CPU): plain / fwd / rev':>44}"
    print(head)
    for name in a.programs:
        r = bench_faustdiff(name, n, a.repeat)
        f = r["forward"]
        line = (f"{name:<18}{r['params']:>3}{r['tapes']:>6} {f * 1e3:>7.2f}ms "
                f"{r['fwd-mode'] * 1e3:>8.2f}ms {r['fwd-mode'] / f:>5.1f}x "
                f"{r['reverse'] * 1e3:>8.2f}ms {r['reverse'] / f:>5.1f}x "
                f"{r['reverse+dx'] * 1e3:>8.2f}ms {r['reverse+dx'] / f:>5.1f}x "
                f"{r['kernel'] * 1e3:>8.2f}ms {r['kernel'] / f:>5.1f}x")
        if not a.no_jax:
            j = bench_jax(name, n, a.repeat)
            line += (f" {j * 1e3:>8.1f}ms {j / r['reverse']:>6.0f}x/rev" if j
                     else f" {'-':>18}")
        if not a.no_cold:
            c = [cold(name, m) for m in ("plain", "forward", "reverse")]
            line += "  " + " / ".join(f"{w:5.2f} ({u:5.2f})" for w, u in c) + " s"
        print(line, flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    if a.memory:
        print(f"\none reverse value+gradient step on {a.memory} minutes of audio "
              "(fresh process, peak RSS):")
        for name in a.programs:
            peak, base, dt, kind = memory(name, a.memory)
            print(f"{name:<18} peak {peak:6.2f} GB (before the step {base:5.2f} GB), "
                  f"{dt:6.1f} s, tapes kept {kind}", flush=True)


if __name__ == "__main__":
    main()
