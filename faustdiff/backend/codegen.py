"""Numba code generation: a scheduled program (schedule.Plan) -> the source of a Python module.

The module is plain, readable Python: one `@njit(cache=True)` kernel per
context (`_k0` computes the program; `_k1`, ... compute table init signals), the few numeric
helpers it uses (C semantics: the `f2i` intrinsic, `irem`, libm functions through
`numba.types.ExternalFunction`), and a wrapper class `FaustProgram` (a
`faustdiff.backend.runtime.CompiledProgram`) exposing the Program API, with `program`, a ready
instance. Importing it needs numpy, numba and `faustdiff.backend.runtime` only, never the Faust source.

Kernel calling convention (every context):

    _kC(block, s0, s1, ins, outs, bars, ctl, iv, fv, di, df, hi, hf)

computes samples s0..s1-1 of `outs` (float64, (outputs, n)) and `bars` (bargraph traces)
from `ins` (float64, (inputs, n)), as successive blocks of `block` samples (`count`, i.e.
ma.BS, is the block's length; control-rate values are computed once per block), with widget
values `ctl` (float64) and state: scalars `iv` (int64; iv[0] is the sample count t) and `fv`
(float64), delay lines and tables `di` (int32) and `df` (float64), whole histories `hi`/`hf`
(rows). Scalar state lives in locals during the call. Semantics are the interpreter's, bit for
bit (see schedule.py, interp.py; a plan with `fastmath` flags, a reverse program's backward
pass, may round differently): int values are kept in np.int32 (every wrapping operation
goes through `np.int32(...)`, which truncates to 32 bits), comparisons are int 0/1, `select2`
converts its selector with C's `(int)`, `select3` does not, and constants are folded with the
interpreter's own functions. Compiled with error_model="numpy": a real division by zero is
IEEE's inf/NaN; an int `%` by zero raises (ZeroDivisionError, a FaustError for the user).

Code templates are table-driven: `primitives.PRIMITIVES[name].code` (per operand type) and
`primitives.FFUN_CODE` for foreign functions; helper names they use are defined here in
`HELPERS`/`EXTERNALS` and emitted on demand. A new signal node kind needs a case in
`_Emitter.node` (and, when it has state, in `schedule`).
"""
from __future__ import annotations

import math
import re
from typing import Optional

from .. import __version__
from ..core import primitives as P
from ..signals import ir as S
from ..errors import FaustError
from . import reductions, simd
from .schedule import HISTORY_LIMIT, Context, Plan, plan as make_plan

from .runtime import FORMAT   # bump it when the generated module's layout changes
# nogil: independent programs (the elements of a batch) run their kernels in parallel threads
JIT = 'njit(cache=True, fastmath={fm}, error_model="numpy", nogil=True)'
# Fast-math flags a plan may ask for: only those that change rounding, never the meaning of
# inf/NaN ('nnan', 'ninf') or of libm functions ('afn', 'arcp'). Programs that must be
# bit for bit Faust's (every program the user renders, a reverse program's forward part)
# use none; a reverse program's backward pass (an adjoint, to be equal to forward mode to
# ~1e-12, not to a Faust render) uses all three: FMA contraction shortens its adjoint
# recursions' latency chains and reassociation lets LLVM vectorise its cotangent sums
# (the 30-parameter equaliser's backward kernel 1.95 -> 1.25 ms, the 32-tap FIR's
# 0.58 -> 0.22 ms). 'nsz' lets `0.0 - x` be a negation, which contraction then absorbs.
FASTMATH_OK = ("contract", "reassoc", "nsz")
KERNEL_ARGS = "block, s0, s1, ins, outs, bars, ctl, iv, fv, di, df, hi, hf"

# libm functions called directly (same implementation as C and the interpreter).
EXTERNALS = {
    "c_fmod": ("fmod", "float64(float64, float64)"),
    "c_remainder": ("remainder", "float64(float64, float64)"),
    "c_pow": ("pow", "float64(float64, float64)"),
    "c_round": ("round", "float64(float64)"),
    "c_cbrt": ("cbrt", "float64(float64)"),
    "c_hypot": ("hypot", "float64(float64, float64)"),
    "c_lgamma": ("lgamma", "float64(float64)"),
    "c_tgamma": ("tgamma", "float64(float64)"),
    "c_sinh": ("sinh", "float64(float64)"),
    "c_exp2": ("exp2", "float64(float64)"),
    "c_nextafter": ("nextafter", "float64(float64, float64)"),
    "c_logb": ("logb", "float64(float64)"),
    "c_ilogb": ("ilogb", "int32(float64)"),
    "c_ldexp": ("ldexp", "float64(float64, int32)"),
    "c_scalbn": ("scalbn", "float64(float64, int32)"),
    "c_j0": ("j0", "float64(float64)"),
    "c_j1": ("j1", "float64(float64)"),
    "c_jn": ("jn", "float64(int32, float64)"),
    "c_y0": ("y0", "float64(float64)"),
    "c_y1": ("y1", "float64(float64)"),
    "c_yn": ("yn", "float64(int32, float64)"),
}

# Every array access of a kernel goes through `ld`/`st`: a[k] of a C-contiguous array taken
# as flat, without Numba's negative-index handling. Numba's own a[k] makes an array object
# per access, which LLVM's SROA pass pays for quadratically: a kernel with 1,600 accesses
# took 45 s to compile, 9 s this way. Indexes are always in range by construction (ring
# buffers are masked, table indexes clamped, histories checked).
ARRAY_ACCESS = '''
from llvmlite import ir as _ir
from numba.core import cgutils as _cgutils
from numba.extending import intrinsic


def _data(a, value, builder):
    return value if isinstance(a, types.CPointer) else builder.extract_value(value, 4)


@intrinsic
def ld(typingctx, a, k):
    """a.flat[k] (a C-contiguous array, or a `stack` buffer)."""
    def codegen(context, builder, sig, args):
        k = context.cast(builder, args[1], sig.args[1], types.intp)
        return builder.load(builder.gep(_data(sig.args[0], args[0], builder), [k]))
    return a.dtype(a, k), codegen


@intrinsic
def st(typingctx, a, k, v):
    """a.flat[k] = v (a C-contiguous array or a `stack` buffer; v converted to its type)."""
    def codegen(context, builder, sig, args):
        k = context.cast(builder, args[1], sig.args[1], types.intp)
        v = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        builder.store(v, builder.gep(_data(sig.args[0], args[0], builder), [k]))
        return context.get_dummy_value()
    return types.none(a, k, v), codegen


@intrinsic(prefer_literal=True)
def stack(typingctx, n, real):
    """A private buffer of n float64 (real=1) or int64 (real=0) values in the kernel's
    frame: LLVM keeps its elements in registers (the scalar state of the sample loop)."""
    dt = types.float64 if real.literal_value else types.int64
    size = n.literal_value

    def codegen(context, builder, sig, args):
        buf = _cgutils.alloca_once(builder, _ir.ArrayType(context.get_data_type(dt), size))
        return builder.gep(buf, [_ir.Constant(_ir.IntType(32), 0)] * 2)
    return types.CPointer(dt)(n, real), codegen


def _truth(builder, value, ty):
    if isinstance(ty, types.Boolean):
        return value
    if isinstance(ty, types.Float):
        return builder.fcmp_unordered("!=", value, _ir.Constant(value.type, 0.0))
    return builder.icmp_signed("!=", value, _ir.Constant(value.type, 0))


@intrinsic
def sel(typingctx, c, a, b):
    """(a if c else b) of two values already computed, as one LLVM `select`: no branch,
    so no basic blocks (each costs Numba's passes a walk of the function: a ternary per
    sample made wide programs compile several times slower)."""
    ty = a if a == b else typingctx.unify_pairs(a, b)

    def codegen(context, builder, sig, args):
        cond = _truth(builder, args[0], sig.args[0])
        x = context.cast(builder, args[1], sig.args[1], sig.return_type)
        y = context.cast(builder, args[2], sig.args[2], sig.return_type)
        return builder.select(cond, x, y)
    return ty(c, a, b), codegen


@intrinsic
def clip(typingctx, x, lo, hi):
    """min(max(x, lo), hi) of integers, as two LLVM `select`s (see `sel`)."""
    def codegen(context, builder, sig, args):
        ty = sig.return_type
        v, l, h = (context.cast(builder, a, t, ty) for a, t in zip(args, sig.args))
        v = builder.select(builder.icmp_signed("<", v, l), l, v)
        return builder.select(builder.icmp_signed(">", v, h), h, v)
    return x(x, lo, hi), codegen
'''

