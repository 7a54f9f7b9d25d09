"""The signal IR: a typed, hash-consed DAG of sample streams.

A `Sig` is an immutable node `(op, args, attrs)` plus facts computed once at construction:

* `type`     -- 'int' (int32, wraps) or 'real' (float64), Faust's rules (faust-language §6.2);
* `interval` -- (lo, hi), a sound over-approximation of its values (±inf when unknown); used
                to size delay lines and to know when a table index needs clamping;
* `rate`     -- K_CONST (compile-time), K_INIT (fixed at init: the sample rate), K_BLOCK
                (changes only between `compute` calls: UI, block size) or K_SAMPLE; a node
                of rate < K_SAMPLE may be hoisted out of the sample loop.

Invariants:
* Hash-consing: structurally equal nodes are the SAME object (`a is b`), so identity
  equality and hashing are O(1), a `dict` keyed by nodes is a memo, and sharing is explicit.
  Every node must be built through the constructors below (never `Sig(...)`).
* `args` are the node's operands, all `Sig`. The per-sample dependencies are `deps(s)`: the
  args except a table's init signal (computed once, in its own context, see `table_init`).
* Constructors fold constants and apply the few algebraic simplifications Faust applies
  (x+0, x*1, x*0, x/k -> x*(1/k), pow with small constant exponents), so results stay
  bit-identical with the reference compiler.
* Recursion never makes a cycle of `args`: `RecVar(g, i)` (the value of g's definition i at
  the PREVIOUS sample, 0 at t=0) is a leaf; `Proj(g, i)` (the value at the current sample) has
  the definition as its only arg. A `RecGroup` holds its definitions once `define`d.

Node kinds (op, args, attrs):
    const     ()                       (value,)          int or real constant
    input     ()                       (i,) | (i, lag)   audio input i (real); with a lag
                                                         (a tap, reverse mode), read lag
                                                         samples back in forward time
    ui        ()                       (kind, label, groups, init, lo, hi, step)
    bargraph  (x,)                     (kind, label, groups, lo, hi)   real; value = x
    prim      operands                 (name,)           every pure primitive (+, sin,
                                                         select2, attach, enable, ...)
    delay     (x, d)                   ()                x[t - d], d an int signal, x[<0] = 0
    prefix    (a, x)                   ()                a at t=0, then x[t-1]
    rdtable   (init, ridx)             (size,)           table filled with init[0..size-1]
    rwtable   (init, widx, wval, ridx) (size,)           write wval at widx, then read ridx
    waveform  ()                       (values,)         values[t mod len]
    ffun      operands                 (name, rtype, argtypes)   C function call
    fconst    ()                       (name,)           fSamplingFreq
    fvar      ()                       (name,)           count (block size)
    recvar    ()                       (group, i)        group def i at t-1
    proj      (def_i,)                 (group, i)        group def i at t
    scatter   (x, d)                   (bound,)          the transpose of a variable delay
                                                         (reverse mode): at t, x[t] is
                                                         added to the value at t + d[t]
                                                         (d clamped to [0, bound]); the
                                                         value at t is the sum of all that
                                                         was sent to t; real
    adjtable  (c, ridx, widx)          (size,)           the transpose of an rwtable
                                                         (reverse mode): at t, c[t] is
                                                         added to slot ridx, then the
                                                         value is slot widx, which is
                                                         cleared; real
    placeholder ()                     (uid,)            AD only, never scheduled: see
                                                         `placeholder` and `ad`
`groups` is the tuple of enclosing UI groups as (kind, raw label), outermost first; labels
are kept raw (metadata included: Faust sorts widgets by raw label), see `strip_metadata`.
"""
from __future__ import annotations

import itertools
import math
import re
import weakref
from typing import Callable, Iterable, Optional, Sequence

from ..errors import FaustError
from ..core.primitives import (FFUNS, FULL, INT_MIN, PRIMITIVES, f2i, ffun_name, iv_union, plan,
                         union_type, wrap)
from ..core import primitives as P

K_CONST, K_INIT, K_BLOCK, K_SAMPLE = 0, 1, 2, 3
INT_MAX = 2**31 - 1
MAX_TABLE_SIZE = 1 << 24   # rdtable/rwtable sizes above this are refused (memory, init time)
INF = math.inf


class Sig:
    """One node of the signal DAG (see the module docstring). Identity is equality."""
    __slots__ = ("op", "args", "attrs", "type", "interval", "rate", "uid", "free",
                 "__weakref__")

    def __init__(self, op, args, attrs, type_, interval, rate, uid, free):
        self.op, self.args, self.attrs = op, args, attrs
        self.type, self.interval, self.rate, self.uid = type_, interval, rate, uid
        self.free = free   # the RecGroups whose RecVars occur free in the node (frozenset)

    @property
    def name(self) -> str:
        """The primitive's name of a `prim` node (and the name of ffun/fconst/fvar)."""
        return self.attrs[0]

    @property
    def value(self):
        """The value of a `const` node."""
        return self.attrs[0]

    def __repr__(self) -> str:
        return show(self)


