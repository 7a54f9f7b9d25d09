"""Faster Numba type inference for generated kernels: call signatures resolved once.

A generated kernel is long straight-line code over a few types: thousands of `a * b`,
`a + b`, `ld(state, k)` on float64 and int32 locals. Numba resolves the signature of every
call site from scratch (each of `operator.mul`'s dozens of templates rated against the
arguments, NumPy's ufunc loops searched): ~0.5-1 ms a site, 6 s of jprev's 14 s cold
compile. Within one compile the answer for the same function and argument types is always
the same, so `memoized_typing()` keeps it:

    with memoized_typing():
        ... import / first call of a generated module ...

Only plain function types (`types.Function`) called without keyword arguments are
remembered, and only successful resolutions (a failure lets Numba try its fallbacks, such
as literal -> non-literal argument types, exactly as before). The first resolution of each
key runs Numba's own code, with its side effects (the implementation key it records for
lowering), so later hits find them in place. The memo lives for the outermost `with`
block and Numba's method is restored after it; anything unexpected in Numba's internals
disables it (compiles are then as slow as before, never different).
"""
from __future__ import annotations

import contextlib
import threading

_lock = threading.Lock()
_depth = 0
_original = None
_memo: dict = {}


def _install() -> bool:
    global _original
    try:
        from numba.core import types
        from numba.core.typing.context import BaseContext
    except Exception:   # noqa: BLE001 - another Numba layout: no memo
        return False
    original = getattr(BaseContext, "resolve_function_type", None)
    if original is None:
        return False

    def resolve_function_type(self, fnty, args, kws):
        if kws or type(fnty) is not types.Function:
            return original(self, fnty, args, kws)
        try:
            key = (id(self), fnty, tuple(args))
            hit = _memo.get(key)
        except TypeError:   # an unhashable argument type
            return original(self, fnty, args, kws)
        if hit is not None:
            return hit
        sig = original(self, fnty, args, kws)
        if sig is not None:
            _memo[key] = sig
        return sig

    _original = original
    BaseContext.resolve_function_type = resolve_function_type
    return True


def _uninstall() -> None:
    global _original
    from numba.core.typing.context import BaseContext
    BaseContext.resolve_function_type = _original
    _original = None
    _memo.clear()


@contextlib.contextmanager
def memoized_typing():
    """Within the block, Numba's call-signature resolution is memoised (see the module)."""
    global _depth
    with _lock:
        installed = _depth > 0 or _install()
        if installed:
            _depth += 1
    try:
        yield
    finally:
        if installed:
            with _lock:
                _depth -= 1
                if _depth == 0:
                    _uninstall()
