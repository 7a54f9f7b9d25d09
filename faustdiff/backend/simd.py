"""Explicit SIMD lanes for the batch kernels: Numba types for LLVM vectors of LANES values.

A batch kernel (codegen.batch_kernel) runs LANES instances of a program side by side. Its
per-instance code is the scalar kernel's own text; in the vector form every value that
differs between the instances is one of the types below, so each operation the text
spells (`a + b`, `a < b`, `sel(c, a, b)`, ...) is one LLVM vector instruction over all
lanes, and the state loaded from the `stack` buffers stays in vector registers:

    VecF  <LANES x double>   Faust's real values, lane b of every instance b
    VecI  <LANES x i32>      Faust's int values (wrap-around arithmetic, as int32)
    VecB  <LANES x i1>       a comparison's result (`np.int32` of it is 0/1, as in C)

A value the same for every lane (the sample counter `t`, `count`, a constant) stays a
Python scalar; an operation with one vector operand broadcasts the other. Operations with
no vector instruction of the same rounding (sin, exp, pow, fmod, irem, ...) are spelled per
lane by the code generator (`vlane`/`vpack` around the scalar template), so every lane
computes exactly what one instance's scalar kernel computes: results are bit for bit those
of B separate programs.

Memory (the lane arrays of a batch kernel: element (k, b) of an instance-major layout at
k * LANES + b): `vld(a, k)` / `vst(a, k, v)` read/write the LANES values of flat index k,
one vector access when k is a scalar, a gather/scatter (lane b at k[b] * LANES + b) when k
is a VecI (a delay or table index that differs between instances). `vgat(a, k)` reads a
plain array (a waveform) at k or at each lane's k[b].

Importing this module registers the types with Numba (the generated modules import it).
LANES is 4 (one 256-bit register of doubles; see `_host_lanes`), or FAUSTDIFF_LANES=8 (one
AVX-512 register); part of every module's cache key (`cache._key1`).
"""
from __future__ import annotations

import operator
import os

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.imputils import lower_builtin, lower_cast
from numba.core.typing.templates import AbstractTemplate, infer_global, signature
from numba.extending import intrinsic, models, register_model


def _host_lanes() -> int:
    forced = os.environ.get("FAUSTDIFF_LANES", "")
    if forced in ("4", "8"):   # (to compare the widths on one machine)
        return int(forced)
    # 4 even with AVX-512: measured on the one-pole's forward-mode batch (16 instances of
    # 1 s), 8 lanes ran 0.66 -> 1.0 ms with the machine's other core busy, their staging
    # (8 rows at once per transpose) the cost; the plain one-pole and the equaliser gain
    # with 8 on a quiet machine (0.48 -> 0.32, 2.7 -> 2.2 ms): FAUSTDIFF_LANES=8
    return 4


LANES = _host_lanes()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_F64 = ir.DoubleType()


class _Vec(types.Type):
    """A vector of LANES values of one element type (`elem`: the scalar Numba type)."""
    elem: types.Type = types.float64
    llvm: ir.Type = _F64
    kind = ""

    def __init__(self):
        super().__init__(name=f"{self.kind}{LANES}")

    def unify(self, typingctx, other):
        # (a Python conditional or `sel` between a vector and a scalar: the vector)
        if isinstance(other, type(self)) or (isinstance(other, types.Number)
                                             and self.accepts(other)):
            return self
        return None

    def accepts(self, t) -> bool:
        return isinstance(t, (types.Integer, types.Boolean))


class VecF(_Vec):
    elem, llvm, kind = types.float64, _F64, "vecf"

    def accepts(self, t) -> bool:
        return isinstance(t, (types.Float, types.Integer, types.Boolean))


class VecI(_Vec):
    elem, llvm, kind = types.int32, _I32, "veci"


class VecB(_Vec):
    elem, llvm, kind = types.boolean, ir.IntType(1), "vecb"

    def accepts(self, t) -> bool:
        return isinstance(t, types.Boolean)