class RecGroup:
    """k mutually recursive definitions: y_i[t] = defs[i] evaluated with RecVar(g, j)
    standing for y_j[t-1] (zero before t=0). Identity-hashed; `types` are fixed at creation
    (propagate finds them by a fixpoint from int), `defs` are set once by `define`.

    Sharing: `define` computes a canonical key of the group (its definitions with its own
    RecVars, and those of the groups nested in it, numbered de Bruijn-style; the signals it
    reads from outside by identity). When a live group with the same key exists, this group
    becomes an alias of it: `proj` returns the canonical group's projections, so two
    occurrences of the same recursion are the same signals (`canonical`). The key also holds
    `tag`, given to `define`: `propagate` passes the key of Faust's unsimplified term
    (`raw.group_tag`, which sets `raw`, the term's values, and `raw_free`, the groups it
    reads), so that recursions equal only once simplified stay apart, as in Faust."""
    __slots__ = ("uid", "types", "defs", "free", "alias", "share", "tag", "raw", "raw_free",
                 "__weakref__")

    def __init__(self, types: Iterable[str], share: bool = True):
        self.uid = next(_UID)
        self.share = share     # False: never an alias (groups whose RecVars the caller
        #                        uses outside the projections: the AD passes)
        self.types = tuple(types)
        self.defs: Optional[tuple[Sig, ...]] = None
        self.free = _EMPTY     # groups whose RecVars the definitions read (self excluded)
        self.alias: Optional["RecGroup"] = None
        self.tag = None
        self.raw = None        # propagate's values of A's outputs (`raw.group_tag`)
        self.raw_free = None   # the groups they read (self excluded); `free` without them

    def __len__(self):
        return len(self.types)

    def var(self, i: int) -> Sig:
        return _make("recvar", (), (self, i), self.types[i], FULL, K_SAMPLE)

    def define(self, defs: Iterable[Sig], tag=None) -> None:
        """Sets the definitions; a shared group with the same key and `tag` (hashable) as
        a live one becomes its alias."""
        defs = tuple(defs)
        assert self.defs is None and len(defs) == len(self.types)
        assert all(d.type == t for d, t in zip(defs, self.types)), "define: type mismatch"
        self.defs = defs
        self.free = _free_of(defs) - {self}
        if self.raw_free is None:
            self.raw_free = self.free
        self.tag = tag
        if not self.share:
            return
        key = (_group_key(self)[0], tag)
        found = _GROUPS.get(key)
        if found is None:
            _GROUPS[key] = self
        elif found is not self:
            self.alias = found

    @property
    def canonical(self) -> "RecGroup":
        """The group this one shares (itself unless an equal group was defined before)."""
        return self.alias if self.alias is not None else self

    def rename(self, sigs: Sequence[Sig]) -> list:
        """`sigs` (signals that read this group's RecVars outside its projections, as the
        extra outputs of `A ~ B` do) with this alias's recursion replaced by the canonical
        group's, node for node (no re-simplification: the two are equal up to renaming).
        Unchanged when not an alias, or when they reach another group's local nodes."""
        g = self.alias
        if g is None:
            return list(sigs)
        new = {id(a): b for a, b in zip(_group_key(self)[1], _group_key(g)[1])}
        for i in range(len(self.types)):
            new[id(self.var(i))] = g.var(i)
        for n in post_order(sigs, lambda n: n.args, keep=lambda n: self in n.free):
            if id(n) in new:
                continue
            if n.op in ("recvar", "proj"):
                return list(sigs)      # a nested group outside the definitions: keep as is
            new[id(n)] = _make(n.op, tuple(new.get(id(a), a) for a in n.args), n.attrs,
                               n.type, n.interval, n.rate)
        return [new.get(id(x), x) for x in sigs]

    def proj(self, i: int) -> Sig:
        g = self.canonical
        d = g.defs[i]
        return _make("proj", (d,), (g, i), d.type, d.interval, K_SAMPLE)

    def __repr__(self):
        return f"G{self.uid}"


# ---------------------------------------------------------------- interning

_TABLE: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()
_GROUPS: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()   # key -> RecGroup
_UID = itertools.count()
_EMPTY: frozenset = frozenset()


def _free_of(args) -> frozenset:
    f = _EMPTY
    for a in args:
        af = a.free
        if af and af is not f and not af <= f:
            f = af if not f else f | af
    return f


def _group_key(g: "RecGroup") -> tuple:
    """The canonical key of a defined group: its definitions' local DAG in a deterministic
    post-order, nodes by their position; RecVars/Projs of `g` and of the groups nested in it
    (the groups whose definitions read, transitively, g's RecVars) by a group number in
    order of discovery; every other node (read from outside) by identity."""
    return canonical_key(g, g.defs, lambda h: h.free, lambda h: h.defs or (),
                         lambda n: n.args)


def canonical_key(g: "RecGroup", roots, free_of, terms, kids) -> tuple:
    """((entries, groups), objs): `_group_key`'s walk over any term of a group: `roots`
    (g's terms), `terms(h)` (a group's terms, walked when one of its RecVars/Projs is
    reached and listed in `groups`), `free_of(h)` (the groups h's terms read: h is nested
    in g when they reach g), `kids(n)` (a node's operands). `raw.group_tag` runs it over
    the unsimplified terms."""
    gnum = {g: 0}
    order = [g]
    memo = {g: True}

    def nested(h) -> bool:
        r = memo.get(h)
        if r is None:
            memo[h] = False            # (no cycles in well-formed IR; guard anyway)
            r = h.defs is not None and any(nested(x) for x in free_of(h))
            memo[h] = r
        return r

    by_free: dict = {}   # free sets are shared objects: decide each once

    def local(n) -> bool:
        f = n.free
        if not f:
            return False
        r = by_free.get(f)
        if r is None:
            r = by_free[f] = any(nested(h) for h in f)
        return r

    def nested_terms(n):   # reaching a nested group's RecVar/Proj walks its terms
        return terms(n.attrs[0]) if n.op in ("recvar", "proj") else ()

    # the local DAG in post-order (operands first), nested groups' terms included
    objs = post_order(roots, kids, nested_terms, local)
    index = {id(n): k for k, n in enumerate(objs)}

    def ref(n):
        return index[id(n)] if local(n) else n

    entries = []
    for node in objs:
        if node.op in ("recvar", "proj"):
            h, i = node.attrs
            if h not in gnum:   # groups numbered in order of discovery
                gnum[h] = len(order)
                order.append(h)
            attrs = (gnum[h], i)
        else:
            attrs = _akey(node.attrs)
        entries.append((node.op, attrs, tuple(ref(a) for a in kids(node))))
    groups = tuple((h.types, tuple(ref(d) for d in terms(h))) for h in order)
    return (tuple(entries), groups), objs


def _akey(a):
    """Attribute key for interning: floats by bit pattern (0.0 vs -0.0, NaN equal to NaN)."""
    if a.__class__ is float:
        return ("f", a.hex())
    if a.__class__ is tuple:
        return tuple(_akey(x) for x in a)
    return a


