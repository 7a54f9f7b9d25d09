"""One table row per Faust primitive.

Every pass looks primitives up here instead of growing if-chains: the evaluator reads
`ins`/`outs`/`infix` (partial application) and `fold` (compile-time constant folding on
numbers); later stages add their columns (type rule, run-time implementation, code template,
derivative rule) to the same rows.

Columns added for the signal stages (see `PrimRow`): `ty` (the type rule, interpreted by
`plan`), `iimpl`/`fimpl` (scalar run-time implementations with C semantics on Python ints /
floats), `interval` (interval rule for delay bounds and table indexes) and `jvp` (the
forward-mode derivative rule, filled by the AD pass).

Compile-time folding follows Faust 2.54.9 (see shared/docs/faust-language.md §6.3): int
arithmetic wraps to 32 bits, `/` is always real, comparisons and bitwise operators are int,
and a constant `%` converts both operands to int first (a quirk of that version).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional


INT_MIN = -(2**31)


def wrap_int32(v: int) -> int:
    """Two's-complement wrap of a Python int to int32."""
    return ((v + 2**31) % 2**32) - 2**31


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
    return int(wrap_int32(int(v))) if is_int else float(float(v))


@dataclass(frozen=True)
class PrimRow:
    """One primitive.

    name     -- the Faust spelling of the box (`+`, `sin`, `select2`, ...)
    ins      -- number of inputs (outputs are always 1)
    infix    -- a single argument fills the SECOND input (`-(3)` is `_-3`), Faust's rule for
                the infix operators, `^`/`pow`, `attach`, `enable`, `control`
    fold     -- compile-time evaluation on Python numbers: (values, all_int) -> int | float
                (an int is an int32 result, a float a real one),
                or None when the primitive cannot be folded (delays, tables, ...)
    ty       -- type rule, one of `TYPE_RULES` (how `plan` types the node and converts its
                operands); 'state' rows are built by dedicated constructors in `signals`
    iimpl    -- run-time scalar on Python ints (operands already int32), result wrapped
    fimpl    -- run-time scalar on Python floats (C double semantics: no exceptions, IEEE
                inf/NaN); for 'cmp' rows both return 0/1, for 'select' rows it is generic
    interval -- (list of (lo, hi)) -> (lo, hi): a sound over-approximation of the range
    jvp      -- forward-mode derivative rule `jvp(x, dx, y, A)` (see "derivative rules")
    seed_jvp -- the seed diff.lib's rule where it differs from the true one (`/`, `tan`,
                `int`, `@`), used by `Dual` boxes in "seed" mode
    vjp      -- reverse-mode rule `vjp(x, ct, y, A)`: the transpose of `jvp` (see "transpose
                rules"), one cotangent per operand
    code     -- Numba/Python expression templates for codegen, by operand type ('int',
                'real', or '*' for any), operands already converted as `plan` says
    """
    name: str
    ins: int
    infix: bool = False
    fold: Optional[Callable] = None
    outs: int = 1
    ty: str = "state"
    iimpl: Optional[Callable] = None
    fimpl: Optional[Callable] = None
    interval: Optional[Callable] = None
    jvp: Optional[Callable] = None
    seed_jvp: Optional[Callable] = None
    code: Optional[dict] = None
    vjp: Optional[Callable] = None


def _arith(op):
    def fold(vals, all_int):
        a, b = vals
        if all_int:
            return int(wrap_int32(op(int(a), int(b))))
        return float(float(op(float(a), float(b))))
    return fold


