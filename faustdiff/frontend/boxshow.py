"""Compact Faust-like rendering of boxes (syntax or normal form) for error messages.

`show(Seq(Par(Int(1), Int(2)), Prim("+")))` == `"1,2 : +"`.

Invariants:
* parentheses appear only where Faust's precedence (faust-language.md §3.1) needs them, so the
  rendering of a syntax box re-parses to an equal box (up to infix sugar, which is shown in
  its desugared form `a,b : +`);
* the result is at most `LIMIT` characters (longer renderings end with `...`);
* rendering never recurses deeper than `MAX_DEPTH` levels (deeper subtrees show as `...`), so
  arbitrarily deep boxes are safe.
"""
from __future__ import annotations

from . import boxes as B

LIMIT = 200
MAX_DEPTH = 40

# Precedence levels (higher binds tighter); ATOM for everything self-delimiting.
WITH, SPLIT, SEQ, PAR, REC, INFIX, ATOM = 1, 3, 4, 5, 6, 7, 14

# Binary composition: (operator text, level, min level of left operand, min level of right).
_BINARY = {
    B.Split: (" <: ", SPLIT, SEQ, SPLIT),
    B.Merge: (" :> ", SPLIT, SEQ, SPLIT),
    B.Seq: (" : ", SEQ, PAR, SEQ),
    B.Par: (",", PAR, REC, PAR),
    B.Rec: (" ~ ", REC, REC, INFIX),  # right operand of `~` is an infix expression
}


class _Full(Exception):
    """Raised once the output exceeds LIMIT: the rest would be cut anyway."""


class _Writer:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0

    def put(self, s: str) -> None:
        self.parts.append(s)
        self.size += len(s)
        if self.size > LIMIT:
            raise _Full

    def text(self) -> str:
        return "".join(self.parts)


def show(box) -> str:
    """The rendering of `box`, at most LIMIT characters."""
    w = _Writer()
    try:
        _box(w, box, 0, 0)
    except _Full:
        return w.text()[: LIMIT - 3] + "..."
    return w.text()


def _level(b) -> int:
    if type(b) in _BINARY:
        return _BINARY[type(b)][1]
    if isinstance(b, (B.With, B.Letrec)):
        return WITH
    if isinstance(b, (B.Int, B.Real)):
        return ATOM - 1  # fine as an operand, but `-5.x` or `5.x` (a float!) need parentheses
    return ATOM


def _box(w: _Writer, b, need: int, depth: int, arg: bool = False) -> None:
    """Write `b`, parenthesised if its level is below `need`.

    `arg`: `b` is (the top-level chain of) an application argument, where a bare `,` or
    `with` would be read differently, although `:`, `<:` and `~` are fine.
    """
    if depth > MAX_DEPTH:
        w.put("...")
        return
    level = _level(b)
    paren = level < need or (arg and level in (PAR, WITH))
    if paren:
        w.put("(")
    _body(w, b, depth + 1, arg and not paren)
    if paren:
        w.put(")")


def _seq(w: _Writer, items, depth: int) -> None:
    """Comma-separated arguments."""
    for i, x in enumerate(items):
        if i:
            w.put(", ")
        _box(w, x, SPLIT, depth, True)


def _str(s: str) -> str:
    return '"' + s + '"'


def _num(v) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _param(v: float) -> str:
    """A widget parameter (always a float): `1` rather than `1.0`, as it is usually written."""
    v = float(v)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _body(w: _Writer, b, d: int, arg: bool) -> None:
    t = type(b)
    if t in _BINARY:
        op, _, left, right = _BINARY[t]
        _box(w, b.a, left, d, arg)
        w.put(op)
        _box(w, b.b, right, d, arg)
        return
    fn = _RENDER.get(t)
    if fn is None:
        w.put(f"<{t.__name__}>")
    else:
        fn(w, b, d)


# ---------------------------------------------------------------------------- per class

def _call(w, kw: str, args, d: int, head: str = "", last_expr: bool = False) -> None:
    """`kw(head, arg1, ...)` with arguments rendered without a bare `,`.

    `last_expr`: the last argument is a whole expression in the grammar (group bodies,
    `inputs(e)`, the pairs of `route`), so a `,` there needs no parentheses.
    """
    w.put(kw + "(")
    if head:
        w.put(head)
        if args:
            w.put(", ")
    if last_expr and args:
        _seq(w, args[:-1], d)
        if len(args) > 1:
            w.put(", ")
        _box(w, args[-1], 0, d)
    else:
        _seq(w, args, d)
    w.put(")")


def _defs(w, defs, d: int) -> None:
    for x in defs:
        w.put(" ")
        _box(w, x, 0, d)
        w.put(";")


def _def(w, b: B.Def, d: int) -> None:
    w.put(b.name)
    if b.params is not None:
        w.put("(")
        _seq(w, b.params, d)
        w.put(")")
    w.put(" = ")
    _box(w, b.body, 0, d)


def _with(w, b: B.With, d: int) -> None:
    _box(w, b.body, 0, d)
    w.put(" with {")
    _defs(w, b.defs, d)
    w.put(" }")


def _letrec(w, b: B.Letrec, d: int) -> None:
    _box(w, b.body, 0, d)
    w.put(" letrec {")
    _defs(w, b.recdefs, d)
    if b.defs:
        w.put(" where")
        _defs(w, b.defs, d)
    w.put(" }")


def _recdef(w, b: B.RecDef, d: int) -> None:
    w.put(f"'{b.name} = ")
    _box(w, b.body, 0, d)


