#!/usr/bin/env python3
"""Mutation-fuzz the compiler: `tools/fuzz.py N [--seed S] [--save DIR] [--time-bound T]`.

Runs N mutants of the conformance programs (see tests/fuzzing.py) through the reference
interpreter, each in a worker process, and prints the counts of
    ok / clean error / traceback / hang
then every traceback and hang (the mutant's source and what happened). With `--save DIR`,
each crashing or hanging mutant is written to DIR (e.g. tests/regressions/) as
`fuzz-<hash>.dsp` beside the original it came from... (only its text: imports are resolved
from the conformance folder, as the library path of the regression test does).
Exit status: 0 when there was no traceback and no hang, else 1.
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import fuzzing  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int, help="number of mutants")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-bound", type=float, default=fuzzing.TIME_BOUND,
                    help="seconds per mutant before it counts as a hang")
    ap.add_argument("--save", metavar="DIR", help="write crashing/hanging mutants to DIR")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every clean error too")
    args = ap.parse_args()

    counts = collections.Counter()
    bad = []
    slowest = (0.0, None)
    t0 = time.monotonic()
    with fuzzing.Worker(args.time_bound) as worker:
        for k, (path, text) in enumerate(fuzzing.mutants(args.n, args.seed)):
            outcome, detail, dt = worker.run(text, str(path))
            counts[outcome] += 1
            if dt > slowest[0]:
                slowest = (dt, path.name)
            if outcome in ("traceback", "hang"):
                bad.append((k, path, text, outcome, detail))
            elif args.verbose and outcome == "error":
                print(f"[{k}] {path.name}: {detail.splitlines()[0]}")
    for k, path, text, outcome, detail in bad:
        print(f"==== mutant {k} of {path.name}: {outcome}")
        print(text.rstrip())
        print("----")
        print(detail.rstrip())
        if args.save:
            d = Path(args.save)
            d.mkdir(parents=True, exist_ok=True)
            h = hashlib.sha1(text.encode()).hexdigest()[:10]
            (d / f"fuzz-{h}.dsp").write_text(f"// from: {path.name}\n" + text)
    print(f"{args.n} mutants in {time.monotonic() - t0:.1f} s (slowest {slowest[0]:.2f} s, "
          f"{slowest[1]}): ok {counts['ok']}, clean error {counts['error']}, "
          f"traceback {counts['traceback']}, hang {counts['hang']}")
    return 1 if counts["traceback"] or counts["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
