"""Mutation fuzzing of the compiler: shared by tests/test_fuzz.py and tools/fuzz.py.

A mutant is a conformance program (tests/conformance/faust/*.dsp) with a few token-level
edits: a token deleted, duplicated or swapped with another, a number replaced by 0, a negative
number or a huge one, or a Faust token (operator, keyword, primitive) inserted. Each mutant is compiled with the reference interpreter and rendered for a
few samples in a WORKER PROCESS (`Worker`), so that a hang can be detected and killed.

The outcome of a mutant is one of
    ok        -- compiled and rendered
    error     -- a clean `FaustError` (the message is kept)
    traceback -- any other exception (a bug: the traceback is kept)
    hang      -- no answer within the time bound (the worker is killed and restarted)
"""
from __future__ import annotations

import json
import os
import random
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = ROOT / "tests" / "conformance" / "faust"
REGRESSIONS = ROOT / "tests" / "regressions"

SAMPLES = 8          # samples rendered per mutant
TIME_BOUND = 60.0    # seconds per mutant before it counts as a hang

# Faust tokens, longest first where it matters (comments and strings are single tokens).
TOKEN = re.compile(r"""
    /\*[\s\S]*?\*/ | //[^\n]* | "[^"]*" | <[A-Za-z0-9_./]+\.(?:h|lib)>
  | \d+\.\d*(?:[eE][+-]?\d+)?f? | \.\d+(?:[eE][+-]?\d+)?f? | \d+(?:[eE][+-]?\d+)?f?
  | [A-Za-z_][A-Za-z0-9_]*
  | <: | :> | \+> | <= | >= | == | != | << | >> | => | [-+*/%^@&|<>=:,;~'!_.()\[\]{}\\$]
  | \S
""", re.VERBOSE)
NUMBER = re.compile(r"^(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?f?$")
VOCABULARY = tuple("""~ : , <: :> + - * / % ^ @ ' ( ) _ ! mem prefix rdtable rwtable select2
select3 int float sin log sqrt min max with letrec case => environment library component
seq par sum prod route waveform hslider hbargraph attach inputs outputs ; = \\ . 0 1 -1 { }
""".split())
HUGE = ("2147483647", "1e300", "1e400", "100000000", "65536", "1e9", "3000000000")


def corpus() -> list[Path]:
    return sorted(CORPUS_DIR.glob("*.dsp"))


@dataclass
class Tokens:
    """A source split into tokens with the text between them (so it can be reassembled)."""
    seps: list   # len(toks) + 1 separators
    toks: list

    @classmethod
    def split(cls, text: str) -> "Tokens":
        seps, toks, pos = [], [], 0
        for m in TOKEN.finditer(text):
            if m.group().startswith(("//", "/*")):
                continue  # comments stay in the separators
            seps.append(text[pos:m.start()])
            toks.append(m.group())
            pos = m.end()
        seps.append(text[pos:])
        return cls(seps, toks)

    def join(self) -> str:
        out = [self.seps[0]]
        for t, s in zip(self.toks, self.seps[1:]):
            out += [t, s]
        return "".join(out)


def mutate(text: str, rng: random.Random, edits: int = 1) -> str:
    """`text` with `edits` random token-level edits."""
    tk = Tokens.split(text)
    for _ in range(edits):
        n = len(tk.toks)
        if n == 0:
            return "process = " + rng.choice(HUGE) + ";"
        i = rng.randrange(n)
        numbers = [k for k, t in enumerate(tk.toks) if NUMBER.match(t)]
        kind = rng.choice(("delete", "duplicate", "swap", "number", "number", "insert"))
        if kind == "number" and numbers:
            k = rng.choice(numbers)
            tk.toks[k] = rng.choice(("0", "0.0", "-" + tk.toks[k], "-1", rng.choice(HUGE)))
        elif kind == "delete":
            del tk.toks[i]
            del tk.seps[i + 1]
        elif kind == "insert":   # a token seen elsewhere in Faust programs
            tk.toks.insert(i, rng.choice(VOCABULARY))
            tk.seps.insert(i + 1, " ")
        elif kind == "duplicate":
            tk.toks.insert(i, tk.toks[i])
            tk.seps.insert(i + 1, " ")
        else:
            j = rng.randrange(n)
            tk.toks[i], tk.toks[j] = tk.toks[j], tk.toks[i]
    return tk.join()


def mutants(count: int, seed: int = 0):
    """`count` (source path, mutant text) pairs, deterministic for a seed."""
    rng = random.Random(seed)
    files = corpus()
    texts = {p: p.read_text() for p in files}
    for _ in range(count):
        p = rng.choice(files)
        yield p, mutate(texts[p], rng, rng.choice((1, 1, 1, 2, 3)))


# ---------------------------------------------------------------------------- running

def run_one(text: str, filename: str, samples: int = SAMPLES) -> tuple[str, str]:
    """Compile and render in THIS process: (outcome, detail); never raises."""
    import traceback
    import numpy as np
    from faustdiff import api
    from faustdiff.errors import FaustError
    try:
        prog = api.compile_source(text, filename, backend="interp")
        ins = np.zeros((prog.num_inputs, samples))
        if prog.num_inputs:
            ins[:, 0] = 1.0
        with np.errstate(all="ignore"):
            prog.compute(ins if prog.num_inputs else None, samples)
        return "ok", ""
    except FaustError as e:
        return "error", str(e)
    except Exception:
        return "traceback", traceback.format_exc()


_WORKER_MAIN = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from fuzzing import run_one
for line in sys.stdin:
    job = json.loads(line)
    outcome, detail = run_one(job["text"], job["filename"], job["samples"])
    sys.stdout.write(json.dumps({"outcome": outcome, "detail": detail}) + "\n")
    sys.stdout.flush()
"""


class Worker:
    """A child Python process running mutants one at a time, killed and restarted on a hang."""

    def __init__(self, time_bound: float = TIME_BOUND):
        self.time_bound = time_bound
        self.proc = None

    def _start(self):
        env = dict(os.environ)
        env.pop("FAUSTDIFF_DEBUG", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_MAIN, str(Path(__file__).parent)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, env=env, cwd=str(Path(__file__).parent))   # not the repository root:
        # there `import faustdiff` would find the source tree, not the installed package

    def run(self, text: str, filename: str, samples: int = SAMPLES) -> tuple[str, str, float]:
        """(outcome, detail, seconds) for one program."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        t0 = time.monotonic()
        job = json.dumps({"text": text, "filename": filename, "samples": samples})
        try:
            self.proc.stdin.write(job + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.close()
            return "traceback", "the worker process died", time.monotonic() - t0
        ready, _, _ = select.select([self.proc.stdout], [], [], self.time_bound)
        if not ready:
            self.close()
            return "hang", f"no result within {self.time_bound:g} s", time.monotonic() - t0
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            return "traceback", f"the worker process died (status {code})", time.monotonic() - t0
        res = json.loads(line)
        return res["outcome"], res["detail"], time.monotonic() - t0

    def close(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
