"""Automatic parameters: the builtins behind diff.lib's `param` and `fit`.

A learnable parameter is declared in place, as a slider with its name, initial value and
range: `df.param(hslider("gain", 0.2, 0, 1, 0.001))` (or the label metadata `[diff:on]`;
`[scale:log]` makes it learned on a log scale). `df.fit(truth, model, loss, optimiser)` finds
every declared parameter of `model` itself; nothing is numbered or routed by hand. These
builtins (registered in the front end's `builtins.BUILTINS`) do the compiler's part:

* `__fd_param(W)`        -- W (an hslider, vslider or nentry) marked `[diff:on]`;
* `__fd_nparams(M)`      -- N, the number of distinct declared parameters in the box M;
* `__fd_param_init(M, i)` -- the initial value of parameter i (0-based) in normalised units;
* `__fd_lift(M)`         -- M with its parameters turned into inputs: a box with N + inputs(M)
                           inputs, the normalised values u_1..u_N first. Inside, each u_i is
                           mapped to its range (p = lo + u·(hi − lo), or lo·(hi/lo)^u for
                           `[scale:log]`), shown on a bargraph with the parameter's label and
                           range, and fed to every place the widget appeared in M.

`fit` (in diff.lib) differentiates the lifted model with `__fd_dual_auto(lifted, N)` fed with
the duals [u_i, one-hot] (so the partials are ∂y/∂u_i: the chain rule of the normalisation is
in the graph), and closes the loop like the seed's `backprop`.

Parameters are ordered by first appearance in M (a left-to-right walk of the box); the same
widget used twice is one parameter.
"""
from __future__ import annotations

import dataclasses
import math

from ..frontend import boxes as B
from ..frontend.boxshow import show
from ..errors import FaustEvalError
from .params import is_declared, metadata
from ..frontend.builtins import builtin

_SLIDERS = ("hslider", "vslider", "nentry")


def _declared(box: B.Box) -> bool:
    return isinstance(box, B.UI) and box.kind in _SLIDERS and is_declared(box.label)


def params_of(box: B.Box) -> list:
    """The distinct declared parameter widgets of a normal-form box, by first appearance."""
    found: list = []
    seen: set = set()
    stack = [box]
    while stack:
        b = stack.pop()
        if _declared(b):
            if b not in seen:
                seen.add(b)
                found.append(b)
            continue
        kids = _children(b)
        stack.extend(reversed(kids))
    return found


def _children(b: B.Box) -> list:
    out = []
    for f in dataclasses.fields(b):
        if f.name == "span":
            continue
        v = getattr(b, f.name)
        if isinstance(v, B.Box):
            out.append(v)
        elif isinstance(v, tuple):
            out.extend(x for x in v if isinstance(x, B.Box))
    return out


