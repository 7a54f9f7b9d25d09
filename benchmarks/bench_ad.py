#!/usr/bin/env python3
"""What forward-mode AD costs: a 64-tap FIR with N = 1, 4, 16, 64 variables against the same
program without derivatives.

    python benchmarks/bench_ad.py [--samples N] [--repeats R] [--backend numba|interp]
                                  [--nvars 1,4,16,64]

Two programs (generated below), each built with N = 0 (no partials at all: the baseline) and
with N variables, the first N taps:

* `forward`: y = sum_i b_i x[n-i] on no.noise, each tap `df.diff(*, N)` of the delayed input
  and a `df.var` slider (learned taps) or a constant dual (the others), summed by a left fold
  of `df.diff(+, N)`; outputs y and its N partials.
* `learner`: the same FIR learning its first N taps (`df.var` accumulators) against a hidden
  FIR through `df.backprop` and `df.learnL2(8, 0.05, N)`: per variable it adds a windowed
  mean, a gradient, an accumulator and two bargraphs (whose traces the program records every
  sample).

For each it prints the compile time (front end + backend; the backend's disk cache may make
a second run faster), the render time of `--samples` samples (best of R, state reset between
runs) and its ratio to the N = 0 program. Tangents that are structurally zero cost nothing:
here tap i only has a partial along variable i, so the forward ratio grows far slower than
1 + N.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

TAPS = 64


def program(nvars: int, kind: str = "learner") -> str:
    """The Faust source of the `forward` or `learner` program with `nvars` variables."""
    head = f"""
df = library("diff.lib");
import("stdfaust.lib");
T = {TAPS};
N = {nvars};
b(i) = sin(i);
sumduals(k) = seq(j, k - 1, df.diff(+, N), si.bus((k - 2 - j) * (N + 1)));
"""
    if kind == "forward":
        return head + """
process = no.noise <: par(i, T, tap(i)) : sumduals(T)
with {
    tap(i) = (@(i) : df.input(N)), coef(i < N) : df.diff(*, N)
    with {
        coef(1) = df.var(i + 1, hslider("b%i", b(i), -1, 1, 0.001), N);   // a variable
        coef(0) = df.diff(b(i), N);                                       // a constant
    };
};
"""
    return head + """
process = no.noise <: df.backprop(truth, learnable, df.learnL2(8, 5e-2, N))
with {
    truth = _ <: sum(i, T, @(i) * b(i));
    // inputs [x, step_1..step_N]: tap i gets x and, for i < N, step_i+1
    learnable = route(N + 1, 2 * T, par(i, T, (1, 2 * i + 1)), par(i, N, (i + 2, 2 * i + 2)))
        : par(i, T, tap(i)) : sumduals(T);
    tap(i) = (@(i) : df.input(N)), coef(i < N) : df.diff(*, N)
    with {
        coef(1) = df.var(i + 1, (-~_ <: attach(hbargraph("b%i", -1, 1))), N);  // learned
        coef(0) = (! : df.diff(b(i), N));                                       // fixed
    };
};
"""


def bench(nvars: int, kind: str, samples: int, repeats: int, backend) -> tuple[float, float]:
    import faustdiff
    src = program(nvars, kind)
    t0 = time.perf_counter()
    name = f"<fir{TAPS}_{kind}_N{nvars}>"
    prog = (faustdiff.compile_source(src, name, backend=backend) if backend
            else faustdiff.compile_source(src, name))
    compile_s = time.perf_counter() - t0
    prog.compute(n=64)   # warm up (JIT, caches)
    best = float("inf")
    for _ in range(repeats):
        prog.reset()
        t0 = time.perf_counter()
        prog.compute(n=samples)
        best = min(best, time.perf_counter() - t0)
    return compile_s, best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=44100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", default=None, help="numba or interp (default: the default)")
    ap.add_argument("--nvars", default="1,4,16,64")
    args = ap.parse_args(argv)
    counts = [int(x) for x in args.nvars.split(",")]
    print(f"{TAPS}-tap FIR, {args.samples} samples, best of {args.repeats}, "
          f"backend {args.backend or 'default'}")
    print(f"{'program':>8} {'N':>4} {'compile s':>10} {'render s':>10} {'us/sample':>10} "
          f"{'ratio':>7}")
    for kind in ("forward", "learner"):
        base = None
        for n in [0] + counts:
            c, r = bench(n, kind, args.samples, args.repeats, args.backend)
            if base is None:
                base = r
            print(f"{kind:>8} {n:>4} {c:10.2f} {r:10.4f} "
                  f"{1e6 * r / args.samples:10.3f} {r / base:7.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
