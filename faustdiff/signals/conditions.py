"""`control` and `enable`: computation that happens only while a condition holds.

In Faust 2.54.9, `enable(x, y)` is `control(x * y, y != 0)` and `control(x, y)` is
`control(x, y != 0)` (the propagation rewrites them so, see `ir.prim`). The compiler then
annotates every signal with the condition under which its value is needed (its
"condition", a disjunction of conjunctions of the `y != 0` signals of the enclosing
controls: an output needs everything always; `control(x, c)` under condition C needs c
under C and x under C and c) and computes a signal only while its condition holds:

* a signal's value, when not computed, is the one it had the last time it was (0 before
  that): this is what `control` returns (the value of x itself; a signal needed outside
  the control too is computed always, and control is then just x);
* the state of a recursion whose condition does not hold is not updated (its variables
  keep their values); a delay line of a signal x is written (and its registers shifted)
  only while x's condition holds, so `x@k` (k <= 16, Faust's copy-delay threshold) reads
  the k-th last value x had when it was computed;
* bargraphs show the value of their last update.

`apply(outputs)` gives signals with that meaning expressed in plain signals, so the
interpreter, the code generator and the AD passes need nothing new: a held value is a
recursion `h = select2(C, h', x)`, a conditional recursion's definitions are
`select2(C, var, def)`, a conditional delay line is a chain of such registers.
A longer or variable delay of a conditional signal is Faust's ring buffer: slots indexed by
the running sample count, written only while the condition holds (a read may find what a
slot held one buffer length earlier): an `rwtable` of the buffer's size plus one slot that
takes the writes that do not happen. Not modelled: a delay without a known bound, `rwtable`
writes and `prefix` under a condition (they happen every sample).
"""
from __future__ import annotations

from typing import Sequence

from . import ir as S

MAX_COPY_DELAY = 16          # faust -mcd: constant delays up to this are shift registers

TRUE = frozenset([frozenset()])   # the condition of an output: always


def _or(a: frozenset, b: frozenset) -> frozenset:
    """a or b, two disjunctions of conjunctions (frozensets of condition signals)."""
    if a == b or b <= a:
        return a
    if TRUE in (a, b):
        return TRUE
    u = a | b
    return frozenset(c for c in u if not any(d < c for d in u))


def _and(a: frozenset, cnd: S.Sig) -> frozenset:
    return frozenset(c | {cnd} for c in a)


def is_control(s: S.Sig) -> bool:
    return s.op == "prim" and s.name == "control"


def _kids(n: S.Sig) -> tuple:
    """Per-sample operands; a projection needs its whole group (all definitions)."""
    if n.op == "proj":
        return n.attrs[0].defs
    return S.deps(n)


def _more(n: S.Sig) -> tuple:
    return n.attrs[0].defs if n.op == "recvar" else ()


def annotate(outputs: Sequence[S.Sig]) -> tuple[dict, dict]:
    """The condition of every node (id -> DNF) and of every recursion group (id -> DNF),
    as Faust's conditionAnnotation computes them (a fixpoint: a node reached again under a
    new condition is re-annotated with the disjunction)."""
    cond: dict = {}
    gcond: dict = {}
    stack = [(s, TRUE) for s in reversed(list(outputs))]
    while stack:
        n, nc = stack.pop()
        old = cond.get(id(n))
        if old is not None:
            new = _or(old, nc)
            if new == old:
                continue
            nc = new
        cond[id(n)] = nc
        if is_control(n):
            x, y = n.args
            stack.append((y, nc))
            stack.append((x, _and(nc, y)))
        elif n.op in ("recvar", "proj"):
            g = n.attrs[0]
            gold = gcond.get(id(g))
            gnew = nc if gold is None else _or(gold, nc)
            if gnew != gold:
                gcond[id(g)] = gnew
                stack.extend((d, gnew) for d in g.defs)
        else:
            stack.extend((a, nc) for a in S.deps(n))
    return cond, gcond


def base_of(x: S.Sig) -> tuple:
    """(the signal whose delay line x@d reads, samples to add to d): a recursion variable
    is its projection one sample earlier."""
    return (x.attrs[0].proj(x.attrs[1]), 1) if x.op == "recvar" else (x, 0)


