"""Scheduling the signal DAG for code generation (done once, at compile time).

`plan(outputs, bargraphs, sample_rate, name)` returns a `Plan`: the program's contexts (the
main one, then one per distinct table init signal), each scheduled into

* `folded`   -- nodes whose value is known at compile time (constants, and everything that
                depends only on constants and the sample rate, evaluated here with the
                interpreter's own scalar functions, so the values are bit-identical);
* `control`  -- nodes of rate <= K_BLOCK (UI, block size, table reads at a control index):
                computed once per `compute` call, before the sample loop;
* `sample`   -- the per-sample nodes, operands before users (`signals.topo_order`); hash-
                consing makes every shared subexpression one node, hence computed once;

plus its state layout:

* recursion variables (`recvar`), `prefix` states, waveform counters, short constant delays
  (shift registers) -> scalar slots of `iv` (int64) / `fv` (float64), loaded into locals for
  the sample loop and stored back after it;
* one delay line per DELAYED SIGNAL (all `x@d` of one `x` share it, sized for the largest
  `d`): a shift register of scalars when every `d` is a constant <= SHIFT_MAX, otherwise a
  power-of-two ring buffer in `di` (int32) / `df` (float64) indexed by the running sample
  count `t` (`(t - d) & mask`), or, when no bound is known, the whole history (rows of
  `hi`/`hf`, grown by the runtime);
  a shift register of `proj(g, i)` uses g's recursion variable as its first register (both
  hold the value of definition i at t-1);
* scatters (the transpose of a variable delay, reverse mode): a power-of-two ring buffer in
  `df` where sample t adds x[t] at t + d and reads (then clears) slot t; adjtables (the
  transpose of an rwtable) a region of `df` of the table's size;
* tables: a region of `di`/`df` filled at reset by running the init signal's own context;
  read-only tables with the same init signal and size share one region.

Semantics are the reference interpreter's (interp.py), clamps included: a variable delay
amount is clamped to [0, bound] and a table index to [0, size-1] even where the intervals say
it is useless, since intervals are not sound for C's (int) of NaN or of out-of-range values
(INT_MIN: `int(abs(x)) % 7` may be -2) nor for widgets set outside their range. `iv[0]` is
`t`, the number of samples since reset.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from ..core import primitives as P
from ..signals import ir as S

SHIFT_MAX = 4              # constant delays up to this length: scalar shift registers
HISTORY_LIMIT = 1 << 22    # larger (or unknown) bounds keep the whole history (as interp)


def pow2_at_least(n: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return size


@dataclass
class Line:
    """The delay line of one signal `x`, shared by every `delay(x, d)` node."""
    x: S.Sig
    type: str                      # 'int' or 'real'
    kind: str = "shift"            # 'shift' | 'ring' | 'history'
    length: int = 0                # shift: registers; ring: buffer size (power of two)
    offset: int = 0                # ring: start in di/df; history: row of hi/hf
    regs: list = field(default_factory=list)   # shift: scalar slot of register k (1-based)
    rec: Optional[S.Sig] = None    # shift of proj(g, i): the recvar used as register 1
    nodes: list = field(default_factory=list)
    bounds: dict = field(default_factory=dict)  # id(delay node) -> its max delay
    first: Optional[S.Sig] = None  # ring/history: the node that writes x
    extra: dict = field(default_factory=dict)   # id(delay node) -> samples added to its d
    #                                             (1 for a delay of recvar(g, i) read from
    #                                             the line of proj(g, i))


@dataclass
class Table:
    """A table region: `size` values of `init` (own context `ctx`), in di/df at `offset`."""
    init: S.Sig
    size: int
    type: str
    offset: int
    ctx: "Context"
    writable: bool


@dataclass
class Context:
    """One scheduled signal context (the main program, or a table's init signal)."""
    index: int
    depth: int                     # 0: main, 1: a table of main, 2+: nested tables
    outputs: list                  # output signals (main) or [init signal]
    bargraphs: list                # bargraph nodes recorded per sample (main only)
    folded: dict = field(default_factory=dict)    # id(node) -> Python value
    control: list = field(default_factory=list)   # nodes computed once per call
    sample: list = field(default_factory=list)    # nodes computed every sample
    lines: dict = field(default_factory=dict)     # id(x) -> Line
    line_of: dict = field(default_factory=dict)   # id(delay node) -> Line
    tables: list = field(default_factory=list)    # Table regions of this context
    table_of: dict = field(default_factory=dict)  # id(table node) -> Table
    recs: dict = field(default_factory=dict)      # id(recvar) -> scalar slot
    rec_nodes: list = field(default_factory=list)
    prefixes: dict = field(default_factory=dict)  # id(prefix node) -> scalar slot
    waves: dict = field(default_factory=dict)     # id(waveform node) -> counter slot
    scatters: dict = field(default_factory=dict)  # id(scatter/adjtable) -> (offset in df, size)
    clamp: dict = field(default_factory=dict)     # id(delay) -> (clamp at 0, at bound);
    #                                               id(table) -> clamp of each index
    uses_t: bool = False
    # state sizes: scalars (iv, fv), arrays (di, df), history rows (hi, hf)
    niv: int = 1                   # iv[0] is t
    nfv: int = 0
    ndi: int = 0
    ndf: int = 0
    nhi: int = 0
    nhf: int = 0

    def scalar(self, type_: str) -> tuple:
        """A new scalar slot: ('iv'|'fv', index)."""
        if type_ == "int":
            self.niv += 1
            return ("iv", self.niv - 1)
        self.nfv += 1
        return ("fv", self.nfv - 1)

    def region(self, type_: str, size: int) -> int:
        """A new region of `size` elements of `di` (int32) or `df` (float64). Regions after
        the first start one cache line (64 bytes) past the previous one's end: delay lines
        are powers of two, and packed end to end their write positions (t & mask) all fell
        in the same L1 cache set, more lines than the cache has ways (zitaRev's 18 lines:
        3.3x slower than staggered)."""
        if type_ == "int":
            start = self.ndi + (16 if self.ndi else 0)
            self.ndi = start + size
            return start
        start = self.ndf + (8 if self.ndf else 0)
        self.ndf = start + size
        return start


@dataclass
class Plan:
    contexts: list                 # Context, main first
    controls: list                 # ui nodes in Program's (Faust's UI) order
    bargraphs: list                # bargraph nodes in report order
    num_inputs: int
    sample_rate: int
    name: str = ""
    finals: list = field(default_factory=list)   # state slot ('iv'|'fv', index) per kept node
    reverse_io: bool = False       # sample i of a run over s0..s1-1 reads/writes sample s0+s1-1-i
    in_offset: int = 0             # columns of the inputs' rows before sample 0 (history)
    out_offset: int = 0            # columns of the outputs' rows before sample 0
    fastmath: tuple = ()           # LLVM fast-math flags of the kernels (codegen.FASTMATH_OK)
    batch: bool = True             # also generate the batch (lane) kernel (codegen.batch_kernel)
    loss_rows: int = 0             # > 0: and its fused-L2 form (batch_kernel(loss=True))

    @property
    def main(self) -> Context:
        return self.contexts[0]


# ---------------------------------------------------------------- folding

def _fold_value(s: S.Sig, vals: list, sample_rate: int):
    """The value of s from its operands' values, exactly as the interpreter computes it;
    raises on anything it cannot do (then s is left to run time)."""
    op = s.op
    if op == "fconst":
        return sample_rate if s.type == "int" else float(sample_rate)
    if op == "prim":
        types = tuple(a.type for a in s.args)
        _, convs, fn = P.plan(s.name, types)
        return fn(*[P.convert(v, c) for v, c in zip(vals, convs)])
    if op == "ffun" and s.args:
        if s.name == "arc4random":
            raise ValueError("not constant")
        return P.FFUNS[s.name](*vals)
    if op == "bargraph":
        return float(vals[0])
    raise ValueError(op)


def _fold(order: Sequence[S.Sig], sample_rate: int) -> dict:
    folded: dict = {}
    for s in order:
        if s.op == "const":
            folded[id(s)] = s.value
            continue
        if s.rate > S.K_INIT or s.op not in ("prim", "ffun", "fconst"):
            continue
        if not all(id(a) in folded for a in s.args):
            continue
        try:
            v = _fold_value(s, [folded[id(a)] for a in s.args], sample_rate)
        except Exception:   # noqa: BLE001 - e.g. an int % 0: left to run time, which raises
            continue
        if s.type == "int":
            if not isinstance(v, int):
                continue
        else:
            v = float(v)
        folded[id(s)] = v
    return folded


# ---------------------------------------------------------------- structural identity

def fingerprint(root: S.Sig) -> tuple:
    """A structural key of a signal, equal for signals that differ only by the identity of
    their recursion groups (each `~` makes a new group, so the 16 tables of 16 `os.osc`
    are 16 distinct but identical init signals). Equal keys mean equal sample streams: the
    key lists every node (table init signals included) in `topo_order`, which depends only
    on structure, with operands, recursion definitions and groups as positions/numbers."""
    order = S.topo_order([root], follow_tables=True)
    pos = {id(s): k for k, s in enumerate(order)}
    groups: dict = {}
    key = []
    for s in order:
        attrs = s.attrs
        extra = ()
        if s.op in ("recvar", "proj"):
            g, i = attrs
            attrs = (groups.setdefault(id(g), len(groups)), i)
            extra = (pos.get(id(g.defs[i]), -1),)
        key.append((s.op, S._akey(attrs), s.type, tuple(pos[id(a)] for a in s.args)) + extra)
    return tuple(key)


# ---------------------------------------------------------------- planning

class _Planner:
    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.contexts: list[Context] = []
        self.init_ctx: dict = {}     # (fingerprint(init), depth) -> Context
        self.fingerprints: dict = {}

    def context(self, outputs, bargraphs, depth: int, keep=()) -> Context:
        ctx = Context(len(self.contexts), depth, list(outputs), list(bargraphs))
        self.contexts.append(ctx)
        # a kept projection's RecVar is a root too: its state slot holds the final value
        # even when the definitions never read it (`_held` values of reverse mode)
        roots = list(outputs) + list(bargraphs) + list(keep) + _kept_vars(keep)
        order = S.topo_order(roots)
        ctx.folded = _fold(order, self.sample_rate)
        shared_tables: dict = {}

        for s in order:
            if id(s) in ctx.folded:
                continue
            if s.rate <= S.K_BLOCK:
                ctx.control.append(s)
            else:
                ctx.sample.append(s)
            op = s.op
            if op == "delay":
                self._delay(ctx, s)
            elif op in ("rdtable", "rwtable"):
                self._table(ctx, s, shared_tables)
            elif op == "recvar":
                self._recvar(ctx, s)
            elif op == "prefix":
                ctx.prefixes[id(s)] = ctx.scalar(s.type)
                ctx.uses_t = True
            elif op == "scatter":
                size = pow2_at_least(s.attrs[0] + 1)
                ctx.scatters[id(s)] = (ctx.region("real", size), size)
                ctx.uses_t = True
            elif op == "adjtable":
                ctx.scatters[id(s)] = (ctx.region("real", s.attrs[0]), s.attrs[0])
            elif op == "waveform":
                ctx.waves[id(s)] = ctx.scalar("int")

        # Lay out the delay lines now that every user (hence every bound) is known.
        self._merge_recvar_lines(ctx)
        for line in ctx.lines.values():
            self._layout(ctx, line)
        return ctx

    def _merge_recvar_lines(self, ctx: Context) -> None:
        """`recvar(g, i) @ k` is `proj(g, i) @ (k + 1)` (both are zero before t = 0): a
        constant delay of a recursion variable joins the shift register of the recursion's
        own output (whose first register is that variable), when both stay short."""
        def short(line, extra):
            return all(id(n.args[1]) in ctx.folded for n in line.nodes) and \
                max(line.bounds.values()) + extra <= SHIFT_MAX
        for key, line in list(ctx.lines.items()):
            if line.x.op != "recvar" or not short(line, 1):
                continue
            g, i = line.x.attrs
            px = g.proj(i)
            target = ctx.lines.get(id(px))
            if target is not None and not short(target, 0):
                continue
            if target is None:
                target = ctx.lines[id(px)] = Line(px, line.type)
            del ctx.lines[key]
            for n in line.nodes:
                target.nodes.append(n)
                target.bounds[id(n)] = line.bounds[id(n)] + 1
                target.extra[id(n)] = 1
                ctx.line_of[id(n)] = target

    # -- delays

    def _delay(self, ctx: Context, s: S.Sig) -> None:
        x, d = s.args
        line = ctx.lines.get(id(x))
        if line is None:
            line = ctx.lines[id(x)] = Line(x, s.type)
        line.nodes.append(s)
        ctx.line_of[id(s)] = line
        if id(d) in ctx.folded:
            dv = ctx.folded[id(d)]
            bound = max(0, dv)
        else:
            bound = S.max_delay(d)
            # clamps to [0, bound] unless the amount is sure to be in it (see sure_range)
            lo, hi = S.sure_range(d)
            ctx.clamp[id(s)] = (lo < 0, bound is None or hi > bound)
        line.bounds[id(s)] = bound

    def _layout(self, ctx: Context, line: Line) -> None:
        bounds = list(line.bounds.values())
        consts = all(id(n.args[1]) in ctx.folded for n in line.nodes)
        if any(b is None or b > HISTORY_LIMIT for b in bounds):
            line.kind = "history"
            if line.type == "int":
                line.offset, ctx.nhi = ctx.nhi, ctx.nhi + 1
            else:
                line.offset, ctx.nhf = ctx.nhf, ctx.nhf + 1
            line.first = line.nodes[0]
            ctx.uses_t = True
            return
        top = max(bounds)
        if consts and top <= SHIFT_MAX:
            line.kind = "shift"
            line.length = top
            x = line.x
            if x.op == "proj":
                g, i = x.attrs
                rv = g.var(i)
                self._recvar(ctx, rv)
                line.rec = rv
                line.regs = [None] + [ctx.scalar(line.type) for _ in range(top - 1)]
            else:
                line.regs = [ctx.scalar(line.type) for _ in range(top)]
            return
        line.kind = "ring"
        line.length = pow2_at_least(top + 1)
        line.offset = ctx.region(line.type, line.length)
        line.first = line.nodes[0]
        ctx.uses_t = True

    # -- recursion

    def _recvar(self, ctx: Context, rv: S.Sig) -> None:
        if id(rv) not in ctx.recs:
            ctx.recs[id(rv)] = ctx.scalar(rv.type)
            ctx.rec_nodes.append(rv)

    # -- tables

    def _table(self, ctx: Context, s: S.Sig, shared: dict) -> None:
        init, size = s.args[0], s.attrs[0]
        writable = s.op == "rwtable"
        fp = self.fingerprints.get(id(init))
        if fp is None:
            fp = self.fingerprints[id(init)] = fingerprint(init)
        key = (fp, size)
        tab = None if writable else shared.get(key)
        if tab is None:
            sub = self.init_ctx.get((fp, ctx.depth + 1))
            if sub is None:
                sub = self.context([init], [], ctx.depth + 1)
                self.init_ctx[(fp, ctx.depth + 1)] = sub
            tab = Table(init, size, s.type, ctx.region(s.type, size), sub, writable)
            ctx.tables.append(tab)
            if not writable:
                shared[key] = tab
        ctx.table_of[id(s)] = tab
        idxs = s.args[1:2] if not writable else (s.args[1], s.args[3])
        ctx.clamp[id(s)] = tuple(not (S.sure_range(i)[0] >= 0 and S.sure_range(i)[1] < size)
                                 for i in idxs)


def _kept_vars(keep) -> list:
    """The RecVars of kept projections (`keep`)."""
    return [s.attrs[0].var(s.attrs[1]) for s in keep if s.op == "proj"]


def plan(outputs: Sequence[S.Sig], bargraphs: Sequence[S.Sig] = (), num_inputs: int = 0,
         sample_rate: int = 44100, name: str = "",
         controls: Optional[Sequence[S.Sig]] = None, keep: Sequence[S.Sig] = ()) -> Plan:
    """Schedule a program: `outputs`, the `bargraphs` recorded per sample (report order), and
    the `controls` in Program's order (default: every reachable widget in Faust's UI order).
    `keep`: projections of recursion groups computed every sample but not recorded; their
    final values are read from the state after a run (`Plan.finals`)."""
    outputs, bargraphs, keep = list(outputs), list(bargraphs), list(keep)
    if controls is None:
        controls = S.controls(outputs + keep)
    planner = _Planner(int(sample_rate))
    main = planner.context(outputs, bargraphs, 0, keep)
    finals = []
    for s in keep:
        assert s.op == "proj", "keep: only projections of recursion groups"
        group, i = s.attrs
        finals.append(main.recs[id(group.var(i))])
    return Plan(planner.contexts, list(controls), bargraphs, int(num_inputs),
                int(sample_rate), name, finals)
