"""Normal-form boxes -> signals: the meaning of the block-diagram algebra (§4.2, §6.6).

`propagate(box, inputs, ctx)` returns the box's output signals given signals for its inputs.

Invariants:
* The result has exactly `arity(box)[1]` signals; `inputs` must have `arity(box)[0]`.
* A box reached again with the same input signals in the same scope (same enclosing UI
  groups, same slot bindings) is not re-propagated: a memo keyed by identities makes shared
  sub-boxes (DAG-shaped normal forms) cost once.
* Deep boxes (5,000-term sums, `seq(i, 2000, ...)`) are fine: propagation recurses in Python,
  but inside `deep_call`, a worker thread with a large stack and recursion limit.
* `A ~ B` becomes a `RecGroup` whose RecVars stand for the first b_in outputs of A at t-1;
  their types are found by a fixpoint starting from int (a counter `+(1)~_` stays int, a
  filter becomes real), re-propagating A and B when a guess was too narrow. An output whose
  unsimplified term reads no recursion variable is that term, not a projection (as Faust).
* A `Par` tree of wires (`si.bus(n)`) passes its inputs through in one step.
* `Dual(E, N, mode)` (automatic differentiation) is handed to `ad.dual_outputs`: E on the
  values, then the JVP of its signals on the partials (see `ad`).
* Inside, the rules pass *values* (`raw`): a simplified signal, with Faust's unsimplified
  term beside it when the two differ (`x * 1`, a route's `0 + x`); the memo and the keys of
  recursion groups use them, so recursions equal only once simplified stay two, as in
  Faust. `propagate` returns the simplified signals; a `Dual`'s outputs are plain signals.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from ..frontend import boxes as B
from ..frontend.boxshow import show
from . import ir as S
from . import conditions
from . import raw as R
from ..frontend.arity import arity
from ..core.deep import deep_call
from ..errors import FaustError
from ..core.primitives import PRIMITIVES


class _Scope:
    """Where a box is propagated: enclosing UI groups and slot bindings (a chain)."""
    __slots__ = ("parent", "groups", "slot", "value")

    def __init__(self, parent, groups, slot=None, value=None):
        self.parent, self.groups, self.slot, self.value = parent, groups, slot, value

    def lookup(self, slot_id: int) -> Optional[S.Sig]:
        s = self
        while s is not None:
            if s.slot == slot_id:
                return s.value
            s = s.parent
        return None


@dataclass
class Context:
    """State of one propagation.

    name    -- the root group label (the program's name), used in widget paths
    widgets -- full widget path -> ui node, to reject a path used with other parameters
    """
    name: str = ""
    widgets: dict = field(default_factory=dict)
    _memo: dict = field(default_factory=dict, repr=False)
    _scopes: dict = field(default_factory=dict, repr=False)
    root: _Scope = field(default_factory=lambda: _Scope(None, ()), repr=False)
    main_file: Optional[str] = None   # errors in library boxes are shown at its boxes
    # id(signal) -> (signal, the box that first built it; a `Seq` for `x op y`), so that
    # run-time problems (`faustdiff run --check-finite`) can point at the source
    origins: dict = field(default_factory=dict, repr=False)

    def child(self, parent: _Scope, key, make) -> _Scope:
        """Interned child scopes: the same (parent, key) gives the same scope (memo hits)."""
        k = (id(parent), key)
        hit = self._scopes.get(k)
        if hit is None:
            hit = self._scopes[k] = make()
        return hit


def propagate(box: B.Box, inputs: Optional[list] = None, ctx: Optional[Context] = None,
              ) -> list[S.Sig]:
    """Output signals of `box` fed with `inputs` (default: the audio inputs 0..n-1)."""
    ctx = ctx or Context()
    ins, _ = arity(box)
    if inputs is None:
        inputs = [S.input_(i) for i in range(ins)]
    if len(inputs) != ins:
        raise ValueError(f"propagate: box has {ins} inputs, {len(inputs)} signals given")
    if ctx.main_file is None and box.span is not None:
        ctx.main_file = box.span.file
    made = S.CONTROLS_MADE
    outs = R.sigs_of(deep_call(_prop, ctx, box, list(inputs), ctx.root))
    if S.CONTROLS_MADE == made:
        return outs
    return deep_call(conditions.apply, outs)   # control/enable: conditional computation


# ---------------------------------------------------------------- deep recursion guard

# ---------------------------------------------------------------- the algebra

# id(box) -> (box, is it a tree of `Par`s of `Wire`s, i.e. a bus?)
_BUS: dict = {}


def _is_bus(box: B.Box) -> bool:
    """A `Par` tree of wires (`si.bus(n)`): propagated as the identity in one step, not level
    by level (which costs O(n^2) in slices and memo keys for a wide bus)."""
    hit = _BUS.get(id(box))
    if hit is not None and hit[0] is box:
        return hit[1]
    # Every `Par` node below gets its answer memoised (post-order), so that asking again for
    # each level of a long chain costs O(1), not a walk of the chain (O(n^2) in all).
    stack = [(box, False)]
    while stack:
        b, expanded = stack.pop()
        if b.__class__ is not B.Par:
            continue
        h = _BUS.get(id(b))
        if h is not None and h[0] is b:
            continue
        if expanded:
            _BUS[id(b)] = (b, _bus_part(b.a) and _bus_part(b.b))
        else:
            stack += ((b, True), (b.a, False), (b.b, False))
    return _BUS[id(box)][1]


def _bus_part(b: B.Box) -> bool:
    return b.__class__ is B.Wire or (b.__class__ is B.Par and _BUS[id(b)][1])


def _prop(ctx: Context, box: B.Box, inputs: list, scope: _Scope) -> list:
    if box.__class__ is B.Par and _is_bus(box):
        return list(inputs)
    key = (id(box), tuple(map(id, inputs)), id(scope))
    hit = ctx._memo.get(key)
    if hit is not None:
        return list(hit[2])
    fn = _RULES.get(type(box))
    if fn is None:
        raise TypeError(f"propagate: not a normal-form box: {type(box).__name__}")
    try:
        outs = fn(ctx, box, inputs, scope)
    except FaustError as e:
        raise _at_main_file(ctx, e, box) from None
    ctx._memo[key] = (box, inputs, tuple(outs))   # keep ids alive while memoised
    return outs


def _at_main_file(ctx: Context, err: FaustError, box: B.Box) -> FaustError:
    """An error located in a library, shown at the innermost box of the main file that
    contains it (the library position kept on the last line), as `evaluate` does."""
    sp, main = box.span, ctx.main_file
    if (isinstance(err, _PrimError) or getattr(err, "at_site", False) or sp is None
            or sp.file != main or err.span is None or err.span.file == main):
        return err
    from ..frontend.evaluate import CALL_TEXT
    hit = CALL_TEXT.get(id(box))
    text = hit[1] if hit is not None and hit[0] is box else box_text(box)
    lib = f"library code at {err.span}" + (f" ({err.expr})" if err.expr else "")
    if isinstance(box, B.Symbolic) and hit is None:   # `\(slot0).(...)`: not as written
        new = type(err)(err.message, sp, None)
        new.message = err.message + f"\n  {lib}"
    else:
        new = type(err)(err.message, sp, f"{text}\n  {lib}")
    new.at_site = True
    return new


def _num(ctx, box, inputs, scope):
    return [S.const(box.value)]


def _wire(ctx, box, inputs, scope):
    return list(inputs)


def _cut(ctx, box, inputs, scope):
    return []


def _origin(ctx, sig: S.Sig, box: B.Box) -> None:
    """Remember the first box of this propagation that built `sig` (see `Context.origins`)."""
    if id(sig) not in ctx.origins:
        ctx.origins[id(sig)] = (sig, box)


class _PrimError(FaustError):
    """An error of a primitive, raised again by the enclosing `Seq` (`x op y`, `op(y)`) with
    the span and text of the whole expression."""

    def __init__(self, message, prim, span, original=None):
        super().__init__(message, span)
        self.prim, self.original = prim, original


def box_text(box: B.Box, depth: int = 0) -> str:
    """`box` as written: `x op y` for an infix operator applied to two operands, `f(x, y)`
    for another primitive applied to as many single-output operands as it has inputs."""
    if isinstance(box, B.Seq) and isinstance(box.b, B.Prim) and depth < 4:
        name = box.b.name
        args = _operands(box.a, PRIMITIVES[name].ins)
        if args is not None and len(args) == 2 and (not name[0].isalpha() or name == "xor"):
            return f"{_operand(args[0], depth)} {name} {_operand(args[1], depth)}"
        if args is not None and name[0].isalpha():
            return f"{name}({', '.join(box_text(a, depth + 1) for a in args)})"
    return show(box)


def _operands(box: B.Box, n: int) -> Optional[list]:
    """The n single-output boxes of a right-nested parallel composition, else None."""
    items = []
    while len(items) < n - 1 and isinstance(box, B.Par):
        items.append(box.a)
        box = box.b
    items.append(box)
    try:
        ok = len(items) == n and all(arity(x)[1] == 1 for x in items)
    except FaustError:
        return None
    return items if ok else None


def _operand(box: B.Box, depth: int) -> str:
    s = box_text(box, depth + 1)
    level, quoted = 0, False
    for c in s:   # parenthesised when a space or comma shows at the top level
        if c == '"':
            quoted = not quoted
        elif not quoted and c in "([{":
            level += 1
        elif not quoted and c in ")]}":
            level -= 1
        elif not quoted and level == 0 and c in " ," and not isinstance(box, (B.Int, B.Real)):
            return f"({s})"
    return s


def _prim(ctx, box, inputs, scope):
    sigs = R.sigs_of(inputs)
    if box.name in ("/", "%") and S.is_const(sigs[1], 0):
        what = "division" if box.name == "/" else "%"
        raise _PrimError(f"{what} by 0 in {S.show(sigs[0])} {box.name} {S.show(sigs[1])}",
                         box, box.span)
    try:
        out = S.prim(box.name, *sigs)
    except FaustError as e:
        if e.span is not None:
            raise
        raise _PrimError(e.message, box, box.span, e) from None
    _origin(ctx, out, box)
    return [R.prim(box.name, out, tuple(inputs))]


def _seq(ctx, box, inputs, scope):
    mid = _prop(ctx, box.a, inputs, scope)
    try:
        outs = _prop(ctx, box.b, mid, scope)
    except _PrimError as e:
        if e.prim is not box.b or box.span is None:
            raise
        text = box_text(box)
        if e.message.startswith(("division by 0 in ", "% by 0 in ")):   # Faust's wording
            raise FaustError(e.message.split(" in ", 1)[0] + " in " + text, box.span) from None
        if isinstance(e.original, S.DelayError) and isinstance(box.a, B.Par):
            amount = box_text(box.a.b)
            raise FaustError(e.original.render(amount, text), box.span) from None
        raise FaustError(e.message, box.span, text) from None
    out = R.sig_of(outs[0]) if len(outs) == 1 else None
    if (isinstance(box.b, (B.Prim, B.FFun)) and out is not None
            and ctx.origins.get(id(out), (None, None))[1] is box.b):
        ctx.origins[id(out)] = (out, box)   # `x op y` rather than `op`
    return outs


def _par(ctx, box, inputs, scope):
    # A right-nested chain `a, (b, (c, ...))` (`par(i, n, ...)`) is walked in a loop: passing
    # the remaining inputs level by level would cost O(n^2) in slices and memo keys.
    outs, pos = [], 0
    while True:
        ai = arity(box.a)[0]
        outs += _prop(ctx, box.a, inputs[pos:pos + ai], scope)
        pos += ai
        if box.b.__class__ is not B.Par or _is_bus(box.b):
            break
        box = box.b
    return outs + _prop(ctx, box.b, inputs[pos:], scope)


def _split(ctx, box, inputs, scope):
    ys = _prop(ctx, box.a, inputs, scope)
    bi = arity(box.b)[0]
    return _prop(ctx, box.b, [ys[k % len(ys)] for k in range(bi)], scope)


def _sum(values):
    acc = values[0]
    for v in values[1:]:
        acc = R.add(acc, v)
    return acc


def _merge(ctx, box, inputs, scope):
    ys = _prop(ctx, box.a, inputs, scope)
    bi = arity(box.b)[0]
    return _prop(ctx, box.b, [_sum(ys[k::bi]) for k in range(bi)], scope)


def _rec(ctx, box, inputs, scope):
    """y = A(B(y[t-1]), inputs): RecVars for A's first b_in outputs, types by fixpoint."""
    bi = arity(box.b)[0]
    types = ["int"] * bi
    while True:
        group = S.RecGroup(types)
        fed = _prop(ctx, box.b, [group.var(i) for i in range(bi)], scope)
        ys = _prop(ctx, box.a, fed + inputs, scope)
        joined = [S.union_type((t, R.sig_of(y).type)) for t, y in zip(types, ys)]
        if joined == types:
            break
        types = joined   # a guess was too narrow: widen and propagate again
    if bi == 0:
        return ys
    sigs = R.sigs_of(ys)
    group.define((S.to_type(y, t) for y, t in zip(sigs, types)), R.group_tag(group, ys))
    # A's other outputs may read the RecVars: an alias's must read the canonical group's
    outs = [group.proj(i) for i in range(bi)] + group.rename(sigs[bi:])
    return R.rec_outputs(group, ys, outs)


def _route(ctx, box, inputs, scope):
    outs: list = [None] * box.outs
    for src, dst in box.pairs:
        if 1 <= src <= box.ins and 1 <= dst <= box.outs:   # out-of-range pairs are ignored
            outs[dst - 1] = R.route_sum(outs[dst - 1], inputs[src - 1])   # Faust's 0 + x
    return [S.int_const(0) if o is None else o for o in outs]


def _waveform(ctx, box, inputs, scope):
    return list(S.waveform([v.value for v in box.values]))


_GROUP_PREFIX = re.compile(r"\s*([hvt]):([^/]*)/(.*)", re.S)
_GROUP_KINDS = {"h": "hgroup", "v": "vgroup", "t": "tgroup"}


def label_path(label: str, groups: tuple) -> tuple:
    """(groups, label) of a widget label that names groups, as Faust reads it: each leading
    `h:name/`, `v:name/`, `t:name/` opens that group inside the enclosing ones
    (`button("v:brass/[1]gate")` is `gate` in vgroup `brass`); other slashes are text."""
    m = _GROUP_PREFIX.fullmatch(label)
    while m is not None:
        groups = groups + ((_GROUP_KINDS[m.group(1)], m.group(2)),)
        label = m.group(3)
        m = _GROUP_PREFIX.fullmatch(label)
    return groups, label


def _ui(ctx, box, inputs, scope):
    groups, label = label_path(box.label, scope.groups)
    sig = S.ui(box.kind, label, groups, box.init, box.lo, box.hi, box.step)
    path = S.widget_path(sig, ctx.name)
    known = ctx.widgets.setdefault(path, sig)
    if known is not sig:
        raise FaustError(f"path '{path}' is already used", box.span)
    return [sig]


def _bargraph(ctx, box, inputs, scope):
    groups, label = label_path(box.label, scope.groups)
    out = S.bargraph(box.kind, label, groups, box.lo, box.hi, R.sig_of(inputs[0]))
    return [R.node(out, "bargraph", out.attrs, (inputs[0],))]


def _group(ctx, box, inputs, scope):
    groups = scope.groups + ((box.kind, box.label),)
    child = ctx.child(scope, ("g", box.kind, box.label),
                      lambda: _Scope(scope, groups))
    return _prop(ctx, box.body, inputs, child)


def _slot(ctx, box, inputs, scope):
    v = scope.lookup(box.id)
    if v is None:
        raise FaustError(f"unbound symbolic slot {box.id}", box.span)
    return [v]


def _symbolic(ctx, box, inputs, scope):
    x = inputs[0]
    child = ctx.child(scope, ("s", box.slot.id, id(x)),
                      lambda: _Scope(scope, scope.groups, box.slot.id, x))
    return _prop(ctx, box.body, inputs[1:], child)


def _failed(ctx, box, inputs, scope):
    raise box.error


def _ffun(ctx, box, inputs, scope):
    rtype = "int" if box.rtype == "int" else "real"
    try:
        out = S.ffun(box.name, rtype, tuple(box.argtypes), tuple(R.sigs_of(inputs)))
    except FaustError as e:
        raise FaustError(e.message, box.span) from None
    _origin(ctx, out, box)
    return [R.node(out, "ffun", out.attrs, tuple(inputs))]


def _fconst(ctx, box, inputs, scope):
    try:
        return [S.fconst(box.name, "int" if box.type == "int" else "real")]
    except FaustError as e:
        raise FaustError(e.message, box.span) from None


def _fvar(ctx, box, inputs, scope):
    try:
        return [S.fvar(box.name, "int" if box.type == "int" else "real")]
    except FaustError as e:
        raise FaustError(e.message, box.span) from None


# The meaning of `Dual` boxes belongs to the AD stage above this one: `faustdiff.ad`
# registers it here when imported (`register_dual`), `dual_outputs(box, inputs, propagate)`.
_DUAL: list = []


def register_dual(dual_outputs) -> None:
    """Install the propagation of `Dual` boxes (called by `faustdiff.ad` at import)."""
    _DUAL[:] = [dual_outputs]


def _dual(ctx, box, inputs, scope):
    """`Dual(E, N, mode)`: E on the values, forward-mode AD on the partials (see `ad`)."""
    if not _DUAL:
        raise FaustError("diff boxes need faustdiff.ad (import faustdiff, not only "
                         "faustdiff.signals)", box.span)
    try:
        # plain signals in and out: the AD rules see simplified signals only
        return _DUAL[0](box, R.sigs_of(inputs),
                        lambda b, xs: R.sigs_of(_prop(ctx, b, xs, scope)))
    except FaustError as e:
        if e.span is not None:
            raise
        raise FaustError(e.message, box.span) from None


_RULES = {
    B.Int: _num, B.Real: _num, B.Wire: _wire, B.Cut: _cut, B.Prim: _prim, B.Seq: _seq,
    B.Par: _par, B.Split: _split, B.Merge: _merge, B.Rec: _rec, B.Route: _route,
    B.Waveform: _waveform, B.UI: _ui, B.Bargraph: _bargraph, B.Group: _group,
    B.Slot: _slot, B.Symbolic: _symbolic, B.Failed: _failed, B.FFun: _ffun, B.FConst: _fconst, B.FVar: _fvar,
    B.Dual: _dual,
}

assert all(name in PRIMITIVES for name in ("@", "mem", "prefix", "rdtable", "rwtable"))