def _div(vals, all_int):
    """Constant `/`: a real quotient, except that Faust keeps an exact quotient of two ints an
    int (`2/2` is the int 1: it matches the pattern `1` and takes part in int32 arithmetic)."""
    a, b = vals
    if b == 0:
        raise ZeroDivisionError
    if all_int and int(a) % int(b) == 0:
        return int(wrap_int32(int(a) // int(b)))
    return float(float(a) / float(b))


def _mod(vals, all_int):
    # Faust 2.54.9 folds a constant `%` on ints even for real operands.
    a, b = c_int(vals[0]), c_int(vals[1])
    if b == 0:
        raise ZeroDivisionError
    return int(c_rem(a, b))


def _cmp(op):
    return lambda vals, all_int: int(1 if op(vals[0], vals[1]) else 0)


def _bit(op):
    return lambda vals, all_int: int(wrap_int32(op(c_int(vals[0]), c_int(vals[1]))))


def _shr(vals, all_int):
    a, b = c_int(vals[0]), c_int(vals[1])
    return int(wrap_int32(a >> (b & 31)))


def _shl(vals, all_int):
    a, b = c_int(vals[0]), c_int(vals[1])
    return int(wrap_int32(a << (b & 31)))


def _pow(vals, all_int):
    a, b = vals
    if all_int and b >= 0:
        return int(wrap_int32(pow(int(a), int(b), 1 << 32)))  # exact mod 2**32, fast
    try:
        r = math.pow(float(a), float(b))
    except (OverflowError, ValueError):
        r = float("nan") if float(a) < 0 else float("inf")
    return float(r) if not all_int else int(c_int(r))


def _real1(fn):
    def fold(vals, all_int):
        try:
            return float(float(fn(float(vals[0]))))
        except (ValueError, OverflowError):
            return None  # leave domain errors to run time (NaN/inf as C gives them)
    return fold


def _landmarks(values):
    """A compile-time sin or cos the way the Faust compiler folds it: an argument whose
    remainder by 2*pi (C's fmod: the sign of x) lies within 1e-5 of 0, pi/2, pi, 3*pi/2 or
    2*pi gives the exact value there (sin(pi/2) is 1.0, cos(pi/2) 0.0: measured with faust
    2.54.9, e.g. cos(1.57079) and sin(9.99999e-6) fold to 0.0, sin(1e-5) does not; a
    negative argument near -pi is not snapped, one near 0 is); otherwise libm's value at
    that remainder (sin(100*pi + 1.1e-5) is Faust's 1.0999999986e-05, not sin's own
    1.0999999974e-05). Only constants fold so: sample-rate expressions are computed at
    init by libm."""
    def fn(fallback):
        def f(x):
            r = math.fmod(x, 2 * math.pi)
            for k, v in enumerate(values):
                if abs(r - k * math.pi / 2) < 1e-5:
                    return v
            return fallback(r)
        return f
    return fn


_faust_sin = _landmarks((0.0, 1.0, 0.0, -1.0, 0.0))(math.sin)
_faust_cos = _landmarks((1.0, 0.0, -1.0, 0.0, 1.0))(math.cos)


def _real2(fn):
    def fold(vals, all_int):
        try:
            return float(float(fn(float(vals[0]), float(vals[1]))))
        except (ValueError, OverflowError, ZeroDivisionError):
            return None
    return fold


def _same_type(fn):
    return lambda vals, all_int: _num(fn(*vals), all_int) if all_int else float(float(fn(*map(float, vals))))


def _log(x):
    return -math.inf if x == 0 else math.log(x)


def _log10(x):
    return -math.inf if x == 0 else math.log10(x)



# ---------------------------------------------------------------- run-time scalars (C semantics)

INF, NAN = math.inf, math.nan


def wrap(v: int) -> int:
    """int32 wrap-around (fast path of wrap_int32)."""
    return ((v + 0x80000000) & 0xFFFFFFFF) - 0x80000000


def f2i(x) -> int:
    """C `(int)x` for a double (x86 cvttsd2si): truncation, INT_MIN for NaN/inf/overflow."""
    try:
        t = int(x)
    except (ValueError, OverflowError):
        return INT_MIN
    return t if -0x80000000 <= t <= 0x7FFFFFFF else INT_MIN


def fdiv(a: float, b: float) -> float:
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)


def irem(a: int, b: int) -> int:
    if b == 0:
        # C traps (SIGFPE); we refuse loudly rather than invent a value.
        from ..errors import FaustError
        raise FaustError("integer remainder by zero at run time (`%` of ints)")
    return c_rem(a, b)


def _safe1(fn, on_value_error=NAN):
    """A C math function of one double: domain errors give NaN, overflow inf."""
    def f(x):
        try:
            return fn(x)
        except ValueError:
            return on_value_error(x) if callable(on_value_error) else on_value_error
        except OverflowError:
            return INF
    return f


def _c_log(fn):
    def f(x):
        if x == 0:
            return -INF
        try:
            return fn(x)
        except ValueError:
            return NAN
    return f


def _sign_zero(r: float, x: float) -> float:
    """C's floor/ceil/rint/round keep the sign of a zero result (`ceil(-0.5)` is -0.0)."""
    return math.copysign(0.0, x) if r == 0 else r


def c_floor(x: float) -> float:
    return x if math.isinf(x) or x != x else _sign_zero(float(math.floor(x)), x)


def c_ceil(x: float) -> float:
    return x if math.isinf(x) or x != x else _sign_zero(float(math.ceil(x)), x)


def c_rint_rt(x: float) -> float:
    return x if math.isinf(x) or x != x else _sign_zero(float(round(x)), x)


def c_round(x: float) -> float:
    """C `round`: half away from zero (abs(x) - floor(abs(x)) is exact in double)."""
    if math.isinf(x) or x != x:
        return x
    a = abs(x)
    r = math.floor(a)
    if a - r >= 0.5:
        r += 1
    return math.copysign(float(r), x)


def c_fmod(a: float, b: float) -> float:
    try:
        return math.fmod(a, b)
    except ValueError:
        return NAN


def c_remainder(a: float, b: float) -> float:
    try:
        return math.remainder(a, b)
    except ValueError:
        return NAN


def c_pow(a: float, b: float) -> float:
    """C `pow` on doubles: no exceptions (overflow -> ±inf, domain errors -> NaN)."""
    try:
        return math.pow(a, b)
    except OverflowError:
        odd = float(b).is_integer() and int(b) % 2 == 1
        return -INF if (a < 0 and odd) else INF
    except ValueError:
        if a == 0 and b < 0:   # pow(±0, negative) is a pole
            odd = float(b).is_integer() and int(b) % 2 == 1
            return math.copysign(INF, a) if odd else INF
        return NAN


def c_min(a, b):
    """std::min: (b < a) ? b : a (NaN handling follows from the comparison)."""
    return b if b < a else a


def c_max(a, b):
    """std::max: (a < b) ? b : a."""
    return b if a < b else a


def _ishl(a: int, b: int) -> int:
    return wrap(a << (b & 31))   # x86 masks the shift count


def _ishr(a: int, b: int) -> int:
    return a >> (b & 31)         # arithmetic shift of a signed int


def _sel2(s, a, b):
    return a if s == 0 else b


def _sel3(s, a, b, c):
    return a if s == 0 else (b if s == 1 else c)


def _enable(x, y):
    return x if y != 0 else x * 0


def _first(x, y):
    return x


# ---------------------------------------------------------------- interval rules

FULL = (-INF, INF)


def _iv(lo, hi):
    """Normalise an interval: NaN endpoints (inf - inf, 0 * inf) make it unbounded."""
    if lo != lo or hi != hi:
        return FULL
    return (lo, hi)


def iv_union(*ivs):
    return (min(i[0] for i in ivs), max(i[1] for i in ivs))


def _iv_add(a, b):
    return _iv(a[0] + b[0], a[1] + b[1])


def _iv_sub(a, b):
    return _iv(a[0] - b[1], a[1] - b[0])


def _iv_pow(a, b):
    """A positive base: pow is monotone in each operand, so the box's corners bound it (the
    compiler's pass test 20180211-bug: a delay of pow(2, nentry) is bounded)."""
    if not a[0] > 0 or not all(map(math.isfinite, a + b)):
        return FULL
    try:
        ps = [math.pow(x, y) for x in a for y in b]
    except OverflowError:
        return FULL
    # (floor: an int pow is the truncated value)
    return FULL if any(p != p for p in ps) else (math.floor(min(ps)), max(ps))


def _iv_shl(a, b):
    """a << b of non-negative ints, when no bit reaches the sign (else unbounded)."""
    if a[0] < 0 or b[0] < 0 or b[1] > 30 or not math.isfinite(a[1]):
        return FULL
    hi = int(a[1]) << int(b[1])
    return FULL if hi > 2**31 - 1 else (int(a[0]) << int(b[0]), hi)


def _iv_shr(a, b):
    """a >> b of non-negative ints (arithmetic shift: a value between the extremes)."""
    if a[0] < 0 or b[0] < 0 or b[1] > 31 or not math.isfinite(a[1]):
        return FULL
    return (int(a[0]) >> int(b[1]), int(a[1]) >> int(b[0]))


def _iv_mul(a, b):
    ps = [x * y for x in a for y in b]
    if any(p != p for p in ps):
        return FULL
    return (min(ps), max(ps))


def _iv_div(a, b):
    if b[0] <= 0 <= b[1]:
        return FULL
    return _iv_mul(a, (1 / b[1], 1 / b[0]))


def _iv_mod(a, b):
    m = max(abs(b[0]), abs(b[1]))
    if m == INF:
        return a if a[0] >= 0 else FULL
    if a[0] >= 0:
        return (0, min(a[1], m))
    return (-m, m)


def _iv_and(a, b):
    """x & k with one side non-negative is within [0, m], m the all-ones mask (2^k - 1)
    covering that side's max, as Faust's interval rule has it (so `int(abs(x)*10) & 15`
    is [0, 15], and its delay line holds 16 samples as Faust's does)."""
    his = [i[1] for i in (a, b) if i[0] >= 0]
    if not his or not math.isfinite(min(his)):
        return FULL
    m = int(min(his))
    return (0, (1 << m.bit_length()) - 1)


def _iv_mono(fn):
    """Rule for a non-decreasing function."""
    def rule(a):
        try:
            return _iv(fn(a[0]), fn(a[1]))
        except (ValueError, OverflowError):
            return FULL
    return rule


def _iv_const(lo, hi):
    return lambda *ivs: (lo, hi)


def _iv_abs(a):
    if a[0] >= 0:
        return a
    if a[1] <= 0:
        return (-a[1], -a[0])
    return (0, max(-a[0], a[1]))


def _iv_min(a, b):
    return (min(a[0], b[0]), min(a[1], b[1]))


def _iv_max(a, b):
    return (max(a[0], b[0]), max(a[1], b[1]))


def _iv_sel(s, *branches):
    return iv_union(*branches)


def _iv_int(a):
    return _iv_mono(lambda v: float(int(v)) if math.isfinite(v) else v)(a)


def _iv_sqrt(a):
    return (math.sqrt(max(a[0], 0)), math.sqrt(a[1])) if a[1] >= 0 else FULL


def _iv_log(fn):
    def rule(a):
        if a[0] <= 0:
            return (-INF, fn(a[1]) if a[1] > 0 else INF) if a[1] > 0 else FULL
        return (fn(a[0]), fn(a[1]) if a[1] < INF else INF)
    return rule


def _iv_pos_bound(a, b):
    m = max(abs(b[0]), abs(b[1]))
    return (-m, m) if m < INF else FULL


def _iv_first(a, *rest):
    return a


def _iv_full(*ivs):
    return FULL


# ---------------------------------------------------------------- derivative rules (JVP)
#
# A rule is `jvp(x, dx, y, A)`: x the operand signals, dx their tangents along one direction
# (None: structurally zero), y the primitive's own node (its value), A the tangent algebra of
# `ad` (`A.add/sub/mul/div/neg` skip structurally zero terms, so 0*inf never makes a NaN,
# as Faust's simplifier drops them; `A.p(name, ...)` builds a primitive, `A.c(v)` a
# constant). It returns the tangent of y, None when structurally zero. `ad` never calls a
# rule whose dx are all None. The calculus of each rule is the comment on its row below.
# `seed_jvp` holds the seed diff.lib's own rules for the four primitives it treats
# specially (shared/docs/diff-lib-seed-api.md); mode "seed" uses them, mode "auto" `jvp`.

def _j_zero(x, dx, y, A):
    return None


def _j_first(x, dx, y, A):
    return dx[0]


def _j_last(x, dx, y, A):
    return dx[-1]


def _j_add(x, dx, y, A):
    return A.add(dx[0], dx[1])


def _j_sub(x, dx, y, A):
    return A.sub(dx[0], dx[1])


def _j_mul(x, dx, y, A):
    return A.add(A.mul(x[0], dx[1]), A.mul(dx[0], x[1]))


def _j_div(x, dx, y, A):
    return A.div(A.sub(dx[0], A.mul(y, dx[1])), x[1])


def _j_div_seed(x, dx, y, A):
    v = x[1]
    return A.div(A.sub(A.mul(dx[0], v), A.mul(dx[1], x[0])),
                 A.p("max", A.p("*", v, v), A.c(1e-10)))


def _j_fmod(x, dx, y, A):
    # the quotient n = (u - y)/v is an integer held constant between jumps
    if dx[1] is None:
        return dx[0]
    return A.sub(dx[0], A.mul(A.p("/", A.p("-", x[0], y), x[1]), dx[1]))


def _j_pow(x, dx, y, A):
    u, v = x
    t1 = None
    if dx[0] is not None:
        t1 = A.mul(A.mul(v, A.p("pow", u, A.p("-", v, A.c(1)))), dx[0])
    t2 = A.mul(A.mul(y, A.p("log", u)), dx[1]) if dx[1] is not None else None
    return A.add(t1, t2)


def _j_enable(x, dx, y, A):
    # enable(u, v) is control(u * v, v != 0): the product rule, under the same condition
    du = A.mul(dx[0], x[1]) if dx[0] is not None else None
    dv = A.mul(x[0], dx[1]) if dx[1] is not None else None
    t = A.add(du, dv)
    return None if t is None else A.p("control", t, x[1])


def _j_control(x, dx, y, A):
    return None if dx[0] is None else A.p("control", dx[0], x[1])


def _j_delay(x, dx, y, A):
    return A.delay(dx[0], x[1])


def _j_delay_seed(x, dx, y, A):
    return A.sub(A.delay(dx[0], x[1]), A.mul(dx[1], A.p("-", y, A.delay(y, A.c(1)))))


def _j_mem(x, dx, y, A):
    return A.delay(dx[0], A.c(1))


def _j_prefix(x, dx, y, A):
    return A.prefix(dx[0], dx[1])


def _j_int_seed(x, dx, y, A):
    u = x[0]
    at_int = A.p("==", A.p("int", u), u)
    falling = A.p("<", u, A.delay(u, A.c(1)))
    s = A.p("select2", at_int, A.c(0), A.p("select2", falling, A.c(1), A.c(-1)))
    return A.mul(dx[0], s)


def _j_sin(x, dx, y, A):
    return A.mul(dx[0], A.p("cos", x[0]))


def _j_cos(x, dx, y, A):
    return A.neg(A.mul(dx[0], A.p("sin", x[0])))


def _j_tan(x, dx, y, A):
    c = A.p("cos", x[0])
    return A.div(dx[0], A.p("*", c, c))


def _j_tan_seed(x, dx, y, A):
    c = A.p("cos", x[0])
    return A.div(dx[0], A.p("max", A.p("*", c, c), A.c(1e-10)))


def _j_asin(x, dx, y, A):
    u = x[0]
    return A.div(dx[0], A.p("sqrt", A.p("-", A.c(1.0), A.p("*", u, u))))


def _j_acos(x, dx, y, A):
    return A.neg(_j_asin(x, dx, y, A))


def _j_atan(x, dx, y, A):
    u = x[0]
    return A.div(dx[0], A.p("+", A.c(1.0), A.p("*", u, u)))


def _j_exp(x, dx, y, A):
    return A.mul(dx[0], y)


def _j_log(x, dx, y, A):
    return A.div(dx[0], x[0])


def _j_log10(x, dx, y, A):
    return A.div(dx[0], A.p("*", x[0], A.c(math.log(10.0))))


def _j_sqrt(x, dx, y, A):
    return A.div(dx[0], A.p("*", A.c(2.0), y))


def _j_abs(x, dx, y, A):
    u = x[0]
    sign = A.p("-", A.p(">", u, A.c(0)), A.p("<", u, A.c(0)))
    return A.mul(dx[0], sign)


def _j_min(x, dx, y, A):
    # std::min(u, v) is (v < u) ? v : u
    return A.select(A.p("<", x[1], x[0]), dx[0], dx[1])


def _j_max(x, dx, y, A):
    # std::max(u, v) is (u < v) ? v : u
    return A.select(A.p("<", x[0], x[1]), dx[0], dx[1])


def _j_atan2(x, dx, y, A):
    u, v = x
    return A.div(A.sub(A.mul(dx[0], v), A.mul(u, dx[1])),
                 A.p("+", A.p("*", u, u), A.p("*", v, v)))


def _j_select2(x, dx, y, A):
    return A.select(x[0], dx[1], dx[2])


def _j_select3(x, dx, y, A):
    return A.select(x[0], dx[1], dx[2], dx[3])


def _j_rdtable(x, dx, y, A):
    # (size, init, ridx): the table of the contents' tangents, read at the same index
    return A.table(y, (x[0], dx[1], x[2]))


def _j_rwtable(x, dx, y, A):
    # (size, init, widx, wval, ridx): a twin table of tangents written at the same index
    if dx[1] is None and dx[3] is None:
        return None
    return A.table(y, (x[0], dx[1], x[2], dx[3], x[4]))


# ---------------------------------------------------------------- transpose rules (VJP)
#
# A rule is `vjp(x, ct, y, A)`: x the operand signals and y the primitive's own value (as the
# backward pass sees them: recomputed or recorded, see `ad.reverse`), ct the cotangent of y
# (never None), A the cotangent algebra of `ad.reverse` (the same `add/sub/mul/div/neg/p/c/
# select` as the tangent algebra; `A.delay(c, d)` is the TRANSPOSE of a delay by d, run in
# reversed time; `A.first()` is 1 at the first sample after reset, else 0). It returns one
# cotangent per operand (None: structurally zero; operands of type int always get none).
# Each is the transpose of the `jvp` rule of the same row: for y' = sum_i J_i x_i',
# x_i-bar = J_i ct, which `tests/test_reverse.py` checks as <ct, J dx> = <J^T ct, dx>.

def _v_zero(x, ct, y, A):
    return (None,) * len(x)


def _v_first(x, ct, y, A):
    return (ct,) + (None,) * (len(x) - 1)


def _v_last(x, ct, y, A):
    return (None,) * (len(x) - 1) + (ct,)


def _v_add(x, ct, y, A):
    return ct, ct


def _v_sub(x, ct, y, A):
    return ct, A.neg(ct)


def _v_mul(x, ct, y, A):
    return A.mul(ct, x[1]), A.mul(ct, x[0])


def _v_div(x, ct, y, A):
    # y' = u'/v - (y/v) v'
    q = A.div(ct, x[1])
    return q, A.neg(A.mul(q, y))


def _v_fmod(x, ct, y, A):
    # y' = u' - ((u - y)/v) v'
    return ct, A.neg(A.mul(ct, A.p("/", A.p("-", x[0], y), x[1])))


def _v_pow(x, ct, y, A):
    u, v = x
    du = A.mul(ct, A.p("*", v, A.p("pow", u, A.p("-", v, A.c(1)))))
    return du, A.mul(ct, A.p("*", y, A.p("log", u)))


def _v_enable(x, ct, y, A):
    return A.p("enable", ct, x[1]), A.p("control", A.p("*", ct, x[0]), x[1])


def _v_control(x, ct, y, A):
    return A.p("control", ct, x[1]), None


def _v_delay(x, ct, y, A):
    return A.delay(ct, x[1]), None


def _v_prefix(x, ct, y, A):
    # y[0] = a[0], y[n] = u[n-1]: a gets ct at the first sample, u gets ct one sample later
    return A.mul(ct, A.first()), A.delay(ct, A.c(1))


def _v_mem(x, ct, y, A):
    return (A.delay(ct, A.c(1)),)


def _v_unary(deriv):
    """The rule of y = f(u) from f'(u) as `deriv(u, y, A)`: u-bar = ct f'(u)."""
    return lambda x, ct, y, A: (A.mul(ct, deriv(x[0], y, A)),)


_v_sin = _v_unary(lambda u, y, A: A.p("cos", u))
_v_cos = _v_unary(lambda u, y, A: A.p("-", A.c(0), A.p("sin", u)))
_v_tan = _v_unary(lambda u, y, A: A.p("/", A.c(1.0), A.p("*", A.p("cos", u), A.p("cos", u))))
_v_asin = _v_unary(lambda u, y, A: A.p("/", A.c(1.0),
                                      A.p("sqrt", A.p("-", A.c(1.0), A.p("*", u, u)))))
_v_acos = _v_unary(lambda u, y, A: A.p("/", A.c(-1.0),
                                      A.p("sqrt", A.p("-", A.c(1.0), A.p("*", u, u)))))
_v_atan = _v_unary(lambda u, y, A: A.p("/", A.c(1.0), A.p("+", A.c(1.0), A.p("*", u, u))))
_v_exp = _v_unary(lambda u, y, A: y)
_v_log = _v_unary(lambda u, y, A: A.p("/", A.c(1.0), u))
_v_log10 = _v_unary(lambda u, y, A: A.p("/", A.c(1.0), A.p("*", u, A.c(math.log(10.0)))))
_v_sqrt = _v_unary(lambda u, y, A: A.p("/", A.c(1.0), A.p("*", A.c(2.0), y)))
_v_abs = _v_unary(lambda u, y, A: A.p("-", A.p(">", u, A.c(0)), A.p("<", u, A.c(0))))


def _v_min(x, ct, y, A):
    s = A.p("<", x[1], x[0])          # std::min(u, v) is (v < u) ? v : u
    return A.select(s, ct, None), A.select(s, None, ct)


def _v_max(x, ct, y, A):
    s = A.p("<", x[0], x[1])          # std::max(u, v) is (u < v) ? v : u
    return A.select(s, ct, None), A.select(s, None, ct)


def _v_atan2(x, ct, y, A):
    u, v = x
    q = A.div(ct, A.p("+", A.p("*", u, u), A.p("*", v, v)))
    return A.mul(q, v), A.neg(A.mul(q, u))


def _v_select2(x, ct, y, A):
    return None, A.select(x[0], ct, None), A.select(x[0], None, ct)


def _v_select3(x, ct, y, A):
    s = x[0]
    return (None, A.select(s, ct, None, None), A.select(s, None, ct, None),
            A.select(s, None, None, ct))


def _v_table(x, ct, y, A):
    # the read index is piecewise constant; the contents' cotangents: `A.table`
    return A.table(y, ct)


# ---------------------------------------------------------------- the table

def _a(iop, fop):
    """An arithmetic row's two implementations."""
    return dict(ty="arith", iimpl=iop, fimpl=fop)


def _cmp_rt(op):
    return dict(ty="cmp", iimpl=op, fimpl=op)


def _r1(fn, iv=_iv_full):
    return dict(ty="real", fimpl=fn, interval=iv)



ROWS = [
    # d: (u+v)' = u' + v'
    PrimRow("+", 2, True, _arith(lambda a, b: a + b), interval=_iv_add,
            **_a(lambda a, b: wrap(a + b), lambda a, b: a + b), jvp=_j_add, vjp=_v_add),
    # d: (u-v)' = u' - v'
    PrimRow("-", 2, True, _arith(lambda a, b: a - b), interval=_iv_sub,
            **_a(lambda a, b: wrap(a - b), lambda a, b: a - b), jvp=_j_sub, vjp=_v_sub),
    # d: (uv)' = u v' + u' v
    PrimRow("*", 2, True, _arith(lambda a, b: a * b), interval=_iv_mul,
            **_a(lambda a, b: wrap(a * b), lambda a, b: a * b), jvp=_j_mul, vjp=_v_mul),
    # d: (u/v)' = (u' - (u/v) v')/v; seed: (u'v - v'u)/max(v², 1e-10)
    PrimRow("/", 2, True, _div, ty="div", fimpl=fdiv, interval=_iv_div, jvp=_j_div, seed_jvp=_j_div_seed, vjp=_v_div),
    # int `%` is C's remainder, real `%` is fmod (a constant `%` folds on ints: see _mod)
    # d: fmod(u,v)' = u' - trunc(u/v) v' (int operands have no tangent)
    PrimRow("%", 2, True, _mod, interval=_iv_mod, **_a(irem, c_fmod), jvp=_j_fmod, vjp=_v_fmod),
    # `^`/`pow` with a constant exponent is rewritten by signals.prim (x*x*x, sqrt, ...)
    # d: (u^v)' = v u^(v-1) u' + u^v ln(u) v' (a zero v' drops the ln term)
    PrimRow("^", 2, True, _pow, interval=_iv_pow,
            **_a(lambda a, b: f2i(c_pow(float(a), float(b))), c_pow), jvp=_j_pow, vjp=_v_pow),
    # d: as ^
    PrimRow("pow", 2, True, _pow, interval=_iv_pow,
            **_a(lambda a, b: f2i(c_pow(float(a), float(b))), c_pow), jvp=_j_pow, vjp=_v_pow),
    # d: comparisons are piecewise constant: 0
    PrimRow("<", 2, True, _cmp(lambda a, b: a < b), interval=_iv_const(0, 1),
            **_cmp_rt(lambda a, b: int(a < b)), jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow("<=", 2, True, _cmp(lambda a, b: a <= b), interval=_iv_const(0, 1),
            **_cmp_rt(lambda a, b: int(a <= b)), jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow(">", 2, True, _cmp(lambda a, b: a > b), interval=_iv_const(0, 1),
            **_cmp_rt(lambda a, b: int(a > b)), jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow(">=", 2, True, _cmp(lambda a, b: a >= b), interval=_iv_const(0, 1),
            **_cmp_rt(lambda a, b: int(a >= b)), jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow("==", 2, True, _cmp(lambda a, b: a == b), interval=_iv_const(0, 1),
            **_cmp_rt(lambda a, b: int(a == b)), jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow("!=", 2, True, _cmp(lambda a, b: a != b), interval=_iv_const(0, 1),
            **_cmp_rt(lambda a, b: int(a != b)), jvp=_j_zero, vjp=_v_zero),
    # d: bitwise operators: int-valued, 0
    PrimRow("&", 2, True, _bit(lambda a, b: a & b), ty="bit", iimpl=lambda a, b: a & b,
            interval=_iv_and, jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow("|", 2, True, _bit(lambda a, b: a | b), ty="bit", iimpl=lambda a, b: a | b,
            interval=_iv_full, jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow("xor", 2, True, _bit(lambda a, b: a ^ b), ty="bit", iimpl=lambda a, b: a ^ b,
            interval=_iv_full, jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow("<<", 2, True, _shl, ty="bit", iimpl=_ishl, interval=_iv_shl, jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow(">>", 2, True, _shr, ty="bit", iimpl=_ishr, interval=_iv_shr, jvp=_j_zero, vjp=_v_zero),
    # d: (u@d)' = u'@d (int(d) is piecewise constant); seed: u'@d - d'(y - y[n-1])
    PrimRow("@", 2, True, jvp=_j_delay, seed_jvp=_j_delay_seed, vjp=_v_delay),
    # d: attach(u, v)' = u'
    PrimRow("attach", 2, True, ty="first", fimpl=_first, interval=_iv_first, jvp=_j_first, vjp=_v_first),
    # enable/control: signals.ir makes enable(x, y) control(x * y, y != 0); control(x, c)
    # computes x only while c != 0 (signals.conditions: a held value otherwise). The fimpl
    # (x when y != 0, else 0) only serves signals built without propagation.
    # d: enable(u, v)' = control(u' v + u v', v)
    PrimRow("enable", 2, True, ty="first", fimpl=_enable,
            interval=lambda a, b: iv_union(a, (0, 0)), jvp=_j_enable, vjp=_v_enable),
    # d: control(u, v)' = control(u', v)
    PrimRow("control", 2, True, ty="first", fimpl=_enable,
            interval=lambda a, b: iv_union(a, (0, 0)), jvp=_j_control, vjp=_v_control),
    # d: prefix(a, u)' = prefix(a', u')
    PrimRow("prefix", 2, jvp=_j_prefix, vjp=_v_prefix),
    # d: (u')' = u'[n-1]
    PrimRow("mem", 1, jvp=_j_mem, vjp=_v_mem),
    # d: int is piecewise constant: 0; seed: u' s, s = ±1 at exact integers (sign of the step), else 0
    PrimRow("int", 1, False, lambda v, i: int(c_int(v[0])), ty="cast_int", iimpl=f2i,
            interval=_iv_int, jvp=_j_zero, seed_jvp=_j_int_seed, vjp=_v_zero),
    # d: float(u)' = u'
    PrimRow("float", 1, False, lambda v, i: float(float(v[0])), ty="cast_real", fimpl=float,
            interval=_iv_first, jvp=_j_first, vjp=_v_first),
    # d: sin(u)' = u' cos u
    PrimRow("sin", 1, False, _real1(_faust_sin), **_r1(_safe1(math.sin), _iv_const(-1, 1)), jvp=_j_sin, vjp=_v_sin),
    # d: cos(u)' = -u' sin u
    PrimRow("cos", 1, False, _real1(_faust_cos), **_r1(_safe1(math.cos), _iv_const(-1, 1)), jvp=_j_cos, vjp=_v_cos),
    # d: tan(u)' = u'/cos²u; seed: u'/max(cos²u, 1e-10)
    PrimRow("tan", 1, False, _real1(math.tan), **_r1(_safe1(math.tan)), jvp=_j_tan, seed_jvp=_j_tan_seed, vjp=_v_tan),
    # d: asin(u)' = u'/sqrt(1-u²)
    PrimRow("asin", 1, False, _real1(math.asin),
            **_r1(_safe1(math.asin), _iv_const(-math.pi / 2, math.pi / 2)), jvp=_j_asin, vjp=_v_asin),
    # d: acos(u)' = -u'/sqrt(1-u²)
    PrimRow("acos", 1, False, _real1(math.acos),
            **_r1(_safe1(math.acos), _iv_const(0, math.pi)), jvp=_j_acos, vjp=_v_acos),
    # d: atan(u)' = u'/(1+u²)
    PrimRow("atan", 1, False, _real1(math.atan),
            **_r1(math.atan, _iv_mono(math.atan)), jvp=_j_atan, vjp=_v_atan),
    # d: exp(u)' = u' exp u
    PrimRow("exp", 1, False, _real1(math.exp), **_r1(_safe1(math.exp), _iv_mono(math.exp)), jvp=_j_exp, vjp=_v_exp),
    # d: log(u)' = u'/u
    PrimRow("log", 1, False, _real1(_log), **_r1(_c_log(math.log), _iv_log(math.log)), jvp=_j_log, vjp=_v_log),
    # d: log10(u)' = u'/(u ln 10)
    PrimRow("log10", 1, False, _real1(_log10),
            **_r1(_c_log(math.log10), _iv_log(math.log10)), jvp=_j_log10, vjp=_v_log10),
    # d: sqrt(u)' = u'/(2 sqrt u)
    PrimRow("sqrt", 1, False, _real1(math.sqrt), **_r1(_safe1(math.sqrt), _iv_sqrt), jvp=_j_sqrt, vjp=_v_sqrt),
    # d: abs(u)' = sign(u) u' (0 at u = 0)
    PrimRow("abs", 1, False, _same_type(abs), interval=_iv_abs,
            **_a(lambda a: wrap(abs(a)), abs), jvp=_j_abs, vjp=_v_abs),
    # d: piecewise constant: 0
    PrimRow("floor", 1, False, _real1(math.floor), **_r1(c_floor, _iv_mono(c_floor)), jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow("ceil", 1, False, _real1(math.ceil), **_r1(c_ceil, _iv_mono(c_ceil)), jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow("rint", 1, False, _real1(c_rint), **_r1(c_rint_rt, _iv_mono(c_rint_rt)), jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow("round", 1, False,
            _real1(lambda x: math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)),
            **_r1(c_round, _iv_mono(c_round)), jvp=_j_zero, vjp=_v_zero),
    # d: min(u,v)' = the partial of the selected operand (u on ties)
    PrimRow("min", 2, False, _same_type(min), interval=_iv_min, **_a(c_min, c_min), jvp=_j_min, vjp=_v_min),
    # d: max(u,v)' = the partial of the selected operand (u on ties)
    PrimRow("max", 2, False, _same_type(max), interval=_iv_max, **_a(c_max, c_max), jvp=_j_max, vjp=_v_max),
    # d: fmod(u,v)' = u' - trunc(u/v) v'
    PrimRow("fmod", 2, False, _real2(math.fmod), **_r1(c_fmod, _iv_pos_bound), jvp=_j_fmod, vjp=_v_fmod),
    # d: remainder(u,v)' = u' - rint(u/v) v'
    PrimRow("remainder", 2, False, _real2(math.remainder),
            **_r1(c_remainder, _iv_pos_bound), jvp=_j_fmod, vjp=_v_fmod),
    # d: atan2(u,v)' = (u'v - u v')/(u²+v²)
    PrimRow("atan2", 2, False, _real2(math.atan2),
            **_r1(math.atan2, _iv_const(-math.pi, math.pi)), jvp=_j_atan2, vjp=_v_atan2),
    # select2 converts its selector with int(); select3 compares it as it is (§6.5)
    # d: select2(s,a,b)' = select2(s,a',b') (s is piecewise constant)
    PrimRow("select2", 3, ty="select2", fimpl=_sel2, interval=_iv_sel, jvp=_j_select2, vjp=_v_select2),
    # d: select3(s,a,b,c)' = select3(s,a',b',c')
    PrimRow("select3", 4, ty="select3", fimpl=_sel3, interval=_iv_sel, jvp=_j_select3, vjp=_v_select3),
    # d: rdtable(n,t,i)' = rdtable(n,t',i)
    PrimRow("rdtable", 3, jvp=_j_rdtable, vjp=_v_table),
    # d: rwtable(n,t,w,x,r)' = rwtable(n,t',w,x',r)
    PrimRow("rwtable", 5, jvp=_j_rwtable, vjp=_v_table),
    # d: assertbounds(lo,hi,u)' = u'
    PrimRow("assertbounds", 3, ty="last", fimpl=lambda lo, hi, x: x,
            interval=lambda lo, hi, x: x, jvp=_j_last, vjp=_v_last),
    # d: a compile-time constant: 0
    PrimRow("lowest", 1, jvp=_j_zero, vjp=_v_zero),
    # d: 0
    PrimRow("highest", 1, jvp=_j_zero, vjp=_v_zero),
]

PRIMITIVES: dict[str, PrimRow] = {r.name: r for r in ROWS}

# ---------------------------------------------------------------- code templates (codegen)
# `{0}`, `{1}`... are the converted operands. int values are np.int32: wrapping operations
# truncate through np.int32(...); helper names (f2i, sel, irem, c_fmod, ...) are codegen's.
# Choices are `sel(c, a, b)`, one LLVM select, not Python's `a if c else b` (a branch).
_I32 = "np.int32({})"
_CMP = "np.int32({0} %s {1})"
CODE = {
    "+": {"int": _I32.format("{0} + {1}"), "real": "{0} + {1}"},
    "-": {"int": _I32.format("{0} - {1}"), "real": "{0} - {1}"},
    "*": {"int": _I32.format("{0} * {1}"), "real": "{0} * {1}"},
    "/": {"real": "{0} / {1}"},
    "%": {"int": "irem({0}, {1})", "real": "c_fmod({0}, {1})"},
    "^": {"int": "f2i(c_pow(float({0}), float({1})))", "real": "c_pow({0}, {1})"},
    "pow": {"int": "f2i(c_pow(float({0}), float({1})))", "real": "c_pow({0}, {1})"},
    "<": {"*": _CMP % "<"}, "<=": {"*": _CMP % "<="}, ">": {"*": _CMP % ">"},
    ">=": {"*": _CMP % ">="}, "==": {"*": _CMP % "=="}, "!=": {"*": _CMP % "!="},
    "&": {"int": "({0} & {1})"}, "|": {"int": "({0} | {1})"}, "xor": {"int": "({0} ^ {1})"},
    "<<": {"int": _I32.format("{0} << ({1} & 31)")},
    ">>": {"int": _I32.format("{0} >> ({1} & 31)")},
    "attach": {"*": "{0}"},
    "enable": {"*": "sel({1} != 0, {0}, {0} * 0)"},
    "control": {"*": "sel({1} != 0, {0}, {0} * 0)"},
    "int": {"*": "{0}"}, "float": {"*": "{0}"},
    "sin": {"*": "math.sin({0})"}, "cos": {"*": "math.cos({0})"},
    "tan": {"*": "math.tan({0})"}, "asin": {"*": "math.asin({0})"},
    "acos": {"*": "math.acos({0})"}, "atan": {"*": "math.atan({0})"},
    "exp": {"*": "math.exp({0})"}, "log": {"*": "math.log({0})"},
    "log10": {"*": "math.log10({0})"}, "sqrt": {"*": "math.sqrt({0})"},
    "abs": {"int": _I32.format("abs(np.int64({0}))"), "real": "abs({0})"},
    "floor": {"*": "np.floor({0})"}, "ceil": {"*": "np.ceil({0})"},
    "rint": {"*": "np.rint({0})"}, "round": {"*": "c_round({0})"},
    "min": {"*": "sel({1} < {0}, {1}, {0})"}, "max": {"*": "sel({0} < {1}, {1}, {0})"},
    "fmod": {"*": "c_fmod({0}, {1})"}, "remainder": {"*": "c_remainder({0}, {1})"},
    "atan2": {"*": "math.atan2({0}, {1})"},
    "select2": {"*": "sel({0} == 0, {1}, {2})"},
    "select3": {"*": "sel({0} == 0, {1}, sel({0} == 1, {2}, {3}))"},
    "assertbounds": {"*": "{2}"},
}
for _name, _code in CODE.items():
    object.__setattr__(PRIMITIVES[_name], "code", _code)

TYPE_RULES = ("arith", "div", "cmp", "bit", "real", "cast_int", "cast_real", "select2",
              "select3", "first", "last", "state")


def union_type(types) -> str:
    """Faust's type union: int only if every operand is int."""
    return "int" if all(t == "int" for t in types) else "real"


def plan(name: str, arg_types: tuple) -> tuple[str, tuple, Callable]:
    """How to run primitive `name` on operands of `arg_types` ('int'/'real').

    Returns (result type, per-operand conversion, scalar function): the caller converts
    operand i to conversion[i] ('int' with C's cast, 'real' with float(), None: as is), then
    calls the function. This is the single place that knows Faust's typing rules
    (faust-language.md §6.2).
    """
    row = PRIMITIVES[name]
    n, ty = row.ins, row.ty
    if ty in ("arith", "cmp"):
        t = union_type(arg_types)
        fn = row.iimpl if t == "int" else row.fimpl
        return ("int" if ty == "cmp" else t), (t,) * n, fn
    if ty == "div":
        return "real", ("real",) * n, row.fimpl
    if ty == "bit":
        return "int", ("int",) * n, row.iimpl
    if ty == "real":
        return "real", ("real",) * n, row.fimpl
    if ty == "cast_int":
        return "int", ("int",), (lambda x: x)
    if ty == "cast_real":
        return "real", ("real",), (lambda x: x)
    if ty == "select2":
        t = union_type(arg_types[1:])
        return t, ("int", t, t), row.fimpl
    if ty == "select3":
        t = union_type(arg_types[1:])
        return t, (None, t, t, t), row.fimpl
    if ty == "first":
        return arg_types[0], (None, None), row.fimpl
    if ty == "last":
        return arg_types[-1], (None,) * n, row.fimpl
    raise ValueError(f"primitive {name!r} has no scalar plan (built by a signal constructor)")


def result_type(name: str, arg_types: tuple) -> str:
    return plan(name, arg_types)[0]


def convert(value, to: Optional[str]):
    """Apply a `plan` conversion to a run-time value."""
    if to == "int":
        return value if value.__class__ is int else f2i(value)
    if to == "real":
        return float(value)
    return value


# ---------------------------------------------------------------- foreign functions

def _libm(name, restype="d", argtypes="d"):
    """A libm function through ctypes, for the few that `math` lacks (bit-exact with C)."""
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    fn = getattr(lib, name)
    ct = {"d": ctypes.c_double, "i": ctypes.c_int}
    fn.restype = ct[restype]
    fn.argtypes = [ct[c] for c in argtypes]
    return fn


def _lazy_libm(name, restype="d", argtypes="d"):
    cell = []

    def call(*args):
        if not cell:
            cell.append(_libm(name, restype, argtypes))
        return cell[0](*args)
    return call


def _arc4random():
    import random
    return wrap(random.getrandbits(32))


# name (the C double-precision name) -> scalar on already converted arguments. C's libm where
# Python's math differs from it: CPython computes hypot, lgamma and gamma itself (last-bit
# differences) and raises on sinh overflow (C gives -inf for a large negative argument).
FFUNS: dict[str, Callable] = {
    "tanh": math.tanh, "sinh": _lazy_libm("sinh"), "cosh": _safe1(math.cosh),
    "asinh": math.asinh, "acosh": _safe1(math.acosh),
    "atanh": _safe1(math.atanh, lambda x: math.copysign(INF, x) if abs(x) == 1 else NAN),
    "exp2": _safe1(math.exp2), "expm1": _safe1(math.expm1), "log2": _c_log(math.log2),
    "log1p": _safe1(math.log1p, lambda x: -INF if x == -1 else NAN),
    "cbrt": math.cbrt, "fabs": math.fabs, "copysign": math.copysign,
    "hypot": _lazy_libm("hypot", "d", "dd"), "fmin": lambda a, b: b if a != a else (a if b != b else min(a, b)),
    "fmax": lambda a, b: b if a != a else (a if b != b else max(a, b)),
    "fmod": c_fmod, "remainder": c_remainder, "round": c_round, "rint": c_rint_rt,
    "nearbyint": c_rint_rt, "trunc": lambda x: _sign_zero(float(math.trunc(x)), x)
    if math.isfinite(x) else x,
    "floor": c_floor, "ceil": c_ceil, "sqrt": _safe1(math.sqrt), "exp": _safe1(math.exp),
    "log": _c_log(math.log), "log10": _c_log(math.log10), "pow": c_pow,
    "sin": _safe1(math.sin), "cos": _safe1(math.cos), "tan": _safe1(math.tan),
    "asin": _safe1(math.asin), "acos": _safe1(math.acos), "atan": math.atan,
    "atan2": math.atan2, "erf": math.erf, "erfc": math.erfc,
    "lgamma": _lazy_libm("lgamma"), "tgamma": _lazy_libm("tgamma"), "nextafter": math.nextafter,
    "lround": lambda x: f2i(c_round(x)), "lrint": lambda x: f2i(c_rint_rt(x)),
    "isnan": lambda x: int(x != x), "isinf": lambda x: int(math.isinf(x)),
    "isfinite": lambda x: int(math.isfinite(x)),
    "logb": _lazy_libm("logb"), "ilogb": _lazy_libm("ilogb", "i", "d"),
    "ldexp": _lazy_libm("ldexp", "d", "di"), "scalbn": _lazy_libm("scalbn", "d", "di"),
    "j0": _lazy_libm("j0"), "j1": _lazy_libm("j1"), "jn": _lazy_libm("jn", "d", "id"),
    "y0": _lazy_libm("y0"), "y1": _lazy_libm("y1"), "yn": _lazy_libm("yn", "d", "id"),
    "arc4random": _arc4random,
}


# Foreign functions for codegen (same names as FFUNS; operands already converted).
FFUN_CODE: dict[str, str] = {
    "tanh": "math.tanh({0})", "sinh": "c_sinh({0})", "cosh": "math.cosh({0})",
    "asinh": "math.asinh({0})", "acosh": "math.acosh({0})", "atanh": "math.atanh({0})",
    "exp2": "c_exp2({0})", "expm1": "math.expm1({0})", "log2": "math.log2({0})",
    "log1p": "math.log1p({0})", "cbrt": "c_cbrt({0})", "fabs": "abs({0})",
    "copysign": "math.copysign({0}, {1})", "hypot": "c_hypot({0}, {1})",
    "fmin": "({1} if {0} != {0} else ({0} if {1} != {1} else ({1} if {1} < {0} else {0})))",
    "fmax": "({1} if {0} != {0} else ({0} if {1} != {1} else ({1} if {0} < {1} else {0})))",
    "fmod": "c_fmod({0}, {1})", "remainder": "c_remainder({0}, {1})",
    "round": "c_round({0})", "rint": "np.rint({0})", "nearbyint": "np.rint({0})",
    "trunc": "np.trunc({0})", "floor": "np.floor({0})", "ceil": "np.ceil({0})",
    "sqrt": "math.sqrt({0})", "exp": "math.exp({0})", "log": "math.log({0})",
    "log10": "math.log10({0})", "pow": "c_pow({0}, {1})", "sin": "math.sin({0})",
    "cos": "math.cos({0})", "tan": "math.tan({0})", "asin": "math.asin({0})",
    "acos": "math.acos({0})", "atan": "math.atan({0})", "atan2": "math.atan2({0}, {1})",
    "erf": "math.erf({0})", "erfc": "math.erfc({0})", "lgamma": "c_lgamma({0})",
    "tgamma": "c_tgamma({0})", "nextafter": "c_nextafter({0}, {1})",
    "lround": "f2i(c_round({0}))", "lrint": "f2i(np.rint({0}))",
    "isnan": "np.int32({0} != {0})", "isinf": "np.int32(math.isinf({0}))",
    "isfinite": "np.int32(math.isfinite({0}))",
    "logb": "c_logb({0})", "ilogb": "np.int32(c_ilogb({0}))",
    "ldexp": "c_ldexp({0}, {1})", "scalbn": "c_scalbn({0}, {1})",
    "j0": "c_j0({0})", "j1": "c_j1({0})", "jn": "c_jn({0}, {1})",
    "y0": "c_y0({0})", "y1": "c_y1({0})", "yn": "c_yn({0}, {1})",
    "arc4random": "c_arc4random()",
}


def _fj(fn):
    """A unary foreign function's rule from its derivative f'(u, y): (f u)' = u' f'(u)."""
    return lambda x, dx, y, A: A.mul(dx[0], fn(x[0], y, A))


def _fj_hypot(x, dx, y, A):
    # hypot(u, v)' = (u u' + v v') / hypot(u, v)
    return A.div(A.add(A.mul(x[0], dx[0]), A.mul(x[1], dx[1])), y)


def _fj_copysign(x, dx, y, A):
    # copysign(u, v)' = u' sign(u) sign(y) (v only moves the sign: 0)
    u = x[0]
    su = A.p("-", A.p(">", u, A.c(0)), A.p("<", u, A.c(0)))
    sy = A.p("-", A.p(">", y, A.c(0)), A.p("<", y, A.c(0)))
    return A.mul(dx[0], A.p("*", su, sy))


def _fj_fminmax(x, dx, y, A):
    # fmin/fmax: the partial of the operand selected (u when y == u, else v)
    return A.select(A.p("==", y, x[0]), dx[1], dx[0])


# Derivative rules of the foreign functions of FFUNS (same convention as `jvp`); functions
# missing here (gamma functions, Bessel functions, ...) cannot be differentiated.
FFUN_JVP: dict[str, Callable] = {
    "tanh": _fj(lambda u, y, A: A.p("-", A.c(1.0), A.p("*", y, y))),          # 1 - tanh²u
    "sinh": _fj(lambda u, y, A: _ff("cosh", u, A)),                             # cosh u
    "cosh": _fj(lambda u, y, A: _ff("sinh", u, A)),                             # sinh u
    "asinh": _fj(lambda u, y, A: A.p("/", A.c(1.0),
                                     A.p("sqrt", A.p("+", A.p("*", u, u), A.c(1.0))))),
    "acosh": _fj(lambda u, y, A: A.p("/", A.c(1.0),
                                     A.p("sqrt", A.p("-", A.p("*", u, u), A.c(1.0))))),
    "atanh": _fj(lambda u, y, A: A.p("/", A.c(1.0), A.p("-", A.c(1.0), A.p("*", u, u)))),
    "exp2": _fj(lambda u, y, A: A.p("*", y, A.c(math.log(2.0)))),               # 2^u ln 2
    "expm1": _fj(lambda u, y, A: A.p("+", y, A.c(1.0))),                         # e^u
    "log2": _fj(lambda u, y, A: A.p("/", A.c(1.0), A.p("*", u, A.c(math.log(2.0))))),
    "log1p": _fj(lambda u, y, A: A.p("/", A.c(1.0), A.p("+", u, A.c(1.0)))),
    "cbrt": _fj(lambda u, y, A: A.p("/", A.c(1.0), A.p("*", A.c(3.0), A.p("*", y, y)))),
    "fabs": _fj(lambda u, y, A: A.p("-", A.p(">", u, A.c(0)), A.p("<", u, A.c(0)))),
    "sqrt": _fj(lambda u, y, A: A.p("/", A.c(0.5), y)),
    "exp": _fj(lambda u, y, A: y),
    "log": _fj(lambda u, y, A: A.p("/", A.c(1.0), u)),
    "log10": _fj(lambda u, y, A: A.p("/", A.c(1.0), A.p("*", u, A.c(math.log(10.0))))),
    "sin": _fj(lambda u, y, A: A.p("cos", u)),
    "cos": _fj(lambda u, y, A: A.p("-", A.c(0), A.p("sin", u))),
    "tan": _fj(lambda u, y, A: A.p("+", A.c(1.0), A.p("*", y, y))),
    "asin": _fj(lambda u, y, A: A.p("/", A.c(1.0),
                                    A.p("sqrt", A.p("-", A.c(1.0), A.p("*", u, u))))),
    "acos": _fj(lambda u, y, A: A.p("/", A.c(-1.0),
                                    A.p("sqrt", A.p("-", A.c(1.0), A.p("*", u, u))))),
    "atan": _fj(lambda u, y, A: A.p("/", A.c(1.0), A.p("+", A.c(1.0), A.p("*", u, u)))),
    "erf": _fj(lambda u, y, A: A.p("*", A.c(2.0 / math.sqrt(math.pi)),
                                   A.p("exp", A.p("-", A.c(0), A.p("*", u, u))))),
    "erfc": _fj(lambda u, y, A: A.p("*", A.c(-2.0 / math.sqrt(math.pi)),
                                    A.p("exp", A.p("-", A.c(0), A.p("*", u, u))))),
    "hypot": _fj_hypot, "copysign": _fj_copysign,
    "fmin": _fj_fminmax, "fmax": _fj_fminmax,
    "pow": lambda x, dx, y, A: _j_pow(x, dx, y, A),
    "atan2": lambda x, dx, y, A: _j_atan2(x, dx, y, A),
    "fmod": lambda x, dx, y, A: _j_fmod(x, dx, y, A),
    "remainder": lambda x, dx, y, A: _j_fmod(x, dx, y, A),
    # piecewise constant: 0
    "floor": _j_zero, "ceil": _j_zero, "rint": _j_zero, "round": _j_zero,
    "nearbyint": _j_zero, "trunc": _j_zero, "lround": _j_zero, "lrint": _j_zero,
    "isnan": _j_zero, "isinf": _j_zero, "isfinite": _j_zero,
}


def _fv_hypot(x, ct, y, A):
    q = A.div(ct, y)
    return A.mul(q, x[0]), A.mul(q, x[1])


def _fv_copysign(x, ct, y, A):
    u = x[0]
    su = A.p("-", A.p(">", u, A.c(0)), A.p("<", u, A.c(0)))
    sy = A.p("-", A.p(">", y, A.c(0)), A.p("<", y, A.c(0)))
    return A.mul(ct, A.p("*", su, sy)), None


def _fv_fminmax(x, ct, y, A):
    s = A.p("==", y, x[0])
    return A.select(s, None, ct), A.select(s, ct, None)


def _fv_from_jvp(rule):
    """The VJP of a unary `_fj` rule: u-bar = ct f'(u), f'(u) being the rule's dx = 1."""
    return lambda x, ct, y, A: (A.mul(ct, rule(x, (A.c(1.0),), y, A)),)


# Transpose rules of FFUN_JVP (same convention as the rows' `vjp`).
FFUN_VJP: dict[str, Callable] = {
    name: _fv_from_jvp(rule) for name, rule in FFUN_JVP.items()
    if name in ("tanh", "sinh", "cosh", "asinh", "acosh", "atanh", "exp2", "expm1", "log2",
                "log1p", "cbrt", "fabs", "sqrt", "exp", "log", "log10", "sin", "cos", "tan",
                "asin", "acos", "atan", "erf", "erfc")
}
FFUN_VJP.update({
    "hypot": _fv_hypot, "copysign": _fv_copysign, "fmin": _fv_fminmax, "fmax": _fv_fminmax,
    "pow": _v_pow, "atan2": _v_atan2, "fmod": _v_fmod, "remainder": _v_fmod,
    "floor": _v_zero, "ceil": _v_zero, "rint": _v_zero, "round": _v_zero,
    "nearbyint": _v_zero, "trunc": _v_zero, "lround": _v_zero, "lrint": _v_zero,
    "isnan": _v_zero, "isinf": _v_zero, "isfinite": _v_zero,
})
assert set(FFUN_VJP) == set(FFUN_JVP), "a foreign function has a JVP rule but no VJP rule"


def _ff(name, u, A):
    """A double foreign function of FFUNS applied to a signal (for the rules above)."""
    return A.ffun(name, u)


def ffun_name(name: str) -> str:
    """The double-precision variant of a foreign name (`tanhf|tanh|tanhl` -> `tanh`)."""
    parts = [p.strip() for p in name.split("|")]
    return parts[1] if len(parts) >= 2 else parts[0]


def fold(name: str, values: list, all_int: bool):
    """Fold primitive `name` on constant `values`; None when it cannot be folded.

    Raises ZeroDivisionError for a constant division or remainder by zero (the caller turns
    it into a located FaustError).
    """
    row = PRIMITIVES[name]
    if row.fold is None:
        return None
    return row.fold(values, all_int)