def _replace(b: B.Box, mapping: dict, memo: dict) -> B.Box:
    """b with every box of `mapping` (by equality) replaced (iterative over deep trees)."""
    # post-order without recursion: deep Seq/Par chains are common
    stack = [(b, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in memo:
            continue
        if node in mapping:
            memo[key] = mapping[node]
            continue
        kids = _children(node)
        if not done:
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in memo)
            continue
        changes = {}
        for f in dataclasses.fields(node):
            if f.name == "span":
                continue
            v = getattr(node, f.name)
            if isinstance(v, B.Box):
                nv = memo[id(v)]
                if nv is not v:
                    changes[f.name] = nv
            elif isinstance(v, tuple) and any(isinstance(x, B.Box) for x in v):
                nv = tuple(memo[id(x)] if isinstance(x, B.Box) else x for x in v)
                if any(a is not c for a, c in zip(v, nv)):
                    changes[f.name] = nv
        memo[key] = dataclasses.replace(node, **changes) if changes else node
    return memo[id(b)]


def _scale(w: B.UI) -> str:
    return "log" if metadata(w.label).get("scale", "").lower() == "log" and w.lo > 0 else "lin"


def unit_init(w: B.UI) -> float:
    """The widget's initial value in normalised units (clipped to the range)."""
    lo, hi = float(w.lo), float(w.hi)
    p = min(max(float(w.init), lo), hi)
    if _scale(w) == "log":
        return math.log(p / lo) / math.log(hi / lo)
    return (p - lo) / (hi - lo)


def _bar_label(w: B.UI) -> str:
    """The widget's label without its `[diff:..]` metadata."""
    import re
    return re.sub(r"\s*\[\s*diff\s*(:[^\]]*)?\]", "", w.label).strip() or w.label


def _seq(*boxes):
    out = boxes[0]
    for b in boxes[1:]:
        out = B.Seq(out, b)
    return out


def _binop(name: str, k) -> B.Box:
    """`_ name k` (k a number)."""
    return B.Seq(B.Par(B.Wire(), B.Real(float(k))), B.Prim(name))


def _mapping(w: B.UI) -> B.Box:
    """u in [0, 1] -> the parameter's value, shown on a bargraph."""
    lo, hi = float(w.lo), float(w.hi)
    if _scale(w) == "log":
        m = _seq(_binop("*", math.log(hi / lo)), B.Prim("exp"), _binop("*", lo))
    else:
        m = _seq(_binop("*", hi - lo), _binop("+", lo))
    return B.Seq(m, B.Bargraph("hbargraph", _bar_label(w), lo, hi))


def _check_range(w: B.UI, span):
    if not float(w.hi) > float(w.lo):
        raise FaustEvalError(f"the parameter '{w.label}' has an empty range "
                             f"[{w.lo}, {w.hi}]", span)


def lift(box: B.Box, ev, span) -> B.Box:
    ws = params_of(box)
    if not ws:
        raise FaustEvalError("the model declares no learnable parameter: wrap its sliders "
                             "in df.param(...) or add [diff:on] to their labels", span)
    slots = []
    for w in ws:
        _check_range(w, span)
        slots.append(B.Slot(next(ev.slot_ids), span=span))
    body = _replace(box, dict(zip(ws, slots)), {})
    for s in reversed(slots):
        body = B.Symbolic(s, body, span=span)
    from ..frontend.arity import arity
    ins, _ = arity(box)
    maps = [_mapping(w) for w in ws]
    front = maps[0]
    for m in maps[1:]:
        front = B.Par(front, m)
    wires = None
    for _ in range(ins):
        wires = B.Wire() if wires is None else B.Par(wires, B.Wire())
    if wires is not None:
        front = B.Par(front, wires)
    return B.Seq(front, body, span=span)


# ---------------------------------------------------------------- the builtins

@builtin("__fd_param", 1)
def _param(ev, args, site):
    w = ev.to_box(args[0], site.span)
    if not (isinstance(w, B.UI) and w.kind in _SLIDERS):
        raise FaustEvalError("param: expected an hslider, vslider or nentry, got "
                             f"{show(w)}", site.span)
    if is_declared(w.label):
        return w
    return dataclasses.replace(w, label=w.label + " [diff:on]")


@builtin("__fd_nparams", 1)
def _nparams(ev, args, site):
    return B.Int(len(params_of(ev.to_box(args[0], site.span))), span=site.span)


@builtin("__fd_param_init", 2)
def _param_init(ev, args, site):
    ws = params_of(ev.to_box(args[0], site.span))
    from ..frontend.evaluate import const_outputs
    vals = const_outputs(ev.to_box(args[1], site.span))
    if not vals or len(vals) != 1:
        raise FaustEvalError("__fd_param_init: the index must be a constant", site.span)
    i = int(vals[0].value)
    if not 0 <= i < len(ws):
        raise FaustEvalError(f"__fd_param_init: no parameter {i} (the model has {len(ws)})",
                             site.span)
    _check_range(ws[i], site.span)
    return B.Real(unit_init(ws[i]), span=site.span)


@builtin("__fd_lift", 1)
def _lift(ev, args, site):
    return lift(ev.to_box(args[0], site.span), ev, site.span)
