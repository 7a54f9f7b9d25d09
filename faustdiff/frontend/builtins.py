"""Builtins: Python-implemented functions visible to Faust code under reserved names.

The evaluator binds every entry of `BUILTINS` in a root scope, the parent of every file's and
library's top-level scope, so library code (our `diff.lib`) can call them like Faust
functions. Their names start with `__fd_` so they cannot clash with Faust code found in the
wild. A builtin takes a fixed number of arguments (evaluated values: boxes, closures, ...);
applied to all of them it returns a value (normally a normal-form box). Partial application
works as for Faust functions.

The builtins themselves belong to the stages that give them meaning and register here when
imported: `faustdiff.ad.dual` (`__fd_dual_seed`, `__fd_dual_auto`: the `Dual` box of
diff.lib) and `faustdiff.ad.autoparams` (`df.param`/`df.fit`). `import faustdiff` imports
them all; the front end alone evaluates plain Faust.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import Span


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
