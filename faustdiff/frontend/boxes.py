"""The box IR: Faust block diagrams as a tree of frozen dataclasses.

Two layers share these classes:

* **Syntax boxes** come out of `parse`: identifiers, applications, lambdas, `with`, `case`,
  iterations, environments, UI elements whose arguments are still expressions, and so on.
* **Normal-form boxes** come out of `evaluate`: only numbers, `Wire`, `Cut`, `Prim`, the five
  composition operators, `Route`, `Waveform`, `UI`/`Bargraph`/`Group`, `FFun`/`FConst`/`FVar`
  and the symbolic abstractions `Symbolic`/`Slot` (a function used as a box: its parameter
  becomes its first input), and `Dual` (a box in dual-number form, for automatic
  differentiation). `propagate` turns them into signals.

Every box carries a source `span` that is ignored by equality and hashing, so structurally
equal boxes compare equal wherever they were written (pattern matching relies on this).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..core.primitives import wrap_int32  # noqa: F401  (B.wrap_int32)
from ..errors import Span


def _span():
    return field(default=None, compare=False, hash=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Box:
    span: Optional[Span] = _span()


# ---------------------------------------------------------------- leaves (both layers)

@dataclass(frozen=True)
class Int(Box):
    """An int32 constant. `value` is already wrapped to [-2**31, 2**31)."""
    value: int


@dataclass(frozen=True)
class Real(Box):
    """A float64 constant. `Real(1.0) != Int(1)`: Faust keeps the two kinds apart."""
    value: float


@dataclass(frozen=True)
class Wire(Box):
    """`_`: 1 -> 1 identity."""


@dataclass(frozen=True)
class Cut(Box):
    """`!`: 1 -> 0."""


@dataclass(frozen=True)
class Prim(Box):
    """A primitive by its Faust name (`+`, `sin`, `mem`, `select2`, `rdtable`, `attach`, ...).

    Arity and everything else about it live in `primitives.PRIMITIVES[name]`.
    """
    name: str


# ---------------------------------------------------------------- composition (both layers)

@dataclass(frozen=True)
class Seq(Box):
    """`a : b`"""
    a: Box
    b: Box


@dataclass(frozen=True)
class Par(Box):
    """`a , b`"""
    a: Box
    b: Box


@dataclass(frozen=True)
class Split(Box):
    """`a <: b`"""
    a: Box
    b: Box


@dataclass(frozen=True)
class Merge(Box):
    """`a :> b`"""
    a: Box
    b: Box


@dataclass(frozen=True)
class Rec(Box):
    """`a ~ b`"""
    a: Box
    b: Box


# ---------------------------------------------------------------- normal-form only

@dataclass(frozen=True)
class Route(Box):
    """`route(ins, outs, pairs)` with evaluated, 1-based (source, destination) pairs."""
    ins: int
    outs: int
    pairs: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Waveform(Box):
    """`waveform{...}` with evaluated constants (all `Int` or `Real`): 0 -> 2."""
    values: tuple[Box, ...]


@dataclass(frozen=True)
class UI(Box):
    """An input widget: kind in {button, checkbox, hslider, vslider, nentry}; 0 -> 1.

    `label` is the label as written (metadata `[..]` included, `%i` already substituted);
    buttons and checkboxes have init=0, lo=0, hi=1, step=1.
    """
    kind: str
    label: str
    init: float = 0.0
    lo: float = 0.0
    hi: float = 1.0
    step: float = 1.0


@dataclass(frozen=True)
class Bargraph(Box):
    """An output widget: kind in {hbargraph, vbargraph}; 1 -> 1, passes its input through."""
    kind: str
    label: str
    lo: float
    hi: float


@dataclass(frozen=True)
class Group(Box):
    """`hgroup/vgroup/tgroup(label, body)`: transparent, only prefixes widget paths."""
    kind: str
    label: str
    body: Box


@dataclass(frozen=True)
class Slot(Box):
    """A symbolic parameter of an abstraction turned into a box: a 0 -> 1 placeholder."""
    id: int


@dataclass(frozen=True)
class PatVar(Box):
    """A variable of an evaluated pattern (`x` in `f(dup(x)) = ...`): matches any value.
    Only the pattern matcher sees it; it never reaches a normal-form program."""
    name: str


@dataclass(frozen=True)
class Symbolic(Box):
    """A function used as a box: inputs = 1 + inputs(body); input 0 feeds `slot`. `fn` is
    the function itself (the evaluator's closure), when it came from one: applied to
    arguments, the box applies the function, as Faust keeps closures inside compositions
    (`buildtree(vsrc : ...)` matches the composition, then applies vsrc to 0, 1, 2)."""
    slot: Slot
    body: Box
    fn: object = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Failed(Box):
    """The body of a function used as a box that cannot be evaluated on a symbolic slot
    (a case whose rules want numbers): the error is raised only if the box is used as a
    block diagram (its arity or signals), not when the function is applied later."""
    error: object = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class FFun(Box):
    """`ffunction(type name(argtypes), include, lib)`: n -> 1 call of a C function.

    `rtype`/`argtypes` are 'int' or 'float' (float means the chosen precision).
    """
    rtype: str
    name: str
    argtypes: tuple[str, ...]
    include: str = ""
    lib: str = ""


@dataclass(frozen=True)
class FConst(Box):
    """`fconstant(type name, include)`: 0 -> 1 (e.g. `fSamplingFreq`)."""
    type: str
    name: str
    include: str = ""


@dataclass(frozen=True)
class FVar(Box):
    """`fvariable(type name, include)`: 0 -> 1 (e.g. `count`, the block size)."""
    type: str
    name: str
    include: str = ""


@dataclass(frozen=True)
class Dual(Box):
    """The dual form of `box` for forward-mode AD with `nvars` partial derivatives.

    Arity: ins(box)*(nvars+1) -> outs(box)*(nvars+1). Every input and output is a *dual*: a
    block of nvars+1 signals, the value first, then the partials in variable order; a bus of
    duals is their concatenation (never interleaved). `mode` is "seed" (the seed diff.lib's
    rules for `/`, `tan`, `int` and `@`: guards, impulses, time differences) or "auto" (the
    true calculus everywhere). Produced by the `__fd_dual_seed`/`__fd_dual_auto` builtins
    that `diff.lib` calls; `propagate` runs `box` on the values and `ad.jvp` on the partials.
    """
    box: Box
    nvars: int
    mode: str = "auto"


# ---------------------------------------------------------------- syntax only

@dataclass(frozen=True)
class Ident(Box):
    """A name, possibly qualified with `::`."""
    name: str


@dataclass(frozen=True)
class Apply(Box):
    """`fn(arg1, ..., argk)`"""
    fn: Box
    args: tuple[Box, ...]


@dataclass(frozen=True)
class Lambda(Box):
    """`\\(p1, ..., pn).(body)`"""
    params: tuple[str, ...]
    body: Box


@dataclass(frozen=True)
class Rule(Box):
    """One rule of a pattern-matching function: `(patterns) => body`."""
    patterns: tuple[Box, ...]
    body: Box


@dataclass(frozen=True)
class Case(Box):
    """`case { rules }` (also the result of grouping several definitions of one name)."""
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Def(Box):
    """A definition `name = body;` or `name(params) = body;`.

    `params is None` for a plain definition. Params are pattern boxes: `Ident` for a plain
    parameter; numbers, structures (`Par`, `Seq`, ...) or repeated names make a pattern rule.
    """
    name: str
    params: Optional[tuple[Box, ...]]
    body: Box


@dataclass(frozen=True)
class RecDef(Box):
    """A `letrec` definition `'name = body;`."""
    name: str
    body: Box


@dataclass(frozen=True)
class With(Box):
    """`body with { defs }`"""
    body: Box
    defs: tuple[Def, ...]


@dataclass(frozen=True)
class Letrec(Box):
    """`body letrec { recdefs [where defs] }`"""
    body: Box
    recdefs: tuple[RecDef, ...]
    defs: tuple[Def, ...] = ()


@dataclass(frozen=True)
class Environment(Box):
    """`environment { defs }` (statements: definitions and imports)."""
    defs: tuple[Box, ...]


@dataclass(frozen=True)
class Access(Box):
    """`env.name`"""
    env: Box
    name: str


@dataclass(frozen=True)
class Modify(Box):
    """`box[defs]`: a copy of an environment with some definitions replaced."""
    env: Box
    defs: tuple[Def, ...]


@dataclass(frozen=True)
class Iter(Box):
    """`par/seq/sum/prod(var, count, body)`"""
    kind: str
    var: str
    count: Box
    body: Box


@dataclass(frozen=True)
class RouteExpr(Box):
    """`route(ins, outs, pairs...)` before evaluation: all arguments as written."""
    args: tuple[Box, ...]


@dataclass(frozen=True)
class WaveformExpr(Box):
    """`waveform{v1, ..., vn}` before evaluation."""
    values: tuple[Box, ...]


@dataclass(frozen=True)
class UIExpr(Box):
    """A UI element before evaluation: kind is the keyword (`hslider`, `button`,
    `hbargraph`, `hgroup`, ...), `label` the string literal, `args` the remaining arguments
    (numbers for sliders/bargraphs, the body for groups)."""
    kind: str
    label: str
    args: tuple[Box, ...]


@dataclass(frozen=True)
class InputsOf(Box):
    """`inputs(e)`"""
    box: Box


@dataclass(frozen=True)
class OutputsOf(Box):
    """`outputs(e)`"""
    box: Box


@dataclass(frozen=True)
class Import(Box):
    """`import("file");` as a statement."""
    filename: str


@dataclass(frozen=True)
class Library(Box):
    """`library("file")` as an expression (an environment)."""
    filename: str


@dataclass(frozen=True)
class Component(Box):
    """`component("file.dsp")` as an expression (its `process`)."""
    filename: str


@dataclass(frozen=True)
class Declare(Box):
    """`declare [name] key "value";` (metadata only)."""
    key: str
    value: str
    name: str = ""


@dataclass(frozen=True)
class Program(Box):
    """A parsed file: its statements (`Def`, `Import`, `Declare`) in order."""
    filename: str
    statements: tuple[Box, ...]


NUMBER_TYPES = (Int, Real)


def is_number(b: Box) -> bool:
    return isinstance(b, (Int, Real))


def number(v) -> Box:
    """The number box of a folded value: an int is an `Int`, a float a `Real`."""
    return Int(v) if isinstance(v, int) else Real(v)

