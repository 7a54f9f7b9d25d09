"""Box types: the (inputs, outputs) of a normal-form box, and Faust's composition errors.

Invariants:
* `arity(box)` never recurses in Python: a box tree of any depth (a 5,000-term `seq`/`par`
  chain) is walked with an explicit stack.
* Results are memoised by object identity (the memo keeps the box alive, so an id is never
  reused while its entry exists). Identity, not equality: hashing a deep frozen dataclass
  recurses in Python and would be as deep as the tree.
* A composition whose operand arities do not fit raises `FaustArityError` whose message is the
  whole multi-line text of Faust 2.54.9 (faust-language.md §4.2), located at the
  composition's span.
"""
from __future__ import annotations

from . import boxes as B
from .boxshow import show
from ..errors import FaustArityError
from ..core.primitives import PRIMITIVES

_MEMO: dict[int, tuple[B.Box, tuple[int, int]]] = {}

_COMPOSITIONS = (B.Seq, B.Par, B.Split, B.Merge, B.Rec)


def clear_cache() -> None:
    """Forget memoised arities (tests; long-running processes)."""
    _MEMO.clear()


def _show(box: B.Box) -> str:
    """Faust-like text of `box` for messages; repr while boxshow is missing."""
    try:
        return show(box)
    except (ImportError, RecursionError):
        try:
            return repr(box)
        except RecursionError:
            return f"<{type(box).__name__}>"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _leaf(box: B.Box) -> tuple[int, int]:
    """Arity of a box without sub-boxes (or None for composite boxes)."""
    if isinstance(box, (B.Int, B.Real, B.Slot, B.PatVar, B.UI, B.FConst, B.FVar)):
        return (0, 1)
    if isinstance(box, B.Wire):
        return (1, 1)
    if isinstance(box, B.Cut):
        return (1, 0)
    if isinstance(box, B.Prim):
        row = PRIMITIVES.get(box.name)
        if row is None:
            raise TypeError(f"arity: unknown primitive {box.name!r}")
        return (row.ins, row.outs)
    if isinstance(box, B.Route):
        return (box.ins, box.outs)
    if isinstance(box, B.Waveform):
        return (0, 2)
    if isinstance(box, B.Bargraph):
        return (1, 1)
    if isinstance(box, B.FFun):
        return (len(box.argtypes), 1)
    if isinstance(box, B.Failed):
        raise box.error
    raise TypeError(f"arity: not a normal-form box: {type(box).__name__}")


def _children(box: B.Box) -> tuple[B.Box, ...]:
    if isinstance(box, _COMPOSITIONS):
        return (box.a, box.b)
    if isinstance(box, B.Group):
        return (box.body,)
    if isinstance(box, (B.Symbolic, B.Dual)):
        return (box.body,) if isinstance(box, B.Symbolic) else (box.box,)
    return ()


def _simple_error(kind: str, op: str, relation: str, box, a, b, aout: int, bin_: int):
    msg = (f"ERROR in {kind} composition A{op}B\n"
           f"The number of outputs [{aout}] of A must be {relation} the number of inputs "
           f"[{bin_}] of B\n\n"
           f"Here  A = {_show(a)};\nhas {_plural(aout, 'output')}\n\n"
           f"while B = {_show(b)};\nhas {_plural(bin_, 'input')}")
    return FaustArityError(msg, box.span)


def _rec_error(box, a, b, ai, ao, bi, bo):
    parts = []
    if bi > ao:
        parts.append(f"The number of outputs [{ao}] of A must be at least the number of "
                     f"inputs [{bi}] of B. ")
    if bo > ai:
        parts.append(f"The number of inputs [{ai}] of A must be at least the number of "
                     f"outputs [{bo}] of B. ")
    msg = ("ERROR in recursive composition A~B\n" + "".join(parts) + "\n\n"
           f"Here  A = {_show(a)}; has {_plural(ai, 'input')} and {_plural(ao, 'output')},\n"
           f"while B = {_show(b)}; has {_plural(bi, 'input')} and {_plural(bo, 'output')}.")
    return FaustArityError(msg, box.span)


def _combine(box: B.Box, sub: list[tuple[int, int]]) -> tuple[int, int]:
    """Arity of a composite box from its children's arities (checks the composition rule)."""
    if isinstance(box, B.Group):
        return sub[0]
    if isinstance(box, B.Symbolic):
        return (1 + sub[0][0], sub[0][1])
    if isinstance(box, B.Dual):
        k = box.nvars + 1   # every input and output becomes a dual of k signals
        return (sub[0][0] * k, sub[0][1] * k)
    (ai, ao), (bi, bo) = sub
    if isinstance(box, B.Par):
        return (ai + bi, ao + bo)
    if isinstance(box, B.Seq):
        if ao != bi:
            raise _simple_error("sequential", ":", "equal to", box, box.a, box.b, ao, bi)
        return (ai, bo)
    if isinstance(box, B.Split):
        if ao == 0 or bi == 0 or bi % ao != 0:
            raise _simple_error("split", "<:", "a divisor of", box, box.a, box.b, ao, bi)
        return (ai, bo)
    if isinstance(box, B.Merge):
        if ao == 0 or bi == 0 or ao % bi != 0:
            raise _simple_error("merge", ":>", "a multiple of", box, box.a, box.b, ao, bi)
        return (ai, bo)
    if isinstance(box, B.Rec):
        if bi > ao or bo > ai:
            raise _rec_error(box, box.a, box.b, ai, ao, bi, bo)
        return (ai - bo, ao)
    raise TypeError(f"arity: unexpected box {type(box).__name__}")


def arity(box: B.Box) -> tuple[int, int]:
    """(number of inputs, number of outputs) of a normal-form box.

    Raises FaustArityError for an ill-formed composition (the innermost one found first,
    walking left operands before right ones, as Faust does).
    """
    hit = _MEMO.get(id(box))
    if hit is not None and hit[0] is box:
        return hit[1]
    # Explicit post-order walk: (box, expanded?) frames.
    stack: list[tuple[B.Box, bool]] = [(box, False)]
    while stack:
        node, expanded = stack.pop()
        hit = _MEMO.get(id(node))
        if hit is not None and hit[0] is node:
            continue
        kids = _children(node)
        if not kids:
            result = _leaf(node)
        elif not expanded:
            stack.append((node, True))
            for kid in reversed(kids):  # left child is processed first
                stack.append((kid, False))
            continue
        else:
            result = _combine(node, [_MEMO[id(k)][1] for k in kids])
        _MEMO[id(node)] = (node, result)
    return _MEMO[id(box)][1]


def inputs(box: B.Box) -> int:
    return arity(box)[0]


def outputs(box: B.Box) -> int:
    return arity(box)[1]