HELPERS = {
    "f2i": '''
import platform as _platform


@intrinsic
def f2i(typingctx, x):
    """C's (int)x of a double, as x86 computes it (cvttsd2si: truncation toward 0; NaN, inf
    and out-of-range values give INT_MIN); elsewhere the same with a compare and a select."""
    def codegen(context, builder, signature, args):
        (v,) = args
        i32 = _ir.IntType(32)
        if _platform.machine() in ("x86_64", "AMD64"):
            vty = _ir.VectorType(_ir.DoubleType(), 2)
            vec = builder.insert_element(_ir.Constant(vty, _ir.Undefined), v,
                                         _ir.Constant(i32, 0))
            fn = builder.module.declare_intrinsic(
                "llvm.x86.sse2.cvttsd2si", fnty=_ir.FunctionType(i32, [vty]))
            return builder.call(fn, [vec])
        lo = builder.fcmp_ordered(">", v, _ir.Constant(_ir.DoubleType(), -2147483649.0))
        hi = builder.fcmp_ordered("<", v, _ir.Constant(_ir.DoubleType(), 2147483648.0))
        return builder.select(builder.and_(lo, hi), builder.fptosi(v, i32),
                              _ir.Constant(i32, -2147483648))
    return types.int32(types.float64), codegen
''',
    "f2iv": '''
@intrinsic
def f2iv(typingctx, x):
    """`f2i` of the batch kernels: the same values (truncation toward 0; NaN, inf and
    out-of-range values give INT_MIN) with a compare and a select, which LLVM vectorises
    across the lanes (x86's cvttsd2si intrinsic is scalar only)."""
    def codegen(context, builder, signature, args):
        (v,) = args
        i32 = _ir.IntType(32)
        lo = builder.fcmp_ordered(">", v, _ir.Constant(_ir.DoubleType(), -2147483649.0))
        hi = builder.fcmp_ordered("<", v, _ir.Constant(_ir.DoubleType(), 2147483648.0))
        return builder.select(builder.and_(lo, hi), builder.fptosi(v, i32),
                              _ir.Constant(i32, -2147483648))
    return types.int32(types.float64), codegen
''',
    "radd": '''
@intrinsic
def radd(typingctx, a, b):
    """a + b with the fast-math flag `reassoc` on this one addition: a sum accumulated
    over a chunk (reductions.split), which LLVM may then vectorise, split into several
    partial sums, in a kernel whose other additions keep their order (numba's fastmath
    pass leaves an instruction that has flags alone)."""
    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1], flags=("reassoc", "nsz", "contract"))
    return types.float64(types.float64, types.float64), codegen
''',
    "irem": '''
@njit(cache=True, fastmath=False, error_model="numpy")
def irem(a, b):
    """C's int %: truncated division, the result has the sign of the dividend."""
    if b == 0:
        raise ZeroDivisionError("integer remainder by zero at run time (`%` of ints)")
    r = abs(np.int64(a)) % abs(np.int64(b))
    return np.int32(-r if a < 0 else r)
''',
    "c_arc4random": '''
@njit(cache=False)
def c_arc4random():
    return np.int32(np.random.randint(-2147483648, 2147483648))
''',
}


def _literal(v, type_: str) -> str:
    """A Python literal for a constant (exact: repr round-trips every double)."""
    if type_ == "int":
        v = int(v)
        return str(v) if v >= 0 else f"({v})"
    v = float(v)
    if v != v:
        return "NAN"
    if v in (math.inf, -math.inf):
        return "INF" if v > 0 else "(-INF)"
    r = repr(v)
    return r if not r.startswith("-") else f"({r})"


def f2i_inline(name: str) -> str:
    """C's (int) of a real: the `f2i` intrinsic (one instruction on x86, no function call)."""
    return f"f2i({name})"


def irem_inline(a: str, b: int) -> str:
    """C's `a % b` for a constant b != 0 (the sign of the dividend; int64: no overflow)."""
    b = abs(b)
    return f"np.int32(np.int64({a}) % {b} if {a} >= 0 else -(-np.int64({a}) % {b}))"


def _row(c: int, n: str) -> str:
    """The start of row c of a flat (rows, n) array, as an index prefix."""
    return "" if c == 0 else f"{c} * {n} + "


def _helpers_used(code: str) -> list[str]:
    return sorted({m for m in re.findall(r"\b(c_[a-z0-9]+|f2iv?|irem|radd)\(", code)})


# Guarded selects: a select2 whose selector is control rate computes only the chosen
# branch's own nodes (an `if` per sample on a loop-invariant condition: predicted, and
# LLVM may unswitch it). Each costs Numba's passes a few basic blocks, so only regions of
# at least GUARD_MIN nodes, and at most GUARD_MAX selects a kernel.
GUARD_MIN = 4
GUARD_MAX = 16
# what a branch may skip: nodes that only compute a value (a delay's line write is
# emitted apart, every sample); state updates (recursions, prefix, tables written,
# scatters, waveforms) and foreign functions (rand) always run
_PURE = {"prim", "input", "recvar", "proj", "delay", "rdtable"}


def _roots(ctx) -> set:
    """ids of the sample nodes every sample needs, whatever the selects choose: outputs,
    bargraphs, recursion definitions, delay lines' inputs, prefix arguments."""
    need = {id(s) for s in list(ctx.outputs) + list(ctx.bargraphs)}
    need |= {id(rv.attrs[0].defs[rv.attrs[1]]) for rv in ctx.rec_nodes}
    need |= set(ctx.lines)
    need |= {id(s.args[1]) for s in ctx.sample if s.op == "prefix"}
    return need


def branch_guards(ctx) -> dict:
    """id(select2 node) -> (nodes only its first branch needs, nodes only its second
    needs), each a list in schedule order, for the selects worth guarding. A node
    is a branch's own when it is pure, not a root, and every user is the select (through
    that branch only) or another node of the branch; outer selects claim first."""
    sample = [s for s in ctx.sample if id(s) not in ctx.folded]
    here = {id(s) for s in sample}
    users: dict = {}
    for s in sample:
        for a in s.args:
            if id(a) in here:
                users.setdefault(id(a), []).append(s)
    roots, claimed, guards = _roots(ctx), set(), {}
    for s in reversed(sample):
        if len(guards) >= GUARD_MAX:
            break
        if s.op != "prim" or s.name != "select2" or id(s) in claimed \
                or s.args[0].rate > S.K_BLOCK or id(s.args[0]) in ctx.folded:
            continue
        regions = tuple(_own(s, k, here, users, roots, claimed) for k in (1, 2))
        if sum(map(len, regions)) < GUARD_MIN:
            continue
        guards[id(s)] = tuple([n for n in sample if id(n) in r] for r in regions)
        claimed |= regions[0] | regions[1]
    return guards


def _own(sel, k: int, here: set, users: dict, roots: set, claimed: set) -> set:
    """The nodes only branch k of `sel` needs (see `branch_guards`)."""
    top = sel.args[k]
    if any(a is top for j, a in enumerate(sel.args) if j != k):
        return set()
    own, stack = {}, [top]
    while stack:   # candidates: the branch's pure ancestors in this context
        n = stack.pop()
        if id(n) in own or id(n) not in here or n.op not in _PURE or id(n) in roots \
                or id(n) in claimed or (n.op == "prim" and n.name == "%" and n.type == "int"):
            continue   # (an int `%` by zero is an error: raised, chosen or not, as interp)
        own[id(n)] = n
        stack.extend(n.args)
    changed = True
    while changed:   # drop what something outside the branch also reads
        changed = False
        for i, n in list(own.items()):
            if any(id(u) not in own and not (u is sel and i == id(top))
                   for u in users.get(i, ())):
                del own[i]
                changed = True
    return set(own)