vecf, veci, vecb = VecF(), VecI(), VecB()
_VECS = (VecF, VecI, VecB)

for _cls in _VECS:
    def _model(cls):
        @register_model(cls)
        class _M(models.PrimitiveModel):
            def __init__(self, dmm, fe_type):
                super().__init__(dmm, fe_type, ir.VectorType(fe_type.llvm, LANES))
    _model(_cls)


def _vty(t) -> ir.VectorType:
    return ir.VectorType(t.llvm, LANES)


def _splat(builder, x, vty: ir.VectorType):
    u = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(_I32, 0))
    return builder.shuffle_vector(u, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES))


def _as(context, builder, v, ty, to: _Vec):
    """v (of Numba type ty: a scalar or a vector) as a vector of type `to` (a scalar is
    converted as Numba converts it, then broadcast; VecB -> VecI/VecF: 0/1)."""
    if isinstance(ty, _Vec):
        if type(ty) is type(to):
            return v
        if isinstance(ty, VecB):
            return builder.zext(v, _vty(to)) if isinstance(to, VecI) \
                else builder.uitofp(v, _vty(to))
        if isinstance(ty, VecI) and isinstance(to, VecF):
            return builder.sitofp(v, _vty(to))
        raise TypeError(f"simd: no conversion from {ty} to {to}")
    return _splat(builder, context.cast(builder, v, ty, to.elem), _vty(to))


for _cls in _VECS:
    for _from in (types.Integer, types.Float, types.Boolean):
        @lower_cast(_from, _cls)
        def _cast_scalar(context, builder, fromty, toty, val):
            return _as(context, builder, val, fromty, toty)


# ---------------------------------------------------------------- operators

def _result(args) -> _Vec | None:
    """The vector type of an arithmetic operation on `args` (None: not ours)."""
    vecs = [a for a in args if isinstance(a, _Vec)]
    if not vecs or not all(isinstance(a, (_Vec, types.Number, types.Boolean)) for a in args):
        return None
    if any(isinstance(a, (VecF, types.Float)) for a in args):
        return vecf
    if any(isinstance(a, VecI) or isinstance(a, types.Integer) for a in args):
        return veci
    return vecb


_ARITH = {operator.add: ("fadd", "add"), operator.sub: ("fsub", "sub"),
          operator.mul: ("fmul", "mul"), operator.truediv: ("fdiv", None)}
_BITS = {operator.and_: "and_", operator.or_: "or_", operator.xor: "xor",
         operator.lshift: "shl", operator.rshift: "ashr"}
_CMPS = {operator.lt: "<", operator.le: "<=", operator.gt: ">", operator.ge: ">=",
         operator.eq: "==", operator.ne: "!="}


def _template(op, rule):
    @infer_global(op)
    class _T(AbstractTemplate):
        def generic(self, args, kws):
            if len(args) == 2 and not kws:
                r = rule(args)
                if r is not None:
                    return signature(r, *args)
    return _T


def _lower_pairs(op, impl):
    for a in _VECS:
        lower_builtin(op, a, types.Any)(impl)
        for b in (types.Number, types.Boolean):
            lower_builtin(op, b, a)(impl)


def _arith_rule(op):
    def rule(args):
        r = _result(args)
        if r is None or isinstance(r, VecB):
            return None
        if op is operator.truediv:
            return vecf
        return r
    return rule


def _arith_impl(fop, iop):
    def impl(context, builder, sig, args):
        to = sig.return_type
        a, b = (_as(context, builder, v, t, to) for v, t in zip(args, sig.args))
        return getattr(builder, fop if isinstance(to, VecF) else iop)(a, b)
    return impl


for _op, (_f, _i) in _ARITH.items():
    _template(_op, _arith_rule(_op))
    _lower_pairs(_op, _arith_impl(_f, _i))


def _bits_rule(args):
    r = _result(args)
    if r is None or isinstance(r, VecF) or any(isinstance(a, types.Float) for a in args):
        return None
    return r


