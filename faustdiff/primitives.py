"""One table row per Faust primitive.

Every pass looks primitives up here instead of growing if-chains: the evaluator reads
`ins`/`outs`/`infix` (partial application) and `fold` (compile-time constant folding on
numbers); later stages add their columns (type rule, run-time implementation, code template,
derivative rule) to the same rows.

Compile-time folding follows Faust 2.54.9 (see shared/docs/faust-language.md §6.3): int
arithmetic wraps to 32 bits, `/` is always real, comparisons and bitwise operators are int,
and a constant `%` converts both operands to int first (a quirk of that version).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

from .boxes import Int, Real, wrap_int32

INT_MIN = -(2**31)


def c_int(x: float) -> int:
    """C's (int) cast as x86 does it: truncate; NaN, inf and out-of-range give INT_MIN."""
    if isinstance(x, int):
        return wrap_int32(x)
    if math.isnan(x) or math.isinf(x):
        return INT_MIN
    t = int(x)  # truncation toward zero
    if t < INT_MIN or t > 2**31 - 1:
        return INT_MIN
    return t


def c_rem(a: int, b: int) -> int:
    """C's int `%`: truncated division, result has the sign of the dividend."""
    r = abs(a) % abs(b)
    return wrap_int32(-r if a < 0 else r)


def c_rint(x: float) -> float:
    """C `rint` in the default rounding mode: half to even (Python's round does this)."""
    if math.isnan(x) or math.isinf(x):
        return x
    return float(round(x))


def _num(v, is_int: bool):
    return Int(wrap_int32(int(v))) if is_int else Real(float(v))


@dataclass(frozen=True)
class PrimRow:
    """One primitive.

    name   -- the Faust spelling of the box (`+`, `sin`, `select2`, ...)
    ins    -- number of inputs (outputs are always 1)
    infix  -- a single argument fills the SECOND input (`-(3)` is `_-3`), Faust's rule for
              the infix operators, `^`/`pow`, `attach`, `enable`, `control`
    fold   -- compile-time evaluation on Python numbers: (values, all_int) -> Int | Real,
              or None when the primitive cannot be folded (delays, tables, ...)
    """
    name: str
    ins: int
    infix: bool = False
    fold: Optional[Callable] = None
    outs: int = 1


def _arith(op):
    def fold(vals, all_int):
        a, b = vals
        if all_int:
            return Int(wrap_int32(op(int(a), int(b))))
        return Real(float(op(float(a), float(b))))
    return fold


def _div(vals, all_int):
    a, b = vals
    if b == 0:
        raise ZeroDivisionError
    return Real(float(a) / float(b))


def _mod(vals, all_int):
    # Faust 2.54.9 folds a constant `%` on ints even for real operands.
    a, b = c_int(vals[0]), c_int(vals[1])
    if b == 0:
        raise ZeroDivisionError
    return Int(c_rem(a, b))


def _cmp(op):
    return lambda vals, all_int: Int(1 if op(vals[0], vals[1]) else 0)


def _bit(op):
    return lambda vals, all_int: Int(wrap_int32(op(c_int(vals[0]), c_int(vals[1]))))


def _shr(vals, all_int):
    a, b = c_int(vals[0]), c_int(vals[1])
    return Int(wrap_int32(a >> (b & 31)))


def _shl(vals, all_int):
    a, b = c_int(vals[0]), c_int(vals[1])
    return Int(wrap_int32(a << (b & 31)))


def _pow(vals, all_int):
    a, b = vals
    if all_int and b >= 0:
        return Int(wrap_int32(int(a) ** int(b)))
    try:
        r = math.pow(float(a), float(b))
    except (OverflowError, ValueError):
        r = float("nan") if float(a) < 0 else float("inf")
    return Real(r) if not all_int else Int(c_int(r))


def _real1(fn):
    def fold(vals, all_int):
        try:
            return Real(float(fn(float(vals[0]))))
        except (ValueError, OverflowError):
            return None  # leave domain errors to run time (NaN/inf as C gives them)
    return fold


