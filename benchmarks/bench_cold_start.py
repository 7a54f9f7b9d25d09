#!/usr/bin/env python3
"""Start-up time of `faustdiff run`: empty cache (cold) and warm cache, and the floor.

    python benchmarks/bench_cold_start.py [--repeats R] [DSP]

Times, as separate processes (wall clock, and CPU time = user + sys, which is what an idle
machine would show when the machine is busy):

  cold   `faustdiff run DSP --samples 44100` with an empty cache directory (parse, evaluate,
         generate, Numba JIT, render); targets <= 3 s
  warm   the same command again (cache hit: no parsing, no JIT); target <= 1 s
  floor  `python -c "import numpy, numba"` and Python + Numba loading one cached trivial
         kernel: what any Numba-based warm start pays

DSP defaults to examples/gain_dc_learn_seed.dsp (the seed's learner). Each figure is the best of R runs (default 3); every
cold run gets a fresh cache directory.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd, env) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def best(runs):
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    seed = ROOT / "examples" / "gain_dc_learn_seed.dsp"
    ap.add_argument("dsp", nargs="?",
                    default=str(seed if seed.exists() else ROOT / "examples" / "hello.dsp"))
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    script = shutil.which("faustdiff")
    run = ([script] if script and "--module" not in sys.argv else
           [sys.executable, "-m", "faustdiff.cli"])
    cmd = run + ["run", args.dsp, "--samples", "44100"]

    work = Path(tempfile.mkdtemp(prefix="faustdiff-coldstart-"))
    try:
        cold = []
        for k in range(args.repeats):
            env["FAUSTDIFF_CACHE_DIR"] = str(work / f"cold{k}")
            cold.append(timed(cmd, env))
        env["FAUSTDIFF_CACHE_DIR"] = str(work / "cold0")
        warm = [timed(cmd, env) for _ in range(args.repeats)]

        floor_mod = work / "floor_kernel.py"
        floor_mod.write_text("from numba import njit\n\n@njit(cache=True)\ndef f(x):\n"
                             "    return x + 1\n\nf(1)\n")
        subprocess.run([sys.executable, str(floor_mod)], check=True)
        imports = [timed([sys.executable, "-c", "import numpy, numba"], env)
                   for _ in range(args.repeats)]
        kernel = [timed([sys.executable, str(floor_mod)], env) for _ in range(args.repeats)]
        bare = [timed([sys.executable, "-c", "pass"], env) for _ in range(args.repeats)]
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"{' '.join(cmd[len(run):])}  (best of {args.repeats}; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)\n")
    print(f"{'':38} {'wall s':>7} {'cpu s':>7}  target")
    for label, runs, target in [("cold (empty cache)", cold, "<= 3 s"),
                                ("warm (cache hit)", warm, "<= 1 s"),
                                ("python alone", bare, ""),
                                ("python + import numpy, numba", imports, ""),
                                ("python + numba + one cached kernel", kernel, "")]:
        w, c = best(runs)
        print(f"{label:38} {w:7.2f} {c:7.2f}  {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
