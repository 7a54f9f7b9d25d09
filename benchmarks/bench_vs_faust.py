#!/usr/bin/env python3
"""faustdiff's generated code against the Faust compiler's C++, side by side.

    python benchmarks/bench_vs_faust.py [--samples N] [--block B] [--repeats R] [PROGRAM...]

Renders 50 s of audio (2,205,000 samples at 44.1 kHz, zero inputs, blocks of 256) of:

  biquads  8 cascaded biquads (fi.tf2) on no.noise             benchmarks/dsp/biquads.dsp
  combs    three feedback combs (1000-1600 samples) on noise    benchmarks/dsp/combs.dsp
  oscs     a bank of 16 os.osc                                  benchmarks/dsp/oscs.dsp
  seed     the seed's gain+DC learning program                  conformance 36_seed_gain_dc_learn

with

* Faust: `faust -double -a benchmarks/bench_arch.cpp` + `g++ -O3 -march=native` (when both are
  installed): a C++ loop calling compute() on blocks of 256 samples, best of R runs;
  times are CPU times of the process (the wall clock is shown too: on a busy machine it
  mostly measures the other processes);
* faustdiff, timed three ways (best of R runs, state reset between runs):
    kernel  the same harness as the C++ one: a compiled loop calling the program's kernel
            (exactly what `compute` runs) on reused blocks of 256 samples; this is the
            apples-to-apples figure, and the ratio faustdiff/Faust is computed from it;
    render  `program.render(N, block=256)`: the block loop in compiled code, but writing the
            whole N-sample outputs and bargraph traces (memory traffic the C++ harness does
            not have);
    api     `program.compute(None, 256)` called from Python for every block (adds Python's
            per-call overhead, a few microseconds).
JIT compile time (front end + Numba, with an empty cache) and the warm load from the disk
cache are reported separately. Outputs are cross-checked (sum of output 0).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

PROGRAMS = {
    "biquads": HERE / "dsp" / "biquads.dsp",
    "combs": HERE / "dsp" / "combs.dsp",
    "oscs": HERE / "dsp" / "oscs.dsp",
    "seed": ROOT / "tests" / "conformance" / "faust" / "36_seed_gain_dc_learn.dsp",
}
SEED_SHARED = Path("/work/shared/conformance/faust/36_seed_gain_dc_learn.dsp")


def program_path(name: str) -> Path:
    p = PROGRAMS[name]
    if not p.exists() and name == "seed" and SEED_SHARED.exists():
        return SEED_SHARED
    return p


# ---------------------------------------------------------------- Faust C++

def faust_available() -> bool:
    return bool(shutil.which("faust") and shutil.which("g++"))


def build_faust(dsp: Path, work: Path) -> Path:
    cpp = work / (dsp.stem + ".cpp")
    exe = work / dsp.stem
    subprocess.run(["faust", "-double", "-a", str(HERE / "bench_arch.cpp"), str(dsp),
                    "-o", str(cpp)], check=True, capture_output=True)
    subprocess.run(["g++", "-O3", "-march=native", str(cpp), "-o", str(exe)], check=True,
                   capture_output=True)
    return exe


def run_faust(exe: Path, samples: int, block: int, repeats: int) -> dict:
    out = subprocess.run([str(exe), str(samples), str(block), str(repeats)], check=True,
                         capture_output=True, text=True).stdout.split()
    return {"cpu": float(out[0]), "wall": float(out[1]), "sum": float(out[2])}


def _best(fn, repeats: int, setup=None) -> tuple[float, float, object]:
    """(best CPU seconds, best wall seconds, last result) of `fn()` over `repeats` runs."""
    cpu = wall = 1e300
    result = None
    for _ in range(repeats):
        if setup is not None:
            setup()
        c, w = time.process_time(), time.perf_counter()
        result = fn()
        cpu = min(cpu, time.process_time() - c)
        wall = min(wall, time.perf_counter() - w)
    return cpu, wall, result


# ---------------------------------------------------------------- faustdiff

_DRIVERS: dict = {}


def _driver(kernel):
    """A compiled copy of the C++ harness's loop around `kernel` (one per program)."""
    from numba import njit

    @njit(cache=False)
    def drive(total, block, ins, outs, bars, ctl, iv, fv, di, df, hi, hf):
        s = 0.0
        done = 0
        while done < total:
            n = min(block, total - done)
            kernel(n, 0, n, ins, outs, bars, ctl, iv, fv, di, df, hi, hf)
            for i in range(n):
                s += outs[0, i]
            done += n
        return s
    return drive


