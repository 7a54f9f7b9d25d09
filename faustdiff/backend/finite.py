"""Finding where NaN or infinity first appears in a render (`faustdiff run --check-finite`).

`first_nonfinite(outputs, columns)` finds the first sample (then the first output, then the
first extra column such as a bargraph) holding NaN or ±inf. `locate(program, inputs, t, k)`
explains it: it re-runs the program's signals with the reference interpreter, recording every
node, and walks back from the bad output at sample t through the operands that are themselves
non-finite (through delays and recursions to earlier samples) to the first node whose operands
were all finite: the operation that produced the value. `Program.origins` maps that node back
to the box, hence to the source text and position.

Invariants:
* the search never changes the program's state (it builds its own interpreter);
* memory stays bounded: only the last samples before the bad one are recorded (at most
  `BUDGET` values), older causes are reported as the node at the window's edge;
* everything here is best effort: `locate` returns None rather than raising.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..signals import ir as S

BUDGET = 4_000_000   # node values kept while tracing (nodes x samples)
MAX_WORK = 200_000_000   # node x samples evaluated before giving up on tracing


@dataclass
class Hit:
    """The first non-finite value: sample `t`, column `index` of `what` ('output', ...)."""
    t: int
    what: str        # "output" or a column kind ("bargraph", "partial")
    index: int       # output index, or the position in `columns`
    name: str        # "output 0", "bargraph 'level'", ...
    value: float


def describe(v: float) -> str:
    return "NaN" if math.isnan(v) else ("+inf" if v > 0 else "-inf")


def first_nonfinite(outputs: np.ndarray, columns: Sequence = ()) -> Optional[Hit]:
    """The earliest non-finite value of `outputs` (outputs, n) and of the `columns`, a list
    of (kind, label, values); ties go to outputs, then to columns in order."""
    best: Optional[Hit] = None
    outputs = np.asarray(outputs, dtype=np.float64)
    for k in range(outputs.shape[0] if outputs.ndim == 2 else 0):
        bad = np.flatnonzero(~np.isfinite(outputs[k]))
        if bad.size and (best is None or bad[0] < best.t):
            t = int(bad[0])
            best = Hit(t, "output", k, f"output {k}", float(outputs[k, t]))
    for j, (kind, label, values) in enumerate(columns):
        values = np.asarray(values, dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size and (best is None or bad[0] < best.t):
            t = int(bad[0])
            best = Hit(t, kind, j, f"{kind} '{label}'", float(values[t]))
    return best


@dataclass
class Cause:
    """Where a non-finite value came from: a node, its sample and, when known, its box."""
    node: S.Sig
    t: int
    box: object = None   # the box that built the node (None: unknown)
    text: str = ""       # how to name it in a message


def locate(program, inputs: Optional[np.ndarray], t: int, root: S.Sig) -> Optional[Cause]:
    """The node (and box) that first produced the non-finite value of `root` at sample t.

    `program` is an interpreter-backed `Program` (its control values are used), `inputs` the
    (num_inputs, n) array the render used."""
    try:
        return _locate(program, inputs, t, root)
    except Exception:   # a diagnostic must never hide the error it explains
        return None


def _locate(program, inputs, t, root) -> Optional[Cause]:
    from .interp import Interpreter
    nodes = S.topo_order(list(program.outputs) + list(program.bargraph_nodes))
    index = {id(s): k for k, s in enumerate(nodes)}
    if id(root) not in index or len(nodes) * (t + 1) > MAX_WORK:
        return None
    tracer = Interpreter(nodes, (), program.num_inputs, program.sample_rate)
    values = dict(zip(map(id, program.controls), program._values))
    for c in tracer.controls:
        if id(c) in values:
            tracer.set_control(c, values[id(c)])
    window = max(1, min(t + 1, BUDGET // max(1, len(nodes))))
    start = t + 1 - window
    ins = np.zeros((program.num_inputs, t + 1)) if inputs is None else np.asarray(inputs)
    pos = 0
    while pos < start:   # run up to the window, keeping nothing
        step = min(window, start - pos)
        tracer.run([ins[c, pos:pos + step] for c in range(program.num_inputs)], step)
        pos += step
    rec, _ = tracer.run([ins[c, start:t + 1] for c in range(program.num_inputs)], window)

    def value(s, tau):
        k = index.get(id(s))
        if k is None or not start <= tau <= t:
            return None
        return rec[k][tau - start]

    def bad(s, tau):
        v = value(s, tau)
        return v is not None and not math.isfinite(v)

    node, tau = root, t
    for _ in range(len(nodes) * 4 + 16):   # each step goes to an operand or an earlier sample
        nxt = None
        for a, ta in _operands(node, tau, value):
            if bad(a, ta):
                nxt = (a, ta)
                break
        if nxt is None:
            break
        node, tau = nxt
    return _cause(node, tau, nodes, getattr(program, "origins", {}))


def _operands(s: S.Sig, tau: int, value):
    """(operand, sample) pairs whose values made `s` at sample tau."""
    op = s.op
    if op == "prim" and s.name in ("select2", "select3"):
        sel = value(s.args[0], tau)
        yield s.args[0], tau
        if sel is not None and math.isfinite(sel):
            k = int(sel)
            if s.name == "select2":
                yield s.args[1 if k == 0 else 2], tau
            else:
                yield s.args[1 + max(0, min(2, k))], tau
        return
    if op in ("prim", "ffun", "bargraph", "proj"):
        for a in s.args:
            yield a, tau
        return
    if op == "delay":
        x, d = s.args
        yield d, tau
        dv = value(d, tau)
        if dv is not None and math.isfinite(dv):
            yield x, tau - max(0, int(dv))
        return
    if op == "recvar":
        group, i = s.attrs
        if tau >= 1:
            yield group.defs[i], tau - 1
        return
    if op == "prefix":
        a, x = s.args
        yield (a, 0) if tau == 0 else (x, tau - 1)
        return
    if op in ("rdtable", "rwtable"):
        for a in S.deps(s):
            yield a, tau


def _cause(node: S.Sig, tau: int, nodes: list, origins: dict) -> Cause:
    from ..signals.propagate import box_text

    def origin(s):
        hit = origins.get(id(s))
        return hit[1] if hit is not None and hit[0] is s else None
    op = node.op
    if op == "input":
        return Cause(node, tau, None, f"input {node.attrs[0]}")
    if op == "ui":
        return Cause(node, tau, None, f"the value of the control '{S.strip_metadata(node.attrs[1])}'")
    if op == "const":
        return Cause(node, tau, None, f"the constant {node.value!r}")
    box = origin(node)
    if box is None:   # built inside a primitive's simplification: a user that has a box
        users = [s for s in nodes if any(a is node for a in s.args)]
        for u in users:
            box = origin(u)
            if box is not None:
                break
    if box is None:
        return Cause(node, tau, None, S.show(node))
    return Cause(node, tau, box, box_text(box))


def check(program, outputs, bargraphs: Sequence, inputs, interp_program,
          partials: Sequence = ()) -> Optional[Exception]:
    """The error to report when a render holds NaN or infinity, else None.

    `bargraphs` and `partials` are (label, values) pairs; `interp_program()` returns an
    interpreter-backed `Program` of the same source with the same control values (called only
    when needed, and not at all when `program` itself has signals)."""
    from ..errors import FaustError
    columns = [("bargraph", label, values) for label, values in bargraphs]
    columns += [("partial", label, values) for label, values in partials]
    hit = first_nonfinite(outputs, columns)
    if hit is None:
        return None
    what = (f"non-finite value: {hit.name} is {describe(hit.value)} at sample {hit.t} "
            f"(the first NaN or infinity of the render)")
    if hit.what == "partial":
        return FaustError(what)
    cause = None
    try:
        prog = program if hasattr(program, "bargraph_nodes") else interp_program()
        root = (prog.outputs[hit.index] if hit.what == "output"
                else prog.bargraph_nodes[hit.index])
        cause = locate(prog, inputs, hit.t, root)
    except FaustError:
        cause = None
    if cause is None:
        return FaustError(what + "; its source expression is unknown")
    at = "" if cause.t == hit.t else f" at sample {cause.t}"
    span = getattr(cause.box, "span", None)
    return FaustError(f"{what}; it comes from {cause.text}{at}", span)
