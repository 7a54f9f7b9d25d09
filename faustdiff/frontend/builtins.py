"""Builtins: Python-implemented functions visible to Faust code under reserved names.

The evaluator binds every entry of `BUILTINS` in a root scope, the parent of every file's and
library's top-level scope, so library code (our `diff.lib`) can call them like Faust
functions. Their names start with `__fd_` so they cannot clash with Faust code found in the
wild. A builtin takes a fixed number of arguments (evaluated values: boxes, closures, ...);
applied to all of them it returns a value (normally a normal-form box). Partial application
works as for Faust functions.

Builtins defined here:

* `__fd_dual_seed(E, N)` and `__fd_dual_auto(E, N)`: the box `Dual(E, N, mode)`, E in
  dual-number form with N partial derivatives (see `boxes.Dual`, `ad`). `seed` uses the
  seed `diff.lib`'s rules for `/`, `tan`, `int` and `@`; `auto` the true derivatives.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from . import boxes as B
from ..errors import FaustEvalError, Span

# Largest number of partial derivatives a Dual may carry (each is a signal per output).
MAX_NVARS = 4096


@dataclass(eq=False)
class Builtin:
    """A builtin and the arguments collected so far. `fn(evaluator, args, site)`."""
    name: str
    nparams: int
    fn: Callable
    args: tuple = ()
    span: Optional[Span] = None


BUILTINS: dict[str, Builtin] = {}


def builtin(name: str, nparams: int):
    """Register `fn(evaluator, args, site) -> value` as the builtin `name`."""
    def register(fn):
        BUILTINS[name] = Builtin(name, nparams, fn)
        return fn
    return register


def _nvars(ev, value, site, fname: str) -> int:
    from .evaluate import const_outputs
    box = ev.to_box(value, site.span)
    vals = const_outputs(box)
    if not vals or len(vals) != 1 or float(vals[0].value) != int(vals[0].value):
        raise FaustEvalError(f"{fname}: the number of variables must be a constant integer, "
                             f"got {B.show(box)}", site.span)
    n = int(vals[0].value)
    if not 0 <= n <= MAX_NVARS:
        raise FaustEvalError(f"{fname}: the number of variables must be in [0, {MAX_NVARS}], "
                             f"got {n}", site.span)
    return n


def _dual(mode: str):
    name = f"__fd_dual_{mode}"

    def make(ev, args, site):
        box = ev.to_box(args[0], site.span)
        n = _nvars(ev, args[1], site, name)
        from .arity import arity
        arity(box)   # composition errors are reported here, at the call
        return B.Dual(box, n, mode, span=site.span)
    builtin(name, 2)(make)


_dual("seed")
_dual("auto")

from ..ad import autoparams  # noqa: E402,F401  (registers df.param / df.fit's builtins)
