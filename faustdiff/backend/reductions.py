"""Sum reductions taken out of the sample loop (reverse mode's parameter adjoints).

A backward program accumulates the adjoint of every control-rate value over the block:
recursions `acc[t] = acc[t-1] + e[t]` whose only reader is their own definition (the
block's sum is read once, as a final). In the serial sample loop each costs a scalar
multiply-add per sample, and a program with many parameters has many: the 30-parameter
equaliser's backward loop spends a third of its operations on 40 of them.

`split(ctx)` finds them and cuts each summand `e` into what must come from the serial loop
(values that depend on state: the adjoint recursions, delay lines; the *cut*) and what can
be recomputed from the block's inputs and control values alone (tape reads and arithmetic
on them). The kernel then runs each chunk of `CHUNK` samples twice: the serial loop, which
also stores the cut values into a buffer, and per group of at most `GROUP` reductions a
loop with no dependence between samples but its sums, which LLVM vectorises: each sum's
addition carries the fast-math flag `reassoc` itself (codegen's `radd`), so a kernel with
feedback, whose own additions keep their order (reverse._fastmath), splits too. Worth it
only when many sums share few cut values (`worth`). Only backward kernels split: a
gradient may be rounded differently (1e-9 agreement), a forward or plain render may not.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..signals import ir as S

CHUNK = 64     # samples per chunk: the cut buffer (rows x CHUNK doubles) stays in L1/L2
GROUP = 8       # sums per vectorised loop (their vector accumulators stay in registers)
MIN_SUMS = 8    # fewer sums than this stay in the serial loop


@dataclass
class Split:
    """What the kernel emits apart: `sums` (recvar nodes, schedule order), the summand of
    each (`term[id(rv)]`), the cut values the serial loop stores (`cut`, schedule order;
    `row[id(node)]` its row of the buffer), the recomputable nodes each group's loop
    computes (`cones[k]`, schedule order), and `skip`: the nodes only the sums need, which
    the serial loop no longer computes."""
    sums: list
    term: dict
    cut: list
    row: dict
    groups: list
    cones: list
    skip: set = field(default_factory=set)


def _sum_term(ctx, rv):
    """The summand e if rv's definition is `rv + e` (real, e not rv itself), else None."""
    g, i = rv.attrs
    d = g.defs[i]
    if d.op != "prim" or d.name != "+" or d.type != "real" or len(d.args) != 2:
        return None
    a, b = d.args
    if a is rv and b is not rv:
        return b
    return None


def split(ctx, guarded: set) -> "Split | None":
    """The reductions of `ctx` to take out of the serial loop, or None (see the module
    docstring). `guarded`: ids of nodes emitted inside a select's branch (left alone)."""
    sample = [s for s in ctx.sample if id(s) not in ctx.folded]
    here = {id(s) for s in sample}
    pos = {id(s): k for k, s in enumerate(sample)}
    users: dict = {}
    for s in sample:
        for a in s.args:
            if id(a) in here:
                users.setdefault(id(a), []).append(s)
    for rv in ctx.rec_nodes:   # a recursion's definition is read by its variable's update
        g, i = rv.attrs
        users.setdefault(id(g.defs[i]), []).append(rv)
    visible = {id(s) for s in list(ctx.outputs) + list(ctx.bargraphs)} | set(ctx.lines)

    sums, term = [], {}
    for rv in ctx.rec_nodes:
        e = _sum_term(ctx, rv)
        if e is None:
            continue
        g, i = rv.attrs
        d = g.defs[i]
        # read by nothing but its own update (a projection of it only as a final)
        if [id(u) for u in users.get(id(rv), ())] != [id(d)] or id(d) in visible \
                or id(d) in guarded or any(
                    u is not rv and (u.op != "proj" or id(u) in visible or users.get(id(u)))
                    for u in users.get(id(d), ())):
            continue
        sums.append(rv)
        term[id(rv)] = e
    if len(sums) < MIN_SUMS:
        return None

    moved = {id(g.defs[i]) for g, i in (rv.attrs for rv in sums)}
    serial_need = _needed(ctx, sample, here, moved, visible, guarded, ())
    # `fresh`: pure functions of the inputs (the tapes) and control values, which a sums'
    # loop recomputes; it also computes the pure arithmetic only the sums read. The
    # operands of those that the serial loop computes anyway (the adjoints of the
    # recursions, from its state) are cut: stored there once per sample.
    pure, fresh = {}, {}
    for s in sample:
        pure[id(s)] = s.op == "input" or (
            s.op == "prim" and not (s.name == "%" and s.type == "int") and id(s) not in guarded)
        fresh[id(s)] = pure[id(s)] and all(id(a) not in here or fresh[id(a)] for a in s.args)

    sums.sort(key=lambda rv: pos.get(id(term[id(rv)]), -1))
    groups = [sums[k:k + GROUP] for k in range(0, len(sums), GROUP)]
    cut, cones = {}, []
    for grp in groups:
        cone: dict = {}
        stack = [term[id(rv)] for rv in grp]
        while stack:
            n = stack.pop()
            if id(n) not in here or id(n) in cone or id(n) in cut:
                continue
            if fresh[id(n)] or (pure[id(n)] and id(n) not in serial_need):
                cone[id(n)] = n
                stack.extend(n.args)
            else:
                cut[id(n)] = n
        cones.append(sorted(cone.values(), key=lambda n: pos[id(n)]))
    if not worth(len(sums), len(cut)):
        return None
    cut_list = sorted(cut.values(), key=lambda n: pos[id(n)])
    row = {id(n): k for k, n in enumerate(cut_list)}
    need = _needed(ctx, sample, here, moved, visible, guarded, cut_list)
    skip = {id(s) for s in sample if id(s) not in need}
    return Split(sums, term, cut_list, row, groups, cones, skip)


def _needed(ctx, sample, here, moved, visible, guarded, cut) -> set:
    """ids of the nodes the serial loop computes: what the outputs, bargraphs, delay lines,
    the recursions not `moved` and the `cut` values read; state updates, tables and foreign
    calls always run."""
    need = set(visible) | {id(n) for n in cut}
    for rv in ctx.rec_nodes:
        g, i = rv.attrs
        if id(g.defs[i]) not in moved:
            need.add(id(g.defs[i]))
    for s in sample:
        if s.op == "proj" and id(s.args[0]) in moved:
            continue   # a sum's final: the sums' loops store it
        if s.op not in ("prim", "input") or id(s) in guarded:
            need.add(id(s))
    stack = [s for s in sample if id(s) in need]
    seen: set = set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        stack.extend(a for a in n.args if id(a) in here)
        if n.op == "recvar":
            g, i = n.attrs
            if id(g.defs[i]) in here and id(g.defs[i]) not in moved:
                stack.append(g.defs[i])
    return seen | need


def worth(num_sums: int, num_cut: int) -> bool:
    """A vectorised sum costs a fraction of a serial multiply-add, a cut value a store and a
    load per sample: split when the sums outnumber the cut values two to one."""
    return num_sums >= MIN_SUMS and 2 * num_cut <= num_sums
