"""The order of a program's widgets: Faust's UI order (labels sorted within each group) with
ties between equal labels broken by the order Faust's code generator compiles the signals.

Faust 2.54.9 inserts each widget into its folder's list when the code generator first
compiles it (`addUIWidget`), after the items whose labels compare less than or equal to its
own (strcmp of the raw label). So widgets sharing a label (the six `bias` bargraphs of a
faust-ddsp network) come in compile order, which `generation_order` reproduces from the
generator's visit of the signals (InstructionsCompiler::CS, compiled with g++):

* outputs left to right; a node after its operands (a bargraph registers after its value);
* an infix operator's operands right to left (`genBinopInst(op, CS(a), CS(b))`: g++
  evaluates those call arguments from the last); every other primitive, foreign function,
  select, delay (value, then amount) and prefix left to right;
* `attach(x, y)` and `control(x, y)`: y, then x;
* an rwtable: its init signal, the written value, the write index, then the read index;
* the first projection (or recursion variable) of a recursion group reached compiles all
  of the group's used definitions, in their order; later ones compile nothing;
* a sum or a product is compiled in the shape of Faust's normal form (`_sum_compile_order`,
  `_product_compile_order`), whatever the shape of ours.

What it approximates: Faust orders the terms within a sum or product by its trees' serial
numbers, i.e. by when its propagation (right to left through `,`) or its simplifier (left to
right, for each term it rewrites) made them; our nodes' creation order (`uid`) stands in
for that. They differ for terms that all exist before any partial sum here but not in
Faust (a merged bank `par(i, n, ...) :> _`) and for bargraphs of constants
(docs/faust-test-suites.md, "Known differences").
"""
from __future__ import annotations

import math
from collections import deque
from typing import Iterable, Optional

Sig = object   # signals.ir.Sig in the annotations (not imported: ir imports this module)


_WALK: dict = {}   # ir's walkers (topo_order, post_order), registered by `ir` when it loads


def topo_order(roots, follow_tables: bool = False) -> list:
    """`ir.topo_order`, which `ir` registers in `_WALK`: `ir` re-exports this module's
    functions (S.controls, S.bargraphs), so this module does not import it (no cycle)."""
    return _WALK["topo_order"](roots, follow_tables)


_INFIX = frozenset(("+", "-", "*", "/", "%", "<", "<=", ">", ">=", "==", "!=", "&", "|",
                    "xor", "<<", ">>"))
_SECOND_FIRST = frozenset(("attach", "control"))


def generation_order(outputs: Iterable[Sig]) -> list[Sig]:
    """Every node reachable from `outputs` (table init signals included), each once, in the
    order Faust's code generator finishes compiling it (see the module docstring)."""
    outputs = list(outputs)
    used = _used_defs(outputs)
    started: set[int] = set()
    return _WALK["post_order"](outputs, lambda node: _compiled_kids(node, used, started))


def _used_defs(outputs: list[Sig]) -> dict[int, list[Sig]]:
    """Per recursion group (by id): the definitions whose value some reachable node reads
    (a projection or a recursion variable), in index order: Faust compiles only those."""
    reads: dict[int, tuple] = {}
    for s in topo_order(outputs, follow_tables=True):
        if s.op in ("proj", "recvar"):
            group, i = s.attrs
            g, idx = reads.setdefault(id(group), (group, set()))
            idx.add(i)
    return {k: [g.defs[i] for i in sorted(idx)] for k, (g, idx) in reads.items()}


def _compiled_kids(node: Sig, used: dict, started: set) -> tuple:
    """The operands the generator compiles before `node`, in the order it compiles them."""
    op = node.op
    if op in ("proj", "recvar"):
        group = node.attrs[0]
        if id(group) in started:
            return ()
        started.add(id(group))
        return tuple(used.get(id(group), ()))
    args = node.args
    if op == "prim":
        if node.name in ("+", "-"):
            return _sum_compile_order(node)
        if node.name in ("*", "/"):
            return _product_compile_order(node)
        if node.name in _INFIX:
            return args[::-1]
        if node.name in _SECOND_FIRST:
            return (args[1], args[0])
    if op == "rwtable":
        init, widx, wval, ridx = args
        return (init, wval, widx, ridx)
    return args


_MIX, _MASK = 0x9E3779B97F4A7C15, (1 << 64) - 1


def _term_hash(t: Sig) -> int:
    """A term's part of the hash of a set of terms (the sum of its terms' parts, so that a
    sum node's set hashes in O(1) from its operands')."""
    return (id(t) * _MIX) & _MASK


def _flatten(node: Sig, ops: tuple, nodes: Optional[dict] = None) -> list:
    """The (sign, term) pairs of a tree of the operators `ops` (same sign, inverse: `+`/`-`
    as Faust's `aterm` reads a sum, `*`/`/` as its `mterm` reads a product), left to right;
    iterative (long sums). With `nodes`: the hash of each inner node's set of terms ->
    the oldest such node's `uid`."""
    terms: list = []
    hashes: list = []
    stack = [(node, True, False)]
    while stack:
        n, sign, done = stack.pop()
        if done:
            h = (hashes.pop() + hashes.pop()) & _MASK
            nodes[h] = min(nodes.get(h, n.uid), n.uid)
            hashes.append(h)
        elif n.op == "prim" and n.name in ops:
            x, y = n.args
            if nodes is not None:
                stack.append((n, sign, True))
            stack.append((y, sign == (n.name == ops[0]), False))
            stack.append((x, sign, False))
        else:
            terms.append((sign, n))
            if nodes is not None:
                hashes.append(_term_hash(n))
    return terms


