"""Faust's unsimplified signal terms, carried beside the simplified signals by `propagate`.

Faust 2.54.9 names a recursion by its term *as propagated*, before the simplifier runs: two
recursions whose definitions become equal only once simplified (`x * 1` and `x`, a route's
`0 + x` and `x`, `x + 0`, `x @ 0`, `select2(0, x, y)` and `x`) are two recursions, with two
copies of the bargraphs they feed. Our constructors simplify at once, so `propagate` carries,
beside each simplified `Sig`, the term Faust's propagation built, and `RecGroup.define` keys a
group by it too (`group_tag`).

A value of propagation is either
* a `Sig` ("plain"): its raw term is the Sig itself read literally (its operands plain too), or
* a `Raw`: the simplified signal `sig` plus the node (op, attrs, args) Faust built, whose args
  are values again.

Invariants:
* Canonical: equal raw terms are the same object. `Raw` nodes are interned by (sig, op, attrs,
  args), and `node` never makes a Raw that reads as its own plain `sig` (same op, attrs and
  plain args): it returns the Sig. So identity of values is equality of Faust's terms, and
  the propagation memo, keyed by identities, tells them apart as Faust's does.
* The vocabulary is the Sig one (a primitive is ("prim", (name,), args), a delay
  ("delay", (), (x, d)), a bargraph its Sig attrs); where Faust's tree has no Sig
  counterpart (`mem`, a table, a route's `0 + x`) the node differs from its sig's, which is
  enough: only equality matters.
* `free` (as `Sig.free`): the groups whose RecVars the raw term reads. A group's raw term may
  read groups its simplified one does not (`y * 0`): `RecGroup.raw_free`. Its projections are
  plain Sigs only when the two agree; otherwise a Raw ("proj", (group, i)) carries the wider
  set, so that plain values always have exact `free` sets.
* Values never reach anything but `propagate` (and `group_tag`): its results are plain Sigs.
"""
from __future__ import annotations

import weakref

from . import ir as S


class Raw:
    """A raw term whose simplified value is `sig` (see the module docstring)."""
    __slots__ = ("sig", "op", "attrs", "args", "free", "__weakref__")

    def __init__(self, sig, op, attrs, args, free):
        self.sig, self.op, self.attrs, self.args, self.free = sig, op, attrs, args, free

    def __repr__(self) -> str:
        return f"raw:{self.op}{self.attrs}({', '.join(map(repr, self.args))}) = {self.sig!r}"


_RAWS: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


def sig_of(v):
    """The simplified signal of a value."""
    return v.sig if v.__class__ is Raw else v


def sigs_of(vs) -> list:
    return [v.sig if v.__class__ is Raw else v for v in vs]


def is_plain(v) -> bool:
    return v.__class__ is not Raw


def node(sig: S.Sig, op: str, attrs: tuple, args: tuple):
    """The value whose raw term is (op, attrs, args) and whose simplified signal is `sig`."""
    if (op == sig.op and args == sig.args and attrs == sig.attrs
            and all(a.__class__ is not Raw for a in args)):
        return sig
    return _intern(sig, op, attrs, args, S._free_of(args))


def _intern(sig, op, attrs, args, free):
    key = (sig, op, S._akey(attrs), args)
    hit = _RAWS.get(key)
    if hit is None:
        hit = _RAWS[key] = Raw(sig, op, attrs, args, free)
    return hit


# Faust's trees of the stateful primitives that have a Sig of the same shape: a plain
# `x @ d` is the delay node itself (`mem` is Faust's own node, not `x @ 1`)
_OPS = {"@": ("delay", ()), "prefix": ("prefix", ())}


def prim(name: str, sig: S.Sig, args: tuple):
    """The value of primitive `name` applied to the values `args`, simplified to `sig`.
    Faust folds a primitive of one or two inputs that are all numbers while propagating."""
    if len(args) <= 2 and all(a.__class__ is not Raw and a.op == "const" for a in args) \
            and sig.op == "const":
        return sig
    op, attrs = _OPS.get(name, ("prim", (name,)))
    return node(sig, op, attrs, tuple(args))


def add(a, b):
    """a + b of two values (a merge's or a route's sum: Faust's raw `sigAdd`)."""
    return node(S.prim("+", sig_of(a), sig_of(b)), "prim", ("+",), (a, b))


def route_sum(prev, x):
    """A route output receiving x: Faust's `0 + x` (then `(0 + x) + y`), whose simplified
    signal is x (then x + y)."""
    if prev is None:
        return node(sig_of(x), "prim", ("+",), (S.int_const(0), x))
    return add(prev, x)


# ---------------------------------------------------------------- recursion groups

def rec_outputs(group: S.RecGroup, ys: list, sigs: list) -> list:
    """The values of `A ~ B`'s outputs: `sigs` (the projections, then A's other outputs
    renamed onto the canonical group) with Faust's raw terms: an output whose raw term reads
    no recursion at all is that term (Faust's propagation does not project it), the others
    projections of the canonical group (plain when its raw and simplified reads agree)."""
    g = group.canonical
    plain = g.raw_free == g.free
    out = []
    for i, (y, s) in enumerate(zip(ys, sigs)):
        if not y.free:
            out.append(y)
        elif plain and i < len(group.types):
            out.append(s)
        else:
            out.append(_intern(s, "proj", (g, i), (), g.raw_free))
    return out


def group_tag(group: S.RecGroup, ys: list) -> tuple:
    """Records A's output values as the group's raw term (`group.raw`, `group.raw_free`) and
    returns its key: as `ir._group_key`, over the raw terms (nested groups' raw terms walked,
    their RecVars and projections numbered, everything read from outside by identity)."""
    group.raw = tuple(ys)
    group.raw_free = S._free_of(ys) - {group}

    def kids(n):   # (a raw projection has no operand; a Sig's is its definition)
        return () if n.op in ("recvar", "proj") else n.args

    def terms(h):
        return (h.raw if h.raw is not None else h.defs) or ()

    key, _ = S.canonical_key(group, group.raw, lambda h: h.raw_free, terms, kids)
    return ("raw",) + key