def _bits_impl(name):
    def impl(context, builder, sig, args):
        to = sig.return_type
        a, b = (_as(context, builder, v, t, to) for v, t in zip(args, sig.args))
        return getattr(builder, name)(a, b)
    return impl


for _op, _name in _BITS.items():
    _template(_op, _bits_rule)
    _lower_pairs(_op, _bits_impl(_name))


def _cmp_rule(args):
    r = _result(args)
    return None if r is None else vecb


def _cmp_impl(cmp):
    def impl(context, builder, sig, args):
        r = _result(sig.args)
        to = veci if isinstance(r, VecB) else r
        a, b = (_as(context, builder, v, t, to) for v, t in zip(args, sig.args))
        if isinstance(to, VecF):
            # (Python's float comparisons: ordered, except != which NaN satisfies)
            if cmp == "!=":
                return builder.fcmp_unordered(cmp, a, b)
            return builder.fcmp_ordered(cmp, a, b)
        return builder.icmp_signed(cmp, a, b)
    return impl


for _op, _c in _CMPS.items():
    _template(_op, _cmp_rule)
    _lower_pairs(_op, _cmp_impl(_c))


@infer_global(operator.neg)
class _Neg(AbstractTemplate):
    def generic(self, args, kws):
        if len(args) == 1 and isinstance(args[0], (VecF, VecI)):
            return signature(args[0], *args)


@lower_builtin(operator.neg, VecF)
def _neg_f(context, builder, sig, args):
    return builder.fneg(args[0])


@lower_builtin(operator.neg, VecI)
def _neg_i(context, builder, sig, args):
    return builder.sub(ir.Constant(_vty(veci), [0] * LANES), args[0])


@infer_global(abs)
class _Abs(AbstractTemplate):
    def generic(self, args, kws):
        if len(args) == 1 and isinstance(args[0], (VecF, VecI)):
            return signature(args[0], *args)


@lower_builtin(abs, VecF)
def _abs_f(context, builder, sig, args):
    return _call(builder, "llvm.fabs", args[0])


@lower_builtin(abs, VecI)
def _abs_i(context, builder, sig, args):
    # (wraps: abs(INT_MIN) is INT_MIN, as the scalar kernels' np.int32(abs(int64)) gives)
    x = args[0]
    zero = ir.Constant(_vty(veci), [0] * LANES)
    return builder.select(builder.icmp_signed("<", x, zero), builder.sub(zero, x), x)


def _call(builder, name: str, *xs):
    """The LLVM intrinsic `name` on vectors (or scalars) of one type."""
    t = xs[0].type
    suffix = f"v{t.count}f64" if isinstance(t, ir.VectorType) else "f64"
    fn = builder.module.declare_intrinsic(f"{name}.{suffix}", fnty=ir.FunctionType(t, [t] * len(xs)))
    return builder.call(fn, list(xs))


# ---------------------------------------------------------------- functions of the kernels

def _is_int(t) -> bool:
    return isinstance(t, (types.Integer, types.Boolean, VecI, VecB))


def _float_fn(name: str):
    """vfloor & co: np.floor (etc.) of a VecF or a scalar, one LLVM intrinsic (exact)."""
    def fn(typingctx, x):
        ret = vecf if isinstance(x, _Vec) else types.float64

        def codegen(context, builder, sig, args):
            v = _as(context, builder, args[0], sig.args[0], vecf) if ret is vecf \
                else context.cast(builder, args[0], sig.args[0], types.float64)
            return _call(builder, name, v)
        return ret(x), codegen
    fn.__name__ = "v" + name.split(".")[-1]
    return intrinsic(fn)


vfloor = _float_fn("llvm.floor")
vceil = _float_fn("llvm.ceil")
vrint = _float_fn("llvm.rint")
vtrunc = _float_fn("llvm.trunc")
vsqrt = _float_fn("llvm.sqrt")