def _grouped(terms: list) -> dict:
    """(sign, rate) -> the distinct terms of that sign and rate, oldest (`uid`) first."""
    groups: dict = {}
    seen: set = set()
    for sign, t in terms:
        if (sign, id(t)) not in seen:
            seen.add((sign, id(t)))
            groups.setdefault((sign, t.rate), []).append(t)
    return {k: sorted(g, key=lambda t: t.uid) for k, g in groups.items()}


def _sum_compile_order(node: Sig) -> list[Sig]:
    """The terms of a sum in the order Faust compiles its normal form.

    Faust groups the terms by sign and order (constant, init, block, sample rate) and
    builds the whole as P1 + ((P2 + ((P3 + (c - N3)) - N2)) - N1); compiled right operand
    first, that is N1, N2, N3, c, P3, P2, P1. A group adds its terms in creation order,
    each step `simplifyingAdd(P, t)`: the older tree (serial number) on the left, so the
    newer is compiled first. Our creation order (`uid`) stands for Faust's; a partial sum
    is as old as our sum node over the same terms, or new when we have none."""
    partials: dict = {}
    groups = _grouped(_flatten(node, ("+", "-"), partials))
    keys = [(False, r) for r in range(4)] + [(True, r) for r in range(3, -1, -1)]
    out: list[Sig] = []
    for key in keys:
        out.extend(_chain_order(groups.get(key, []), partials))
    return out


def _chain_order(group: list, partials: dict) -> list:
    """The compile order of t_1 ⊕ t_2 ⊕ ... (`_sum_compile_order`), terms oldest first:
    P + t (P the older) compiles t before P, t + P compiles P before t."""
    order = deque(group[1::-1])
    covered = sum(_term_hash(t) for t in group[:2]) & _MASK
    for t in group[2:]:
        if partials.get(covered, math.inf) <= t.uid:
            order.appendleft(t)
        else:
            order.append(t)
        covered = (covered + _term_hash(t)) & _MASK
    return list(order)


def _product_compile_order(node: Sig) -> list[Sig]:
    """The factors of a product in the order Faust compiles its normal form: numerators
    A_k and denominators B_k per order k (each f_1 * f_2 * ... in creation order), the whole
    ((coef * A1/B1) * A2/B2) * A3/B3; compiled right operand first: B3, A3, B2, A2, B1, A1,
    and in a group the last factor first."""
    groups = _grouped(_flatten(node, ("*", "/")))
    out: list[Sig] = []
    for rate in range(3, -1, -1):
        for up in (False, True):
            out.extend(reversed(groups.get((up, rate), ())))
    return out


def ui_order(nodes: Iterable[Sig]) -> list[Sig]:
    """Widgets in the order of Faust's UI build (2.54.9): within each group, items sorted by
    raw label (strcmp, metadata included: "[0]gain" < "[1]DC" < "a"), groups by their label
    and merged when equal (same kind and label); ties keep the given order (give them in
    `generation_order` to have Faust's)."""
    class Folder:
        def __init__(self, first):
            self.first, self.items, self.subs = first, [], {}

    root = Folder(0)
    for idx, n in enumerate(nodes):
        folder = root
        for kind, label in n.attrs[2]:
            sub = folder.subs.get((kind, label))
            if sub is None:
                sub = folder.subs[(kind, label)] = Folder(idx)
                folder.items.append((label.encode(), idx, sub))
            folder = sub
        folder.items.append((n.attrs[1].encode(), idx, n))
    return _emit_sorted(root, Folder)


def _emit_sorted(root, folder_cls) -> list[Sig]:
    out: list[Sig] = []

    def emit(folder):
        for _, _, item in sorted(folder.items, key=lambda e: (e[0], e[1])):
            if isinstance(item, folder_cls):
                emit(item)
            else:
                out.append(item)
    emit(root)
    return out


def controls(outputs: Iterable[Sig]) -> list:
    """The widgets `outputs` read (table init signals included), in Faust's UI order. (Two
    controls never share a path, so their order needs no `generation_order`.)"""
    return ui_order([s for s in topo_order(list(outputs), follow_tables=True) if s.op == "ui"])


def bargraphs(outputs: Iterable[Sig]) -> list:
    """The bargraphs shown per sample (not those inside table init signals), in Faust's UI
    order: the bargraph columns of a program with these outputs. `generation_order` (a
    second walk, longer on long sums) only when two of them share a label in one group."""
    outputs = list(outputs)
    per_sample = {id(s) for s in topo_order(outputs)}
    shown = [s for s in topo_order(outputs, follow_tables=True)
             if s.op == "bargraph" and id(s) in per_sample]
    return ui_order(in_generation_order(outputs, shown) if shares_labels(shown) else shown)


def shares_labels(widgets: list) -> bool:
    """Whether two of `widgets` have the same label in the same group (ties of `ui_order`)."""
    keys = {(w.attrs[2], w.attrs[1]) for w in widgets}
    return len(keys) < len(widgets)


def in_generation_order(outputs: list, widgets: list) -> list:
    """`widgets` (nodes reachable from `outputs`) sorted by `generation_order`."""
    wanted = {id(w) for w in widgets}
    return [s for s in generation_order(outputs) if id(s) in wanted]