def _rule(w, b: B.Rule, d: int) -> None:
    w.put("(")
    _seq(w, b.patterns, d)
    w.put(") => ")
    _box(w, b.body, 0, d)


def _case(w, b: B.Case, d: int) -> None:
    w.put("case {")
    _defs(w, b.rules, d)
    w.put(" }")


def _lambda(w, b: B.Lambda, d: int) -> None:
    w.put("\\(" + ",".join(b.params) + ").(")
    _box(w, b.body, 0, d)
    w.put(")")


def _apply(w, b: B.Apply, d: int) -> None:
    _box(w, b.fn, ATOM, d)
    w.put("(")
    _seq(w, b.args, d)
    w.put(")")


def _access(w, b: B.Access, d: int) -> None:
    _box(w, b.env, ATOM, d)
    w.put("." + b.name)


def _modify(w, b: B.Modify, d: int) -> None:
    _box(w, b.env, ATOM, d)
    w.put("[")
    _defs(w, b.defs, d)
    w.put(" ]")


def _env(w, b: B.Environment, d: int) -> None:
    w.put("environment {")
    _defs(w, b.defs, d)
    w.put(" }")


def _iter(w, b: B.Iter, d: int) -> None:
    w.put(f"{b.kind}({b.var}, ")
    _box(w, b.count, SPLIT, d, True)
    w.put(", ")
    _box(w, b.body, 0, d)
    w.put(")")


def _uiexpr(w, b: B.UIExpr, d: int) -> None:
    _call(w, b.kind, b.args, d, _str(b.label), b.kind.endswith("group"))


def _ui(w, b: B.UI, d: int) -> None:
    if b.kind in ("button", "checkbox"):
        w.put(f"{b.kind}({_str(b.label)})")
    else:
        nums = ", ".join(_param(v) for v in (b.init, b.lo, b.hi, b.step))
        w.put(f"{b.kind}({_str(b.label)}, {nums})")


def _group(w, b: B.Group, d: int) -> None:
    _call(w, b.kind, (b.body,), d, _str(b.label), True)


def _route(w, b: B.Route, d: int) -> None:
    pairs = "".join(f", ({s},{t})" for s, t in b.pairs)
    w.put(f"route({b.ins}, {b.outs}{pairs})")


def _ffun(w, b: B.FFun, d: int) -> None:
    w.put(f"ffunction({b.rtype} {b.name}({', '.join(b.argtypes)}), {_inc(b.include)}, {_str(b.lib)})")


def _inc(s: str) -> str:
    return s if s.startswith("<") else _str(s)


def _program(w, b: B.Program, d: int) -> None:
    for i, x in enumerate(b.statements):
        if i:
            w.put(" ")
        _box(w, x, 0, d)
        w.put(";")


def _declare(w, b: B.Declare, d: int) -> None:
    w.put("declare " + (b.name + " " if b.name else "") + b.key + " " + _str(b.value))


_RENDER = {
    B.Int: lambda w, b, d: w.put(str(b.value)),
    B.Real: lambda w, b, d: w.put(_num(float(b.value))),
    B.Wire: lambda w, b, d: w.put("_"),
    B.Cut: lambda w, b, d: w.put("!"),
    B.Prim: lambda w, b, d: w.put(b.name),
    B.Ident: lambda w, b, d: w.put(b.name),
    B.Slot: lambda w, b, d: w.put(f"slot{b.id}"),
    B.Failed: lambda w, b, d: w.put("?"),
    B.Symbolic: lambda w, b, d: (w.put(f"\\(slot{b.slot.id}).("), _box(w, b.body, 0, d), w.put(")")),
    B.Apply: _apply,
    B.Access: _access,
    B.Modify: _modify,
    B.Lambda: _lambda,
    B.Rule: _rule,
    B.Case: _case,
    B.Def: _def,
    B.RecDef: _recdef,
    B.With: _with,
    B.Letrec: _letrec,
    B.Environment: _env,
    B.Iter: _iter,
    B.RouteExpr: lambda w, b, d: _call(w, "route", b.args, d, "", len(b.args) > 2),
    B.Route: _route,
    B.WaveformExpr: lambda w, b, d: (w.put("waveform{"), _seq(w, b.values, d), w.put("}")),
    B.Waveform: lambda w, b, d: (w.put("waveform{"), _seq(w, b.values, d), w.put("}")),
    B.UIExpr: _uiexpr,
    B.UI: _ui,
    B.Bargraph: lambda w, b, d: w.put(f"{b.kind}({_str(b.label)}, {_param(b.lo)}, {_param(b.hi)})"),
    B.Group: _group,
    B.InputsOf: lambda w, b, d: _call(w, "inputs", (b.box,), d, "", True),
    B.OutputsOf: lambda w, b, d: _call(w, "outputs", (b.box,), d, "", True),
    B.FFun: _ffun,
    B.FConst: lambda w, b, d: w.put(f"fconstant({b.type} {b.name}, {_inc(b.include)})"),
    B.PatVar: lambda w, b, d: w.put(b.name),
    B.FVar: lambda w, b, d: w.put(f"fvariable({b.type} {b.name}, {_inc(b.include)})"),
    B.Dual: lambda w, b, d: _call(w, f"__fd_dual_{b.mode}", (b.box, B.Int(b.nvars)), d),
    B.Import: lambda w, b, d: w.put(f"import({_str(b.filename)})"),
    B.Library: lambda w, b, d: w.put(f"library({_str(b.filename)})"),
    B.Component: lambda w, b, d: w.put(f"component({_str(b.filename)})"),
    B.Declare: _declare,
    B.Program: _program,
}