@intrinsic
def vf64(typingctx, x):
    """float(x) of a scalar, a VecI or a VecB (0.0/1.0); a VecF unchanged."""
    ret = vecf if isinstance(x, _Vec) else types.float64

    def codegen(context, builder, sig, args):
        if ret is vecf:
            return _as(context, builder, args[0], sig.args[0], vecf)
        return context.cast(builder, args[0], sig.args[0], types.float64)
    return ret(x), codegen


@intrinsic
def vi32(typingctx, x):
    """np.int32(x) of an integer or a comparison (scalar or VecI/VecB): a VecB is 0/1."""
    if isinstance(x, VecF) or isinstance(x, types.Float):
        return None
    ret = veci if isinstance(x, _Vec) else types.int32

    def codegen(context, builder, sig, args):
        if ret is veci:
            return _as(context, builder, args[0], sig.args[0], veci)
        v, t = args[0], sig.args[0]
        if isinstance(t, types.Boolean):
            return builder.zext(v, _I32)
        return builder.trunc(v, _I32) if v.type.width > 32 else \
            context.cast(builder, v, t, types.int32)
    return ret(x), codegen


@intrinsic
def vi64(typingctx, x):
    """np.int64(x): a scalar widened; a VecI unchanged (its lanes' `abs`, then np.int32,
    give what np.int32(abs(np.int64(x))) gives: the wrap of abs(INT_MIN))."""
    ret = x if isinstance(x, VecI) else types.int64

    def codegen(context, builder, sig, args):
        if ret is x:
            return args[0]
        return context.cast(builder, args[0], sig.args[0], types.int64)
    return ret(x), codegen


def _truth_v(context, builder, v, t):
    """A condition as i1 (scalar) or <LANES x i1>: nonzero is true (NaN too, as in C)."""
    if isinstance(t, VecB) or isinstance(t, types.Boolean):
        return v
    if isinstance(t, VecI):
        return builder.icmp_signed("!=", v, ir.Constant(v.type, [0] * LANES))
    if isinstance(t, VecF):
        return builder.fcmp_unordered("!=", v, ir.Constant(v.type, [0.0] * LANES))
    if isinstance(t, types.Float):
        return builder.fcmp_unordered("!=", v, ir.Constant(v.type, 0.0))
    return builder.icmp_signed("!=", v, ir.Constant(v.type, 0))


def _joined(typingctx, a, b):
    if isinstance(a, _Vec) or isinstance(b, _Vec):
        r = _result((a, b))
        if r is vecb and not (isinstance(a, (VecB, types.Boolean))
                              and isinstance(b, (VecB, types.Boolean))):
            r = veci
        return r
    return a if a == b else typingctx.unify_pairs(a, b)


@intrinsic
def vsel(typingctx, c, a, b):
    """(a if c else b) per lane (c a VecB/VecI/VecF or a scalar), one LLVM select."""
    ty = _joined(typingctx, a, b)
    if ty is None:
        return None
    if isinstance(c, _Vec) and not isinstance(ty, _Vec):   # (lanes choose between scalars)
        ty = vecf if isinstance(ty, types.Float) else \
            (vecb if isinstance(ty, types.Boolean) else veci)

    def codegen(context, builder, sig, args):
        to = sig.return_type
        cond = _truth_v(context, builder, args[0], sig.args[0])
        if isinstance(to, _Vec):
            x, y = (_as(context, builder, v, t, to) for v, t in zip(args[1:], sig.args[1:]))
        else:
            x, y = (context.cast(builder, v, t, to) for v, t in zip(args[1:], sig.args[1:]))
        return builder.select(cond, x, y)
    return ty(c, a, b), codegen


@intrinsic
def vclip(typingctx, x, lo, hi):
    """min(max(x, lo), hi) of integers (scalars or a VecI), two selects."""
    ty = veci if isinstance(x, _Vec) else x

    def codegen(context, builder, sig, args):
        if isinstance(ty, _Vec):
            v, lo_, hi_ = (_as(context, builder, a, t, veci) for a, t in zip(args, sig.args))
        else:
            v, lo_, hi_ = (context.cast(builder, a, t, ty) for a, t in zip(args, sig.args))
        v = builder.select(builder.icmp_signed("<", v, lo_), lo_, v)
        return builder.select(builder.icmp_signed(">", v, hi_), hi_, v)
    return ty(x, lo, hi), codegen


