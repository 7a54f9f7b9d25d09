"""Source text to a program object: the choice of back end.

    compile_program(text, filename, sample_rate, include, backend, wrt) -> Program-like

* `mode="reverse"`: a `reverse.ReverseProgram` (outputs, then `vjp`: gradients with
  respect to `wrt` and the inputs);
* `wrt` given: a `grad.GradProgram` (outputs and their partials: forward mode);
* `signals=[labels]`: those sliders become audio inputs after the program's own;
* `backend` None (the default): generated Numba code from the disk cache, except programs
  above `cache.NUMBA_NODE_LIMIT` signal nodes, which run in the interpreter (with a note on
  stderr: LLVM takes minutes on them); "numba": generated code whatever the size;
  "interp": the reference interpreter.

`faustdiff.api.compile_source` is this function; the learning stage calls it directly.
"""
from __future__ import annotations

import sys
from typing import Iterable, Optional

from ..core.deep import deep_call
from ..errors import FaustError
from ..frontend.source import evaluate_source
from . import grad, reverse
from .cache import NUMBA_NODE_LIMIT, TooLargeForNumba, load_program
from .program import Program


MODES = ("forward", "reverse")


def compile_program(text: str, filename: str = "<string>", sample_rate: float = 44100,
                    include: Iterable = (), backend: Optional[str] = None, wrt=None,
                    mode: Optional[str] = None, signals=None, input_grads: bool = True):
    """A program object for Faust source text (see the module docstring)."""
    if backend not in (None, "numba", "interp"):
        raise FaustError(f"unknown backend '{backend}' (numba or interp)")
    if mode not in (None,) + MODES:
        raise FaustError(f"unknown mode '{mode}' (forward or reverse)")
    if mode == "reverse":
        return reverse.compile_source(text, filename, sample_rate, include,
                                      [] if wrt is None else wrt, backend, signals, input_grads)
    if signals:
        if wrt is not None:
            raise FaustError("signals= with wrt= needs mode='reverse' (forward-mode "
                             "gradients take sliders only)")
        return _with_signals(text, filename, sample_rate, include, backend, signals)
    if wrt is not None:
        return grad.compile_source(text, filename, sample_rate, include, wrt, backend)
    if backend in (None, "numba"):
        try:
            return load_program(text, filename, int(sample_rate), include,
                                node_limit=NUMBA_NODE_LIMIT if backend is None else None)
        except TooLargeForNumba as e:
            # The default backend picks the interpreter for very large programs (a hang in
            # LLVM helps nobody); backend="numba" compiles them anyway.
            sys.stderr.write(f"faustdiff: note: {e.message}; running it in the interpreter "
                             f"(--backend numba compiles it anyway)\n")
            backend = "interp"
    box = evaluate_source(text, filename, include)
    return deep_call(lambda: Program.from_box(box, sample_rate=sample_rate, backend=backend))


def _with_signals(text, filename, sample_rate, include, backend, signals):
    """A plain program whose sliders named in `signals` are audio inputs after its own."""
    box = evaluate_source(text, filename, include)
    labels = reverse.normalise_signals(signals)

    def make():
        outs, ins, _ = reverse.program_signals(box, labels)
        return Program(outs, ins, int(sample_rate), "", backend or "numba")
    return deep_call(make)


def parameter_labels(text, filename, sample_rate, include, wrt) -> list:
    """The labels `wrt` ("auto": the declared `[diff:on]` sliders) selects in a program,
    without compiling it."""
    from ..ad.params import select
    box = evaluate_source(text, filename, include)

    def find():
        outs, _, controls = reverse.program_signals(box, ())
        return select(controls, wrt)[0]
    return deep_call(find)
