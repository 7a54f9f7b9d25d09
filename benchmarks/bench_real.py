#!/usr/bin/env python3
"""faustdiff against the Faust compiler on real programs (issue 11's benchmark).

    python benchmarks/bench_real.py [FOLDER] [--snapshot GITDIR] [--seconds S] [--timeout T]
                                    [--lib-path DIR] [--only NAME ...]

Programs: every .dsp file of FOLDER (its own folder on the library path), or by default a
list of the Faust distribution's examples (`DEFAULT` below), extracted at run time from a
fetched snapshot of grame-cncm/faust (a bare git directory: `--snapshot`, else
$FAUSTDIFF_FAUST_SNAPSHOT, else /work/.mirror/grame-cncm+faust/repo) into a temporary
folder (each example's whole folder, for its local imports); nothing of it is kept.
Libraries: `--lib-path` (default /usr/share/faust when it exists) becomes $FAUST_LIB_PATH,
so both compilers read the installed libraries.

Per program (each in its own process, with a fresh faustdiff cache, killed after
`--timeout` seconds):
  whole    CPU seconds to render S seconds (44.1 kHz, zero inputs) in one `program.compute`
           call (what a user rendering an array does), ours / faust's and their ratio;
  blocks   the same by calls of 256 samples (an audio driver's blocks), ours (one Python
           `compute` call per block: its per-call cost is in the figure) / faust's, ratio;
  faust    `faust -double -a benchmarks/bench_arch.cpp` + `g++ -O3 -march=native` (a loop
           calling compute() into a buffer); every time the best of 3;
  cold     our cold compile time: front end + code generation + Numba, empty cache,
           wall seconds and (CPU) seconds, the steadier figure on a shared machine;
  states   our loop-carried state (recursion variables and prefixes, + the delay lines of
           signals other than a recursion's output) against Faust's (fRec/iRec arrays,
           which hold a recursion's own delays, + fVec/iVec delay lines) in its C++;
  ops      operations per sample in the loop of our kernel and of Faust's compute()
           (operators, selects, conversions, calls; see `ops_cpp`);
then the median and worst ratio. A program that fails is reported, not fatal.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SNAPSHOT = "/work/.mirror/grame-cncm+faust/repo"

DEFAULT = [
    "reverb/zitaRev.dsp", "reverb/freeverb.dsp", "reverb/dattorro.dsp", "reverb/greyhole.dsp",
    "reverb/jprev.dsp",
    "filtering/moogLadder.dsp", "filtering/diodeLadder.dsp", "filtering/vocoder.dsp",
    "filtering/filterBank.dsp", "filtering/cryBaby.dsp", "filtering/parametricEqualizer.dsp",
    "generator/virtualAnalog.dsp", "generator/churchOrgan.dsp", "generator/dx7.dsp",
    "physicalModeling/karplus.dsp", "physicalModeling/churchBell.dsp",
    "physicalModeling/flute.dsp", "physicalModeling/clarinet.dsp",
    "dynamic/compressor.dsp", "dynamic/distortion.dsp",
    "delayEcho/quadEcho.dsp",
    "SAM/chorus/chorus.dsp", "SAM/flanger/flanger.dsp", "SAM/virtualAnalog/virtualAnalog.dsp",
]

SR, BLOCK = 44100, 256


# ---------------------------------------------------------------- programs

def extract(snapshot: str, rels: list, dest: Path) -> list:
    """Copy each example's folder (tracked files) from the bare git dir into dest."""
    git = ["git", f"--git-dir={snapshot}"]
    listing = subprocess.run(git + ["ls-tree", "-r", "--name-only", "HEAD", "examples"],
                             check=True, capture_output=True, text=True).stdout.split("\n")
    out = []
    for rel in rels:
        folder = os.path.dirname("examples/" + rel)
        for name in listing:
            if os.path.dirname(name) == folder and name.endswith((".dsp", ".lib")):
                target = dest / name
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    data = subprocess.run(git + ["show", f"HEAD:{name}"], check=True,
                                          capture_output=True).stdout
                    target.write_bytes(data)
        p = dest / "examples" / rel
        out.append((rel[:-4], p if p.exists() else None))
    return out