def time_faustdiff(dsp: Path, samples: int, block: int, repeats: int) -> dict:
    import numpy as np
    from faustdiff import api
    from faustdiff.backend.runtime import KernelState

    res: dict = {}
    cold_dir = tempfile.mkdtemp(prefix="faustdiff-bench-cache-")
    old = os.environ.get("FAUSTDIFF_CACHE_DIR")
    os.environ["FAUSTDIFF_CACHE_DIR"] = cold_dir
    try:
        from faustdiff.backend import cache
        text = dsp.read_text()
        t0 = time.perf_counter()
        src, _ = cache.build(text, str(dsp), 44100)       # front end + code generation
        t1 = time.perf_counter()
        cache._loaded.clear()
        prog = api.compile_file(str(dsp))                  # all of it, empty cache
        t2 = time.perf_counter()
        res["front_end"] = t1 - t0
        res["compile_total"] = t2 - t1
        res["jit"] = max(0.0, (t2 - t1) - (t1 - t0))
        cache._loaded.clear()
        t3 = time.perf_counter()
        prog = api.compile_file(str(dsp))                  # warm: from the disk cache
        res["warm_load"] = time.perf_counter() - t3
    finally:
        if old is None:
            os.environ.pop("FAUSTDIFF_CACHE_DIR", None)
        else:
            os.environ["FAUSTDIFF_CACHE_DIR"] = old

    nin, nout, nbar = prog.num_inputs, prog.num_outputs, len(prog.bargraph_labels)
    ins = np.zeros((nin, block))
    outs = np.zeros((nout, block))
    bars = np.zeros((nbar, block))
    drive = _driver(prog.kernel)
    st = KernelState(prog.STATES[0])
    prog.reset()
    st.df[:] = prog._state.df   # tables
    st.di[:] = prog._state.di
    tables_i, tables_f = st.di.copy(), st.df.copy()
    drive(block, block, ins, outs, bars, prog._ctl, st.iv, st.fv, st.di, st.df, st.hi, st.hf)

    def fresh():
        st.iv[:] = 0
        st.fv[:] = 0
        st.di[:] = tables_i
        st.df[:] = tables_f

    cpu, wall, total = _best(lambda: drive(samples, block, ins, outs, bars, prog._ctl, st.iv,
                                           st.fv, st.di, st.df, st.hi, st.hf), repeats, fresh)
    res["kernel"], res["kernel_wall"], res["sum"] = cpu, wall, total
    res["render"], res["render_wall"], _ = _best(lambda: prog.render(samples, block), repeats,
                                                 prog.reset)

    def api_loop():
        compute = prog.compute
        for s in range(0, samples, block):
            compute(None, min(block, samples - s))
    res["api"], res["api_wall"], _ = _best(api_loop, max(1, repeats - 2), prog.reset)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("programs", nargs="*", metavar="PROGRAM",
                    help=f"some of {', '.join(PROGRAMS)} (default: all)")
    ap.add_argument("--samples", type=int, default=2_205_000)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    for p in args.programs:
        if p not in PROGRAMS:
            ap.error(f"unknown program {p!r} (known: {', '.join(PROGRAMS)})")
    args.programs = args.programs or list(PROGRAMS)

    have_faust = faust_available()
    if not have_faust:
        print("faust and/or g++ not installed: faustdiff timings only", file=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="faustdiff-bench-"))
    rows = []
    print(f"{args.samples} samples, blocks of {args.block}, best of {args.repeats}\n")
    print("CPU time in ms (wall clock in parentheses); ratio = faustdiff kernel / Faust, CPU")
    hdr = (f"{'program':8} {'Faust C++':>15} {'fd kernel':>15} {'ratio':>5} {'fd render':>15} "
           f"{'fd api':>15} {'front':>5} {'jit':>5} {'warm':>5}  check")
    print(hdr)
    print("-" * len(hdr))

    def ms(cpu, wall):
        return f"{cpu * 1e3:6.1f} ({wall * 1e3:6.1f})"

    for name in args.programs:
        dsp = program_path(name)
        fd = time_faustdiff(dsp, args.samples, args.block, args.repeats)
        ft = None
        if have_faust:
            exe = build_faust(dsp, work)
            ft = run_faust(exe, args.samples, args.block, args.repeats)
        ratio = fd["kernel"] / ft["cpu"] if ft else None
        check = ""
        if ft is not None:
            rel = abs(fd["sum"] - ft["sum"]) / max(1e-300, abs(ft["sum"]))
            check = f"sums agree to {rel:.1e}"
        rows.append((name, ratio))
        print(f"{name:8} {ms(ft['cpu'], ft['wall']) if ft else 'n/a':>15} "
              f"{ms(fd['kernel'], fd['kernel_wall'])} {ratio if ratio else float('nan'):5.2f} "
              f"{ms(fd['render'], fd['render_wall'])} {ms(fd['api'], fd['api_wall'])} "
              f"{fd['front_end']:5.2f} {fd['jit']:5.2f} {fd['warm_load']:5.2f}  {check}")
        sys.stdout.flush()
    print("front: parse + evaluate + generate (s); jit: Numba compile of a cold cache (s); "
          "warm: load from the disk cache (s)")
    ratios = [r for _, r in rows if r]
    if ratios:
        print(f"\nratio faustdiff kernel / Faust C++ (CPU): max {max(ratios):.2f}, "
              f"median {statistics.median(ratios):.2f} (targets: max <= 1.5, median <= 1.2)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
