"""Gradient steps per second when training from Python (faustdiff.learn.train).

    python benchmarks/bench_train.py [--seconds 1.0] [--steps 20] [--no-jax]
    python benchmarks/bench_train.py --memory [--minutes 10] [--segment 10]
    python benchmarks/bench_train.py --vectorized [--seconds 1.0] [--steps 20]

The model is the one-pole lowpass of the tests (cutoff on a log scale, 20 Hz - 20 kHz) on
1 s of noise at 44.1 kHz. One step = render the whole block with its forward-mode partial
(Numba kernel), the loss and dL/dy, dL/dθ = Σ dL/dy · ∂y/∂θ, one Adam step. Batches of 1
and 16 examples, for each way a batch can run (`parallel=`: serial, threads, prange) and
for the L2 and multi-resolution STFT losses. Compilation is done (and cached) before timing.

With jax installed (`pip install jax`) and the `faust` compiler on PATH, the same model is
also compiled by Faust's JAX backend (`faust -lang jax -double`): its generated `tick` is
run with `jax.lax.scan` and differentiated with `jax.grad` (reverse mode through the scan),
jit-compiled, batch 16 with `jax.vmap`.

`--vectorized`: batch 16 through `parallel="vectorized"` (the generated batch kernels: four
examples per SIMD vector, backend/simd.py; in forward mode with the L2 loss summed in the
kernel, `runtime.BatchProgram.l2_sums`) against `parallel="threads"`, side by side and
interleaved round by round, for the one-pole (forward mode) and the 30-parameter equaliser
benchmarks/dsp/peq10.dsp (reverse mode); the ratio of examples/s and how far apart the two
modes' losses and gradients are, with the outputs and as a training step computes them.

`--memory`: the peak resident memory of one training step (`Trainer.fit(x, t, steps=1)`:
the step's evaluation, the optimiser step, the final loss) on a long stereo file, 2 channels
at 44.1 kHz (white noise; the target is the input at -6 dB: what the target is does not
change the memory), through the 30-parameter equaliser in its stereo variant
benchmarks/dsp/peq10_stereo.dsp (the ten bands of peq10.dsp on each channel, the sliders
shared: one program with 2 inputs and 2 outputs, 30 parameters, reverse mode), the whole
file in one block against `segment=` seconds with the state carried. Each configuration
runs in a fresh subprocess that reports `resource.getrusage(RUSAGE_SELF).ru_maxrss` (the
program compiled and cached first, by the parent, so no child pays for compilation); the
RSS after loading the program and after making the file's arrays are printed too.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

LOWPASS = '''import("stdfaust.lib");
lowpass(fc) = *(1 - p) : + ~ *(p) with { p = exp(-2 * ma.PI * fc / ma.SR); };
process = lowpass(hslider("cutoff [scale:log]", 5000, 20, 20000, 1));
'''
SR = 44100


def bench_faustdiff(n: int, steps: int) -> list:
    from faustdiff.learn import train
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, (16, 1, n))
    ts = np.stack([train.render(LOWPASS, x, params={"cutoff": 500.0}) for x in xs])
    rows = []
    for loss in ("l2", "mrstft"):
        for batch in (1, 16):
            for mode in ("serial", "threads", "prange"):
                if batch == 1 and mode != "serial":
                    continue
                tr = train.Trainer(LOWPASS, params=["cutoff"], loss=loss, optimizer="adam",
                                   lr=0.01, parallel=mode)
                x, t = xs[:batch], ts[:batch]
                tr.fit(x, t, steps=2)                      # warm up: JIT, pools
                k = max(2, steps if loss == "l2" else steps // 4)
                t0 = time.perf_counter()
                tr.fit(x, t, steps=k)
                dt = time.perf_counter() - t0
                # fit also evaluates the final loss: k + 1 evaluations, k optimiser steps
                rows.append((f"faustdiff {loss}", batch, mode, k / dt))
    return rows


def bench_jax(n: int, steps: int) -> list:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        print("jax: not installed, skipped (pip install jax)")
        return []
    from faust_jax import faust_jax
    loaded = faust_jax(LOWPASS, SR, n)
    if loaded is None:
        print("jax: the faust compiler is not on PATH, skipped")
        return []
    dsp, state0 = loaded
    tick = dsp.tick

    def render(cutoff, x):
        st = dict(state0)
        st["fHslider0"] = cutoff

        def step(s, xin):
            s, y = tick(s, xin[None])
            return s, y[0]
        _, y = jax.lax.scan(step, st, x)
        return y

    def loss(cutoff, x, t):
        return jnp.mean((render(cutoff, x) - t) ** 2)

    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.uniform(-1, 1, (16, n)))
    ts = jax.vmap(lambda x: render(500.0, x))(xs)
    grad1 = jax.jit(jax.value_and_grad(loss))
    gradb = jax.jit(jax.value_and_grad(
        lambda c, x, t: jnp.mean(jax.vmap(loss, in_axes=(None, 0, 0))(c, x, t))))
    rows = []
    for batch, fn in ((1, lambda c: grad1(c, xs[0], ts[0])),
                      (16, lambda c: gradb(c, xs, ts))):
        v, g = fn(1000.0)
        jax.block_until_ready(g)
        t0 = time.perf_counter()
        for _ in range(steps):
            v, g = fn(1000.0)
        jax.block_until_ready(g)
        rows.append(("faust -lang jax + jax.grad (l2)", batch, "jit/vmap",
                     steps / (time.perf_counter() - t0)))
    return rows


PEQ_STEREO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dsp",
                          "peq10_stereo.dsp")
PEQ_LABELS = [f"{k}{i}" for i in range(10) for k in "gfb"]


def _maxrss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux


def memory_child(minutes: float, segment) -> None:
    """One configuration of --memory, in this (fresh) process: prints one JSON line."""
    import json
    from faustdiff.learn.train import Trainer
    tr = Trainer(PEQ_STEREO, params=PEQ_LABELS, lr=0.01, sample_rate=SR)
    loaded = _maxrss_mb()
    n = int(round(minutes * 60 * SR))
    x = np.random.default_rng(0).uniform(-1, 1, (2, n))
    t = 0.5 * x
    data = _maxrss_mb()
    t0 = time.perf_counter()
    r = tr.fit(x, t, steps=1, segment=segment)
    print(json.dumps({"segment": segment, "n": n, "mode": tr.grad_mode,
                      "loaded_mb": loaded, "data_mb": data, "peak_mb": _maxrss_mb(),
                      "seconds": time.perf_counter() - t0, "loss": float(r.losses[0])}))


def bench_memory(minutes: float, segment: float) -> None:
    """--memory: whole file vs segments, each in a fresh subprocess."""
    import json
    import subprocess
    from faustdiff.learn.train import Trainer
    t0 = time.perf_counter()
    tr = Trainer(PEQ_STEREO, params=PEQ_LABELS, sample_rate=SR)   # compile and cache
    print(f"peq10_stereo.dsp: {tr.program.num_inputs} in, {tr.program.num_outputs} out, "
          f"{len(tr.labels)} parameters, {tr.grad_mode} mode (ready in "
          f"{time.perf_counter() - t0:.1f} s); {minutes:g} min stereo at {SR} Hz, one "
          f"training step (fit steps=1); {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'what':28s} {'after load':>11s} {'with data':>10s} {'peak RSS':>10s} "
          f"{'seconds':>8s}")
    for seg in (None, segment):
        cmd = [sys.executable, os.path.abspath(__file__), "--memory-child",
               "whole" if seg is None else repr(seg), "--minutes", repr(minutes)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"  the child failed: {out.stderr.strip()[-400:]}")
            continue
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        what = "whole file" if seg is None else f"segments of {seg:g} s (carried)"
        print(f"{what:28s} {rec['loaded_mb']:8.0f} MB {rec['data_mb']:7.0f} MB "
              f"{rec['peak_mb']:7.0f} MB {rec['seconds']:8.1f}")


DSP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dsp")


def bench_vectorized(n: int, steps: int, rounds: int = 3) -> None:
    """--vectorized: batch 16, parallel="vectorized" against "threads", for the one-pole
    (forward mode, 1 parameter) and the 30-parameter equaliser (reverse mode), the two
    interleaved round by round (the machine's load shifts: each round times both); prints
    the examples/s of each round, the median ratio, and how close the results are."""
    from faustdiff.learn.train import Trainer
    # (the equaliser's gains start at 3 dB: at 0 dB every band is flat and the gradient is
    # rounding noise, |dL/dθ| ~ 1e-15, whose relative differences mean nothing)
    models = (("onepole.dsp", ["cutoff"], {}),
              ("peq10.dsp", PEQ_LABELS, {f"g{i}": 3.0 for i in range(10)}))
    rng = np.random.default_rng(0)
    xs = rng.uniform(-1, 1, (16, 1, n))
    print(f"{'model':12s} {'mode':>10s} {'grad':>8s} {'examples/s per round':>34s}")
    for name, labels, init in models:
        path = os.path.join(DSP, name)
        trs = {m: Trainer(path, params=labels, lr=0.01, parallel=m, sample_rate=SR, init=init)
               for m in ("threads", "vectorized")}
        ts = 0.5 * xs   # (what the target is does not change the speed)
        got = {m: tr.loss_and_grad(tr.theta, list(xs), list(ts)) for m, tr in trs.items()}
        # (what a training step computes: without the outputs, the vectorised forward mode
        # sums the L2 loss in its batch kernel, in another order)
        step = {m: tr.loss_and_grad(tr.theta, list(xs), list(ts), outputs=False)
                for m, tr in trs.items()}
        for tr in trs.values():
            tr.fit(xs, ts, steps=2)              # warm up: JIT, pools, buffers
        rates: dict = {m: [] for m in trs}
        for _ in range(rounds):
            for m, tr in trs.items():
                t0 = time.perf_counter()
                tr.fit(xs, ts, steps=steps)
                rates[m].append(16 * (steps + 1) / (time.perf_counter() - t0))
        for m, tr in trs.items():
            cells = " ".join(f"{r:10.0f}" for r in rates[m])
            print(f"{name:12s} {m:>10s} {tr.grad_mode:>8s} {cells:>34s}")
        (v0, g0, _), (v1, g1, _) = got["threads"], got["vectorized"]
        rel = float(np.max(np.abs(g1 - g0)) / max(np.max(np.abs(g0)), 1e-300))
        (_, g2, _), (v3, g3, _) = step["threads"], step["vectorized"]
        srel = float(np.max(np.abs(g3 - g2)) / max(np.max(np.abs(g2)), 1e-300))
        print(f"{name:12s} vectorized/threads = "
              f"{np.median(rates['vectorized']) / np.median(rates['threads']):.2f}x (median "
              f"of {rounds} rounds); with outputs: loss equal: {v0 == v1}, gradient max rel. "
              f"diff {rel:.1e}; a training step's: loss rel. diff "
              f"{abs(v3 - step['threads'][0]) / abs(step['threads'][0]):.1e}, gradient "
              f"{srel:.1e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vectorized", action="store_true", help="batch 16: the batch kernels "
                    "(parallel='vectorized') against threads, one-pole and peq10")
    ap.add_argument("--memory", action="store_true", help="peak RSS of one step on a long "
                    "stereo file: whole vs segments (see the docstring)")
    ap.add_argument("--minutes", type=float, default=10.0, help="--memory: file length")
    ap.add_argument("--segment", type=float, default=10.0, help="--memory: seconds")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=1.0, help="audio per example (s)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    ap.add_argument("--no-jax", action="store_true")
    args = ap.parse_args()
    if args.memory_child:
        seg = None if args.memory_child == "whole" else float(args.memory_child)
        return memory_child(args.minutes, seg)
    if args.memory:
        return bench_memory(args.minutes, args.segment)
    n = int(args.seconds * SR)
    if args.vectorized:
        print(f"batch 16, {n} samples per example, {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}")
        return bench_vectorized(n, max(2, args.steps // 4))
    try:
        import numba
        threads = numba.get_num_threads()
    except Exception:   # noqa: BLE001
        threads = "?"
    print(f"one-pole lowpass, {n} samples per example, {os.cpu_count()} CPUs, "
          f"{threads} Numba threads, load average {os.getloadavg()[0]:.1f}")
    rows = bench_faustdiff(n, args.steps)
    if not args.no_jax:
        rows += bench_jax(n, max(3, args.steps // 4))
    print(f"{'what':34s} {'batch':>5s} {'mode':>9s} {'steps/s':>9s} {'examples/s':>11s}")
    for what, batch, mode, rate in rows:
        print(f"{what:34s} {batch:5d} {mode:>9s} {rate:9.1f} {rate * batch:11.1f}")


if __name__ == "__main__":
    sys.exit(main())