# ---------------------------------------------------------------- Faust's side

def faust_side(dsp: Path, work: Path, samples: int) -> dict:
    cpp, exe = work / (dsp.stem + ".cpp"), work / dsp.stem
    r = subprocess.run(["faust", "-double", "-a", str(HERE / "bench_arch.cpp"),
                        "-I", str(dsp.parent), str(dsp), "-o", str(cpp)],
                       capture_output=True, text=True)
    if r.returncode:
        return {"error": "faust: " + (r.stderr.strip().splitlines() or ["failed"])[-1]}
    r = subprocess.run(["g++", "-O3", "-march=native", "-w", str(cpp), "-o", str(exe)],
                       capture_output=True, text=True)
    if r.returncode:
        return {"error": "g++ failed"}
    times = {}
    for kind, block in (("whole", samples), ("blocks", BLOCK)):
        out = subprocess.run([str(exe), str(samples), str(block), "3"], capture_output=True,
                             text=True, check=True).stdout.split()
        times[kind] = float(out[0])
    text = cpp.read_text()
    recs = set(re.findall(r"\b([fi]Rec\d+)\[\d+\];", text))
    vecs = set(re.findall(r"\b([fi]Vec\d+)\[\d+\];", text))
    return {**times, "recs": len(recs), "lines": len(vecs), "ops": ops_cpp(text)}


# ---------------------------------------------------------------- operation counts

# Operations of one sample: arithmetic, comparison and bit operators, selects, conversions
# and calls (math functions, min/max, clamps count two), in the per-sample loop of Faust's
# compute() and of our main kernel. State loads and stores and the indexing of inputs and
# outputs are not operations on either side (C++ reads fRec0[1], we a local); the index
# arithmetic of delay lines is, on both sides.
_NUMBER = re.compile(r"(?<![\w.])\d+\.?\d*(?:e[-+]?\d+)?")
_BINARY = re.compile(r"(<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^<>?])")


def _count(text: str) -> int:
    text = _NUMBER.sub("0", text)
    calls = len(re.findall(r"[A-Za-z_][\w:]*\(", text))
    return calls + len(_BINARY.findall(re.sub(r"[A-Za-z_][\w:]*\(", "(", text)))


def ops_cpp(text: str) -> int:
    """Operations in the sample loop of Faust's compute() (see above)."""
    body = text[text.index("virtual void compute("):]
    start = body.index("for (int i0 = 0; i0 < count; i0 = i0 + 1) {")
    depth, k = 0, body.index("{", start)
    for k in range(k, len(body)):
        depth += {"{": 1, "}": -1}.get(body[k], 0)
        if depth == 0:
            break
    loop = body[body.index("{", start) + 1:k]
    loop = re.sub(r"<(double|int|float)>", "", loop)
    loop = re.sub(r"FAUSTFLOAT\(", "(", loop)        # outputs' cast: a no-op in -double
    loop = re.sub(r"\b(input|output)\d+\[i0\]", "x", loop)
    loop = re.sub(r"\b([fi](Rec|Vec)\d+)\[(\d+)\]", "x", loop)   # state reads/shifts
    return _count(loop)


