"""Forward-mode automatic differentiation over signals (JVP), and the `Dual` box.

    jvp(outputs, seeds, nvars, mode) -> tangents of the outputs along nvars directions

A *tangent* is a signal, or `None` when it is structurally zero: rules skip such terms (as
Faust's simplifier drops products by a constant 0), so 0*inf or 0*NaN never appears where the
true derivative is finite. Every primitive's rule is the `jvp` column of its row in
`primitives` (`seed_jvp` for the seed diff.lib's variants); this module only walks graphs.

Invariants:
* Only nodes that depend on a seed get a tangent: a bit mask per node says along which
  directions it may be non-zero (a fixpoint through recursion groups), everything else is
  zero without being visited by a rule.
* Recursion: the tangent of a group G is a second group T(G) whose definitions are the
  tangents of G's definitions (one per definition and direction that may be non-zero); it
  reads G's RecVars for the values and its own for the tangents. Together they are the
  "bigger group" of the design (docs/architecture.md); G itself stays as it is, shared with
  whoever else uses it. State stays constant in time; the cost is (1 + live tangents) times.
* Delays: in "auto" mode (x@d)' = x'@d (int(d) is piecewise constant); in "seed" mode the
  seed's time-difference rule x'@d - d'(y - y[n-1]) (see primitives).
* `Dual(E, N, mode)` (boxes.Dual): E is propagated on its input *values*, then JVP runs with
  the incoming tangents as seeds. A value that arrives with a non-zero tangent is first
  replaced by a fresh placeholder (`signals.placeholder`), because the same signal may also
  appear inside E (a slider used both as the input and inside E must not get the input's
  tangent there); `substitute` puts the real values back at the end. A single primitive
  (`diff(+, N)`, ...) skips the graph walk: its rule is applied directly to the inputs.
* No new node kind reaches the backends: placeholders are all substituted away.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from ..frontend import boxes as B
from ..signals import ir as S
from ..errors import FaustError
from ..core.primitives import FFUN_JVP, PRIMITIVES

Tan = Optional[S.Sig]   # None: structurally zero


# ---------------------------------------------------------------- the tangent algebra

def _z(x: Tan) -> S.Sig:
    return S.const(0) if x is None else x


class Algebra:
    """What a JVP rule (primitives, "derivative rules") builds tangents with: the arithmetic
    skips structurally zero (None) terms."""

    @staticmethod
    def add(a: Tan, b: Tan) -> Tan:
        if a is None:
            return b
        if b is None:
            return a
        return S.prim("+", a, b)

    @staticmethod
    def sub(a: Tan, b: Tan) -> Tan:
        if b is None:
            return a
        if a is None:
            return S.prim("-", S.const(0), b)
        return S.prim("-", a, b)

    @staticmethod
    def neg(a: Tan) -> Tan:
        return None if a is None else S.prim("-", S.const(0), a)

    @staticmethod
    def mul(a: Tan, b: Tan) -> Tan:
        if a is None or b is None:
            return None
        return S.prim("*", a, b)

    @staticmethod
    def div(a: Tan, b: S.Sig) -> Tan:
        return None if a is None else S.prim("/", a, b)

    @staticmethod
    def p(name: str, *args: S.Sig) -> S.Sig:
        return S.prim(name, *args)

    @staticmethod
    def c(v) -> S.Sig:
        return S.const(v)

    @staticmethod
    def delay(x: Tan, d: S.Sig) -> Tan:
        return None if x is None else S.delay(x, d)

    @staticmethod
    def prefix(a: Tan, x: Tan) -> Tan:
        if a is None and x is None:
            return None
        return S.prefix(_z(a), _z(x))

    @staticmethod
    def select(s: S.Sig, *branches: Tan) -> Tan:
        if all(b is None for b in branches):
            return None
        name = "select2" if len(branches) == 2 else "select3"
        return S.prim(name, s, *[_z(b) for b in branches])

    @staticmethod
    def ffun(name: str, *args: S.Sig) -> S.Sig:
        """A double foreign function of primitives.FFUNS (for the rules of FFUN_JVP)."""
        return S.ffun(name, "real", ("float",) * len(args), args)

    @staticmethod
    def table(y: S.Sig, args: tuple) -> Tan:
        """The tangent twin of table y: args as the primitive's (size, init', ...)."""
        if y.op == "rdtable":
            size, dinit, ridx = args
            return None if dinit is None else S.rdtable(size, dinit, ridx)
        size, dinit, widx, dwval, ridx = args
        return S.rwtable(size, S.to_real(_z(dinit)), widx, _z(dwval), ridx)


A = Algebra()


def _real(t: Tan) -> Tan:
    return t if t is None or t.type == "real" else S.to_real(t)


def rule_for(name: str, mode: str) -> Callable:
    row = PRIMITIVES[name]
    rule = row.seed_jvp if mode == "seed" and row.seed_jvp is not None else row.jvp
    if rule is None:
        raise FaustError(f"no derivative rule for the primitive '{name}'")
    return rule


# ---------------------------------------------------------------- graph walks

def _order(roots: Sequence[S.Sig], floor: int) -> list[S.Sig]:
    """Post-order of the nodes reachable from roots whose uid >= floor (older nodes cannot
    depend on newer seeds), through every operand (table inits too). A RecVar is a leaf that
    makes its group's definitions roots; a Proj depends on ALL its group's definitions (a
    rebuilt group is defined as a whole before its projections are made)."""
    def kids(node):
        if node.op == "proj":
            return node.attrs[0].defs
        return () if node.op == "recvar" else node.args

    def more_roots(node):
        return node.attrs[0].defs if node.op == "recvar" else ()

    return S.post_order(roots, kids, more_roots, lambda n: n.uid >= floor)


def _masks(order: list[S.Sig], leaf: dict, whole_groups: bool) -> dict:
    """id(node) -> bit mask of the directions along which it depends on the `leaf` masks.
    A RecVar gets its definition's mask (`whole_groups`: the union over its group), found by
    iterating to a fixpoint (masks only grow)."""
    rv: dict = {}
    while True:
        m: dict = {}
        for node in order:
            op = node.op
            if op == "recvar":
                v = rv.get(id(node), 0)
            elif op == "proj" and whole_groups:
                v = 0
                for d in node.attrs[0].defs:
                    v |= m.get(id(d), 0)
            elif op == "proj":
                v = m.get(id(node.args[0]), 0)
            else:
                v = leaf.get(id(node), 0)
                for a in node.args:
                    v |= m.get(id(a), 0)
            m[id(node)] = v
        changed = False
        for node in order:
            if node.op != "recvar":
                continue
            group, i = node.attrs
            defs = group.defs if whole_groups else (group.defs[i],)
            v = 0
            for d in defs:
                v |= m.get(id(d), 0)
            if v != rv.get(id(node), 0):
                rv[id(node)] = v
                changed = True
        if not changed:
            return m


def _bits(mask: int):
    d = 0
    while mask:
        if mask & 1:
            yield d
        mask >>= 1
        d += 1


# ---------------------------------------------------------------- JVP

def jvp(outputs: Sequence[S.Sig], seeds: dict, nvars: int, mode: str = "auto",
        floor: int = 0) -> list[list[Tan]]:
    """Tangents of `outputs` along `nvars` directions.

    seeds -- {node: [tangent of that node along each direction (Sig or None)]}: the
             independent variables (placeholders of a Dual's inputs, sliders, ...)
    mode  -- "auto" (true derivatives) or "seed" (the seed diff.lib's rules where it has its
             own: `/`, `tan`, `int`, `@`)
    floor -- nodes with a smaller uid cannot depend on the seeds (an optimisation: pass the
             smallest seed uid when the seeds are fresh placeholders)
    Returns one list of nvars tangents per output (None: structurally zero).
    """
    by_id = {id(k): v for k, v in seeds.items()}
    leaf = {}
    for node, ts in seeds.items():
        mask = 0
        for d, t in enumerate(ts):
            if t is not None:
                mask |= 1 << d
        leaf[id(node)] = mask
    order = _order(outputs, floor)
    masks = _masks(order, leaf, whole_groups=False)
    tan: dict = {}          # id(node) -> list of nvars tangents
    tgroups: dict = {}      # id(group) -> (tangent group, {(i, d): index}, group)
    none = [None] * nvars

    def t_of(node) -> list:
        return tan.get(id(node), none)

    def tangent_group(group: S.RecGroup):
        hit = tgroups.get(id(group))
        if hit is None:
            index = {}
            for i, d in enumerate(group.defs):
                for dirn in _bits(masks.get(id(d), 0)):
                    index[(i, dirn)] = len(index)
            hit = (S.RecGroup(["real"] * len(index), share=False), index, group)
            tgroups[id(group)] = hit
        return hit

    for node in order:
        mask = masks.get(id(node), 0)
        if not mask:
            continue
        op = node.op
        if id(node) in by_id:
            ts = list(by_id[id(node)])
        elif op == "recvar":
            group, i = node.attrs
            tg, index, _ = tangent_group(group)
            ts = [tg.var(index[(i, d)]) if (i, d) in index else None for d in range(nvars)]
        elif op == "proj":
            ts = t_of(node.args[0])
        elif op == "bargraph":
            ts = t_of(node.args[0])
        else:
            ts = _node_tangents(node, mask, t_of, nvars, mode)
        tan[id(node)] = ts

    for tg, index, group in tgroups.values():
        defs = [None] * len(index)
        for (i, d), k in index.items():
            defs[k] = S.to_real(_z(t_of(group.defs[i])[d]))
        tg.define(defs)
    return [list(t_of(y)) for y in outputs]


def _unwrap_int(d: S.Sig) -> S.Sig:
    """The delay amount before the int conversion `delay` applies to it."""
    return d.args[0] if d.op == "prim" and d.name == "int" else d


def _node_tangents(node: S.Sig, mask: int, t_of, nvars: int, mode: str) -> list:
    op = node.op
    if op == "prim":
        rule = rule_for(node.name, mode)
        x = node.args
        dxs = [t_of(a) for a in x]
    elif op == "delay":
        rule = rule_for("@", mode)
        x = node.args
        dxs = [t_of(x[0]), t_of(_unwrap_int(x[1]))]
    elif op == "prefix":
        rule, x = rule_for("prefix", mode), node.args
        dxs = [t_of(a) for a in x]
    elif op in ("rdtable", "rwtable"):
        rule = rule_for(op, mode)
        x = (S.int_const(node.attrs[0]),) + node.args
        dxs = [[None] * nvars] + [t_of(a) for a in node.args]
    elif op == "ffun":
        rule = FFUN_JVP.get(node.attrs[0])
        if rule is None:
            raise FaustError(f"no derivative rule for the foreign function '{node.attrs[0]}'")
        x = node.args
        dxs = [t_of(a) for a in x]
    else:
        raise FaustError(f"no derivative rule for a '{op}' signal")
    out = [None] * nvars
    for d in _bits(mask):
        dx = tuple(t[d] for t in dxs)
        if all(t is None for t in dx):
            continue
        out[d] = _real(rule(x, dx, node, A))
    return out


# ---------------------------------------------------------------- substitution

def substitute(roots: Sequence[S.Sig], mapping: dict, floor: int = 0) -> list[S.Sig]:
    """`roots` with every node of `mapping` (by identity) replaced by its image, every node
    depending on one rebuilt through the constructors (so constants fold again), recursion
    groups rebuilt as a whole."""
    order = _order(roots, floor)
    leaf = {id(k): 1 for k in mapping}
    masks = _masks(order, leaf, whole_groups=True)
    new: dict = {id(k): v for k, v in mapping.items()}
    groups: dict = {}   # id(old group) -> (new group, old group)

    def get(node):
        return new.get(id(node), node)

    def new_group(group):
        hit = groups.get(id(group))
        if hit is None:
            hit = groups[id(group)] = (S.RecGroup(group.types, share=False), group)
        return hit[0]

    def define(group):
        g = new_group(group)
        if g.defs is None:
            g.define(S.to_type(get(d), t) for d, t in zip(group.defs, group.types))
        return g

    for node in order:
        if id(node) in new or not masks.get(id(node), 0):
            continue
        op = node.op
        if op == "recvar":
            group, i = node.attrs
            new[id(node)] = new_group(group).var(i)
        elif op == "proj":
            group, i = node.attrs
            new[id(node)] = define(group).proj(i)
        else:
            new[id(node)] = S.rebuild(node, tuple(get(a) for a in node.args))
    for g, old in list(groups.values()):
        if g.defs is None:
            define(old)
    return [get(r) for r in roots]


# ---------------------------------------------------------------- the Dual box

def _nonzero(t: S.Sig) -> Tan:
    return None if S.is_const(t, 0) else t


def dual_outputs(box: B.Dual, inputs: list, propagate: Callable) -> list[S.Sig]:
    """The output signals of `Dual(E, N, mode)` fed with `inputs` (duals, value first).

    propagate(E, signals) -> E's output signals (the caller's propagation, same scope)."""
    from ..frontend.arity import arity
    n, mode, inner = box.nvars, box.mode, box.box
    k = n + 1
    ins, outs = arity(inner)
    vals = [inputs[j * k] for j in range(ins)]
    tans = [[_nonzero(inputs[j * k + 1 + d]) for d in range(n)] for j in range(ins)]

    if isinstance(inner, B.Wire):
        return list(inputs)
    if isinstance(inner, B.Prim):
        # One primitive: its rule, applied directly to the dual inputs (no graph walk).
        y = S.prim(inner.name, *vals)
        rule = rule_for(inner.name, mode)
        ts = []
        for d in range(n):
            dx = tuple(t[d] for t in tans)
            ts.append(None if all(t is None for t in dx) else _real(rule(vals, dx, y, A)))
        return [y] + [_z(t) for t in ts]

    seeds = {}
    args = []
    for v, ts in zip(vals, tans):
        if any(t is not None for t in ts):
            p = S.placeholder(v)
            seeds[p] = ts
            args.append(p)
        else:
            args.append(v)   # no tangent to seed: the value itself is safe to share
    ys = propagate(inner, args)
    if not seeds:
        out = []
        for y in ys:
            out += [y] + [S.const(0)] * n
        return out
    floor = min(p.uid for p in seeds)
    tys = jvp(ys, seeds, n, mode, floor)
    flat = list(ys) + [t for row in tys for t in row if t is not None]
    mapping = {p: v for p, v in zip(args, vals) if p is not v}
    done = iter(substitute(flat, mapping, floor))
    ys = [next(done) for _ in ys]
    out = []
    for y, row in zip(ys, tys):
        out.append(y)
        out += [S.const(0) if t is None else next(done) for t in row]
    return out