@intrinsic
def vf2i(typingctx, x):
    """C's (int)x as x86's cvttsd2si computes it (truncation toward 0; NaN, inf and
    out-of-range values give INT_MIN), of a VecF (-> VecI) or a scalar (-> int32)."""
    vec = isinstance(x, _Vec)
    ret = veci if vec else types.int32

    def codegen(context, builder, sig, args):
        v = _as(context, builder, args[0], sig.args[0], vecf) if vec \
            else context.cast(builder, args[0], sig.args[0], types.float64)
        it = _vty(veci) if vec else _I32

        def const(t, x):
            return ir.Constant(t, [x] * LANES) if vec else ir.Constant(t, x)
        ft = v.type
        lo = builder.fcmp_ordered(">", v, const(ft, -2147483649.0))
        hi = builder.fcmp_ordered("<", v, const(ft, 2147483648.0))
        return builder.select(builder.and_(lo, hi), builder.fptosi(v, it),
                              const(it, -2147483648))
    return ret(x), codegen


@intrinsic(prefer_literal=True)
def vlane(typingctx, x, k):
    """Lane k (a literal) of a vector, as its scalar type; a scalar x is itself."""
    if not isinstance(k, types.IntegerLiteral):
        return None
    ret = x.elem if isinstance(x, _Vec) else x
    j = k.literal_value

    def codegen(context, builder, sig, args):
        if isinstance(sig.args[0], _Vec):
            return builder.extract_element(args[0], ir.Constant(_I32, j))
        return args[0]
    return ret(x, k), codegen


@intrinsic
def vpack(typingctx, *xs):
    """The vector whose lane b is xs[b] (LANES scalars: reals -> VecF, ints -> VecI)."""
    xs = xs[0] if len(xs) == 1 and isinstance(xs[0], types.BaseTuple) else xs
    if len(xs) != LANES:
        return None
    ret = veci if all(_is_int(t) for t in xs) else vecf

    def codegen(context, builder, sig, args):
        vals = cgutils.unpack_tuple(builder, args[0]) if len(args) == 1 else args
        tys = sig.args[0].types if len(sig.args) == 1 else sig.args
        v = ir.Constant(_vty(ret), ir.Undefined)
        for b, (x, t) in enumerate(zip(vals, tys)):
            v = builder.insert_element(v, context.cast(builder, x, t, ret.elem),
                                       ir.Constant(_I32, b))
        return v
    return ret(types.StarArgTuple(tuple(xs))), codegen


# ---------------------------------------------------------------- memory

def _base(builder, a, value):
    return value if isinstance(a, types.CPointer) else builder.extract_value(value, 4)


def _lane_ptrs(context, builder, a, arr, k, kt, stride: bool):
    """The LANES element pointers lane b reads: k * LANES + b (stride) or k[b] + 0 ...
    for a VecI k; for a scalar k, one pointer to the first (stride) or to k."""
    base = _base(builder, a, arr)
    if isinstance(kt, VecI):
        out = []
        for b in range(LANES):
            kb = builder.sext(builder.extract_element(k, ir.Constant(_I32, b)), _I64)
            if stride:
                kb = builder.add(builder.mul(kb, ir.Constant(_I64, LANES)), ir.Constant(_I64, b))
            out.append(builder.gep(base, [kb]))
        return out
    kk = context.cast(builder, k, kt, types.intp)
    if stride:
        kk = builder.mul(kk, ir.Constant(_I64, LANES))
    return builder.gep(base, [kk])


def _elem_vec(dtype):
    if isinstance(dtype, types.Float):
        return vecf
    return veci


