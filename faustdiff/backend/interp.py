"""The slow reference interpreter: output signals evaluated sample by sample in plain Python.

It is the oracle for the code generator, so it favours obviousness over speed, with one
concession: the schedule (a topological order, see `signals.topo_order`) is compiled ONCE
into the straight-line Python source of a `run` function (one line per node, state kept in
local variables and lists), instead of being re-dispatched node by node every sample.

Semantics (faust-language.md §6), bit-exact with Faust's C++ in double precision:
* int values are Python ints kept in int32 (`primitives.wrap`), real values Python floats;
  operand conversions come from `primitives.plan` (C's truncating int cast, NaN -> INT_MIN);
* delays have zero history; a delay line is a power-of-two ring buffer sized from the
  delay's interval (`signals.max_delay`), or a full history when the bound is unknown;
* `RecVar`s read the previous sample's value of their definition (0 at t=0); all are updated
  together at the end of the sample;
* tables are filled at `reset()` by running their init signal in its own context from t=0;
  indexes are clamped to [0, size-1]; `rwtable` writes before it reads;
* nodes of rate <= K_BLOCK (constants, UI, block size, the sample rate) are computed once per
  `run` call, before the sample loop (same operations, same results).
"""
from __future__ import annotations

import math
from typing import Sequence

from ..core import primitives as P
from ..signals import ir as S
from ..errors import FaustError
from ..core.primitives import convert, f2i, plan

# Inline Python templates for the hottest primitives, by (name, operand type).
_WRAP = "((({}) + 0x80000000) & 0xFFFFFFFF) - 0x80000000"
_INLINE = {
    ("+", "real"): "{0} + {1}", ("-", "real"): "{0} - {1}", ("*", "real"): "{0} * {1}",
    ("+", "int"): _WRAP.format("{0} + {1}"), ("-", "int"): _WRAP.format("{0} - {1}"),
    ("*", "int"): _WRAP.format("{0} * {1}"),
    ("<", "real"): "int({0} < {1})", ("<=", "real"): "int({0} <= {1})",
    (">", "real"): "int({0} > {1})", (">=", "real"): "int({0} >= {1})",
    ("==", "real"): "int({0} == {1})", ("!=", "real"): "int({0} != {1})",
    ("<", "int"): "int({0} < {1})", ("<=", "int"): "int({0} <= {1})",
    (">", "int"): "int({0} > {1})", (">=", "int"): "int({0} >= {1})",
    ("==", "int"): "int({0} == {1})", ("!=", "int"): "int({0} != {1})",
    ("&", "int"): "{0} & {1}", ("|", "int"): "{0} | {1}", ("xor", "int"): "{0} ^ {1}",
    ("select2", "*"): "({1} if {0} == 0 else {2})",
    ("select3", "*"): "({1} if {0} == 0 else ({2} if {0} == 1 else {3}))",
    ("attach", "*"): "{0}",
    ("float", "real"): "{0}", ("int", "int"): "{0}",   # plan already converted the operand
}


def _conv(expr: str, from_type: str, to) -> str:
    if to is None or to == from_type:
        return expr
    return f"float({expr})" if to == "real" else f"f2i({expr})"


def _pow2_at_least(n: int) -> int:
    size = 1
    while size < n:
        size *= 2
    return size


