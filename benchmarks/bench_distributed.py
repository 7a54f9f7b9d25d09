"""Per-file fitting and data-parallel training: one process against a Dask cluster.

    python benchmarks/bench_distributed.py [--workers 2] [--pairs 8] [--seconds 4.0]
                                           [--steps 25] [--epochs 2] [--model peq10]

A dataset of --pairs generated pairs (noise through the model at hidden parameter values,
written as WAV files into a temporary folder), then, side by side in one run:

* per-file -- `Trainer.fit_each(dataset, steps)` (one fit per pair): in this process, then
              with `DaskExecutor` on a `LocalCluster` of --workers worker processes (one
              thread each; they load the module this process compiled from the shared disk
              cache). The cluster's first run includes each worker's compile; the figure
              is the second run's, and the first is printed beside it;
* dataset  -- `Trainer.fit(dataset, epochs)` (mini-batches of 8 segments, data-parallel
              on the workers: each computes a share of every batch's gradient).

Wall seconds (best of 2 after the warm-up), the speed-up, and whether the tables and
parameters equal the one-process ones. The cluster can only beat one process by the
number of cores it has to itself: on a 2-core machine the ideal is 2x, less the driver's
share and the transfers.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SR = 44100


def make_pairs(folder: str, model: str, count: int, n: int, labels: list) -> None:
    """NAME.in.wav / NAME.target.wav pairs: noise through the model, each pair at its own
    hidden parameter values (each widget's initial value times 0.7-1.3)."""
    import faustdiff
    from faustdiff.audio_io import write_audio
    prog = faustdiff.compile_file(model, sample_rate=SR)
    rng = np.random.default_rng(1)
    start = [prog.params[lab] for lab in labels]
    for k in range(count):
        x = rng.uniform(-0.5, 0.5, (prog.num_inputs, n))
        for lab, v0 in zip(labels, start):
            prog.set_param(lab, float(v0 * rng.uniform(0.7, 1.3)))
        prog.reset()
        y = prog.compute(x, n)
        write_audio(os.path.join(folder, f"p{k}.in.wav"), x, SR, 32)
        write_audio(os.path.join(folder, f"p{k}.target.wav"), y, SR, 32)


def timed(fn, repeat: int = 2):
    """(best seconds of `repeat` runs, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--model", default="peq10", help="a program of benchmarks/dsp")
    a = ap.parse_args()
    try:
        import distributed  # noqa: F401
    except ImportError:
        print("bench_distributed: needs Dask: pip install 'faustdiff[distributed]'")
        return 1
    import faustdiff
    from faustdiff.learn.dataset import Dataset
    from faustdiff.learn.distributed import DaskExecutor, dask_client
    from faustdiff.learn.train import Trainer

    model = str(HERE / "dsp" / f"{a.model}.dsp")
    labels = sorted(faustdiff.compile_file(model).params)
    n = int(a.seconds * SR)
    with tempfile.TemporaryDirectory() as d:
        make_pairs(d, model, a.pairs, n, labels)
        tr = Trainer(model, params=labels, lr=0.01, sample_rate=SR)
        ds = Dataset(d, program=tr, batch=8, segment=min(a.seconds, 0.25), seed=0)
        print(f"{a.model}: {len(labels)} parameter(s), {tr.grad_mode} mode; {a.pairs} pairs of "
              f"{a.seconds:g} s; {a.workers} workers; {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.1f}")
        theta0 = tr.theta.copy()

        def per_file(executor=None):
            tr.theta = theta0.copy()
            return tr.fit_each(ds, steps=a.steps, executor=executor)

        def dataset(executor=None):
            tr.theta = theta0.copy()
            tr.optimizer.reset()
            tr.fit(ds, epochs=a.epochs, executor=executor)
            return tr.theta.copy()

        one_pf, rows1 = timed(per_file)
        one_ds, th1 = timed(dataset)
        with dask_client(workers=a.workers) as client:
            ex = DaskExecutor(client)
            t0 = time.perf_counter()
            per_file(ex)
            first = time.perf_counter() - t0
            many_pf, rows2 = timed(lambda: per_file(ex))
            many_ds, th2 = timed(lambda: dataset(ex))
        print(f"{'workload':22s} {'one process':>12s} {'cluster':>9s} {'speed-up':>9s}  same result")
        print(f"{'per-file (' + str(a.steps) + ' steps)':22s} {one_pf:11.2f}s {many_pf:8.2f}s "
              f"{one_pf / many_pf:8.2f}x  {rows1 == rows2}   (cluster's first run, with "
              f"its compiles: {first:.2f} s)")
        print(f"{'dataset (' + str(a.epochs) + ' epochs)':22s} {one_ds:11.2f}s {many_ds:8.2f}s "
              f"{one_ds / many_ds:8.2f}x  {bool(np.array_equal(th1, th2))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