def apply(outputs: Sequence[S.Sig]) -> list[S.Sig]:
    """`outputs` with every `control` expressed in plain signals (see the module doc);
    unchanged (the same objects) when there is none."""
    outputs = list(outputs)
    order = S.post_order(outputs, _kids, _more)
    if not any(is_control(n) for n in order):
        return outputs
    cond, gcond = annotate(outputs)

    def cond_of(x: S.Sig) -> frozenset:
        if x.op in ("recvar", "proj"):
            return gcond.get(id(x.attrs[0]), TRUE)
        return cond.get(id(x), TRUE)

    # the delay lines of conditional signals: Faust's copy lines (every delay a constant,
    # the longest <= MAX_COPY_DELAY: `longest`) or ring buffers (`ring`: the longest delay)
    longest: dict = {}
    ring: dict = {}
    copy: dict = {}     # every delayed signal -> is its line a copy line
    for n in order:
        if n.op == "delay":
            x, d = n.args
            base, extra = base_of(x)
            copy[id(base)] = copy.get(id(base), True) and d.op == "const" and \
                d.value + extra <= MAX_COPY_DELAY
            if cond_of(base) == TRUE:
                continue
            m = S.max_delay(d)
            m = None if m is None else m + extra
            if d.op != "const" or m is None or m > MAX_COPY_DELAY or id(base) in ring:
                ring[id(base)] = None if m is None or ring.get(id(base), 0) is None else \
                    max(m, ring.get(id(base), 0), longest.pop(id(base), 0))
            elif m > 0:
                longest[id(base)] = max(longest.get(id(base), 0), m)
    ring = {k: v for k, v in ring.items() if v is not None}   # unbounded: a plain delay

    # which nodes change: controls, conditional groups, bargraphs and delay lines, and
    # everything that reads them (a fixpoint: recursion reads back through RecVars)
    changed: set = set()
    gchanged: set = {gid for gid, c in gcond.items() if c != TRUE}
    grow = True
    while grow:
        grow = False
        for n in order:
            if id(n) in changed:
                continue
            hit = False
            if n.op in ("recvar", "proj"):
                g = n.attrs[0]
                if id(g) not in gchanged and any(id(d) in changed for d in g.defs):
                    gchanged.add(id(g))
                hit = id(g) in gchanged
            elif is_control(n) or (n.op == "bargraph" and cond_of(n) != TRUE):
                hit = True
            elif n.op == "delay":
                x = n.args[0]
                hit = id(base_of(x)[0]) in longest or id(base_of(x)[0]) in ring
            if hit or any(id(a) in changed for a in S.deps(n)):
                changed.add(id(n))
                grow = True

    new: dict = {}
    groups: dict = {}       # id(old group) -> (new group, old group)
    csig: dict = {}         # condition -> its signal
    holds: dict = {}
    chains: dict = {}

    def signal(c: frozenset) -> S.Sig:
        """The 0/1 signal of a condition (disjunction of conjunctions)."""
        hit = csig.get(c)
        if hit is None:
            terms = []
            for conj in sorted(c, key=lambda k: sorted(x.uid for x in k)):
                xs = [get(x) for x in sorted(conj, key=lambda x: x.uid)]
                acc = xs[0]
                for x in xs[1:]:
                    acc = S.prim("&", acc, x)
                terms.append(acc)
            acc = terms[0]
            for t in terms[1:]:
                acc = S.prim("|", acc, t)
            hit = csig[c] = acc
        return hit

    def hold(x: S.Sig, c: frozenset) -> S.Sig:
        """x while c holds, else the value x had last (0 at first)."""
        if c == TRUE:
            return x
        key = (id(x), c)
        hit = holds.get(key)
        if hit is None:
            g = S.RecGroup([x.type])
            g.define([S.held(signal(c), g.var(0), x)])
            hit = holds[key] = g.proj(0)
        return hit

    def line_read(base: S.Sig, k: int) -> S.Sig:
        """base@k from its copy line: registers shifted only while base's condition holds,
        so base@k is the k-th last value base had when computed (k >= 1). The line of a
        recursion's projection starts at its (held) variable, base@1: the definitions may
        read the line, they cannot read the projection."""
        rec = base.op == "proj"
        if rec and k == 1:
            return new_group(base.attrs[0]).var(base.attrs[1])
        hit = chains.get(id(base))
        if hit is None:
            n = longest[id(base)] - rec
            c = signal(cond_of(base))
            first = new_group(base.attrs[0]).var(base.attrs[1]) if rec else get(base)
            g = S.RecGroup([base.type] * n)
            g.define([S.held(c, g.var(0), first)] +
                     [S.held(c, g.var(j), g.var(j - 1)) for j in range(1, n)])
            hit = chains[id(base)] = g
        return hit.var(k - 1 - rec)

    def counter() -> S.Sig:
        """t, the samples since reset (Faust's IOTA)."""
        if "t" not in chains:
            g = S.RecGroup(["int"])
            g.define([S.prim("+", g.var(0), S.int_const(1))])
            chains["t"] = g.var(0)
        return chains["t"]

    def ring_read(base: S.Sig, d: S.Sig, extra: int) -> S.Sig:
        """base@(d + extra) from Faust's ring buffer of base: N = 2^k > the longest delay
        slots indexed by t, written only while base's condition holds (a read of a slot
        not written since reads what it held before)."""
        m = ring[id(base)]
        size = 1
        while size < m + 1:
            size *= 2
        key = ("ring", id(base))
        if key not in chains:
            c = signal(cond_of(base))
            at = S.prim("&", counter(), S.int_const(size - 1))
            if base.op == "proj":
                # written one sample late, from the (held) variable: the definitions may
                # read the line, they cannot read the projection
                x = new_group(base.attrs[0]).var(base.attrs[1])
                c = S.delay(c, S.int_const(1))
                at = S.prim("&", S.prim("+", counter(), S.int_const(size - 1)),
                            S.int_const(size - 1))
            else:
                x = get(base)
            chains[key] = (S.prim("select2", c, S.int_const(size), at), x)
        widx, x = chains[key]
        d = S.prim("+", S.to_int(d), S.int_const(extra)) if extra else S.to_int(d)
        if d.op != "const":
            d = S.prim("max", S.int_const(0), S.prim("min", d, S.int_const(m)))
        ridx = S.prim("&", S.prim("-", counter(), d), S.int_const(size - 1))
        return S.rwtable(S.int_const(size + 1), S.zero(x.type), widx, x, ridx)

    def new_group(g) -> S.RecGroup:
        hit = groups.get(id(g))
        if hit is None:
            hit = groups[id(g)] = (S.RecGroup(g.types), g)
        return hit[0]

    def define(g) -> S.RecGroup:
        h = new_group(g)
        if h.defs is None:
            c = gcond.get(id(g), TRUE)
            defs = [S.to_type(get(d), t) for d, t in zip(g.defs, g.types)]
            if c != TRUE:
                defs = [S.held(signal(c), h.var(i), d) for i, d in enumerate(defs)]
            h.define(defs, ("cond", g.tag))   # stays apart from g's unsimplified twins
        return h

    def get(n: S.Sig) -> S.Sig:
        """The node n means after the rewrite (built on demand, operands first)."""
        hit = new.get(id(n))
        if hit is not None:
            return hit
        op = n.op
        if id(n) not in changed and not (op in ("recvar", "proj") and id(n.attrs[0]) in gchanged):
            return n
        if op == "recvar":
            g, i = n.attrs
            r = new_group(g).var(i)
        elif op == "proj":
            g, i = n.attrs
            r = define(g).proj(i)
        elif is_control(n):
            # Faust's control is x's variable: a computed value kept while not computed
            # (a temporary, or a recursion's state), but the live registers of a short
            # delay line, and control-rate values (computed outside the sample loop)
            x = n.args[0]
            live = x.rate < S.K_SAMPLE or x.op in ("proj", "recvar") or (
                x.op == "delay" and copy.get(id(base_of(x.args[0])[0]), False))
            r = S.to_type(get(x) if live else hold(get(x), cond_of(x)), n.type)
        elif op == "bargraph" and cond_of(n) != TRUE:
            kind, label, grp, lo, hi = n.attrs
            r = S.bargraph(kind, label, grp, lo, hi, hold(get(n.args[0]), cond_of(n)))
        elif op == "delay" and id(base_of(n.args[0])[0]) in ring:
            base, extra = base_of(n.args[0])
            r = ring_read(base, get(n.args[1]), extra)
        elif op == "delay" and n.args[1].op == "const" and id(base_of(n.args[0])[0]) in longest:
            base, extra = base_of(n.args[0])
            k = n.args[1].value + extra
            r = line_read(base, k) if k > 0 else get(n.args[0])
        else:
            r = S.rebuild(n, tuple(get(a) for a in n.args))
        new[id(n)] = r
        return r

    result = [get(s) for s in outputs]
    for h, old in list(groups.values()):
        if h.defs is None:
            define(old)
    return result