def ops_ours(module_text: str) -> int:
    """Operations in the sample loop of our main kernel (see above)."""
    k0 = module_text[module_text.index("def _k0("):]
    k0 = k0[:k0.index("\ndef ") if "\ndef " in k0 else len(k0)]
    loop = k0[k0.index("for i in range("):k0.index("t += 1")]
    loop = loop[loop.index("\n"):]
    out = []
    for line in loop.splitlines():
        line = line.split("#")[0].strip()
        if re.match(r"s[fi]\d+ = ld\(state_[fi], \d+\)$", line):
            continue                                   # a state load
        line = re.sub(r"^st\(state_[fi], \d+, ", "(", line)     # a state store
        line = re.sub(r"\b(ld|st)\((ins|outs|bars), (\d+ \* n[iob] \+ )?"
                      r"(\(s0 \+ s1 - 1 - i\)|i)( [-+] \d+)?", "(x", line)
        # a delay line's or table's region of di/df: its start offset is the address of
        # Faust's own array (fVec0[...]), not an operation
        line = re.sub(r"\b(ld|st)\((di|df), \d+ \+ ", "(", line)
        line = re.sub(r"\b(ld|st)\(\w+, ", "(", line)
        line = re.sub(r"^\w+ = ", "", line)
        line = re.sub(r"\bclip\(", "min(max(", line)
        line = line.replace("np.int32(", "(")         # int32 wrap-around: no machine op
        line = line.replace("sel(", "(")   # its comparison is the operation (min: x < y)
        line = line.replace(" if ", " ? ").replace(" else ", " ")
        out.append(line)
    return _count("\n".join(out))


# ---------------------------------------------------------------- our side (child process)

def our_side(dsp: Path, samples: int) -> dict:
    cold = tempfile.mkdtemp(prefix="faustdiff-bench-real-")
    os.environ["FAUSTDIFF_CACHE_DIR"] = cold
    try:
        import numpy as np  # noqa: F401
        import numba  # noqa: F401  (its import is not compile time)
        from faustdiff import api
        from faustdiff.frontend.arity import arity
        from faustdiff.signals import ir as S
        from faustdiff.signals.propagate import Context, propagate
        from faustdiff.backend.schedule import plan
        from faustdiff.core.deep import deep_call
        t0, c0 = time.perf_counter(), time.process_time()
        prog = api.compile_file(str(dsp))
        cold_s, cold_cpu = time.perf_counter() - t0, time.process_time() - c0
        box = api.evaluate_source(api.read_source(str(dsp)), str(dsp))

        def count():
            outs = propagate(box, None, Context())
            p = plan(outs, S.bargraphs(outs), arity(box)[0], SR)
            recs = sum(len(c.recs) + len(c.prefixes) for c in p.contexts)
            # a recursion's own delays are in its fRec array in Faust's C++ (fRec0[3]: y,
            # y', y''), as its shift register or ring is ours: the delay lines counted on
            # both sides are those of the other signals (Faust's fVec)
            return recs, sum(1 for c in p.contexts for line in c.lines.values()
                             if line.x.op not in ("proj", "recvar"))
        recs, lines = deep_call(count)
        def best(render) -> float:
            t = 1e300
            for _ in range(3):
                prog.reset()
                c = time.process_time()
                render()
                t = min(t, time.process_time() - c)
            return t

        def blocks():
            for s in range(0, samples, BLOCK):
                prog.compute(None, min(BLOCK, samples - s))
        mod = sys.modules.get(type(prog).__module__)
        ops = ops_ours(Path(mod.__file__).read_text()) if getattr(mod, "__file__", None) \
            else None
        return {"whole": best(lambda: prog.compute(None, samples)), "blocks": best(blocks),
                "cold": cold_s, "cold_cpu": cold_cpu, "recs": recs, "lines": lines,
                "ops": ops, "backend": type(prog).__name__}
    finally:
        shutil.rmtree(cold, ignore_errors=True)