def _make(op, args, attrs, type_, interval, rate) -> Sig:
    key = (op, args, _akey(attrs))
    s = _TABLE.get(key)
    if s is None:
        if type_ == "int" and (interval[0] < INT_MIN or interval[1] > INT_MAX):
            interval = (INT_MIN, INT_MAX)   # int arithmetic wraps around
        if op == "recvar":
            free = frozenset((attrs[0],))
        elif op == "proj":
            free = attrs[0].free
        else:
            free = _free_of(args) if args else _EMPTY
        s = Sig(op, args, attrs, type_, interval, rate, next(_UID), free)
        _TABLE[key] = s
    return s


def _rate(args, floor=K_CONST) -> int:
    return max([floor] + [a.rate for a in args])


# ---------------------------------------------------------------- leaves

def const(v) -> Sig:
    """An int (Python int, wrapped to int32) or real (Python float) constant."""
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        v = wrap(v)
        return _make("const", (), (v,), "int", (v, v), K_CONST)
    v = float(v)
    return _make("const", (), (v,), "real", (v, v) if v == v else FULL, K_CONST)


def int_const(v: int) -> Sig:
    return const(int(v))


def real_const(v: float) -> Sig:
    return const(float(v))


def zero(type_: str = "real") -> Sig:
    return const(0 if type_ == "int" else 0.0)


def is_const(s: Sig, value=None) -> bool:
    """`s` is a constant (equal to `value` when given; 0 == 0.0 == -0.0)."""
    return s.op == "const" and (value is None or s.value == value)


# Faust 2.54.9 types an audio input with the interval [-1, 1]: `s @ int(abs(x) * 10)` is a
# delay of at most 10 samples (it is not a promise: louder inputs clamp the amount).
INPUT_INTERVAL = (-1.0, 1.0)


def input_(i: int) -> Sig:
    return _make("input", (), (i,), "real", INPUT_INTERVAL, K_SAMPLE)


def tap(i: int, lag: int = 0) -> Sig:
    """Input i read `lag` samples back in forward time: a backward program's (reverse
    mode) view of a recorded forward signal, from the array's history columns before the
    block start (see `backend.reverse`). Its values are anything: interval FULL."""
    return _make("input", (), (i, int(lag)), "real", FULL, K_SAMPLE)


def ui(kind: str, label: str, groups: tuple = (), init: float = 0.0, lo: float = 0.0,
       hi: float = 1.0, step: float = 1.0) -> Sig:
    """An input widget (real, constant within a `compute` call)."""
    init, lo, hi, step = float(init), float(lo), float(hi), float(step)
    iv = (min(lo, init), max(hi, init))
    return _make("ui", (), (kind, label, tuple(groups), init, lo, hi, step), "real", iv,
                 K_BLOCK)


def bargraph(kind: str, label: str, groups: tuple, lo: float, hi: float, x: Sig) -> Sig:
    """An output widget: passes x through as a real, its value is recorded every sample."""
    return _make("bargraph", (x,), (kind, label, tuple(groups), float(lo), float(hi)), "real",
                 x.interval, x.rate)


def fconst(name: str, type_: str = "int") -> Sig:
    if name != "fSamplingFreq":
        raise FaustError(f"unsupported foreign constant '{name}' (only fSamplingFreq is known)")
    return _make("fconst", (), (name,), "int" if type_ == "int" else "real", (1, INF), K_INIT)


def fvar(name: str, type_: str = "int") -> Sig:
    if name != "count":
        raise FaustError(f"unsupported foreign variable '{name}' (only count is known)")
    return _make("fvar", (), (name,), "int" if type_ == "int" else "real", (0, INF), K_BLOCK)


def waveform(values) -> tuple[Sig, Sig]:
    """`waveform{...}`: (its size as an int constant, the periodic signal)."""
    vals = tuple(wrap(v) if isinstance(v, int) else float(v) for v in values)
    if not vals:
        raise FaustError("empty waveform")
    t = "int" if all(isinstance(v, int) for v in vals) else "real"
    if t == "real":
        vals = tuple(float(v) for v in vals)
    sig = _make("waveform", (), (vals,), t, (min(vals), max(vals)), K_SAMPLE)
    return const(len(vals)), sig


# ---------------------------------------------------------------- casts and primitives

def to_int(x: Sig) -> Sig:
    return x if x.type == "int" else prim("int", x)


def to_real(x: Sig) -> Sig:
    return x if x.type == "real" else prim("float", x)


def to_type(x: Sig, t: str) -> Sig:
    return to_int(x) if t == "int" else to_real(x)


def _fold(name, args):
    """Constant-fold with the compile-time rules of primitives.fold (None if not foldable)."""
    if not all(a.op == "const" for a in args):
        return None
    row = PRIMITIVES[name]
    if row.fold is None:
        return None
    try:
        v = row.fold([a.value for a in args], all(a.type == "int" for a in args))
    except (ZeroDivisionError, OverflowError, ValueError):
        return None   # a run-time division by zero gives IEEE inf/NaN
    return None if v is None else const(v)


def _raw_prim(name: str, args: tuple) -> Sig:
    row = PRIMITIVES[name]
    t = plan(name, tuple(a.type for a in args))[0]
    iv = row.interval(*[a.interval for a in args]) if row.interval else FULL
    return _make("prim", args, (name,), t, iv, _rate(args))


def prim(name: str, *args: Sig) -> Sig:
    """A pure primitive applied to signals, folded/simplified the way Faust does."""
    row = PRIMITIVES[name]
    if len(args) != row.ins:
        raise TypeError(f"{name} takes {row.ins} signals, got {len(args)}")
    if row.ty == "state":
        return _STATEFUL[name](*args)
    if name == "enable":
        return _control(prim("*", *args), args[1])
    if name == "control":
        return _control(*args)
    folded = _fold(name, args)
    if folded is not None:
        return folded
    simplify = _SIMPLIFY.get(name)
    if simplify is not None:
        s = simplify(*args)
        if s is not None:
            return s
    return _raw_prim(name, args)