@intrinsic
def vld(typingctx, a, k):
    """The LANES values of flat index k of a lane array (a.flat[k * LANES + b]); k a VecI:
    lane b's a.flat[k[b] * LANES + b]. float64 arrays give a VecF, integer ones a VecI."""
    ret = _elem_vec(a.dtype)

    def codegen(context, builder, sig, args):
        at, kt = sig.args
        ptr = _lane_ptrs(context, builder, at, args[0], args[1], kt, True)
        elt = context.get_data_type(at.dtype)
        if isinstance(ptr, list):
            return _loaded(builder, ptr, elt, ret)
        vp = builder.bitcast(ptr, ir.VectorType(elt, LANES).as_pointer())
        return _as_lanes(builder, builder.load(vp, align=context.get_abi_sizeof(elt)), elt, ret)
    return ret(a, k), codegen


def _as_lanes(builder, v, elt, ret):
    """A vector of array elements `elt` as the lanes' type `ret` (integers: i32)."""
    if isinstance(ret, VecI) and elt != _I32:
        return builder.trunc(v, _vty(veci)) if elt.width > 32 else builder.sext(v, _vty(veci))
    return v


def _loaded(builder, ptrs, elt, ret):
    """The vector of one load per lane (a gather) from `ptrs`, as `ret`."""
    v = ir.Constant(ir.VectorType(elt, LANES), ir.Undefined)
    for b, p in enumerate(ptrs):
        v = builder.insert_element(v, builder.load(p), ir.Constant(_I32, b))
    return _as_lanes(builder, v, elt, ret)


@intrinsic
def vst(typingctx, a, k, v):
    """a.flat[k * LANES + b] = lane b of v (a scalar v: every lane); k a VecI: lane b's
    a.flat[k[b] * LANES + b]. Integer lanes are widened to the array's type."""
    def codegen(context, builder, sig, args):
        at, kt, vt = sig.args
        elt = context.get_data_type(at.dtype)
        to = _elem_vec(at.dtype)
        x = _as(context, builder, args[2], vt, to)
        if isinstance(to, VecI) and elt != _I32:
            x = builder.sext(x, ir.VectorType(elt, LANES)) if elt.width > 32 \
                else builder.trunc(x, ir.VectorType(elt, LANES))
        ptr = _lane_ptrs(context, builder, at, args[0], args[1], kt, True)
        if isinstance(ptr, list):
            for b, p in enumerate(ptr):
                builder.store(builder.extract_element(x, ir.Constant(_I32, b)), p)
        else:
            builder.store(x, builder.bitcast(ptr, ir.VectorType(elt, LANES).as_pointer()),
                          align=context.get_abi_sizeof(elt))
        return context.get_dummy_value()
    return types.none(a, k, v), codegen


@intrinsic
def vgat(typingctx, a, k):
    """a.flat[k] of a plain array (a waveform): a scalar for a scalar k, lane b's
    a.flat[k[b]] for a VecI k."""
    vec = isinstance(k, VecI)
    ret = _elem_vec(a.dtype) if vec else a.dtype

    def codegen(context, builder, sig, args):
        at, kt = sig.args
        ptr = _lane_ptrs(context, builder, at, args[0], args[1], kt, False)
        if not vec:
            return builder.load(ptr)
        return _loaded(builder, ptr, context.get_data_type(at.dtype), ret)
    return ret(a, k), codegen


# the names the generated vector kernels import
NAMES = ("vld", "vst", "vgat", "vlane", "vpack", "vsel", "vclip", "vf2i", "vf64", "vi32",
         "vi64", "vfloor", "vceil", "vrint", "vtrunc", "vsqrt")


# ---------------------------------------------------------------- staging (transposes)