def run_ours(dsp: Path, samples: int, timeout: float) -> dict:
    try:
        r = subprocess.run([sys.executable, __file__, "--child", str(dsp), "--samples",
                            str(samples)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode or not lines:
        err = (r.stderr.strip().splitlines() or ["failed"])[-1]
        # the message without the exception's class and the temporary folder's path
        err = re.sub(r"^[\w.]+Error: ", "", err).replace(str(dsp.parent) + "/", "")
        return {"error": err[:160]}
    return json.loads(lines[-1])


# ---------------------------------------------------------------- main

def f(d: dict, k: str, fmt: str) -> str:
    return format(d[k], fmt) if k in d else "-"


def ms(d: dict, k: str) -> str:
    return f"{d[k] * 1e3:.2f}" if k in d else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", nargs="?", help="a folder of .dsp programs (default: the "
                    "Faust distribution's examples, from the snapshot)")
    ap.add_argument("--snapshot", default=os.environ.get("FAUSTDIFF_FAUST_SNAPSHOT", SNAPSHOT),
                    help="bare git directory of a grame-cncm/faust snapshot")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=300.0, help="per program, ours")
    ap.add_argument("--lib-path", default="/usr/share/faust" if
                    os.path.isdir("/usr/share/faust") else None,
                    help="installed Faust libraries (becomes $FAUST_LIB_PATH)")
    ap.add_argument("--only", nargs="*", default=None, help="program names to keep")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--samples", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.lib_path:
        os.environ["FAUST_LIB_PATH"] = args.lib_path
    samples = args.samples or int(args.seconds * SR)
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(our_side(Path(args.child), samples)))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="bench-real-"))
    try:
        if args.folder:
            progs = [(p.stem, p) for p in sorted(Path(args.folder).glob("*.dsp"))]
        else:
            if not os.path.isdir(args.snapshot):
                print(f"bench_real: no Faust snapshot at {args.snapshot} (use --snapshot or "
                      f"$FAUSTDIFF_FAUST_SNAPSHOT, or give a folder)", file=sys.stderr)
                return 1
            progs = extract(args.snapshot, DEFAULT, tmp / "src")
        if args.only:
            progs = [(n, p) for n, p in progs if any(o in n for o in args.only)]
        have_faust = bool(shutil.which("faust") and shutil.which("g++"))
        print(f"load average {os.getloadavg()[0]:.2f}")
        print(f"{samples} samples; whole: one compute call, blocks: calls of {BLOCK}; "
              f"CPU milliseconds; libraries: {os.environ.get('FAUST_LIB_PATH') or 'bundled'}")
        head = (f"{'program':34s} {'whole: ours':>11s} {'faust':>7s} {'ratio':>6s} "
                f"{'blocks: ours':>12s} {'faust':>7s} {'ratio':>6s} {'cold s':>7s} {'(CPU)':>6s}"
                f" {'states ours':>12s} {'faust':>8s} {'ops ours/f':>11s}  notes")
        print(head)
        print("-" * len(head))
        ratios: dict = {"whole": [], "blocks": []}
        for name, path in progs:
            if path is None:
                print(f"{name:34s} not in the snapshot")
                continue
            ours = run_ours(path, samples, args.timeout)
            ref = faust_side(path, tmp, samples) if have_faust else {"error": "no faust"}
            notes = []
            if "error" in ours:
                notes.append("ours: " + ours["error"])
            if "error" in ref:
                notes.append(ref["error"])
            cells = []
            for kind in ("whole", "blocks"):
                ratio = None
                if kind in ours and ref.get(kind, 0) > 0:
                    ratio = ours[kind] / ref[kind]
                    ratios[kind].append(ratio)
                cells.append(f"{ms(ours, kind):>{11 if kind == 'whole' else 12}s} "
                             f"{ms(ref, kind):>7s} "
                             f"{format(ratio, '.2f') if ratio else '-':>6s}")
            if ours.get("backend") == "Program":
                notes.append("interpreter (too large for Numba)")
            st_o = f"{ours['recs']}+{ours['lines']}" if "recs" in ours else "-"
            st_f = f"{ref['recs']}+{ref['lines']}" if "recs" in ref else "-"
            ops = f"{ours.get('ops') or '-'}/{ref.get('ops') or '-'}"
            print(f"{name:34s} {' '.join(cells)} {f(ours, 'cold', '.1f'):>7s} "
                  f"{f(ours, 'cold_cpu', '.1f'):>6s}"
                  f" {st_o:>12s} {st_f:>8s} {ops:>11s}  {'; '.join(notes)}", flush=True)
        for kind in ("whole", "blocks"):
            r = ratios[kind]
            if r:
                print(f"{kind}: median ratio {statistics.median(r):.2f}, worst {max(r):.2f} "
                      f"over {len(r)} programs")
        print("(states: recursions+delay lines; ops: operations per sample, ours/Faust's)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