def held(cnd: Sig, var: Sig, x: Sig) -> Sig:
    """select2(cnd, var, x) as the definition of a held value (`signals.conditions`): var is
    its own recursion variable, so its values are x's values or the initial 0, an interval
    the select's own (var's is unknown) would lose."""
    t = _result_type("select2", cnd, var, x)
    return _make("prim", (cnd, var, x), ("select2",), t, iv_union(x.interval, (0, 0)),
                 _rate((cnd, var, x)))


def _control(x: Sig, y: Sig) -> Sig:
    """Faust's propagation: control(x, y) is control(x, y != 0), enable(x, y) is
    control(x * y, y != 0) (`signals.conditions` gives them their meaning); a constant
    condition is x (always computed) or 0 (never)."""
    if not (y.op == "prim" and y.name == "!=" and is_const(y.args[1], 0)):
        y = prim("!=", y, real_const(0.0))
    if y.op == "const":
        return x if y.value != 0 else zero(x.type)
    global CONTROLS_MADE
    CONTROLS_MADE += 1
    return _raw_prim("control", (x, y))


CONTROLS_MADE = 0   # control nodes asked for so far (propagate skips conditions.apply if none)


def _result_type(name, *args):
    return plan(name, tuple(a.type for a in args))[0]


def _is_plus_const(s: Sig) -> bool:
    return s.op == "prim" and s.name == "+" and s.args[1].op == "const"


# Faust's normaliser keeps one constant per sum (last: `(y + x) + -0.1`) and one coefficient
# per product (`225 * SR / 44100` is `(225/44100) * SR`, the division done on the constants).
# Library code relies on it bitwise (freeverb's delay lengths `int(val*SR/44100)` differ by
# one sample otherwise), so sums and products are kept in that shape.

def _simp_add(x, y):
    t = _result_type("+", x, y)
    if is_const(y, 0):
        return to_type(x, t)
    if is_const(x, 0):
        return to_type(y, t)
    swapped = x.op == "const"
    if swapped:
        x, y = y, x                       # the constant goes last
    if y.op == "const":
        if _is_plus_const(x):             # (a + c1) + c2 -> a + (c1 + c2)
            return prim("+", x.args[0], prim("+", x.args[1], y))
        if _is_const_minus(x):            # (c1 - a) + c2 -> (c1 + c2) - a
            return prim("-", prim("+", x.args[0], y), x.args[1])
        # built with the constant last even when written first, so that a later constant
        # finds it: (1 + a) - 1 is a, as in Faust (aanl's sqrt(x - 1) of x = 1 + |s|)
        return _raw_prim("+", (x, y)) if swapped else None
    if _is_plus_const(y):                 # x + (a + c) -> (x + a) + c
        return prim("+", prim("+", x, y.args[0]), y.args[1])
    if _is_plus_const(x):                 # (a + c) + y -> (a + y) + c
        return prim("+", prim("+", x.args[0], y), x.args[1])
    return None


# Faust's normaliser rebuilds a sum from its terms grouped by rate and sign (aterm's
# normalizedTree): the constant first, then for each rate from the samples' down to the
# sample rate's, minus that rate's negative terms and plus its positive ones, the new terms
# on the left: a + (c - y) when y's rate is a's or higher, (a + c) - y when lower. Its C++
# prints `a + (b + c)` as `a + b + c` (unless b + c is shared), so a sum of positive terms is
# computed from the left whatever their rates: (a + y) + c, the rules above. The rules below
# rebuild differences of two terms (not themselves sums) and a constant that way; a group of
# several terms of one rate is ordered by address in Faust, which we do not reproduce.

def _atoms(*sigs) -> bool:
    """Each of sigs is a real single term of a sum: not a constant, not itself a sum or
    difference (integer sums are exact in any order, and keep the rules above)."""
    return all(s.type == "real" and s.op != "const" and
               not (s.op == "prim" and s.name in ("+", "-")) for s in sigs)


def _rated_sum(a: Sig, c: Sig, y: Sig) -> Sig:
    """a + c - y, with a and y terms of a sum and c a constant, in the shape of Faust's
    normal form."""
    if is_const(c, 0):
        return _raw_prim("-", (a, y))
    if y.rate >= a.rate:                  # y's rate meets the constant first, or with a's
        return _raw_prim("+", (a, _raw_prim("-", (c, y))))
    return _raw_prim("-", (_raw_prim("+", (a, c)), y))   # y's lower rate: subtracted last


def _is_const_minus(s: Sig) -> bool:
    """s is c - a, a constant minus a real term of a sum (Faust's sum of those two)."""
    return s.op == "prim" and s.name == "-" and s.args[0].op == "const" and _atoms(s.args[1])


def _simp_sub(x, y):
    if is_const(y, 0):
        return to_type(x, _result_type("-", x, y))
    if is_const(x, 0) and y.op != "const" and _result_type("-", x, y) == "real":
        # Faust's normal form of a lone negated term: 0 - y is (-1) * y, a product (a
        # factor of a later one gives it its -1: (0 - s) * x is 0 - s*x)
        return _raw_prim("*", (real_const(-1.0), to_real(y)))
    if y.op == "const" and x.op != "const":   # x - c is x + (-c), exactly
        return prim("+", x, prim("-", zero(y.type), y))
    if x.op == "const" and _is_plus_const(y) and _atoms(y.args[0]):
        return prim("-", prim("-", x, y.args[1]), y.args[0])   # c1 - (a + c2): (c1 - c2) - a
    if _is_plus_const(x) and _is_plus_const(y) and _atoms(x.args[0], y.args[0]):
        return _rated_sum(x.args[0], prim("-", x.args[1], y.args[1]), y.args[0])
    if _is_plus_const(x) and _atoms(x.args[0], y):
        return _rated_sum(x.args[0], x.args[1], y)
    if _is_plus_const(y) and _atoms(x, y.args[0]):   # x - (a + c): a's terms are negative
        return _rated_sum(x, prim("-", zero(y.args[1].type), y.args[1]), y.args[0])
    if _is_plus_const(x) and y.op != "const":  # (a + c) - y -> (a - y) + c
        return prim("+", prim("-", x.args[0], y), x.args[1])
    return None


