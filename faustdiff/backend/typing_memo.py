"""Faster Numba type inference for generated kernels: call signatures resolved once.

A generated kernel is long straight-line code over a few types: thousands of `a * b`,
`a + b`, `ld(state, k)` on float64 and int32 locals. Numba resolves the signature of every
call site from scratch, once in type inference and again when lowering each operator
(each of `operator.mul`'s dozens of templates rated against the arguments, NumPy's ufunc
loops searched): ~0.5-1 ms a site, 6 s of jprev's 14 s cold compile. Within one compile the
answer for the same function and argument types is always the same, so
`memoized_typing()` keeps it:

    with memoized_typing():
        ... import / first call of a generated module ...

Both entry points are memoised: the typing context's `resolve_function_type` and the
function type's own `get_call_type` (which lowering calls directly). Only plain function
types (`types.Function`) called without keyword arguments are remembered, and only
successful resolutions (a failure lets Numba try its fallbacks, such
as literal -> non-literal argument types, exactly as before). The first resolution of each
key runs Numba's own code, with its side effects (the implementation key it records for
lowering), so later hits find them in place. The memo lives for the outermost `with`
block and Numba's method is restored after it; anything unexpected in Numba's internals
disables it (compiles are then as slow as before, never different), and so does the
environment variable FAUSTDIFF_TYPING_MEMO=0.
"""
from __future__ import annotations

import contextlib
import os
import threading

_lock = threading.Lock()
_depth = 0
_original = None            # (BaseContext.resolve_function_type, Function's own get_call_type)
_memo: dict = {}
_MISSING = object()


def _install() -> bool:
    global _original
    try:
        from numba.core import types
        from numba.core.typing.context import BaseContext
    except Exception:   # noqa: BLE001 - another Numba layout: no memo
        return False
    resolve = getattr(BaseContext, "resolve_function_type", None)
    call_type = getattr(types.Function, "get_call_type", None)
    if resolve is None or call_type is None:
        return False

    def resolve_function_type(self, fnty, args, kws):
        return _memoised(("resolve", id(self)), fnty, args, kws,
                         lambda: resolve(self, fnty, args, kws))

    def get_call_type(self, context, args, kws):
        return _memoised(("call", id(context)), self, args, kws,
                         lambda: call_type(self, context, args, kws))

    _original = (resolve, types.Function.__dict__.get("get_call_type", _MISSING))
    BaseContext.resolve_function_type = resolve_function_type
    types.Function.get_call_type = get_call_type
    return True


def _memoised(where, fnty, args, kws, compute):
    """compute()'s signature, remembered for (where, fnty, args) when that is safe."""
    from numba.core import types
    if kws or type(fnty) is not types.Function:
        return compute()
    try:
        key = (where, fnty, tuple(args))
        hit = _memo.get(key)
    except TypeError:   # an unhashable argument type
        return compute()
    if hit is not None:
        return hit
    sig = compute()
    if sig is not None:
        _memo[key] = sig
    return sig


def _uninstall() -> None:
    global _original
    from numba.core import types
    from numba.core.typing.context import BaseContext
    resolve, call_type = _original
    BaseContext.resolve_function_type = resolve
    if call_type is _MISSING:
        del types.Function.get_call_type
    else:
        types.Function.get_call_type = call_type
    _original = None
    _memo.clear()


@contextlib.contextmanager
def memoized_typing():
    """Within the block, Numba's call-signature resolution is memoised (see the module)."""
    global _depth
    with _lock:
        installed = _depth > 0 or (os.environ.get("FAUSTDIFF_TYPING_MEMO") != "0"
                                   and _install())
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