class Interpreter:
    """Runs output signals (and records bargraphs) sample by sample, keeping state.

    outputs     -- the program's output signals
    bargraphs   -- bargraph nodes whose per-sample values are recorded, in report order
    num_inputs  -- number of audio inputs
    sample_rate -- the value of fSamplingFreq
    """

    def __init__(self, outputs: Sequence[S.Sig], bargraphs: Sequence[S.Sig] = (),
                 num_inputs: int = 0, sample_rate: int = 44100, keep: Sequence[S.Sig] = (),
                 reverse_io: bool = False, in_offset: int = 0):
        self.outputs = list(outputs)
        self.bargraphs = list(bargraphs)
        self.keep = list(keep)       # recursion projections computed, not recorded: `finals`
        self.reverse_io = reverse_io  # sample i reads/writes sample n-1-i of the arrays
        self.in_offset = in_offset    # (reverse_io) history samples before the inputs' block
        self.num_inputs = num_inputs
        self.sample_rate = int(sample_rate)
        # (kept projections' RecVars are roots: their slots hold the finals, see schedule)
        kept_vars = [g.var(i) for g, i in (s.attrs for s in self.keep)]
        self.order = S.topo_order(self.outputs + self.bargraphs + self.keep + kept_vars)
        self.controls = [s for s in S.topo_order(self.outputs + self.bargraphs + self.keep,
                                                 follow_tables=True) if s.op == "ui"]
        self.control_index = {id(s): j for j, s in enumerate(self.controls)}
        self.values = [s.attrs[3] for s in self.controls]   # current widget values
        self._compile()
        self.reset()

    # ------------------------------------------------------------ public

    def set_control(self, node: S.Sig, value: float) -> None:
        self.values[self.control_index[id(node)]] = float(value)

    def reset(self) -> None:
        """Zero every state (delays, recursions, prefix) and refill the tables."""
        self.t = 0
        self.state = [make() for make in self._state_init]

    def finals(self) -> list:
        """The current values of the kept recursions (their state after the last sample)."""
        return [float(self.state[self._rec_slot[id(g.var(i))]]) for g, i in
                (s.attrs for s in self.keep)]

    def run(self, inputs: Sequence[Sequence[float]], n: int):
        """Render n samples: returns (outputs, bargraph traces) as lists of Python lists."""
        ins = [list(map(float, x)) for x in inputs]
        outs = [[0.0] * n for _ in self.outputs]
        bars = [[0.0] * n for _ in self.bargraphs]
        if n > 0:
            self.t = self._run(n, self.t, ins, outs, bars, self.values, self.state,
                               self.sample_rate)
        if self.reverse_io:
            outs = [o[::-1] for o in outs]
            bars = [b[::-1] for b in bars]
        return outs, bars

    # ------------------------------------------------------------ compilation

    def _compile(self) -> None:
        ns = {"f2i": f2i, "fdiv": P.fdiv, "FaustError": FaustError, "math": math}
        name: dict[int, str] = {}      # node -> Python expression of its current value
        pre: list[str] = []            # hoisted: once per run()
        body: list[str] = []           # per sample
        post: list[str] = []           # end of sample (recursion state)
        self._state_init = []          # factories of state slots, index = slot number
        self._rec_slot = {}            # id(recvar) -> its state slot
        load: list[str] = []           # state slots loaded into locals
        store: list[str] = []          # locals stored back into state slots

        def slot(make, local: str, scalar: bool) -> None:
            k = len(self._state_init)
            self._state_init.append(make)
            load.append(f"{local} = ST[{k}]")
            if scalar:
                store.append(f"ST[{k}] = {local}")

        for k, s in enumerate(self.order):
            v = f"v{k}"
            code = self._node(s, k, v, name, ns, slot, post)
            if code is None:
                continue
            lines = code if isinstance(code, list) else [code]
            (pre if s.rate <= S.K_BLOCK else body).extend(lines)
        # End of sample: every RecVar takes its definition's value (read into v-variables
        # before any update, so the order of these assignments does not matter).
        post = [f"r{k} = {name[id(d)]}" for k, d in post]
        for c, s in enumerate(self.outputs):
            body.append(f"out{c}[i] = {name[id(s)]}")
        for c, s in enumerate(self.bargraphs):
            body.append(f"bar{c}[i] = {name[id(s)]}")

        src = ["def _run(n, t0, INS, OUTS, BARS, CTL, ST, SR):"]
        src += [f"    in{c} = INS[{c}]" for c in range(self.num_inputs)]
        src += [f"    out{c} = OUTS[{c}]" for c in range(len(self.outputs))]
        src += [f"    bar{c} = BARS[{c}]" for c in range(len(self.bargraphs))]
        src += ["    t = t0"]
        src += ["    " + line for line in load + pre]
        src += ["    for i in range(n):", "        t = t0 + i"]
        src += ["        " + line for line in body + post]
        src += ["        pass"]
        src += ["    " + line for line in store]
        src += ["    return t0 + n"]
        self.source = "\n".join(src)
        exec(compile(self.source, "<faustdiff-interp>", "exec"), ns)
        self._run = ns["_run"]

    def _node(self, s: S.Sig, k: int, v: str, name: dict, ns: dict, slot, post: list):
        """Python line(s) computing node s into variable v (or an alias, returning None)."""
        op = s.op
        arg = [name.get(id(a)) for a in s.args]
        if op == "const":
            ns[f"c{k}"] = s.value
            name[id(s)] = f"c{k}"
            return None
        name[id(s)] = v
        if op == "input":
            lag = s.attrs[1] if len(s.attrs) > 1 else 0
            if self.reverse_io:   # rows hold in_offset history samples, then the block
                return f"{v} = in{s.attrs[0]}[{self.in_offset - lag} + n - 1 - i]"
            return f"{v} = in{s.attrs[0]}[i]" if not lag else \
                f"{v} = in{s.attrs[0]}[i - {lag}] if i >= {lag} else 0.0"
        if op == "ui":
            return f"{v} = CTL[{self.control_index[id(s)]}]"
        if op == "fconst":
            return f"{v} = {'SR' if s.type == 'int' else 'float(SR)'}"
        if op == "fvar":
            return f"{v} = {'n' if s.type == 'int' else 'float(n)'}"
        if op == "bargraph":
            return f"{v} = float({arg[0]})"
        if op == "prim":
            return f"{v} = {self._prim_expr(s, k, arg, ns)}"
        if op == "ffun":
            ns[f"F{k}"] = P.FFUNS[s.attrs[0]]
            return f"{v} = F{k}({', '.join(arg)})"
        if op == "proj":
            name[id(s)] = arg[0]
            return None
        if op == "recvar":
            group, i = s.attrs
            init = 0 if s.type == "int" else 0.0
            self._rec_slot[id(s)] = len(self._state_init)
            slot(lambda init=init: init, f"r{k}", True)
            post.append((k, group.defs[i]))   # named once every node has a name
            return f"{v} = r{k}"
        if op == "delay":
            return self._delay(s, k, v, arg, slot)
        if op == "adjtable":
            size = s.attrs[0]
            slot(lambda size=size: [0.0] * size, f"A{k}", False)
            clamp = "0 if x < 0 else ({0} if x > {0} else x)".format(size - 1)
            return [f"x = {arg[1]}", f"x = {clamp}", f"A{k}[x] += {arg[0]}",
                    f"x = {arg[2]}", f"x = {clamp}", f"{v} = A{k}[x]", f"A{k}[x] = 0.0"]
        if op == "scatter":
            bound = s.attrs[0]
            size = _pow2_at_least(bound + 1)
            mask = size - 1
            slot(lambda size=size: [0.0] * size, f"D{k}", False)
            return [f"x = {arg[1]}", f"x = 0 if x < 0 else ({bound} if x > {bound} else x)",
                    f"D{k}[(t + x) & {mask}] += {arg[0]}", f"{v} = D{k}[t & {mask}]",
                    f"D{k}[t & {mask}] = 0.0"]
        if op == "prefix":
            zero = 0 if s.type == "int" else 0.0
            slot(lambda zero=zero: zero, f"p{k}", True)
            return [f"{v} = {arg[0]} if t == 0 else p{k}", f"p{k} = {arg[1]}"]
        if op == "waveform":
            ns[f"W{k}"] = s.attrs[0]
            return f"{v} = W{k}[t % {len(s.attrs[0])}]"
        if op == "rdtable":
            size = s.attrs[0]
            slot(lambda s=s: self._table_content(s), f"T{k}", False)
            return [f"x = {arg[1]}",
                    f"{v} = T{k}[0 if x < 0 else ({size - 1} if x > {size - 1} else x)]"]
        if op == "rwtable":
            size = s.attrs[0]
            slot(lambda s=s: list(self._table_content(s)), f"T{k}", False)
            return [f"x = {arg[1]}",
                    f"T{k}[0 if x < 0 else ({size - 1} if x > {size - 1} else x)] = {arg[2]}",
                    f"x = {arg[3]}",
                    f"{v} = T{k}[0 if x < 0 else ({size - 1} if x > {size - 1} else x)]"]
        raise TypeError(f"interp: unknown node kind {op!r}")

    def _prim_expr(self, s: S.Sig, k: int, arg: list, ns: dict) -> str:
        pname = s.name
        types = tuple(a.type for a in s.args)
        _, convs, fn = plan(pname, types)
        args = [_conv(a, t, c) for a, t, c in zip(arg, types, convs)]
        optype = convs[0] if convs and convs[0] is not None else "*"
        tmpl = _INLINE.get((pname, optype)) or _INLINE.get((pname, "*"))
        if tmpl is not None:
            return tmpl.format(*args)
        ns[f"F{k}"] = fn
        return f"F{k}({', '.join(args)})"

    def _delay(self, s: S.Sig, k: int, v: str, arg: list, slot):
        x, d = s.args
        zero = 0 if s.type == "int" else 0.0
        if S.is_const(d, 1):   # mem: one scalar of state
            slot(lambda zero=zero: zero, f"m{k}", True)
            return [f"{v} = m{k}", f"m{k} = {arg[0]}"]
        bound = S.max_delay(d)
        if bound is None or bound > 1 << 22:   # unknown/huge: whole history (exact, grows)
            slot(lambda: [], f"H{k}", False)
            return [f"H{k}.append({arg[0]})", f"x = {arg[1]}",
                    f"x = 0 if x < 0 else x",
                    f"{v} = H{k}[-1 - x] if x < len(H{k}) else {zero!r}"]
        size = _pow2_at_least(bound + 1)
        mask = size - 1
        slot(lambda size=size, zero=zero: [zero] * size, f"D{k}", False)
        if d.op == "const":
            return [f"D{k}[t & {mask}] = {arg[0]}", f"{v} = D{k}[(t - {d.value}) & {mask}]"]
        return [f"D{k}[t & {mask}] = {arg[0]}", f"x = {arg[1]}",
                f"x = 0 if x < 0 else ({bound} if x > {bound} else x)",
                f"{v} = D{k}[(t - x) & {mask}]"]

    def _table_content(self, s: S.Sig) -> list:
        """A table's initial content: its init signal run alone from t=0 (own state)."""
        init, size = s.args[0], s.attrs[0]
        sub = Interpreter([init], (), 0, self.sample_rate)
        for c in sub.controls:   # widgets in an init signal take their current values
            j = self.control_index.get(id(c))
            if j is not None:
                sub.set_control(c, self.values[j])
        outs, _ = sub.run([], size)
        return [int(x) if s.type == "int" else x for x in outs[0]]