def _simp_mul(x, y):
    t = _result_type("*", x, y)
    if is_const(y, 1):
        return to_type(x, t)
    if is_const(x, 1):
        return to_type(y, t)
    if is_const(x, 0) or is_const(y, 0):
        return zero(t)   # Faust drops x in x*0, for reals too (log(0)*0 is 0, not NaN)
    if t == "real":
        return _mterm_product(((x, 1), (y, 1)))
    if y.op == "const" and x.op != "const":
        x, y = y, x                       # the coefficient goes first
    if x.op == "const":
        # c1 * (c2 * a) -> (c2 * c1) * a; an int product is never taken apart into a real
        # one (it wraps to 32 bits before it meets a real coefficient, as in Faust).
        if _is_coef_product(y) and y.type == t:
            return prim("*", prim("*", y.args[0], x), y.args[1])
        return _raw_prim("*", (x, y))
    return None


def _is_coef_product(s: Sig) -> bool:
    return s.op == "prim" and s.name == "*" and s.args[0].op == "const"


def _simp_div(x, y):
    # Faust divides a constant divisor into the product's coefficient ((c*a)/k is (c/k)*a,
    # a/k is (1/k)*a), and a control-rate divisor becomes a hoisted 1/y factor: bitwise
    # x/k != x*(1/k), so we must do the same (faust-language.md §6.3). A divisor 0 or
    # non-finite is left to IEEE at run time.
    if y.op == "const" and (y.value == 0 or not math.isfinite(y.value)):
        return None
    return _mterm_product(((x, 1), (y, -1)))


# Faust's normal form of a real product (its normaliser's `mterm`), which decides the order
# of the roundings: one numeric coefficient, then a term per rate -- constant (the sample
# rate), control, sample -- each the product of that rate's factors (powers for repeated
# ones), divided by the product of its divisors when it has some:
#     c * K1 * K2 * (C1 / C2) * S1 * S2        (C++ evaluates it from the left)
# A negative coefficient makes the product `0 - |c| * ...`. Faust's C++ prints `a * (b * c)`
# as `a * b * c`, so a rate's factors multiply into the running product one by one. Factors of one rate are ordered by memory address in Faust
# (not reproducible): we keep the order in which they were met, left operand first.

def _mterm_factors(s: Sig, q: int, acc: dict, coef: Sig) -> Sig:
    """Adds s**q's factors to acc ({factor: exponent}, in the order met) and returns coef
    times s**q's numbers (multiplied or divided in the order met, as Faust's normaliser)."""
    if s.op == "const":
        return prim("*" if q > 0 else "/", coef, real_const(float(s.value)))
    if s.op == "prim" and s.type == "real" and s.name in ("*", "/") and \
            all(a.type == "real" for a in s.args) and not _zero_divisor(s) and \
            not _power_of_product(s):
        a, b = s.args
        coef = _mterm_factors(a, q, acc, coef)
        return _mterm_factors(b, q if s.name == "*" else -q, acc, coef)
    f = to_real(s)
    acc[f] = acc.get(f, 0) + q
    return coef


def _power_of_product(s: Sig) -> bool:
    """s is `a^n` of a product or quotient a (a*a*...*a, as `_simp_pow` builds it): Faust
    keeps such a power one factor (`(x*s)^2 * 0.5` is 0.5 * pow2(x*s))."""
    base = s.args[1]
    if not (base.op == "prim" and base.name in ("*", "/")):
        return False
    while s is not base:
        if not (s.op == "prim" and s.name == "*" and s.args[1] is base):
            return False
        s = s.args[0]
    return True


def _zero_divisor(s: Sig) -> bool:
    """s is x/k with k 0 or not finite (left as it is: IEEE decides at run time)."""
    b = s.args[1]
    return s.name == "/" and b.op == "const" and (b.value == 0 or not math.isfinite(b.value))


def _mterm_product(terms) -> Sig:
    """The product of the signals**exponents in `terms`, built in Faust's normal form
    (invariant: a real product is always kept in that shape, so taking it apart again gives
    back its coefficient and factors)."""
    acc = {}
    coef = real_const(1.0)
    for s, q in terms:
        coef = _mterm_factors(s, q, acc, coef)
    if coef.value == 0:
        return real_const(0.0)
    negative = coef.value < 0
    if negative:
        coef = real_const(-coef.value)
    out = None if coef.value == 1 else coef
    for rate in (K_CONST, K_INIT, K_BLOCK, K_SAMPLE):
        num = [_power(f, q) for f, q in acc.items() if q > 0 and f.rate == rate]
        den = [_power(f, -q) for f, q in acc.items() if q < 0 and f.rate == rate]
        if num and den:
            out = _times(out, _raw_prim("/", (_left_product(num), _left_product(den))))
        elif num:
            for f in num:
                out = _times(out, f)
        elif den:
            out = _raw_prim("/", (real_const(1.0) if out is None else out,
                                  _left_product(den)))
    if out is None:
        return real_const(-coef.value if negative else coef.value)
    # a negative coefficient: Faust's product is 0 - (|c| * ...), which a later product
    # keeps as one factor (3 * (0 - s*x), not (-3*s) * x)
    return _raw_prim("-", (real_const(0.0), out)) if negative else out


def _times(acc, f: Sig) -> Sig:
    return f if acc is None else _raw_prim("*", (acc, f))


def _left_product(fs) -> Sig:
    acc = None
    for f in fs:
        acc = _times(acc, f)
    return acc


def _power(f: Sig, q: int) -> Sig:
    """f**q as Faust computes an integer power (a left-nested product up to 8, else pow)."""
    return f if q == 1 else prim("^", f, int_const(q))


def _simp_pow(x, y):
    # Faust's rules for a constant exponent (§6.3): 0 -> 1.0, 1 -> x, 0.5 -> sqrt,
    # 0.25 -> sqrt(sqrt), 2..8 -> repeated product in the common type; else pow().
    if y.op != "const":
        return None
    v = y.value
    if v == 0:
        return real_const(1.0)
    if v == 1:
        return x
    if v == 0.5:
        return prim("sqrt", x)
    if v == 0.25:
        return prim("sqrt", prim("sqrt", x))
    if float(v).is_integer() and 2 <= v <= 8:
        t = union_type((x.type, y.type))
        base = to_type(x, t)
        acc = base
        for _ in range(int(v) - 1):
            acc = _raw_prim("*", (acc, base))   # left-assoc x*x*...*x, no re-simplification
        return acc
    return None