def _transpose(builder, rows: list) -> list:
    """The LANES x LANES transpose of LANES vectors (rows[b][s] -> out[s][b]): swaps of
    off-diagonal blocks of halving size, LANES log2(LANES) shuffles."""
    v, h = list(rows), LANES // 2
    while h:
        for i in range(LANES):
            if i & h:
                continue
            a, b = v[i], v[i + h]
            lo = [p if not p & h else LANES + p - h for p in range(LANES)]
            hi = [p + h if not p & h else LANES + p for p in range(LANES)]
            v[i] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, LANES), lo))
            v[i + h] = builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, LANES), hi))
        h //= 2
    return v


def _row_ptrs(context, builder, sig, args, rev: bool) -> list:
    """Lane b's pointer into a (B, rows, n) float64 array: instance min(g0 + b, B - 1),
    flat offset r from its start (rev: the LANES samples end there)."""
    arr, g0, nb, size, r = args[:5]
    at, gt, bt, st_, rt = sig.args[:5]
    base = _base(builder, at, arr)
    g0, nb, size, r = (context.cast(builder, x, t, types.intp)
                       for x, t in zip((g0, nb, size, r), (gt, bt, st_, rt)))
    last = builder.sub(nb, ir.Constant(_I64, 1))
    out = []
    for b in range(LANES):
        k = builder.add(g0, ir.Constant(_I64, b))
        k = builder.select(builder.icmp_signed("<", k, last), k, last)
        off = builder.add(builder.mul(k, size), r)
        if rev:
            off = builder.sub(off, ir.Constant(_I64, LANES - 1))
        out.append(builder.bitcast(builder.gep(base, [off]),
                                   ir.VectorType(_F64, LANES).as_pointer()))
    return out


@intrinsic(prefer_literal=True)
def vtin(typingctx, src, g0, nb, size, r, dst, k0, rev):
    """LANES samples of every lane into a lane-order buffer: dst.flat[(k0 + s) * LANES + b]
    = sample s of lane b's row, read at flat offset r (+ s; rev: - s) of instance
    min(g0 + b, B - 1) of src (B, rows, n). One vector load per lane and a transpose."""
    back = bool(rev.literal_value)

    def codegen(context, builder, sig, args):
        rows = [builder.load(p, align=8) for p in _row_ptrs(context, builder, sig, args, back)]
        cols = _transpose(builder, rows)
        base = _base(builder, sig.args[5], args[5])
        k0 = context.cast(builder, args[6], sig.args[6], types.intp)
        for addr, col in enumerate(cols):
            s = LANES - 1 - addr if back else addr
            at = builder.mul(builder.add(k0, ir.Constant(_I64, s)), ir.Constant(_I64, LANES))
            builder.store(col, builder.bitcast(builder.gep(base, [at]),
                                               ir.VectorType(_F64, LANES).as_pointer()), align=8)
        return context.get_dummy_value()
    return types.none(src, g0, nb, size, r, dst, k0, rev), codegen


@intrinsic(prefer_literal=True)
def vtout(typingctx, dst, g0, nb, size, r, src, k0, rev):
    """vtin's converse: sample s of lane b, src.flat[(k0 + s) * LANES + b], to flat offset
    r (+ s; rev: - s) of instance min(g0 + b, B - 1) of dst (B, rows, n) (lanes past the
    last instance write its row again, with its own values)."""
    back = bool(rev.literal_value)

    def codegen(context, builder, sig, args):
        base = _base(builder, sig.args[5], args[5])
        k0 = context.cast(builder, args[6], sig.args[6], types.intp)
        cols = []
        for addr in range(LANES):
            s = LANES - 1 - addr if back else addr
            at = builder.mul(builder.add(k0, ir.Constant(_I64, s)), ir.Constant(_I64, LANES))
            cols.append(builder.load(builder.bitcast(
                builder.gep(base, [at]), ir.VectorType(_F64, LANES).as_pointer()), align=8))
        rows = _transpose(builder, cols)
        for p, row in zip(_row_ptrs(context, builder, sig, args, back), rows):
            builder.store(row, p, align=8)
        return context.get_dummy_value()
    return types.none(dst, g0, nb, size, r, src, k0, rev), codegen


NAMES = NAMES + ("vtin", "vtout")
