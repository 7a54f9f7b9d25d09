"""The `Dual` box of diff.lib: the builtins that make it, and its propagation.

* `__fd_dual_seed(E, N)` and `__fd_dual_auto(E, N)` (registered in the front end's
  `builtins.BUILTINS`): the box `Dual(E, N, mode)`, E in dual-number form with N partial
  derivatives (see `boxes.Dual`, `forward`). `seed` uses the seed `diff.lib`'s rules for
  `/`, `tan`, `int` and `@`; `auto` the true derivatives.
* `forward.dual_outputs`, registered with `signals.propagate` as the meaning of `Dual`.

Both registrations happen when this module is imported (`faustdiff.ad` imports it).
"""
from __future__ import annotations

from ..errors import FaustEvalError
from ..frontend import boxes as B
from ..frontend.arity import arity
from ..frontend.boxshow import show
from ..frontend.builtins import builtin
from ..frontend.evaluate import const_outputs
from ..signals.propagate import register_dual
from .forward import dual_outputs

# Largest number of partial derivatives a Dual may carry (each is a signal per output).
MAX_NVARS = 4096


def _nvars(ev, value, site, fname: str) -> int:
    box = ev.to_box(value, site.span)
    vals = const_outputs(box)
    if not vals or len(vals) != 1 or float(vals[0].value) != int(vals[0].value):
        raise FaustEvalError(f"{fname}: the number of variables must be a constant integer, "
                             f"got {show(box)}", site.span)
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
        arity(box)   # composition errors are reported here, at the call
        return B.Dual(box, n, mode, span=site.span)
    builtin(name, 2)(make)


_dual("seed")
_dual("auto")
register_dual(dual_outputs)