def _simp_int(x):
    return x if x.type == "int" else None


def _simp_float(x):
    return x if x.type == "real" else None


def _simp_attach(x, y):
    return x if y.op == "const" else None


def _simp_bound(name):
    def simp(x):
        v = x.interval[0] if name == "lowest" else x.interval[1]
        return real_const(v)
    return simp


def _simp_select(*args):
    """select2/select3 with a constant selector is the signal it picks (of the select's
    type), as Faust's normaliser has it: the other choices, and the bargraphs only they
    feed, are gone."""
    sel, choices = args[0], args[1:]
    if sel.op != "const" or not math.isfinite(sel.value):
        return None
    k = int(sel.value)
    pick = choices[0] if k == 0 else choices[1] if (k == 1 or len(choices) == 2) else choices[2]
    return to_type(pick, _result_type("select2" if len(choices) == 2 else "select3", *args))


_SIMPLIFY = {
    "+": _simp_add, "-": _simp_sub, "*": _simp_mul, "/": _simp_div, "^": _simp_pow,
    "pow": _simp_pow, "int": _simp_int, "float": _simp_float, "attach": _simp_attach,
    "select2": _simp_select, "select3": _simp_select,
}


# ---------------------------------------------------------------- stateful nodes

def delay(x: Sig, d: Sig) -> Sig:
    """x[t - int(d[t])] with zero history; `x@0` is x."""
    d = to_int(d)
    if is_const(d, 0) or is_const(x, 0):
        return x
    check_delay(x, d)
    if x.op == "delay" and x.args[1].op == "const":
        # (y@c)@d is y[t - d(t) - c] when c is a constant: one delay line of y, as in
        # Faust's normal form (not when the inner amount varies: it is read at t - d)
        return delay(x.args[0], prim("+", x.args[1], d))
    if x.op == "prim" and x.name == "*" and x.args[0].rate < K_BLOCK:
        # Faust's normaliser takes a constant-rate left factor (a number, the sample rate)
        # out of a delay: (k * y)@d is k * (y@d), the same values; it decides which signal
        # has the delay line (a conditional one, in `signals.conditions`).
        return prim("*", x.args[0], delay(x.args[1], d))
    return _make("delay", (x, d), (), x.type, iv_union(x.interval, (0, 0)), K_SAMPLE)


def check_delay(x: Sig, d: Sig) -> None:
    """Faust's compile-time checks of a delay amount (faust-language.md §6.4), with our
    intervals: no known upper bound, or surely negative values, is an error. A lower bound
    below 0 is an error only when the interval is exact enough to trust (no recursion feeds
    `d`; inputs are [-1, 1] as in Faust); otherwise a negative amount is read as 0 at run
    time."""
    lo, hi = d.interval
    if d.op != "const" and (not math.isfinite(hi) or hi >= INT_MAX):
        raise DelayError(show(d), f"{show(x)} @ {show(d)}", lo, hi, unbounded=True)
    if hi < 0 or (lo < 0 and not _depends_on(d, ("recvar",))):
        raise DelayError(show(d), f"{show(x)} @ {show(d)}", lo, hi, unbounded=False)


class DelayError(FaustError):
    """A delay amount without a known upper bound, or with possible negative values."""

    def __init__(self, amount: str, expr: str, lo, hi, unbounded: bool):
        self.lo, self.hi, self.unbounded = lo, hi, unbounded
        super().__init__(self.render(amount, expr))

    def render(self, amount: str, expr: str) -> str:
        """The message with the delay amount and the delay expression shown as `amount`, `expr`."""
        if self.unbounded:
            return (f"can't compute the min and max values of {amount} used in delay "
                    f"expression {expr} (probably a recursive signal or an input; bound it, "
                    f"e.g. with min(N, max(0, d)))")
        return (f"possible negative values of {amount} used in delay expression {expr} "
                f"(its range is [{_num(self.lo)}, {_num(self.hi)}])")


def _num(v) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _depends_on(s: Sig, ops: tuple) -> bool:
    """Whether a node of kind `ops` is among `s` and its operands (tables included)."""
    seen, stack = set(), [s]
    while stack:
        n = stack.pop()
        if n.op in ops:
            return True
        for a in n.args:
            if id(a) not in seen:
                seen.add(id(a))
                stack.append(a)
    return False


def mem(x: Sig) -> Sig:
    return delay(x, int_const(1))


def prefix(a: Sig, x: Sig) -> Sig:
    t = union_type((a.type, x.type))
    a, x = to_type(a, t), to_type(x, t)
    return _make("prefix", (a, x), (), t, iv_union(a.interval, x.interval), K_SAMPLE)


def _table_size(size: Sig, what: str) -> int:
    if size.op != "const":
        raise FaustError(f"the size of {what} is not a compile-time constant: {show(size)}")
    n = f2i(size.value) if size.type == "real" else size.value
    if n <= 0:
        raise FaustError(f"the size of {what} must be positive, not {n}")
    if n > MAX_TABLE_SIZE:
        raise FaustError(f"the size of {what} ({n}) exceeds the limit of {MAX_TABLE_SIZE} "
                         f"elements")
    return n


def _check_init(init: Sig, what: str) -> None:
    """A table is filled before any sample is read: its content cannot use audio inputs."""
    if _depends_on(init, ("input",)):
        raise FaustError(f"the initial content of {what} depends on an audio input (a table "
                         f"is filled once, before any input arrives)")


def rdtable(size: Sig, init: Sig, ridx: Sig) -> Sig:
    """Read-only table: filled once with init[0..size-1] (own context from t=0); the read
    index is converted to int and clamped to [0, size-1]."""
    n = _table_size(size, "rdtable")
    _check_init(init, "rdtable")
    ridx = to_int(ridx)
    return _make("rdtable", (init, ridx), (n,), init.type, init.interval,
                 max(K_INIT, ridx.rate))


