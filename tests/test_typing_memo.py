"""The compile-time memo of Numba's call-signature resolution (backend.typing_memo)."""
from __future__ import annotations

import numba
import numpy as np
from numba.core import types
from numba.core.typing.context import BaseContext

from faustdiff.backend import typing_memo as M


def _fresh_kernel():
    # a new function object each call: Numba compiles it from scratch
    def k(a, b, n):
        s = 0.0
        j = np.int32(0)
        for i in range(n):
            s = s * a + b * i - a / (i + 1.0)
            j = np.int32(j + np.int32(i) * np.int32(3))
        return s, j
    return numba.njit(cache=False)(k)


def test_the_memo_is_used_inside_and_numbas_method_restored_after():
    before = BaseContext.resolve_function_type
    own = "get_call_type" in types.Function.__dict__
    with M.memoized_typing():
        assert BaseContext.resolve_function_type is not before
        assert "get_call_type" in types.Function.__dict__
        with M.memoized_typing():   # nested: still the memo, not installed twice
            inner = _fresh_kernel()(0.5, 2.0, 10)
        assert BaseContext.resolve_function_type is not before
        assert M._memo   # the signatures of `*`, `+`, `/` ... were remembered
    assert BaseContext.resolve_function_type is before
    assert ("get_call_type" in types.Function.__dict__) == own
    assert not M._memo
    outer = _fresh_kernel()(0.5, 2.0, 10)
    assert inner == outer   # same code, same result (the memo changes no type)


def test_a_failed_resolution_is_not_remembered():
    # Numba first types `t[k]` with the literal index, then without it: a failure kept in
    # the memo would stop that fallback
    @numba.njit(cache=False)
    def g(t):
        return t[1] + t[0]

    with M.memoized_typing():
        assert g((1, 2.5)) == 3.5
        assert all(sig is not None for sig in M._memo.values())