def _block_rate_recursions(ctx) -> set:
    """Slots of the recursions whose definition is computed once per block (control rate)
    and that no sample reads (neither a node nor a delay line's register): the value after
    the block is the definition's, stored once after its samples, not at every sample
    (reverse mode's inline Jacobian: 120 of them in the 30-band equaliser's backward kernel).
    A block has at least one sample, so the store always follows one."""
    read = {id(a) for s in ctx.sample for a in s.args}
    read |= {id(line.rec) for line in ctx.lines.values() if line.rec is not None}
    read |= set(ctx.lines)   # (a delayed signal may be a RecVar itself)
    read |= {id(s) for s in list(ctx.outputs) + list(ctx.bargraphs)}
    read |= {id(rv.attrs[0].defs[rv.attrs[1]]) for rv in ctx.rec_nodes}   # x ~ (y's var)
    out = set()
    for rv in ctx.rec_nodes:
        g, i = rv.attrs
        if g.defs[i].rate <= S.K_BLOCK and id(rv) not in read:
            out.add(ctx.recs[id(rv)])
    return out


def _line_array(line) -> str:
    """The state array a ring (`di`/`df`) or whole-history (`hi`/`hf`) line lives in."""
    if line.kind == "ring":
        return "di" if line.type == "int" else "df"
    return "hi" if line.type == "int" else "hf"


# Batch kernels (`_Emitter.batch_kernel`): B instances of the program in one call, LANES of
# them side by side as the innermost index of every state array (a lane group), computed
# together as SIMD vectors (backend/simd.py: the instance's code, every value a vector of
# the lanes' values). The state lives in `stack` buffers of LANES slots per scalar, one
# vector each, which SROA keeps in vector registers. (Until then the lanes were a loop
# of LANES trips left to LLVM's vectorisers, which packed small bodies only: the
# equaliser's backward kernel stayed scalar.)
LANES = simd.LANES
# samples per chunk of a batch kernel's staged inputs and outputs (stack buffers of at most
# BATCH_BUFFER doubles)
BATCH_CHUNK = 64
BATCH_BUFFER = 16384
BATCH_ARGS = "block, s0, s1, ins, outs, bars, ctl, ivs, fvs, dis, dfs, his, hfs"
# the fused-loss batch kernel's (batch_kernel(loss=True)): targets (B, k, n) and the sums
LOSS_ARGS = "block, s0, s1, ins, tgt, acc, ctl, ivs, fvs, dis, dfs, his, hfs"
# the arrays a batch kernel indexes per lane: flat index k of one instance -> k * LANES + b
_LANE_ARRAYS = frozenset({"iv", "fv", "di", "df", "hi", "hf", "state_i", "state_f"})