def rwtable(size: Sig, init: Sig, widx: Sig, wval: Sig, ridx: Sig) -> Sig:
    """Read-write table with the type of `init` (written values are cast to it); each
    sample writes wval at widx THEN reads ridx; indexes clamped to [0, size-1]."""
    n = _table_size(size, "rwtable")
    _check_init(init, "rwtable")
    wval = to_type(wval, init.type)
    return _make("rwtable", (init, to_int(widx), wval, to_int(ridx)), (n,), init.type,
                 iv_union(init.interval, wval.interval), K_SAMPLE)


def _delay_prim(x, d):
    return delay(x, d)


_STATEFUL = {
    "@": _delay_prim, "mem": mem, "prefix": prefix, "rdtable": rdtable, "rwtable": rwtable,
    "lowest": _simp_bound("lowest"), "highest": _simp_bound("highest"),
}


def ffun(name: str, rtype: str, argtypes: tuple, args: tuple) -> Sig:
    """A call of a C function of `primitives.FFUNS` (arguments converted to `argtypes`)."""
    cname = ffun_name(name)
    if cname not in FFUNS:
        raise FaustError(f"unknown foreign function '{cname}'")
    args = tuple(to_int(a) if t == "int" else to_real(a) for a, t in zip(args, argtypes))
    t = "int" if rtype == "int" else "real"
    rate = _rate(args) if args else K_SAMPLE   # a 0-ary call (arc4random) is not constant
    iv = (0, 1) if cname in ("isnan", "isinf", "isfinite") else FULL
    return _make("ffun", args, (cname, t, tuple(argtypes)), t, iv, rate)


def max_delay(d: Sig) -> Optional[int]:
    """The largest delay `d` can ask for (Faust: int(hi + 0.5)), None when unbounded."""
    if d.op == "const":
        return max(0, d.value)
    hi = d.interval[1]
    if not math.isfinite(hi) or hi >= INT_MAX:   # INT_MAX: a wrapped int, no real bound
        return None
    return max(0, int(hi + 0.5))


def sure_range(s: Sig, depth: int = 0) -> tuple:
    """Bounds (lo, hi) that hold for every value of the int signal `s` whatever its inputs
    and sliders do: from constants, and int `min`/`max` with them (as a delay amount clamped
    by the program itself is). Unlike `interval`, which assumes inputs in [-1, 1] and
    sliders in their ranges, nothing here is an assumption. (-inf, inf) when unknown."""
    none = (-math.inf, math.inf)
    if depth > 64 or s.type != "int":
        return none
    if s.op == "const":
        return (s.value, s.value)
    if s.op == "prim" and s.name in ("min", "max") and all(a.type == "int" for a in s.args):
        (alo, ahi), (blo, bhi) = (sure_range(a, depth + 1) for a in s.args)
        if s.name == "max":
            return (max(alo, blo), max(ahi, bhi))
        return (min(alo, blo), min(ahi, bhi))
    if s.op == "prim" and s.name == "select2":
        (alo, ahi), (blo, bhi) = (sure_range(a, depth + 1) for a in s.args[1:])
        return (min(alo, blo), max(ahi, bhi))
    return none


def needs_clamp(idx: Sig, size: int) -> bool:
    """Whether a table index may fall outside [0, size-1] (then Faust clamps it)."""
    lo, hi = idx.interval
    return not (lo >= 0 and hi <= size - 1)


# ---------------------------------------------------------------- AD support

def scatter(x: Sig, d: Sig, bound: int) -> Sig:
    """The transpose of `delay(., d)` in reversed time (see the node table): what a delay
    by d reads at t from x[t - d[t]], this sends from x[t] to t + d[t]. `bound` is the
    delay's own bound (the forward delay clamps d to [0, bound] too)."""
    if bound is None or bound > HISTORY_BOUND:
        raise FaustError("reverse mode: a delay without a known upper bound (or one above "
                         f"{HISTORY_BOUND} samples) that changes from sample to sample cannot "
                         "be transposed; bound it (e.g. min(d, 48000))")
    return _make("scatter", (to_real(x), to_int(d)), (int(bound),), "real", FULL, K_SAMPLE)


HISTORY_BOUND = 1 << 22   # as the back ends' whole-history limit


def adjtable(size: int, c: Sig, ridx: Sig, widx: Sig) -> Sig:
    """The transpose of `rwtable(size, init, widx, wval, ridx)` in reversed time: the
    cotangent of the value written at t (see the node table); indexes clamped to
    [0, size-1] as the table clamps them."""
    return _make("adjtable", (to_real(c), to_int(ridx), to_int(widx)), (int(size),), "real",
                 FULL, K_SAMPLE)


def placeholder(like: Sig) -> Sig:
    """A fresh leaf standing for `like` (same type, interval and rate) while a `Dual` box is
    differentiated (see `ad`): the AD pass seeds tangents on it, then `ad.substitute` puts
    `like` back. Placeholders never reach a schedule, interpreter or code generator."""
    return _make("placeholder", (), (next(_UID),), like.type, like.interval, like.rate)


def rebuild(s: Sig, args: tuple) -> Sig:
    """The node `s` with other operands, through the constructors (so constants fold and
    Faust's simplifications apply again). Not for recvar/proj (recursion is rebuilt by the
    caller, group by group) nor leaves."""
    op = s.op
    if op == "prim":
        return prim(s.name, *args)
    if op == "delay":
        return delay(*args)
    if op == "scatter":
        return scatter(args[0], args[1], s.attrs[0])
    if op == "adjtable":
        return adjtable(s.attrs[0], *args)
    if op == "prefix":
        return prefix(*args)
    if op == "bargraph":
        kind, label, groups, lo, hi = s.attrs
        return bargraph(kind, label, groups, lo, hi, args[0])
    if op == "rdtable":
        return rdtable(int_const(s.attrs[0]), *args)
    if op == "rwtable":
        return rwtable(int_const(s.attrs[0]), *args)
    if op == "ffun":
        name, rtype, argtypes = s.attrs
        return ffun(name, rtype, argtypes, tuple(args))
    raise TypeError(f"rebuild: cannot rebuild a {op!r} node")


