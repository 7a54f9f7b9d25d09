"""Reverse-mode automatic differentiation over signals (VJP): the backward pass is itself a
signal program, run in reversed time.

    backward(outputs, num_inputs, wrt) -> Backward

For one block of n samples, the forward program maps (inputs x[0..n), parameters θ, the
state at the block's start) to outputs y[0..n). Given the cotangent ȳ = dL/dy of the block,
the backward pass computes x̄ = dL/dx (per sample) and θ̄ = dL/dθ, the block's starting state
held constant (truncated backpropagation through time at block boundaries; from `reset()`
the result is the full gradient).

Per sample the forward program is an acyclic graph from (x[t], the state) to (y[t], the next
state): recursion variables (`recvar`, a definition's value at t-1) are its leaves. Its
transpose, walked from the outputs back to the leaves with one `vjp` rule per primitive
(`core.primitives`, beside each `jvp`), maps (ȳ[t], the state's cotangent) to (x̄[t], the
previous state's cotangent), so in reversed time τ = n-1-t the backward pass is a causal
signal program of the same IR, compiled by the same back end:

* its inputs are ȳ reversed, then the *tapes*: the forward signals the rules read (operands
  of products, of `sin`, selectors, ...), recorded per sample by the forward program and fed
  reversed; a short constant delay x@k (and a recursion variable, its definition one sample
  ago) reads x's own tape k samples back (a `tap` with a lag; the tapes' arrays keep
  `history` samples of the previous block before the block). Nodes of control rate (constants, sliders and everything computed from them
  only) are not recorded: the backward program recomputes them once per block from the same
  widgets;
* the cotangent of every recursion variable becomes a definition of ONE backward recursion
  group, whose recursion variables ρ_k (its value at τ-1, i.e. at forward time t+1) seed the
  cotangent of definition k: the state's cotangent flows back one sample per step;
* the transpose of a delay by d is a delay by d in reversed time (`A.delay`) when d is
  fixed for the block (constant or control rate); a d that varies per sample transposes to
  a `scatter` node: sample t sends its cotangent to t + d[t] through a ring buffer (the
  delay lines' adjoints);
* the transpose of a table written with a differentiable signal (`rwtable`) is an
  `adjtable` node: a table of cotangents where each read adds its cotangent to the slot it
  read and each write takes (and clears) its slot's: the gradient flows through the written
  values; the read indexes get none; initial contents that depend on a parameter give
  θ̄_k += c[t] · (the read slot of the contents' forward-mode tangent table), a tape;
* a parameter θ reaches the per-sample graph only through control-rate nodes b_k (a
  coefficient, the slider itself): the walk stops there and accumulates Σ_t b̄_k[t] in a
  second backward group (`finals`: its state after the block is the sum). θ̄ is then
  Σ_k (Σ_t b̄_k[t]) ∂b_k/∂θ, the Jacobian ∂b/∂θ being control-rate signals from forward mode
  (`jacobian`), evaluated once per block: adjoints of control-rate values are pulled back
  once per block, not per sample.

Cotangents are signals or None (structurally zero): rules skip zero terms; nodes that do not
depend on a parameter or an input, and int-typed nodes, get none ("auto" calculus: int casts
and comparisons are piecewise constant).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from ..core.primitives import FFUN_VJP, PRIMITIVES
from ..errors import FaustError
from ..signals import ir as S
from .forward import Algebra, _masks, substitute
from .params import partial_signals

Ct = Optional[S.Sig]   # a cotangent; None: structurally zero
LAG_MAX = 256   # constant delays up to this read their signal's tape with a lag


@dataclass
class Backward:
    """The reverse pass of a program (see the module docstring).

    tapes      -- forward signals to record per sample (the forward program's outputs after
                  its own); the backward program's input num_outputs + j is tape j reversed
    num_outputs -- the forward program's outputs: backward inputs 0..num_outputs-1 are ȳ
    d_inputs   -- backward signals: x̄_i in reversed time, one per forward input
    finals     -- backward signals (projections of the accumulator group) to schedule
                  without recording: after a block, their state holds Σ_t b̄_k[t]
    boundary   -- the forward control-rate nodes b_k, in the order of `finals`
    jacobian   -- forward control-rate signals ∂b_k/∂θ_i, parameter-major (k fastest)
    history    -- the longest lag of a tap (`signals.ir.tap`): the tapes' arrays hold that
                  many samples before the block (the end of the previous block)
    """
    tapes: list
    num_outputs: int
    d_inputs: list
    finals: list
    boundary: list
    jacobian: list = field(default_factory=list)
    history: int = 0   # the longest lag a tap reads: columns of history before the block

    @property
    def num_backward_inputs(self) -> int:
        return self.num_outputs + len(self.tapes)


class _Cotangents(Algebra):
    """The cotangent algebra of the `vjp` rules: the tangent algebra's arithmetic plus the
    transpose of a delay, the first-sample indicator and tables (see `core.primitives`)."""

    def __init__(self, walk: "_Walk"):
        self.walk = walk
        self.node: Optional[S.Sig] = None    # the forward node whose rule runs

    def delay(self, c: Ct, d: S.Sig) -> Ct:
        """The transpose of a delay by d: a delay by d in reversed time when d is fixed for
        the block, else a scatter (what x@d gathers from t - d, this sends to t + d)."""
        if c is None:
            return None
        if d.rate > S.K_BLOCK:
            return S.scatter(c, d, S.max_delay(d))
        return S.delay(c, d)

    def first(self) -> S.Sig:
        return self.walk.value(S.prefix(S.int_const(1), S.int_const(0)))

    def table(self, y: S.Sig, c: Ct):
        node, out = self.node, [None] * (len(self.node.args) + 1)
        if node.op == "rwtable" and self.walk.needed(node.args[2]):
            # (size, init, widx, wval, ridx): the written value's cotangent is what the
            # reads of its slot sent back until the slot was written again
            widx, ridx = self.walk.value(node.args[1]), self.walk.value(node.args[3])
            out[3] = S.adjtable(node.attrs[0], c, ridx, widx)
        if self.walk.depends(node.args[0]):
            self.walk.through_contents(node, c)
        return tuple(out)


class _Walk:
    """One reverse pass over the per-sample graph of `outputs`."""

    def __init__(self, outputs: Sequence[S.Sig], num_inputs: int, wrt: Sequence[Sequence],
                 input_grads: bool = True):
        self.outputs = list(outputs)
        self.num_inputs = num_inputs
        self.wrt = [list(group) for group in wrt]
        self.wrt_ids = {id(n) for group in wrt for n in group}
        self._depends: dict = {}
        self.order = S.topo_order(self.outputs)
        leaf = {id(n): 1 for n in self.order
                if (input_grads and n.op == "input") or id(n) in self.wrt_ids
                or (n.op in ("rdtable", "rwtable") and self.depends(n.args[0]))}
        self.mask = _masks(self.order, leaf, whole_groups=False)
        self.ct: dict = {}                 # id(forward node) -> cotangent
        self.tape_of: dict = {}            # id(forward node) -> placeholder
        self.tapes: list = []              # (placeholder, forward signal)
        self.boundary: list = []           # forward control-rate nodes reached
        self.boundary_ct: dict = {}        # id(node) -> accumulated cotangent
        self.A = _Cotangents(self)

    # ------------------------------------------------------------ what the rules read

    def needed(self, node: S.Sig) -> bool:
        """A cotangent of `node` matters: it depends on a parameter or an input, and is real."""
        return node.type == "real" and self.mask.get(id(node), 0) != 0

    def depends(self, node: S.Sig) -> bool:
        """`node` (walked through table init signals too) depends on a parameter (asked
        once per table for the masks, again by its rule: memoised)."""
        hit = self._depends.get(id(node))
        if hit is None:
            order = S.topo_order([node], follow_tables=True)
            hit = self._depends[id(node)] = any(id(n) in self.wrt_ids for n in order)
        return hit

    def value(self, node: S.Sig) -> S.Sig:
        """A forward value as the backward program sees it: control-rate nodes as they are
        (recomputed once per block), others through a tape (a placeholder for now). A short
        constant delay of a signal, and a recursion variable (its definition one sample
        ago), read the signal's own tape `lag` samples back instead of a tape of their own."""
        if node.rate <= S.K_BLOCK:
            return node
        hit = self.tape_of.get(id(node))
        if hit is None:
            hit = S.placeholder(node)
            self.tape_of[id(node)] = hit
            recorded, lag = node, 0
            if node.op == "recvar":
                group, i = node.attrs
                recorded, lag = group.proj(i), 1
            elif (node.op == "delay" and node.args[1].op == "const"
                  and 0 < node.args[1].value <= LAG_MAX and node.args[0].rate > S.K_BLOCK):
                recorded, lag = node.args[0], node.args[1].value
                if recorded.op == "recvar":   # (x at t-1) at t-k: x at t-k-1
                    group, i = recorded.attrs
                    recorded, lag = group.proj(i), lag + 1
            self.tapes.append((hit, recorded, lag))
        return hit

    # ------------------------------------------------------------ accumulation

    def give(self, node: S.Sig, c: Ct) -> None:
        if c is None or not self.needed(node):
            return
        if node.rate <= S.K_BLOCK:
            self._to_boundary(node, c)
            return
        prev = self.ct.get(id(node))
        self.ct[id(node)] = S.to_real(c) if prev is None else self.A.add(prev, c)

    def _to_boundary(self, node: S.Sig, c: S.Sig) -> None:
        """Accumulate c into control-rate `node`'s cotangent (summed over the block)."""
        if id(node) not in self.boundary_ct:
            self.boundary.append(node)
            self.boundary_ct[id(node)] = S.to_real(c)
        else:
            self.boundary_ct[id(node)] = self.A.add(self.boundary_ct[id(node)], c)

    def through_contents(self, node: S.Sig, c: S.Sig) -> None:
        """A table `node` whose initial contents depend on parameters, read with cotangent
        c: θ_k̄ += c[t] · ∂(the slot read at t)/∂θ_k, where that partial is the slot of the
        tangent table (the init signal's forward-mode tangent, its own context from t=0),
        or 0 for an `rwtable` slot written since reset (the written value's cotangent goes
        through `adjtable`). The tangent read is a forward signal (a tape), so the contents
        count as a function of the parameters whatever the block: as forward mode has them
        (they are filled at reset from the widgets' values)."""
        init = node.args[0]
        size = S.int_const(node.attrs[0])
        tangents = partial_signals([init], self.wrt)
        for k, dinit in enumerate(tangents):
            if S.is_const(dinit, 0):
                continue
            if node.op == "rdtable":
                read = S.rdtable(size, S.to_real(dinit), node.args[1])
            else:
                _, widx, _, ridx = node.args
                read = S.rwtable(size, S.to_real(dinit), widx, S.real_const(0.0), ridx)
            self._to_boundary(self.wrt[k][0], self.A.mul(c, self.value(read)))

    # ------------------------------------------------------------ the pass

    def run(self) -> list:
        """Walk the graph once; returns x̄ per input (the boundary cotangents are kept)."""
        for o, y in enumerate(self.outputs):
            # dL/dy can be anything: a tap (interval FULL), not an audio input's [-1, 1]
            self.give(y, S.tap(o))
        recs = [n for n in self.order if n.op == "recvar" and self.needed(n)]
        state = S.RecGroup(["real"] * len(recs), share=False) if recs else None
        for k, rv in enumerate(recs):   # the state's cotangent, one sample later
            group, i = rv.attrs
            self.give(group.defs[i], state.var(k))
        d_inputs: list = [None] * self.num_inputs
        rec_ct: dict = {}
        for node in reversed(self.order):
            c = self.ct.get(id(node))
            if c is None:
                continue
            op = node.op
            if op == "input":
                d_inputs[node.attrs[0]] = c
            elif op == "recvar":
                rec_ct[id(node)] = c
            elif op in ("proj", "bargraph"):
                self.give(node.args[0], c)
            else:
                self._rule(node, c)
        if state is not None:
            state.define([S.to_real(rec_ct.get(id(rv), S.real_const(0.0))) for rv in recs])
        return [S.real_const(0.0) if c is None else c for c in d_inputs]

    def accumulate(self, boundary: list) -> list:
        """Σ_t of the cotangent of each node of `boundary`: one accumulator group whose
        projections (`finals`) hold the sums after a block."""
        if not boundary:
            return []
        acc = S.RecGroup(["real"] * len(boundary), share=False)
        acc.define([S.prim("+", acc.var(k), self.boundary_ct[id(b)])
                    for k, b in enumerate(boundary)])
        return [acc.proj(k) for k in range(len(boundary))]

    def _rule(self, node: S.Sig, c: S.Sig) -> None:
        op = node.op
        if op == "prim":
            row = PRIMITIVES[node.name]
            rule, args = row.vjp, node.args
        elif op == "delay":
            rule, args = PRIMITIVES["@"].vjp, node.args
        elif op == "prefix":
            rule, args = PRIMITIVES["prefix"].vjp, node.args
        elif op in ("rdtable", "rwtable"):
            rule, args = PRIMITIVES[op].vjp, (S.int_const(node.attrs[0]),) + node.args
        elif op == "ffun":
            rule, args = FFUN_VJP.get(node.attrs[0]), node.args
            if rule is None:
                raise FaustError("reverse mode: no derivative rule for the foreign function "
                                 f"'{node.attrs[0]}'")
        else:
            raise FaustError(f"reverse mode: no derivative rule for a '{op}' signal")
        if rule is None:
            raise FaustError(f"reverse mode: no derivative rule for '{node.name}'")
        self.A.node = node
        x = tuple(self.value(a) for a in args)
        cts = rule(x, c, self.value(node), self.A)
        for a, ca in zip(args if op not in ("rdtable", "rwtable") else (None,) + node.args,
                         cts):
            if a is not None:
                self.give(a, ca)

    def _with_tapes(self, d_inputs: list, finals: list, num_outputs: int) -> Backward:
        """Number the tapes the backward signals really read; placeholders -> inputs."""
        roots = d_inputs + finals
        reached = {id(n) for n in S.topo_order(roots) if n.op == "placeholder"}
        mapping, tapes, index, history = {}, [], {}, 0
        for ph, recorded, lag in self.tapes:
            if id(ph) in reached:
                k = index.get(id(recorded))
                if k is None:   # two reads of one signal share its tape
                    k = index[id(recorded)] = len(tapes)
                    tapes.append(recorded)
                x = S.tap(num_outputs + k, lag)
                mapping[ph] = S.to_int(x) if ph.type == "int" else x
                history = max(history, lag)
        if mapping:
            roots = substitute(roots, mapping)
        d_inputs, finals = roots[:len(d_inputs)], roots[len(d_inputs):]
        return Backward(tapes, num_outputs, d_inputs, finals, list(self.boundary),
                        history=history)