def _split_args(text: str, start: int) -> tuple[list, int]:
    """The top-level comma-separated arguments of the call whose '(' is at text[start-1],
    and the index just past its ')'."""
    args, depth, k, i = [], 0, start, start
    while True:
        c = text[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            if depth == 0:
                args.append(text[k:i])
                return args, i + 1
            depth -= 1
        elif c == "," and depth == 0:
            args.append(text[k:i])
            k = i + 1
        i += 1


def lane_indexed(code: str, lanes: int = LANES) -> str:
    """One instance's kernel code made lane b's (a batch kernel's per-lane control-rate
    code): every `ld`/`st` of a state array (_LANE_ARRAYS) at flat index k goes to
    `(k) * lanes + b` (operands rewritten too)."""
    out, i = [], 0
    for m in re.finditer(r"\b(ld|st)\(", code):
        if m.start() < i:
            continue
        args, end = _split_args(code, m.end())
        args = [lane_indexed(a, lanes) for a in args]
        if args[0].strip() in _LANE_ARRAYS:
            args[1] = f"({args[1].strip()}) * {lanes} + b"
        out.append(code[i:m.start()] + f"{m.group(1)}({', '.join(a.strip() for a in args)})")
        i = end
    out.append(code[i:])
    return "".join(out)


def vector_indexed(code: str) -> str:
    """One instance's kernel code made the vector form's (simd): `ld`/`st` of a lane array
    (_LANE_ARRAYS) at flat index k become `vld`/`vst` of its LANES values at k, any other
    `ld` (a waveform's table) `vgat`, and the scalar helpers their vector versions, which
    also take scalars (a value every lane shares)."""
    out, i = [], 0
    for m in re.finditer(r"\b(ld|st)\(", code):
        if m.start() < i:
            continue
        args, end = _split_args(code, m.end())
        args = [vector_indexed(a).strip() for a in args]
        fn = ("v" + m.group(1)) if args[0] in _LANE_ARRAYS else \
            ("vgat" if m.group(1) == "ld" else None)
        if fn is None:
            raise FaustError(f"codegen: a vector kernel stores to {args[0]}")
        out.append(code[i:m.start()] + f"{fn}({', '.join(args)})")
        i = end
    out.append(code[i:])
    text = "".join(out)
    for pattern, name in _VECTOR_NAMES:
        text = re.sub(pattern, name, text)
    return text


# scalar helper -> its simd version (same values on scalars, lane by lane on vectors)
_VECTOR_NAMES = ((r"\bsel\(", "vsel("), (r"\bclip\(", "vclip("), (r"\bf2iv?\(", "vf2i("),
                 (r"\bfloat\(", "vf64("), (r"\bnp\.int32\(", "vi32("),
                 (r"\bnp\.int64\(", "vi64("), (r"\bnp\.floor\(", "vfloor("),
                 (r"\bnp\.ceil\(", "vceil("), (r"\bnp\.rint\(", "vrint("),
                 (r"\bnp\.trunc\(", "vtrunc("), (r"\bmath\.sqrt\(", "vsqrt("))
# primitives and foreign functions whose templates the vector form computes on whole
# vectors (one instruction of the same rounding per lane: arithmetic, comparisons,
# selects, IEEE floor/ceil/rint/trunc/sqrt/abs); every other template runs lane by lane
VECTOR_PRIMS = frozenset({"+", "-", "*", "/", "<", "<=", ">", ">=", "==", "!=", "&", "|",
                          "xor", "<<", ">>", "attach", "enable", "control", "int", "float",
                          "abs", "floor", "ceil", "rint", "min", "max", "select2", "select3",
                          "assertbounds", "sqrt"})
VECTOR_FFUNS = frozenset({"fabs", "rint", "nearbyint", "trunc", "floor", "ceil", "sqrt",
                          "isnan"})


def per_lane(template: str, args: list) -> str:
    """A template computed lane by lane: the vector of its scalar values on each lane's
    operands (`vlane` of a scalar operand is itself)."""
    lanes = [template.format(*[f"vlane({a}, {b})" for a in args]) for b in range(LANES)]
    return f"vpack({', '.join(lanes)})"


class _Emitter:
    """Emits the kernel of one context (`batch`: the lane form, see `batch_kernel`, whose
    sample code is in simd vectors while `vector` is set)."""

    def __init__(self, plan: Plan, ctx: Context, batch: bool = False):
        self.plan, self.ctx = plan, ctx
        self.batch = batch
        self.vector = batch
        self.staged: dict = {}      # batch: (row, shift) of an input read -> its xin slot
        self.ctypes: dict = {}      # name of a control-rate local -> its type
        self.name: dict = {}
        self.globals: list[str] = []        # module-level constants (waveforms)
        self.control_index = {id(c): j for j, c in enumerate(plan.controls)}
        self.k = 0
        self.written: set = set()   # delays whose line write was emitted apart (guards)

    # -------------------------------------------------------- names

    def fresh(self, prefix: str) -> str:
        self.k += 1
        return f"{prefix}{self.k}"

    def ref(self, s: S.Sig) -> str:
        e = self.name.get(id(s))
        if e is None:
            if s.op == "proj":   # a recursion's output: its definition's value
                return self.ref(s.args[0])
            e = self.name[id(s)] = _literal(self.ctx.folded[id(s)], s.type)   # folded
        return e

    def arg(self, s: S.Sig, conv: Optional[str]) -> str:
        """An operand converted as `plan` says (folded constants converted here)."""
        if id(s) in self.ctx.folded and conv is not None:
            return _literal(P.convert(self.ctx.folded[id(s)], conv), conv)
        e = self.ref(s)
        if conv is None or conv == s.type:
            return e
        return f2i_inline(e) if conv == "int" else f"float({e})"

    @staticmethod
    def slot(sl) -> str:
        kind, j = sl
        return f"s{'i' if kind == 'iv' else 'f'}{j}"

    # -------------------------------------------------------- nodes

    def node(self, s: S.Sig, loop: bool) -> list[str]:
        ctx = self.ctx
        op = s.op
        if id(s) in ctx.folded:
            self.name[id(s)] = _literal(ctx.folded[id(s)], s.type)
            return []
        v = self.fresh("v" if loop else "c")
        self.name[id(s)] = v
        if not loop:
            self.ctypes[v] = s.type
        if op == "input":
            shift = self.plan.in_offset - (s.attrs[1] if len(s.attrs) > 1 else 0)
            if self.batch:   # staged per sample into xin (see batch_kernel)
                k = self.staged.setdefault((s.attrs[0], shift), len(self.staged))
                if self.vector:
                    return [f"{v} = vld(xin, {k * self.chunk} + j)   # input {s.attrs[0]}"]
                return [f"{v} = ld(xin, ({k * self.chunk} + j) * {LANES} + b)"
                        f"   # input {s.attrs[0]}"]
            at = "(s0 + s1 - 1 - i)" if self.plan.reverse_io else "i"
            if shift:
                at = f"{at} + {shift}" if shift > 0 else f"{at} - {-shift}"
            return [f"{v} = ld(ins, {_row(s.attrs[0], 'ni')}{at})   # input {s.attrs[0]}"]
        if op == "ui":
            at = f"bb * nctl + {self.control_index[id(s)]}" if self.batch else \
                self.control_index[id(s)]
            return [f"{v} = ld(ctl, {at})   # {s.attrs[0]} {s.attrs[1]!r}"]
        if op == "fvar":
            return [f"{v} = {'count' if s.type == 'int' else 'float(count)'}"]
        if op == "fconst":
            return [f"{v} = {self.plan.sample_rate if s.type == 'int' else float(self.plan.sample_rate)!r}"]
        if op == "bargraph":
            x = s.args[0]
            if x.type == "real":
                self.name[id(s)] = self.ref(x)
                return []
            return [f"{v} = float({self.ref(x)})"]
        if op == "prim":
            if s.name in ("select2", "select3") and id(s.args[0]) in ctx.folded:
                # a constant selector: the chosen branch (converted to the result type)
                sel = ctx.folded[id(s.args[0])]
                if s.name == "select2":
                    k = 1 if P.convert(sel, "int") == 0 else 2
                else:
                    k = 1 if sel == 0 else (2 if sel == 1 else 3)
                self.name[id(s)] = self.arg(s.args[k], s.type)
                return []
            return [f"{v} = {self.prim(s)}"]
        if op == "ffun":
            return [f"{v} = {self.ffun(s)}"]
        if op == "proj":
            self.name[id(s)] = self.ref(s.args[0])
            return []
        if op == "recvar":
            # the slot's local itself (loaded at the sample's start, never reassigned in
            # the sample): an alias line per read was ~10% of a kernel's statements
            self.name[id(s)] = self.slot(ctx.recs[id(s)])
            return []
        if op == "delay":
            return self.delay(s, v)
        if op == "adjtable":
            off, size = ctx.scatters[id(s)]
            r, w = self.fresh("a"), self.fresh("a")
            return [f"{r} = {off} + clip({self.ref(s.args[1])}, 0, {size - 1})",
                    f"st(df, {r}, ld(df, {r}) + {self.ref(s.args[0])})",
                    f"{w} = {off} + clip({self.ref(s.args[2])}, 0, {size - 1})",
                    f"{v} = ld(df, {w})",
                    f"st(df, {w}, 0.0)"]
        if op == "scatter":
            off, size = ctx.scatters[id(s)]
            bound, dv, at = s.attrs[0], self.fresh("d"), self.fresh("a")
            return [f"{dv} = clip({self.ref(s.args[1])}, 0, {bound})",
                    f"{at} = {off} + ((t + {dv}) & {size - 1})",
                    f"st(df, {at}, ld(df, {at}) + {self.ref(s.args[0])})",
                    f"{at} = {off} + (t & {size - 1})",
                    f"{v} = ld(df, {at})",
                    f"st(df, {at}, 0.0)"]
        if op == "prefix":
            p = self.slot(ctx.prefixes[id(s)])
            return [f"{v} = {self.ref(s.args[0])} if t == 0 else {p}"]
        if op == "waveform":
            w = f"W{len(self.globals)}_{ctx.index}"
            vals = s.attrs[0]
            dt = "np.int32" if s.type == "int" else "np.float64"
            self.globals.append(f"{w} = np.array([{', '.join(_literal(x, s.type) for x in vals)}], "
                                f"dtype={dt})")
            return [f"{v} = ld({w}, {self.slot(ctx.waves[id(s)])})"]
        if op == "rdtable":
            tab = ctx.table_of[id(s)]
            idx = self.index(s.args[1], tab.size, ctx.clamp[id(s)][0])
            arr = "di" if tab.type == "int" else "df"
            return [f"{v} = ld({arr}, {tab.offset} + {idx})"]
        if op == "rwtable":
            tab = ctx.table_of[id(s)]
            cw, cr = ctx.clamp[id(s)]
            arr = "di" if tab.type == "int" else "df"
            return [f"st({arr}, {tab.offset} + {self.index(s.args[1], tab.size, cw)}, "
                    f"{self.ref(s.args[2])})",
                    f"{v} = ld({arr}, {tab.offset} + {self.index(s.args[3], tab.size, cr)})"]
        raise FaustError(f"codegen: unknown signal node kind {op!r}")

    def index(self, idx: S.Sig, size: int, clamp: bool) -> str:
        e = self.ref(idx)
        if id(idx) in self.ctx.folded:
            return str(min(max(int(self.ctx.folded[id(idx)]), 0), size - 1))
        return f"clip({e}, 0, {size - 1})" if clamp else e

    def prim(self, s: S.Sig) -> str:
        name = s.name
        types = tuple(a.type for a in s.args)
        _, convs, _ = P.plan(name, types)
        if name == "select2" and s.args[0].type == "real" and id(s.args[0]) not in self.ctx.folded:
            # (int)sel == 0 exactly when -1 < sel < 1 (NaN selects the second branch)
            sel = self.ref(s.args[0])
            a, b = (self.arg(x, c) for x, c in zip(s.args[1:], convs[1:]))
            return f"sel(({sel} > -1.0) & ({sel} < 1.0), {a}, {b})"
        args = [self.arg(a, c) for a, c in zip(s.args, convs)]
        if name == "%" and convs[0] == "int" and id(s.args[1]) in self.ctx.folded \
                and self.ctx.folded[id(s.args[1])] != 0 and id(s.args[0]) not in self.ctx.folded:
            b = P.convert(self.ctx.folded[id(s.args[1])], "int")
            if self.vector:
                return per_lane(irem_inline("{0}", b), args[:1])
            return irem_inline(args[0], b)
        code = P.PRIMITIVES[name].code or {}
        optype = convs[0] if convs and convs[0] is not None else "*"
        tmpl = code.get(optype) or code.get("*")
        if tmpl is None:
            raise FaustError(f"codegen: no code template for primitive '{name}' on {optype}")
        if self.vector and name not in VECTOR_PRIMS:
            return per_lane(tmpl, args)
        return tmpl.format(*args)

    def ffun(self, s: S.Sig) -> str:
        tmpl = P.FFUN_CODE.get(s.name)
        if tmpl is None:
            raise FaustError(f"codegen: no code template for foreign function '{s.name}'")
        args = [self.ref(a) for a in s.args]
        if self.vector and s.name not in VECTOR_FFUNS:
            return per_lane(tmpl, args)
        return tmpl.format(*args)

    def delay(self, s: S.Sig, v: str) -> list[str]:
        ctx = self.ctx
        line = ctx.line_of[id(s)]
        x, d = s.args
        lines = []
        if line.kind == "shift":
            k = max(0, ctx.folded[id(d)]) + line.extra.get(id(s), 0)
            self.name[id(s)] = self.register(line, k)   # a local, as for recvar
            return []
        arr = _line_array(line)
        if line.first is s and id(s) not in self.written:   # its first user writes x[t]
            lines.append(self._write(line))
        if id(d) in ctx.folded:
            de = str(max(0, ctx.folded[id(d)]))
        else:
            lo, hi = ctx.clamp[id(s)]
            de = self.ref(d)
            bound = line.bounds[id(s)]
            hi = hi and bound is not None and bound <= HISTORY_LIMIT
            if lo and hi:
                de = f"clip({de}, 0, {bound})"
            elif lo:
                de = f"sel({de} < 0, 0, {de})"
            elif hi:
                de = f"sel({bound} < {de}, {bound}, {de})"
            if de != self.ref(d):
                dv = self.fresh("d")
                lines.append(f"{dv} = {de}")
                de = dv
        if line.kind == "ring":
            lines.append(f"{v} = ld({arr}, {line.offset} + ((t - {de}) & {line.length - 1}))")
        elif self.vector:   # (a delay that differs between lanes: selects, not a branch)
            zero = "0" if line.type == "int" else "0.0"
            lines.append(f"{v} = sel({de} <= t, ld({arr}, {_row(line.offset, 'n' + arr)}"
                         f"sel({de} <= t, t - {de}, 0)), {zero})")
        else:
            zero = "0" if line.type == "int" else "0.0"
            lines.append(f"{v} = ld({arr}, {_row(line.offset, 'n' + arr)}t - {de}) "
                         f"if {de} <= t else {zero}")
        return lines

    def _write(self, line) -> str:
        """The write of x[t] into a ring or history line."""
        arr = _line_array(line)
        if line.kind == "ring":
            return f"st({arr}, {line.offset} + (t & {line.length - 1}), {self.ref(line.x)})"
        return f"st({arr}, {_row(line.offset, 'n' + arr)}t, {self.ref(line.x)})"

    def line_write(self, s: S.Sig) -> list[str]:
        """A guarded delay that writes its line (its first user): the write, which must
        happen every sample, emitted where the node was; the read stays in the branch."""
        line = self.ctx.line_of.get(id(s)) if s.op == "delay" else None
        if line is None or line.first is not s or line.kind == "shift":
            return []
        self.written.add(id(s))
        return [self._write(line)]

    def guarded_select(self, s: S.Sig, regions: tuple) -> list[str]:
        """select2 on a control-rate selector whose branches have nodes of their own: an
        `if` computing only the chosen branch's (as g++ unswitches Faust's loop)."""
        c = self.ref(s.args[0])
        cond = f"({c} > -1.0) & ({c} < 1.0)" if s.args[0].type == "real" else f"{c} == 0"
        _, convs, _ = P.plan(s.name, tuple(a.type for a in s.args))
        v = self.fresh("v")
        lines = []
        for k, (head, region) in enumerate(zip((f"if {cond}:", "else:"), regions), 1):
            lines.append(head)
            for n in region:
                lines += ["    " + line for line in self.node(n, True)]
            lines.append(f"    {v} = {self.arg(s.args[k], convs[k])}")
        self.name[id(s)] = v
        return lines

    def register(self, line, k: int) -> str:
        if k == 0:
            return self.ref(line.x)
        if k == 1 and line.rec is not None:
            return self.slot(self.ctx.recs[id(line.rec)])
        return self.slot(line.regs[k - 1])

    # -------------------------------------------------------- reductions

    def sums(self, sp, index: dict) -> list[str]:
        """The loops of the reductions taken out of the serial loop (reductions.split),
        one per group, over the chunk q0..q1-1: the cut values from `cutb`, the rest of each
        summand recomputed, each sum in a local (its slot `index[slot]` of state_f)."""
        out = []
        for grp, cone in zip(sp.groups, sp.cones):
            keep = dict(self.name)
            accs = [(self.fresh("r"), index[self.ctx.recs[id(rv)]], rv) for rv in grp]
            out += [f"{r} = ld(state_f, {k})   # sum {rv.attrs[0]!r}[{rv.attrs[1]}]"
                    for r, k, rv in accs]
            if self.plan.reverse_io:   # (sample i reads column s0+s1-1-i: let j run up)
                out += ["for j in range(s0 + s1 - q1, s0 + s1 - q0):",
                        "    i = s0 + s1 - 1 - j"]
            else:
                out.append("for i in range(q0, q1):")
            used = {id(a): a for n in cone for a in n.args if id(a) in sp.row}
            used.update({id(sp.term[id(rv)]): sp.term[id(rv)] for rv in grp
                         if id(sp.term[id(rv)]) in sp.row})
            for n in sorted(used.values(), key=lambda n: sp.row[id(n)]):
                u = self.name[id(n)] = self.fresh("u")
                out.append(f"    {u} = ld(cutb, {sp.row[id(n)] * reductions.CHUNK} + "
                           f"{self._cut_at()})")
            for n in cone:
                out += ["    " + line for line in self.node(n, True)]
            out += [f"    {r} = radd({r}, {self.ref(sp.term[id(rv)])})" for r, k, rv in accs]
            out += [f"st(state_f, {k}, {r})" for r, k, rv in accs]
            self.name = keep
        return out

    def _cut_at(self) -> str:
        """Sample i's column of the cut buffer: in the order the sums' loops read their
        tapes (ascending memory, so that their loads vectorise without permutes)."""
        return "(q1 - 1 - i)" if self.plan.reverse_io else "(i - q0)"

    # -------------------------------------------------------- end of sample

    def post(self, skip=frozenset()) -> dict:
        """The state at the end of the sample: scalar slot -> expression of its new value
        (one simultaneous assignment: every expression reads this sample's values); the
        recursions whose definition is in `skip` are the sums' loops' own."""
        ctx = self.ctx
        new: dict = {}
        for line in ctx.lines.values():
            if line.kind != "shift":
                continue
            for k in range(line.length, 1, -1):
                new[line.regs[k - 1]] = self.register(line, k - 1)
            if line.rec is None and line.length:   # a line of 0-sample delays has no register
                new[line.regs[0]] = self.ref(line.x)
        for rv in ctx.rec_nodes:
            g, i = rv.attrs
            if id(g.defs[i]) not in skip:
                new[ctx.recs[id(rv)]] = self.ref(g.defs[i])
        for s in ctx.sample:
            if s.op == "prefix":
                new[ctx.prefixes[id(s)]] = self.ref(s.args[1])
            elif s.op == "waveform":
                w = self.slot(ctx.waves[id(s)])
                new[ctx.waves[id(s)]] = f"sel({w} < {len(s.attrs[0]) - 1}, {w} + 1, 0)" \
                    if self.vector else f"{w} + 1 if {w} < {len(s.attrs[0]) - 1} else 0"
        return new

    # -------------------------------------------------------- the kernel

    def scalar_state(self) -> tuple:
        """(slot -> what it holds, [(kind, sorted slots)] for the kinds 'iv', 'fv' that
        have any): the scalar state a kernel keeps in its `stack` buffers."""
        ctx = self.ctx
        what: dict = {}
        for rv in ctx.rec_nodes:
            g, i = rv.attrs
            what[ctx.recs[id(rv)]] = f"recursion {g!r}[{i}]"
        for line in ctx.lines.values():
            if line.kind == "shift":
                for k, sl in enumerate(line.regs, 1):
                    if sl is not None:
                        what[sl] = f"x[t-{k}] of a delay line"
        for s in ctx.sample:
            if s.op == "prefix":
                what[ctx.prefixes[id(s)]] = "prefix state"
            elif s.op == "waveform":
                what[ctx.waves[id(s)]] = "waveform index"
        groups = [(kind, sorted(sl for sl in what if sl[0] == kind)) for kind in ("iv", "fv")]
        return what, [(kind, sls) for kind, sls in groups if sls]

    def kernel(self) -> str:
        """The kernel's source. Scalar state lives in two `stack` buffers, `state_i` (int64)
        and `state_f` (float64): read into locals at the start of each sample, written at
        its end (every new value computed from this sample's values), which LLVM turns into
        registers. Python locals carried around the loop would cost Numba's SSA pass a walk
        of the whole function each (quadratic in wide programs); tuples cost its lowering
        as much."""
        ctx = self.ctx
        control, body = [], []
        for s in ctx.control:
            control += self.node(s, False)
        guards = branch_guards(ctx)
        guarded = {id(n) for regions in guards.values() for r in regions for n in r}
        # a backward kernel's sums may be reordered (the gradients' 1e-9 agreement); a
        # forward or plain kernel's must not (Faust's rounding, sample for sample)
        sp = reductions.split(ctx, guarded) \
            if self.plan.reverse_io and ctx.index == 0 else None
        skip = sp.skip if sp else set()
        for s in ctx.sample:
            if id(s) in skip:      # computed by the reductions' own loops (below)
                continue
            if id(s) in guarded:   # emitted inside its select's branch
                body += self.line_write(s)
            elif id(s) in guards:
                body += self.guarded_select(s, guards[id(s)])
            else:
                body += self.node(s, True)
        for c, s in enumerate(ctx.outputs):
            at = "(s0 + s1 - 1 - i)" if self.plan.reverse_io else "i"
            if self.plan.out_offset:
                at = f"{at} + {self.plan.out_offset}"
            body.append(f"st(outs, {_row(c, 'no')}{at}, {self.ref(s)})")
        for c, s in enumerate(ctx.bargraphs):
            body.append(f"st(bars, {_row(c, 'nb')}i, {self.ref(s)})")
        if sp:
            body += [f"st(cutb, {sp.row[id(n)] * reductions.CHUNK} + {self._cut_at()}, "
                     f"{self.ref(n)})" for n in sp.cut]
        new = self.post(skip)
        what, groups = self.scalar_state()

        src = [f"@{_jit(self.plan.fastmath)}", f"def _k{ctx.index}({KERNEL_ARGS}):"]
        title = "the program" if ctx.index == 0 else \
            f"a table init signal (depth {ctx.depth})"
        src.append(f'    """Samples s0..s1-1 of {title}, as calls of `block` samples."""')
        src.append("    t = ld(iv, 0)   # samples since reset")
        for kind, sls in groups:
            name = "state_i" if kind == "iv" else "state_f"
            src.append(f"    {name} = stack({len(sls)}, {int(kind == 'fv')})")
            for k, (_, j) in enumerate(sls):
                src.append(f"    st({name}, {k}, ld({kind}, {j}))   # {what[(kind, j)]}")
        if sp:   # the cut values of a chunk (reductions.split)
            src.append(f"    cutb = stack({max(1, len(sp.cut)) * reductions.CHUNK}, 1)")
        # signal c, sample i of ins/outs/bars is at c * n + i (see `ld`, `st`)
        if self.plan.num_inputs and ctx.index == 0:
            src.append("    ni = ins.shape[1]")
        src.append("    no = outs.shape[1]")
        if ctx.bargraphs:
            src.append("    nb = bars.shape[1]")
        if ctx.nhi:
            src.append("    nhi = hi.shape[1]")
        if ctx.nhf:
            src.append("    nhf = hf.shape[1]")
        src.append("    b0 = s0")
        src.append("    while b0 < s1:")
        src.append("        b1 = min(b0 + block, s1)")
        src.append("        count = b1 - b0")
        if control:
            src.append("        # control rate: once per block")
            src += ["        " + line for line in control]
        moved = {ctx.recs[id(rv)] for rv in sp.sums} if sp else set()
        once = _block_rate_recursions(ctx)   # stored after the block's samples
        moved |= once
        loop = "        "
        if sp:   # chunks: the serial loop, then the sums' vectorised loops
            src.append("        q0 = b0")   # (c<k> are control values)
            src.append("        while q0 < b1:")
            src.append(f"            q1 = min(q0 + {reductions.CHUNK}, b1)")
            loop += "    "
        src.append(loop + f"for i in range({'q0, q1' if sp else 'b0, b1'}):")
        for kind, sls in groups:
            name = "state_i" if kind == "iv" else "state_f"
            for k, sl in enumerate(sls):
                if sl not in moved:
                    src.append(f"{loop}    {self.slot(sl)} = ld({name}, {k})")
        src += [loop + "    " + line for line in body]
        if groups:
            src.append(loop + "    # end of sample: the new state")
        for kind, sls in groups:
            name = "state_i" if kind == "iv" else "state_f"
            for k, sl in enumerate(sls):
                if sl not in moved:
                    src.append(f"{loop}    st({name}, {k}, {new[sl]})   # {what[sl]}")
        src.append(loop + "    t += 1")
        if sp:
            index = {sl: k for k, sl in enumerate(dict(groups).get("fv", []))}
            src += [loop + line for line in self.sums(sp, index)]
            src.append("            q0 = q1")
        for kind, sls in groups:
            name = "state_i" if kind == "iv" else "state_f"
            src += [f"        st({name}, {k}, {new[sl]})   # {what[sl]} (block rate)"
                    for k, sl in enumerate(sls) if sl in once]
        src.append("        b0 = b1")
        src.append("    st(iv, 0, t)")
        for kind, sls in groups:
            name = "state_i" if kind == "iv" else "state_f"
            for k, (_, j) in enumerate(sls):
                src.append(f"    st({kind}, {j}, ld({name}, {k}))")
        return "\n".join(src) + "\n"

    def batch_kernel(self, loss: bool = False) -> str:
        """The batch kernel's source (the program's context only): `_v0(BATCH_ARGS)`;
        `loss` (simd form, plan.loss_rows = k > 0): `_l0(LOSS_ARGS)`, the same lanes
        with the L2 loss's sums in place of the outputs (see below).

        ins (B, inputs, n), outs (B, outputs, n), bars (B, bargraphs, n) and ctl
        (B, widgets) hold one row per instance; the state holds one lane group of LANES
        instances per row g of ivs/fvs/dis/dfs (g, slot, lane) and his/hfs (g, row, t,
        lane): instance g * LANES + b is lane b of group g. Lanes past the last instance
        (B not a multiple of LANES) repeat it: same widgets, inputs and state, hence the
        same values, written to its rows a second time. All lanes of a group share t
        (one batch: reset and run together).

        Samples run in chunks of `chunk`: the chunk's inputs are copied into the stack
        buffer `xin` in lane order (slot, sample, lane; LANES samples of LANES lanes at a
        time by a transpose in registers, simd.vtin), the lanes computed sample by sample
        (the per-instance code of `kernel` in simd vectors, `vector_indexed`: each value
        one vector of the lanes' values, the state one vector per slot, kept in
        registers), writing `yout` in lane order, then yout transposed out to the
        instances' rows (simd.vtout). Control-rate values are computed once per block
        and lane, in scalar code, into `cf`/`ci`, and read as vectors.

        The loss form writes no output: with e_c = out_c - tgt_c for the first k outputs
        (tgt (B, k, n), staged like the inputs), it adds Σ e_c² (row c < k) and Σ out_r ·
        e_((r - k) mod k) (row r >= k: a forward-mode partial of output (r - k) mod k)
        over the samples to acc (B, outputs), each lane's sums in order in vector
        registers: a training step's loss and gradient without its outputs and partials
        ever reaching memory."""
        ctx, W = self.ctx, LANES
        nin = len({(s.attrs[0], s.attrs[1] if len(s.attrs) > 1 else 0)
                   for s in ctx.sample if s.op == "input" and id(s) not in ctx.folded})
        rows = nin + len(ctx.outputs) + len(ctx.bargraphs)
        ch = self.chunk = max(8, min(BATCH_CHUNK, BATCH_BUFFER // max(1, rows * W)))
        control = []
        self.vector = False   # (control-rate values: per lane, scalar code)
        for s in ctx.control:
            control += self.node(s, False)
        self.vector = True
        body = []
        for s in ctx.sample:
            body += self.node(s, True)
        nk = self.plan.loss_rows if loss else 0
        for c, s in enumerate(ctx.outputs):
            if nk:
                e = f"le{c % nk}"
                if c < nk:
                    body.append(f"{e} = {self.ref(s)} - vld(tin, {c * ch} + j)   # error {c}")
                    body.append(f"vst(accf, {c}, vld(accf, {c}) + {e} * {e})")
                else:
                    body.append(f"vst(accf, {c}, vld(accf, {c}) + {self.ref(s)} * {e})")
                continue
            body.append(f"vst(yout, {c * ch} + j, {self.ref(s)})")
        for c, s in enumerate(ctx.bargraphs if not nk else ()):
            body.append(f"vst(ybar, {c * ch} + j, {self.ref(s)})")
        new = self.post()
        what, groups = self.scalar_state()
        # held slots: a recursion whose definition is a control-rate value that nothing in
        # the sample reads (reverse mode's kept Jacobian entries): its state after a block
        # is that value, stored once per block and lane instead of every sample
        text = "\n".join(body + [new[sl] for _, sls in groups for sl in sls])
        held = {sl for _, sls in groups for sl in sls if new[sl] in self.ctypes
                and not re.search(rf"\b{self.slot(sl)}\b", text)}
        after = [f"st({'state_i' if kind == 'iv' else 'state_f'}, {k}, {new[sl]})   # {what[sl]}"
                 for kind, sls in groups for k, sl in enumerate(sls) if sl not in held]
        # control-rate values the lanes read: one slot per lane each in cf (real) / ci (int)
        used = set(re.findall(r"\bc\d+\b", "\n".join(body + after)))
        used = sorted((c for c in used if c in self.ctypes), key=lambda c: int(c[1:]))
        reals = [c for c in used if self.ctypes[c] == "real"]
        ints = [c for c in used if self.ctypes[c] != "real"]
        loads = [f"{self.slot(sl)} = ld({'state_i' if kind == 'iv' else 'state_f'}, {k})"
                 for kind, sls in groups for k, sl in enumerate(sls) if sl not in held]
        # (the lanes' control values: one vector each)
        loads += [f"{c} = vld(cf, {k})" for k, c in enumerate(reals)]
        loads += [f"{c} = vld(ci, {k})" for k, c in enumerate(ints)]
        keep = [f"st(cf, {k * W} + b, {c})" for k, c in enumerate(reals)]
        keep += [f"st(ci, {k * W} + b, {c})" for k, c in enumerate(ints)]
        keep += [f"st({'state_i' if kind == 'iv' else 'state_f'}, {k * W} + b, {new[sl]})"
                 f"   # {what[sl]} (held)" for kind, sls in groups for k, sl in enumerate(sls)
                 if sl in held]
        lanes = [vector_indexed(line) for line in loads + body + after]
        control = [lane_indexed(line) for line in control]

        at_in = "(s0 + s1 - 1 - i)" if self.plan.reverse_io else "i"
        at_out = at_in + (f" + {self.plan.out_offset}" if self.plan.out_offset else "")
        name = f"_l{ctx.index}({LOSS_ARGS})" if nk else f"_v{ctx.index}({BATCH_ARGS})"
        src = [f"@{_jit(self.plan.fastmath)}", f"def {name}:",
               f'    """Samples s0..s1-1 of B instances of the program, {W} lanes a group'
               ' (simd vectors)."""',
               "    B = ctl.shape[0]",
               "    nctl = ctl.shape[1]"]
        if self.staged:
            src += ["    ni = ins.shape[2]", "    isz = ins.shape[1] * ni",
                    f"    xin = stack({len(self.staged) * ch * W}, 1)"]
        if nk:
            src += ["    nt = tgt.shape[2]", "    tsz = tgt.shape[1] * nt",
                    f"    tin = stack({nk * ch * W}, 1)", "    nacc = acc.shape[1]",
                    f"    accf = stack({len(ctx.outputs) * W}, 1)"]
        else:
            src += ["    no = outs.shape[2]", "    osz = outs.shape[1] * no",
                    f"    yout = stack({max(1, len(ctx.outputs)) * ch * W}, 1)"]
        if ctx.bargraphs and not nk:
            src += ["    nb = bars.shape[2]", "    bsz = bars.shape[1] * nb",
                    f"    ybar = stack({len(ctx.bargraphs) * ch * W}, 1)"]
        for name, vals, real in (("cf", reals, 1), ("ci", ints, 0)):
            if vals:
                src.append(f"    {name} = stack({len(vals) * W}, {real})")
        for kind, sls in groups:
            name = "state_i" if kind == "iv" else "state_f"
            src.append(f"    {name} = stack({len(sls) * W}, {int(kind == 'fv')})")
        src += ["    for g in range(ivs.shape[0]):",
                f"        g0 = g * {W}",
                "        iv = ivs[g]", "        fv = fvs[g]", "        di = dis[g]",
                "        df = dfs[g]", "        hi = his[g]", "        hf = hfs[g]"]
        if ctx.nhi:
            src.append("        nhi = hi.shape[1]")
        if ctx.nhf:
            src.append("        nhf = hf.shape[1]")
        src.append("        t = ld(iv, 0)   # samples since reset (lane 0's: every lane's)")
        if nk:
            src.append(f"        for r in range({len(ctx.outputs)}):   # the lanes' sums")
            src.append("            vst(accf, r, 0.0)")
        if groups:
            src.append(f"        for b in range({W}):")
            for kind, sls in groups:
                name = "state_i" if kind == "iv" else "state_f"
                src += [f"            st({name}, {k * W} + b, ld({kind}, {j * W} + b))"
                        for k, (_, j) in enumerate(sls)]
        src += ["        b0 = s0",
                "        while b0 < s1:",
                "            b1 = min(b0 + block, s1)",
                "            count = b1 - b0"]
        if control or keep:
            # (a run-time trip count: the loop is not unrolled, its code stays one lane's)
            src += ["            for b in range(ivs.shape[2]):   # control rate: per lane",
                    "                bb = min(g0 + b, B - 1)"]
            src += ["                " + line for line in control + keep]
        src += ["            q0 = b0   # a chunk: q0..q1-1 (c<k> are control values)",
                "            while q0 < b1:",
                f"                q1 = min(q0 + {ch}, b1)"]
        rev = int(self.plan.reverse_io)
        if self.staged:
            rows = []
            for (row, shift), k in sorted(self.staged.items(), key=lambda kv: kv[1]):
                at = at_in + (f" + {shift}" if shift > 0 else f" - {-shift}" if shift else "")
                rows.append(("xin", k * ch, f"{_row(row, 'ni')}{at}"))
            src += _staging("the chunk's inputs, lane order", "ins", "isz", rows, W, rev, True)
        if nk:
            src += _staging("the chunk's targets, lane order", "tgt", "tsz",
                            [("tin", c * ch, f"{_row(c, 'nt')}i") for c in range(nk)], W, 0,
                            True)
        # (every value a vector of the lanes' values, or one they share)
        src.append("                for j in range(q1 - q0):   # the lanes (simd)")
        src += ["                    " + line for line in lanes]
        src.append("                    t += 1")
        if ctx.outputs and not nk:
            src += _staging("the chunk's outputs", "outs", "osz",
                            [("yout", c * ch, f"{_row(c, 'no')}{at_out}")
                             for c in range(len(ctx.outputs))], W, rev, False)
        if ctx.bargraphs and not nk:
            src += _staging("the chunk's bargraphs", "bars", "bsz",
                            [("ybar", c * ch, f"{_row(c, 'nb')}i")
                             for c in range(len(ctx.bargraphs))], W, 0, False)
        src += ["                q0 = q1", "            b0 = b1"]
        if nk:   # (padding lanes repeat the last instance: not summed again)
            src += [f"        for b in range(min({W}, B - g0)):",
                    "            for r in range(nacc):",
                    "                at = (g0 + b) * nacc + r",
                    f"                st(acc, at, ld(acc, at) + ld(accf, r * {W} + b))"]
        src += [f"        for b in range({W}):", "            st(iv, b, t)"]
        for kind, sls in groups:
            name = "state_i" if kind == "iv" else "state_f"
            src += [f"            st({kind}, {j * W} + b, ld({name}, {k * W} + b))"
                    for k, (_, j) in enumerate(sls)]
        text = "\n".join(src) + "\n"
        return re.sub(r"\bf2i\(", "f2iv(", text)

def _staging(what: str, array: str, size: str, rows: list, lanes: int, rev: int,
             inward: bool) -> list:
    """A batch kernel's copy loops between the instances' rows of `array` (B, rows, n) and
    lane-order stack buffers, over the chunk j = 0..q1-q0-1 (i = q0 + j); rows: (buffer,
    its first slot, the row's flat index in an instance at sample i); `inward`: into the
    buffers. Blocks of `lanes` samples move by transposes in registers (simd.vtin/vtout,
    one call per row; rev: the rows read or written last sample first), the chunk's last
    samples one by one: with a few rows sample by sample, every lane of a sample together;
    with more rows than lanes, lane by lane and row by row, the samples innermost, so that
    each instance's row is a run of consecutive samples."""
    pad = " " * 16
    move = "vtin" if inward else "vtout"
    moves = [f"{move}({array}, g0, B, {size}, {at}, {buf}, {k0} + j, {rev})"
             for buf, k0, at in rows]
    copies = [f"st({buf}, ({k0} + j) * {lanes} + b, ld({array}, bb + {at}))" if inward else
              f"st({array}, bb + {at}, ld({buf}, ({k0} + j) * {lanes} + b))"
              for buf, k0, at in rows]
    head = [f"{pad}j0 = 0   # {what}: {lanes} samples at a time (simd.vtin/vtout)",
            f"{pad}while j0 <= q1 - q0 - {lanes}:", f"{pad}    j = j0",
            f"{pad}    i = q0 + j"] + [f"{pad}    {m}" for m in moves] + \
        [f"{pad}    j0 += {lanes}"]
    what += ", the rest"
    if len(copies) <= lanes:
        return head + [f"{pad}for j in range(j0, q1 - q0):   # {what}", f"{pad}    i = q0 + j",
                       f"{pad}    for b in range({lanes}):",
                       f"{pad}        bb = min(g0 + b, B - 1) * {size}"] + \
            [f"{pad}        {c}" for c in copies]
    out = head + [f"{pad}for b in range({lanes}):   # {what}",
                  f"{pad}    bb = min(g0 + b, B - 1) * {size}"]
    for c in copies:
        out += [f"{pad}    for j in range(j0, q1 - q0):", f"{pad}        i = q0 + j",
                f"{pad}        {c}"]
    return out


def generate(plan: Plan, source: str = "", key: str = "") -> str:
    """The module's source text."""
    from ..signals.ir import strip_metadata, widget_path
    main = plan.main
    parts: list[str] = []
    globs: list[str] = []
    kernels: list[str] = []
    for ctx in plan.contexts:
        em = _Emitter(plan, ctx)
        kernels.append(em.kernel())
        globs += em.globals
    has_loss = bool(plan.batch and plan.loss_rows and not plan.reverse_io)
    if plan.batch:   # the lane form of the program's kernel (compiled on first use only)
        em = _Emitter(plan, main, batch=True)
        kernels.append(em.batch_kernel())
        globs += [g for g in em.globals if g not in globs]
        if has_loss:
            em = _Emitter(plan, main, batch=True)
            kernels.append(em.batch_kernel(loss=True))
            globs += [g for g in em.globals if g not in globs]
    code = "\n\n".join(kernels)
    helpers = _helpers_used(code)

    head = [f'"""Generated by faustdiff {__version__} from {source or "<signals>"} '
            f"(sample rate {plan.sample_rate}).",
            "",
            "Do not edit: regenerate with `faustdiff compile`. `program` is a ready-to-use",
            "instance (a faustdiff.backend.runtime.CompiledProgram); `FaustProgram()` makes more.",
            '"""',
            f"# faustdiff-module: format={FORMAT} key={key}",
            "import math",
            "",
            "import numpy as np",
            "from numba import njit, types",
            "",
            "from faustdiff.backend.runtime import CompiledProgram",
            *([f"from faustdiff.backend.simd import {', '.join(simd.NAMES)}"]
              if plan.batch else []),
            "",
            "INF = math.inf",
            "NAN = math.nan",
            f"CTL0 = np.array([{', '.join(_literal(c.attrs[3], 'real') for c in plan.controls)}],"
            " dtype=np.float64)",
            ]
    for h in helpers:
        if h in EXTERNALS:
            cname, sig = EXTERNALS[h]
            head.append(f'{h} = types.ExternalFunction("{cname}", types.{sig.replace("(", "(types.").replace(", ", ", types.")})')
    parts.append("\n".join(head) + "\n")
    parts.append(ARRAY_ACCESS.strip("\n") + "\n")
    for h in helpers:
        if h in HELPERS:
            parts.append(HELPERS[h].strip("\n") + "\n")
    if globs:
        parts.append("\n".join(globs) + "\n")
    parts.append(code)

    labels = [strip_metadata(c.attrs[1]) for c in plan.controls]
    paths = [widget_path(c, plan.name) for c in plan.controls]
    bar_labels = [strip_metadata(b.attrs[1]) for b in plan.bargraphs]
    cls = ["class FaustProgram(CompiledProgram):",
           f"    NAME = {plan.name!r}",
           f"    NUM_INPUTS = {plan.num_inputs}",
           f"    NUM_OUTPUTS = {len(main.outputs)}",
           f"    REVERSE_IO = {plan.reverse_io}   # inputs read, outputs written last sample first",
           f"    IN_OFFSET = {plan.in_offset}   # columns before sample 0 of the inputs' rows",
           f"    OUT_OFFSET = {plan.out_offset}   # ... and of the outputs' rows",
           f"    SAMPLE_RATE = {plan.sample_rate}",
           "    # (label without metadata, full path, initial value) in Faust's UI order",
           "    CONTROLS = ("]
    for lab, path, c in zip(labels, paths, plan.controls):
        cls.append(f"        ({lab!r}, {path!r}, {_literal(c.attrs[3], 'real')}),")
    cls += ["    )",
            f"    BARGRAPH_LABELS = {tuple(bar_labels)!r}",
            "    # state slots holding the final values of the kept recursions (see `finals`)",
            f"    FINALS = {tuple(plan.finals)!r}",
            "    # per context (0: the program, then table init signals): its kernel, its state",
            "    # sizes (iv, fv, di, df, hi rows, hf rows) and its tables (offset in di/df,",
            "    # size, type, context of the init signal)",
            f"    KERNELS = ({', '.join(f'_k{c.index}' for c in plan.contexts)},)",
            "    # (the kernel of B instances in one call, LANES a group: codegen.batch_kernel,)",
            f"    BATCH_KERNELS = {'(_v0,)' if plan.batch else '()'}",
            "    # (the batch kernel summing the L2 loss of its first LOSS_ROWS outputs, whose",
            "    # forward-mode partials follow: batch_kernel(loss=True); runtime.l2_sums)",
            f"    LOSS_KERNELS = {'(_l0,)' if has_loss else '()'}",
            f"    LOSS_ROWS = {plan.loss_rows if has_loss else 0}",
            f"    LANES = {LANES}",
            "    STATES = (",
            *[f"        {(c.niv, c.nfv, c.ndi, c.ndf, c.nhi, c.nhf)!r}," for c in plan.contexts],
            "    )",
            "    TABLES = (",
            *[f"        {tuple((t.offset, t.size, t.type, t.ctx.index) for t in c.tables)!r},"
              for c in plan.contexts],
            "    )",
            "",
            "",
            "program = FaustProgram()"]
    parts.append("\n".join(cls) + "\n")
    return "\n\n".join(parts)


def _jit(fastmath) -> str:
    """The kernels' decorator, with the plan's fast-math flags (a set literal, sorted so that
    the module text, hence its cache key, does not depend on the order given)."""
    bad = sorted(set(fastmath) - set(FASTMATH_OK))
    if bad:
        raise ValueError(f"fast-math flags {bad} are not allowed (only {FASTMATH_OK})")
    flags = "{" + ", ".join(repr(f) for f in sorted(set(fastmath))) + "}" if fastmath else "False"
    return JIT.format(fm=flags)


def generate_from_signals(outputs, bargraphs=(), num_inputs: int = 0,
                          sample_rate: int = 44100, name: str = "", source: str = "",
                          key: str = "", controls=None, keep=(), reverse_io: bool = False,
                          in_offset: int = 0, out_offset: int = 0,
                          fastmath: tuple = (), loss_rows: int = 0) -> tuple[str, Plan]:
    p = make_plan(outputs, bargraphs, num_inputs, sample_rate, name, controls, keep)
    p.loss_rows = int(loss_rows)
    p.reverse_io, p.in_offset, p.out_offset = reverse_io, int(in_offset), int(out_offset)
    p.fastmath = tuple(fastmath)
    return generate(p, source, key), p
