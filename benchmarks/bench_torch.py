"""FaustModule (faustdiff.torch) training step vs the plain forward render.

    python benchmarks/bench_torch.py [--batch 16] [--seconds 1.0] [--repeat 5]
                                     [--threads N] [PROGRAM ...]

Per program of benchmarks/dsp (every slider learnable), side by side in one run, best of
--repeat wall-clock runs on a batch of `--batch` clips of `--seconds` of noise at 44.1 kHz:

* plain    -- the compiled program's `compute` on each clip in turn (reset before each);
* module   -- `FaustModule.forward` under torch.no_grad (the layer without autograd);
* step     -- one training step: forward, an L2 loss, backward (the compiled VJP of every
              clip), Adam's update; ratios are to `plain`.
module and step run the batch's clips one at a time (`threads=1`), then on `--threads`
threads (default: every core); torch's own ops use one thread throughout.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

import faustdiff
from faustdiff.torch import FaustModule

from bench_grad import _best as best   # (this folder: the benchmarks' one timer)

HERE = Path(__file__).resolve().parent
SR = 44100


def bench(name, batch, n, repeat, threads):
    path = str(HERE / "dsp" / f"{name}.dsp")
    plain = faustdiff.compile_file(path)
    x = torch.rand(batch, plain.num_inputs, n, dtype=torch.float64) * 2 - 1
    xs = x.numpy()
    target = torch.zeros(batch, plain.num_outputs, n, dtype=torch.float64)

    def run_plain():
        for k in range(batch):
            plain.reset()
            plain.compute(xs[k], n)
    out = {"plain": best(run_plain, repeat)}
    for t in (1, threads):
        layer = FaustModule(path, threads=t)
        opt = torch.optim.Adam(layer.parameters(), lr=1e-3)

        def run_module():
            with torch.no_grad():
                layer(x)

        def step():
            opt.zero_grad()
            loss = ((layer(x) - target) ** 2).mean()
            loss.backward()
            opt.step()
        out[t] = (best(run_module, repeat), best(step, repeat))
        out["params"] = len(layer.labels)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("programs", nargs="*", default=["onepole", "drive_lowpass_dc", "fir32", "peq10"])
    a = ap.parse_args()
    n = int(a.seconds * SR)
    torch.set_num_threads(1)
    t = a.threads
    print(f"batch {a.batch} x {a.seconds:g} s ({n} samples), best of {a.repeat}, wall time; "
          f"ratios to plain\n")
    print(f"{'program':18s} {'θ':>3s} {'plain':>9s} {'module, 1 thread':>18s} "
          f"{'step, 1 thread':>18s} {f'module, {t} threads':>19s} {f'step, {t} threads':>19s}")
    for name in a.programs:
        r = bench(name, a.batch, n, a.repeat, t)
        f = r["plain"]
        cells = [f"{v * 1e3:9.2f}ms {v / f:5.2f}x" for v in (*r[1], *r[t])]
        print(f"{name:18s} {r['params']:3d} {f * 1e3:7.2f}ms " + " ".join(cells))


if __name__ == "__main__":
    main()