# ---------------------------------------------------------------- plain data

_DATA_OPS = ("const", "ui", "prim", "ffun", "fconst", "fvar")


def to_data(roots: Sequence) -> Optional[list]:
    """A JSON-able description of the DAG of `roots` (nodes operands first, then the root
    indexes), or None when it holds a node kind other than constants, widgets, primitives and
    foreign functions (state, tables, recursion). `from_data` rebuilds the same signals."""
    order = topo_order(list(roots), follow_tables=True)
    if any(s.op not in _DATA_OPS for s in order):
        return None
    at = {id(s): k for k, s in enumerate(order)}
    nodes = [[s.op, [at[id(a)] for a in s.args], _plain(s.attrs), s.type] for s in order]
    return [nodes, [at[id(r)] for r in roots]]


def _plain(x):
    return [_plain(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tuple(x):
    return tuple(_tuple(v) for v in x) if isinstance(x, list) else x


def from_data(data: list) -> list:
    """The signals `to_data` described, rebuilt through the constructors."""
    nodes, roots = data
    built: list = []
    for op, args, attrs, type_ in nodes:
        xs = [built[k] for k in args]
        attrs = _tuple(attrs)
        if op == "const":
            s = const(attrs[0])
        elif op == "ui":
            s = ui(*attrs)
        elif op == "prim":
            s = prim(attrs[0], *xs)
        elif op == "ffun":
            s = ffun(attrs[0], attrs[1], attrs[2], tuple(xs))
        elif op == "fconst":
            s = fconst(attrs[0], type_)
        elif op == "fvar":
            s = fvar(attrs[0], type_)
        else:
            raise ValueError(f"from_data: cannot rebuild a {op!r} node")
        if s.type != type_:
            raise ValueError(f"from_data: a {op!r} node rebuilt as {s.type}, not {type_}")
        built.append(s)
    return [built[k] for k in roots]


# ---------------------------------------------------------------- walking

_TABLE_OPS = ("rdtable", "rwtable")


def deps(s: Sig) -> tuple[Sig, ...]:
    """Per-sample dependencies: the args, minus a table's init signal."""
    return s.args[1:] if s.op in _TABLE_OPS else s.args


def table_init(s: Sig) -> Sig:
    """The init signal of an rdtable/rwtable (run in its own context, from t=0)."""
    return s.args[0]


def post_order(roots: Iterable[Sig], kids: Callable, more_roots: Callable = lambda n: (),
               keep: Callable = lambda n: True) -> list[Sig]:
    """Iterative depth-first post-order (operands before users) of the nodes reachable from
    `roots` through `kids(node)`, restricted to nodes where `keep(node)`; `more_roots(node)`
    names nodes to walk afterwards as new roots (a RecVar's definitions). Deterministic:
    roots and kids left to right. Deep graphs are fine."""
    order: list[Sig] = []
    seen: set[int] = set()
    pending = list(roots)
    k = 0
    while k < len(pending):
        root = pending[k]
        k += 1
        if id(root) in seen or not keep(root):
            continue
        stack = [(root, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for kid in reversed(kids(node)):
                if id(kid) not in seen and keep(kid):
                    stack.append((kid, False))
            pending.extend(more_roots(node))
    return order


def _recvar_def(node: Sig) -> tuple:
    if node.op == "recvar":
        group, i = node.attrs
        return (group.defs[i],)
    return ()


def topo_order(roots: Iterable[Sig], follow_tables: bool = False) -> list[Sig]:
    """Every node needed per sample to compute `roots`, operands before users.

    Reaching `RecVar(g, i)` makes `g.defs[i]` a root too (its value must be computed each
    sample to become the next sample's RecVar). With `follow_tables`, table init signals are
    walked as well (to find widgets, bargraphs).
    """
    kids = (lambda n: n.args) if follow_tables else deps
    return post_order(roots, kids, _recvar_def)


def recvars(order: Iterable[Sig]) -> list[Sig]:
    """The RecVar nodes of a schedule: the recursion state to carry between samples."""
    return [s for s in order if s.op == "recvar"]


def strip_metadata(label: str) -> str:
    """A label without its `[key:value]` metadata (and the spaces around them)."""
    return re.sub(r"\s*\[[^\]]*\]\s*", " ", label).strip() if "[" in label else label


def widget_path(s: Sig, root: str = "") -> str:
    """Faust's full path of a ui/bargraph node: '/root/group/label' (metadata stripped)."""
    kind, label, groups = s.attrs[0], s.attrs[1], s.attrs[2]
    parts = ([root] if root else []) + [strip_metadata(g[1]) for g in groups]
    return "/" + "/".join(parts + [strip_metadata(label)])


# ---------------------------------------------------------------- printing

def show(s: Sig, depth: int = 3) -> str:
    """A short readable rendering (operands to `depth` levels) for messages and debugging."""
    op = s.op
    if op == "const":
        return repr(s.value)
    if op == "input":
        return f"in{s.attrs[0]}"
    if op in ("ui", "bargraph"):
        return f"{s.attrs[0]}({s.attrs[1]!r})" + (f"[{show(s.args[0], depth - 1)}]"
                                                   if s.args and depth > 0 else "")
    if op in ("recvar", "proj"):
        g, i = s.attrs
        return f"{'rv' if op == 'recvar' else 'proj'}({g!r},{i})"
    head = s.name if op in ("prim", "ffun", "fconst", "fvar") else op
    if not s.args:
        return head
    if depth <= 0:
        return f"{head}(…)"
    return f"{head}({', '.join(show(a, depth - 1) for a in s.args)})"


# the UI order lives in `order` (it needs the generator's visit order); S.controls etc.
from . import order as _order   # noqa: E402
from .order import (bargraphs, controls, generation_order, in_generation_order,  # noqa: E402,F401
                    shares_labels, ui_order)
_order._WALK.update(topo_order=topo_order, post_order=post_order)