def _real2(fn):
    def fold(vals, all_int):
        try:
            return Real(float(fn(float(vals[0]), float(vals[1]))))
        except (ValueError, OverflowError, ZeroDivisionError):
            return None
    return fold


def _same_type(fn):
    return lambda vals, all_int: _num(fn(*vals), all_int) if all_int else Real(float(fn(*map(float, vals))))


def _log(x):
    return -math.inf if x == 0 else math.log(x)


def _log10(x):
    return -math.inf if x == 0 else math.log10(x)


ROWS = [
    PrimRow("+", 2, True, _arith(lambda a, b: a + b)),
    PrimRow("-", 2, True, _arith(lambda a, b: a - b)),
    PrimRow("*", 2, True, _arith(lambda a, b: a * b)),
    PrimRow("/", 2, True, _div),
    PrimRow("%", 2, True, _mod),
    PrimRow("^", 2, True, _pow),
    PrimRow("pow", 2, True, _pow),
    PrimRow("<", 2, True, _cmp(lambda a, b: a < b)),
    PrimRow("<=", 2, True, _cmp(lambda a, b: a <= b)),
    PrimRow(">", 2, True, _cmp(lambda a, b: a > b)),
    PrimRow(">=", 2, True, _cmp(lambda a, b: a >= b)),
    PrimRow("==", 2, True, _cmp(lambda a, b: a == b)),
    PrimRow("!=", 2, True, _cmp(lambda a, b: a != b)),
    PrimRow("&", 2, True, _bit(lambda a, b: a & b)),
    PrimRow("|", 2, True, _bit(lambda a, b: a | b)),
    PrimRow("xor", 2, True, _bit(lambda a, b: a ^ b)),
    PrimRow("<<", 2, True, _shl),
    PrimRow(">>", 2, True, _shr),
    PrimRow("@", 2, True),
    PrimRow("attach", 2, True),
    PrimRow("enable", 2, True),
    PrimRow("control", 2, True),
    PrimRow("prefix", 2),
    PrimRow("mem", 1),
    PrimRow("int", 1, False, lambda v, i: Int(c_int(v[0]))),
    PrimRow("float", 1, False, lambda v, i: Real(float(v[0]))),
    PrimRow("sin", 1, False, _real1(math.sin)),
    PrimRow("cos", 1, False, _real1(math.cos)),
    PrimRow("tan", 1, False, _real1(math.tan)),
    PrimRow("asin", 1, False, _real1(math.asin)),
    PrimRow("acos", 1, False, _real1(math.acos)),
    PrimRow("atan", 1, False, _real1(math.atan)),
    PrimRow("exp", 1, False, _real1(math.exp)),
    PrimRow("log", 1, False, _real1(_log)),
    PrimRow("log10", 1, False, _real1(_log10)),
    PrimRow("sqrt", 1, False, _real1(math.sqrt)),
    PrimRow("abs", 1, False, _same_type(abs)),
    PrimRow("floor", 1, False, _real1(math.floor)),
    PrimRow("ceil", 1, False, _real1(math.ceil)),
    PrimRow("rint", 1, False, _real1(c_rint)),
    PrimRow("round", 1, False, _real1(lambda x: math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5))),
    PrimRow("min", 2, False, _same_type(min)),
    PrimRow("max", 2, False, _same_type(max)),
    PrimRow("fmod", 2, False, _real2(math.fmod)),
    PrimRow("remainder", 2, False, _real2(math.remainder)),
    PrimRow("atan2", 2, False, _real2(math.atan2)),
    PrimRow("select2", 3),
    PrimRow("select3", 4),
    PrimRow("rdtable", 3),
    PrimRow("rwtable", 5),
    PrimRow("assertbounds", 3),
    PrimRow("lowest", 1),
    PrimRow("highest", 1),
]

PRIMITIVES: dict[str, PrimRow] = {r.name: r for r in ROWS}


def fold(name: str, values: list, all_int: bool):
    """Fold primitive `name` on constant `values`; None when it cannot be folded.

    Raises ZeroDivisionError for a constant division or remainder by zero (the caller turns
    it into a located FaustError).
    """
    row = PRIMITIVES[name]
    if row.fold is None:
        return None
    return row.fold(values, all_int)