def backward(outputs: Sequence[S.Sig], num_inputs: int, wrt: Sequence[Sequence] = (),
             input_grads: bool = True) -> Backward:
    """The reverse pass of the program `outputs` (with `num_inputs` audio inputs) with
    respect to the parameters `wrt` (one list of `ui` nodes per parameter, as
    `params.select` gives them) and, with `input_grads`, its inputs (without: d_inputs are
    zero and what only they need is not computed). See the module docstring."""
    walk = _Walk(outputs, num_inputs, wrt, input_grads)
    d_inputs = walk.run()
    boundary, jacobian = walk.boundary, []
    if boundary and wrt:
        # Control-rate values whose partials are all structurally zero (a selector, an int
        # cast) are not accumulated: their cotangent may be inf or NaN where forward mode
        # has an exact zero.
        jac = partial_signals(boundary, wrt)
        k = len(boundary)
        live = [j for j in range(k)
                if any(not S.is_const(jac[i * k + j], 0) for i in range(len(wrt)))]
        boundary = [boundary[j] for j in live]
        jacobian = [jac[i * k + j] for i in range(len(wrt)) for j in live]
    else:
        boundary = []
    bw = walk._with_tapes(d_inputs, walk.accumulate(boundary), len(outputs))
    bw.boundary, bw.jacobian = boundary, jacobian
    return bw
