"""Reverse-mode gradient programs: a block's outputs, then dL/dθ and dL/dx for any dL/dy.

    compile_source(text, wrt=["gain", ...], signals=["cutoff"]) -> ReverseProgram

`ReverseProgram.compute(inputs, n)` renders a block exactly as the plain program does (the
same signals, the same generated code) and records what the backward pass reads (the tapes of
`ad.reverse`); `vjp(cotangent)` takes dL/dy of that block, shape (num_outputs, n), and
returns `(d_params, d_inputs)`: dL/dθ for the `wrt` sliders (num_wrt,) in `wrt` order, and
dL/dx per sample (num_inputs, n). The block's starting state is a constant (truncated
backpropagation through time at block boundaries); from `reset()` it is the full gradient.

Three programs, each generated, compiled and cached like any other (`backend="interp"`: the
reference interpreter runs them):
* forward -- the program's outputs, then the tapes;
* backward -- runs in reversed time (`reverse_io`: sample i of its run reads and writes
  sample n-1-i of the arrays); inputs: ȳ then the tapes (the forward program's output
  array, ȳ written over the outputs); outputs: x̄; the accumulated cotangents of the
  control-rate values the parameters reach are kept recursions read after the block
  (`finals`);
* jacobian -- the structurally nonzero entries of ∂(those control-rate values)/∂θ,
  control rate only: kept values of the backward kernel when small (JACOBIAN_INLINE),
  else one sample per block run by the reference interpreter (its signals stored as plain
  data with the forward module: Numba took seconds to compile what runs once per block).

`signals=[labels]` turns those sliders into extra audio inputs, appended after the
program's own in the order given (a caller drives them per sample, and their per-sample
gradients come back in `d_inputs`); it also works for plain programs (`build`).

Memory: a block's tapes (float64, (tapes, n)) are kept whole up to TAPE_BUDGET bytes; a
longer block is split into segments whose forward state is snapshotted by `compute` and
whose tapes `vjp` recomputes one segment at a time (checkpointing: one more forward pass).
Programs that read `count` (ma.BS) or keep a whole delay history are never split.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Iterable, Optional, Sequence

import numpy as np

from .. import ad  # noqa: F401  (diff.lib's builtins and Dual's meaning, before any evaluation)
from ..ad.forward import substitute
from ..ad.params import AUTO, ParamSpec, normalise_wrt, select, spec_of
from ..ad.reverse import backward
from ..core.deep import deep_call
from ..errors import FaustError
from ..frontend.arity import arity
from ..frontend.source import evaluate_source, read_source
from ..signals import ir as S
from ..signals.propagate import Context, propagate
from . import cache
from .codegen import FASTMATH_OK, generate_from_signals
from .interp import Interpreter
from .program import Program, Wrapper
from .runtime import check_inputs, group_traces, run_each

_FORMAT = 17   # bump when the modules or the spec this file writes change
_HOLE = "@KEY@"
_PARTS = ("forward", "backward", "jacobian")


# ---------------------------------------------------------------- signals

def normalise_signals(signals) -> list:
    """`signals=` as given: None, a comma-separated string or labels."""
    if signals is None:
        return []
    if isinstance(signals, str):
        signals = signals.split(",")
    labels = [str(s).strip() for s in signals]
    if any(not s for s in labels):
        raise FaustError("signals: give slider labels (e.g. ['cutoff'])")
    if len(set(labels)) != len(labels):
        raise FaustError(f"signals: a slider is named twice in {', '.join(labels)}")
    return labels


def program_signals(box, signals: Sequence[str] = ()):
    """(outputs, num_inputs, controls) of an evaluated program, the sliders named in
    `signals` replaced by audio inputs after the program's own (in that order)."""
    ins, _ = arity(box)
    outs = propagate(box, None, Context())
    controls = S.controls(outs)
    if signals:
        labels, nodes = select(controls, list(signals))
        mapping = {n: S.input_(ins + j) for j, group in enumerate(nodes) for n in group}
        outs = substitute(outs, mapping)
        ins += len(labels)
        controls = S.controls(outs)
    return outs, ins, controls


def _parts(box, wrt, signals, input_grads=True):
    """The three programs' signals and the spec of a reverse program."""
    outs, ins, controls = program_signals(box, signals)
    if wrt == AUTO or wrt:
        labels, nodes = select(controls, wrt)
    else:
        labels, nodes = [], []
    bw = backward(outs, ins, nodes, input_grads)
    specs = [asdict(spec_of(g[0]).with_(label=lab)) for lab, g in zip(labels, nodes)]
    every = S.topo_order(list(outs) + bw.tapes, follow_tables=True)
    whole_only = any(s.op == "fvar" for s in every)   # `count` would see the segments
    spec = {"wrt": labels, "specs": specs, "num_outputs": len(outs), "num_inputs": ins,
            "num_tapes": len(bw.tapes), "num_boundary": len(bw.boundary),
            "signals": list(signals), "whole_only": whole_only,
            "input_grads": bool(input_grads), "history": bw.history}
    h = bw.history
    # the Jacobian's structurally nonzero entries only (sliders reach few coefficients)
    nonzero = [j for j, s in enumerate(bw.jacobian) if not S.is_const(s, 0)]
    spec["jacobian"] = nonzero   # flat indexes into (num_wrt, num_boundary)
    entries = [bw.jacobian[j] for j in nonzero]
    inline = len(S.topo_order(entries, follow_tables=True)) <= JACOBIAN_INLINE
    spec["jacobian_inline"] = inline
    parts = {   # signals, bargraphs, inputs, keep, generation options
        "forward": (list(outs) + bw.tapes, S.bargraphs(outs), ins, (),
                    {"out_offset": h}),
        "backward": (bw.d_inputs, [], bw.num_backward_inputs,
                     bw.finals + (_held(entries) if inline else [])
                     + _cotangent_sum(len(outs)),
                     {"reverse_io": True, "in_offset": h, "fastmath": _fastmath(every)}),
        "jacobian": (([] if inline else _block_length_as_control(entries))
                     or [S.real_const(0.0)], [], 0, (), {}),
    }
    # Control-rate code runs once per block: the reference interpreter runs it in ~0.1 ms
    # where Numba would take seconds to compile it. Its signals travel as plain data.
    spec["jacobian_data"] = S.to_data(parts["jacobian"][0])
    return parts, spec


# A Jacobian of at most this many signal nodes is computed by the backward kernel itself
# (kept values, control rate: once per block) instead of by the interpreter. Measured on the
# 30-parameter equaliser (1346 nodes), interleaved in one process: the interpreter's run
# costs 47 us a step, and a value+gradient step takes the same time either way (1.44 ms per
# second of audio), while inlining adds ~2 s CPU to its cold compile (3.6 -> 5.5 s: 1.7 s for
# the plain program). So only small Jacobians (a few filters' coefficients) are inlined.
JACOBIAN_INLINE = 200


def _fastmath(forward: list) -> tuple:
    """The backward kernel's fast-math flags: all of codegen.FASTMATH_OK for a program
    without feedback (its backward sums vectorise: the 32-tap FIR's step 2.1x -> 1.6x the
    forward render), no `reassoc` for one with a recursion. Reassociating an adjoint
    recursion's sums puts its loop-carried value first in the chain of additions (LLVM
    combines the lowest-ranked operands first), which lengthens the chain every sample
    waits on: the 30-band equaliser's backward kernel took 1.78 ms with it, 1.0 without.
    Its parameter sums are reassociated all the same, each addition on its own
    (codegen's `radd`, backend/reductions.py): 1.35 -> 0.86 ms."""
    if any(s.op == "recvar" for s in forward):
        return tuple(f for f in FASTMATH_OK if f != "reassoc")
    return FASTMATH_OK


def _held(values: list) -> list:
    """Control-rate values as kept projections (a recursion whose definition is the value:
    its state after a block is the value), so the backward kernel's `finals` carry them."""
    if not values:
        return []
    g = S.RecGroup(["real"] * len(values), share=False)
    g.define([S.to_real(v) for v in values])
    return [g.proj(k) for k in range(len(values))]


def _cotangent_sum(num_outputs: int) -> list:
    """One more kept recursion of the backward program: Σ_t Σ_o ȳ_o[t]. It is finite iff
    every ȳ is (NaN and ±inf propagate; an overflow of finite values is told apart by
    `vjp`), so the cotangent is checked inside the backward pass instead of by one more pass
    over it."""
    if not num_outputs:
        return []
    total = S.tap(0)
    for o in range(1, num_outputs):
        total = S.prim("+", total, S.tap(o))
    acc = S.RecGroup(["real"], share=False)
    acc.define([S.prim("+", acc.var(0), total)])
    return [acc.proj(0)]


COUNT_LABEL = "__fd_count"   # the hidden control standing for `count` in the jacobian


def _block_length_as_control(signals: list) -> list:
    """The jacobian program runs one sample per block; `count` (the block length, ma.BS)
    becomes a hidden control that `vjp` sets to the block's length."""
    every = S.topo_order(list(signals), follow_tables=True)
    counts = [s for s in every if s.op == "fvar"]
    if not counts:
        return list(signals)
    ctl = S.ui("nentry", COUNT_LABEL, (), 0.0, 0.0, 2.0 ** 31 - 1, 1.0)
    return substitute(list(signals), {c: S.to_type(ctl, c.type) for c in counts})


# ---------------------------------------------------------------- running the parts

# Tapes of a block are kept whole while they fit in TAPE_BUDGET bytes; above it the block is
# split into segments: `compute` keeps a snapshot of the forward state at each segment's
# start, and `vjp` re-runs each segment's forward pass (last segment first) right before its
# backward pass, so only one segment of tapes exists at a time (checkpointing).
TAPE_BUDGET = 256 << 20
SEGMENT = 4096           # the smallest segment (samples)
_PAD = 8                 # row padding of the arrays the kernels write: no power-of-two row
#                          stride (rows that alias in the cache made power-of-two blocks 20x
#                          slower)


class _Compiled:
    """Direct kernel calls on a generated program (`runtime.CompiledProgram`), into buffers
    the caller owns."""

    def __init__(self, prog):
        self.prog = prog
        self.kernel = prog.KERNELS[0]
        self.state = prog._state
        self.nbars = len(prog.bargraph_labels)

    def run(self, ins, outs, bars, s0: int, s1: int, block: int) -> None:
        st, p = self.state, self.prog
        if p._history:
            st.reserve(s1 - s0)
        p._run(self.kernel, block, s0, s1, ins, outs, bars, p._ctl, st.iv, st.fv, st.di,
               st.df, st.hi, st.hf)

    def snapshot(self) -> tuple:
        st = self.state
        return (st.iv.copy(), st.fv.copy(), st.di.copy(), st.df.copy())

    def restore(self, snap) -> None:
        st = self.state
        for dst, src in zip((st.iv, st.fv, st.di, st.df), snap):
            dst[:] = src

    def state_bytes(self) -> int:
        st = self.state
        return sum(a.nbytes for a in (st.iv, st.fv, st.di, st.df))


_ZEROS: dict = {}
_NONE = np.zeros((0, 0))   # the bargraph array of a program without bargraphs (only read)


def _zeros(rows: int, n: int) -> np.ndarray:
    """The d_inputs of a program compiled with input_grads=False: read-only zeros that
    touch no memory, one per shape (a fresh zeroed array per block cost a tenth of a
    one-pole's step)."""
    z = _ZEROS.get((rows, n))
    if z is None:
        if len(_ZEROS) > 64:   # (block lengths that keep changing)
            _ZEROS.clear()
        z = _ZEROS[(rows, n)] = np.broadcast_to(np.float64(0.0), (rows, n))
    return z


def _buffer(rows: int, n: int) -> np.ndarray:
    return np.empty((rows, n + _PAD))


class ReverseProgram(Wrapper):
    """A program with a compiled backward pass (see the module docstring)."""

    def __init__(self, forward, backward_, jacobian, spec: dict, factory=None):
        self.forward, self.backward, self.jacobian = forward, backward_, jacobian
        self.wrt = list(spec["wrt"])
        self.param_specs = [ParamSpec(**s) for s in spec["specs"]]
        self.signals = list(spec["signals"])
        self.num_wrt = len(self.wrt)
        self.num_outputs = int(spec["num_outputs"])
        self.num_inputs = int(spec["num_inputs"])
        self.num_tapes = int(spec["num_tapes"])
        self.num_boundary = int(spec["num_boundary"])
        self.sample_rate = forward.sample_rate
        self._spec = spec
        self._factory = factory
        self._compiled = hasattr(forward, "KERNELS")
        # direct kernel calls (made once: a step of a short block is mostly Python)
        self._fk = _Compiled(forward) if self._compiled else None
        self._bk = _Compiled(backward_) if self._compiled else None
        self._block = None       # what vjp needs of the last block
        self._link_cache: dict = {}
        self._jac_memo = None    # (widget values and block length, jacobian) of the last vjp
        self._buffers: dict = {}
        self.history = int(spec.get("history", 0))
        self._jac_index = np.array(spec["jacobian"], dtype=np.int64)
        # the last `history` samples of every tape row: a tap before the block reads them
        self._hist = np.zeros((self.num_outputs + self.num_tapes, self.history))
        self.bargraphs: dict = {}
        self.bargraph_traces: list = []   # one per bargraph, in bargraph_labels' order

    # the Program API, delegated to the forward program (Wrapper: params, set_param,
    # bargraph_labels, name)
    @property
    def _inner(self):
        return self.forward

    def reset(self) -> None:
        self.forward.reset()
        self._block = None
        self._hist = np.zeros((self.num_outputs + self.num_tapes, self.history))

    # ------------------------------------------------------------ forward

    def compute(self, inputs=None, n: Optional[int] = None) -> np.ndarray:
        """Render a block (outputs (num_outputs, n), as the plain program) and keep what
        `vjp` needs: the tapes, or snapshots of the state (see TAPE_BUDGET)."""
        if not self._compiled:
            return self._compute_interp(inputs, n)
        ins, n = check_inputs(inputs, n, self.num_inputs)
        n, h, no = int(n), self.history, self.num_outputs
        rows = no + self.num_tapes
        fwd = self._fk
        bars = np.empty((fwd.nbars, n)) if fwd.nbars else _NONE
        seg = self._segment(n, rows, fwd)
        params = self._widgets()
        if seg >= n:
            # one array: `history` columns (the previous block's end), then the block;
            # reused between blocks (a block's vjp comes before the next compute)
            tapes = self._scratch("tapes", rows, h + n)
            tapes[:, :h] = self._hist
            if n:
                fwd.run(ins, tapes, bars, 0, n, n)
            y = tapes[:no, h:h + n].copy()
            self._hist = tapes[:, n:n + h].copy()
            self._block = ("whole", n, params, tapes)
        else:
            y = np.empty((no, n))
            scratch, xin = _buffer(rows, h + seg), np.empty((self.num_inputs, seg + _PAD))
            bar_seg = np.empty((fwd.nbars, seg)) if fwd.nbars else bars
            snaps = []
            for a in range(0, n, seg):
                b = min(a + seg, n)
                snaps.append((fwd.snapshot(), self._hist))
                scratch[:, :h] = self._hist
                xin[:, :b - a] = ins[:, a:b]
                fwd.run(xin, scratch, bar_seg, 0, b - a, b - a)
                y[:, a:b] = scratch[:no, h:h + b - a]
                self._hist = scratch[:, b - a:b - a + h].copy()
                if fwd.nbars:
                    bars[:, a:b] = bar_seg[:, :b - a]
            self._block = ("segments", n, params, (ins.copy(), seg, snaps))
        self.bargraph_traces = list(bars)
        self.bargraphs = group_traces(self.forward.bargraph_labels, self.bargraph_traces)
        return y

    def _segment(self, n: int, rows: int, fwd: _Compiled) -> int:
        """Samples per segment: n (one piece) when the tapes fit the budget and segments
        would change nothing a program can see."""
        if rows * n * 8 <= TAPE_BUDGET or self._spec.get("whole_only") or fwd.prog._history:
            return max(n, 1)
        per = max(1, fwd.state_bytes() + rows * self.history * 8)
        seg = max(SEGMENT, -(-n * per // TAPE_BUDGET), -(-TAPE_BUDGET // (8 * rows * 64)))
        return min(seg, max(n, 1))

    def _compute_interp(self, inputs, n):
        allout = self.forward.compute(inputs, n)
        n, h = allout.shape[1], self.history
        data = np.hstack([self._hist, allout])
        self._hist = data[:, n:n + h].copy()
        self.bargraphs = self.forward.bargraphs
        self.bargraph_traces = self.forward.bargraph_traces
        self._block = ("interp", n, self._widgets(), data)
        return allout[:self.num_outputs].copy()

    def _widgets(self):
        """The forward program's widget values now (what the block was rendered with)."""
        f = self.forward
        return np.array(f._values if hasattr(f, "_values") else f._ctl, dtype=np.float64)

    def _scratch(self, name: str, rows: int, n: int) -> np.ndarray:
        """A padded (rows, n) buffer kept between blocks of the same length (fresh pages
        for every block cost as much as the kernels)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != (rows, n + _PAD):
            buf = self._buffers[name] = _buffer(rows, n)
        return buf

    def _links(self, prog) -> tuple:
        """(indexes in prog's widgets, indexes in the forward program's) of the widgets they
        share (by path), and prog's index of the block-length control, or -1."""
        hit = self._link_cache.get(id(prog))
        if hit is None:
            where = {p: j for j, p in enumerate(self.forward._paths)}
            pairs = [(j, where[p]) for j, p in enumerate(prog._paths) if p in where]
            count = prog._paths.index("/" + COUNT_LABEL) if "/" + COUNT_LABEL in \
                prog._paths else -1
            hit = (np.array([a for a, _ in pairs], dtype=np.int64),
                   np.array([b for _, b in pairs], dtype=np.int64), count)
            self._link_cache[id(prog)] = hit
        return hit

    # ------------------------------------------------------------ backward

    def vjp(self, cotangent) -> tuple:
        """(d_params (num_wrt,), d_inputs (num_inputs, n)) for dL/dy = `cotangent` of the
        last block computed."""
        if self._block is None:
            raise FaustError("vjp: compute a block first (vjp differentiates the last one)")
        kind, n, widgets, data = self._block
        ct = np.asarray(cotangent, dtype=np.float64)
        if ct.ndim == 1 and self.num_outputs == 1:
            ct = ct[None, :]
        if ct.shape != (self.num_outputs, n):
            raise FaustError(f"vjp: the cotangent must have shape ({self.num_outputs}, {n}) "
                             f"(dL/dy of the last block), got {ct.shape}")
        self._sync(self.backward, widgets, n)
        self.backward.reset()
        h = self.history
        if kind == "interp":
            # The backward program runs in reversed time, reading dL/dy then the tapes (the
            # forward program's own output array, dL/dy written over the outputs)
            data[:self.num_outputs, h:] = ct
            outs, _ = self.backward._backend.run(list(data), n)
            d_inputs = np.array(outs, dtype=np.float64).reshape(-1, n)[:self.num_inputs]
        else:
            d_inputs = self._backward_compiled(kind, n, ct, data)
        finals = self.backward.finals()
        # the last one sums the cotangent (see _cotangent_sum): finite iff it is
        if self.num_outputs and n and not np.isfinite(finals[-1]) \
                and not np.all(np.isfinite(ct)):
            raise FaustError("vjp: the cotangent holds NaN or infinity")
        d_params = np.zeros(self.num_wrt)
        if self.num_wrt and self.num_boundary:
            nb = self.num_boundary
            if self._spec.get("jacobian_inline"):   # computed by the backward kernel
                jac = self._dense(finals[nb:nb + len(self._jac_index)])
            else:
                jac = self._jacobian(widgets, n)
            d_params = jac @ finals[:nb]
        return d_params, d_inputs

    def _jacobian(self, widgets, n: int) -> np.ndarray:
        """d(boundary values)/dθ, (num_wrt, num_boundary), for these widget values (and
        block length): control rate only, so the last one is reused while neither changes
        (the elements of a batch, blocks of a render with fixed parameters)."""
        key = (widgets.tobytes(), n)
        if self._jac_memo is not None and self._jac_memo[0] == key:
            return self._jac_memo[1]
        self._sync(self.jacobian, widgets, n)
        jac = self._dense(self._jacobian_values())
        self._jac_memo = (key, jac)
        return jac

    def _dense(self, values) -> np.ndarray:
        """The (num_wrt, num_boundary) Jacobian from its structurally nonzero entries."""
        jac = np.zeros(self.num_wrt * self.num_boundary)
        jac[self._jac_index] = values
        return jac.reshape(self.num_wrt, self.num_boundary)

    def _backward_compiled(self, kind, n, ct, data) -> np.ndarray:
        bw = self._bk
        no, ni = self.num_outputs, self.num_inputs
        nb = max(1, self.backward.num_outputs)
        none = _NONE
        h = self.history
        if kind == "whole":
            tapes = data
            tapes[:no, h:h + n] = ct
            d = self._scratch("d", nb, n)
            if n:
                bw.run(tapes, d, none, 0, n, n)
            if not self._spec.get("input_grads", True):
                return _zeros(ni, n)
            return d[:ni, :n].copy()
        ins, seg, snaps = data
        fwd = self._fk
        keep = fwd.snapshot()
        rows = no + self.num_tapes
        scratch, xin = _buffer(rows, h + seg), np.empty((ni, seg + _PAD))
        d = _buffer(nb, seg)
        bar_seg = np.empty((fwd.nbars, seg)) if fwd.nbars else none
        out = np.empty((ni, n))
        try:
            for j in range(len(snaps) - 1, -1, -1):
                a = j * seg
                b = min(a + seg, n)
                state, hist = snaps[j]
                fwd.restore(state)
                scratch[:, :h] = hist
                xin[:, :b - a] = ins[:, a:b]
                fwd.run(xin, scratch, bar_seg, 0, b - a, b - a)
                scratch[:no, h:h + b - a] = ct[:, a:b]
                bw.run(scratch, d, none, 0, b - a, b - a)
                out[:, a:b] = d[:ni, :b - a]
        finally:
            fwd.restore(keep)   # the forward program's state stays the block's end state
        return out

    def _jacobian_values(self) -> np.ndarray:
        """The nonzero Jacobian entries for the widgets set (one sample of the program)."""
        k, j = len(self._jac_index), self.jacobian
        if hasattr(j, "_backend") and isinstance(j._backend, Interpreter):
            outs, _ = j._backend.run([], 1)       # (no input checks: it has no inputs)
            return np.array([o[0] for o in outs[:k]], dtype=np.float64)
        return j.compute(None, 1)[:k, 0]

    def value_and_grad(self, inputs, loss_grad, n: Optional[int] = None):
        """compute + vjp: `loss_grad(y) -> (loss, dL/dy)`; returns (loss, y, d_params,
        d_inputs)."""
        y = self.compute(inputs, n)
        loss, ct = loss_grad(y)
        dp, dx = self.vjp(ct)
        return loss, y, dp, dx

    def _sync(self, prog, widgets, n: int) -> None:
        """The widget values of the last block (and its length), in a backward or jacobian
        program."""
        dst, src, count = self._links(prog)
        if hasattr(prog, "_ctl"):
            prog._ctl[dst] = widgets[src]
            if count >= 0:
                prog._ctl[count] = float(n)
            return
        # an interpreter: its value slots directly (set_param by path per widget costs
        # ~3 µs each, 0.1 ms a block for 30 sliders)
        slots, values = self._interp_slots(prog, dst), prog._backend.values
        for slot, j, k in zip(slots, dst.tolist(), src.tolist()):
            values[slot] = prog._values[j] = float(widgets[k])
        if count >= 0:
            prog.set_param("/" + COUNT_LABEL, float(n))

    def _interp_slots(self, prog, dst) -> list:
        """The interpreter's value slots of prog's widgets `dst`."""
        key = ("slots", id(prog))
        hit = self._link_cache.get(key)
        if hit is None:
            index = prog._backend.control_index
            hit = self._link_cache[key] = [index[id(prog.controls[j])] for j in dst.tolist()]
        return hit

    def batch(self, batch: int, threads: int = 1, lanes: bool = False) -> "ReverseBatch":
        """B instances run together by batch kernels (`ReverseBatch`), each with this
        program's widget values to start with, reset; their lane groups (and backward
        passes) on up to `threads` threads."""
        return ReverseBatch(self, batch, threads, lanes)

    def clone(self) -> "ReverseProgram":
        """An independent instance (own state, parameters at their current values)."""
        if self._factory is None:
            raise FaustError("this program cannot be cloned")
        f, b, j = self._factory()
        for k, v in self.forward.params.items():
            f.set_param(k, v)
        f.reset()
        return ReverseProgram(f, b, j, self._spec, self._factory)

    def __repr__(self):
        return (f"<ReverseProgram {self.num_inputs} in, {self.num_outputs} out, "
                f"wrt {', '.join(self.wrt) or '(none)'}>")


class ReverseBatch:
    """B instances of a compiled ReverseProgram (`ReverseProgram.batch(B)`), each with its
    own widgets, inputs and state, run by the batch kernels of its forward and backward
    programs (`runtime.BatchProgram`: instances side by side in vector registers).

    compute(inputs (B, num_inputs, n), n) -> outputs (B, num_outputs, n), bit for bit
    each instance's own `compute`; vjp(cotangent (B, num_outputs, n)) -> (d_params
    (B, num_wrt), d_inputs (B, num_inputs, n)), each row the instance's own `vjp`.
    A block is one piece: its tapes (B rows of tapes, n samples) are kept whole, so
    `fits(n)` says whether they stay within TAPE_BUDGET (no checkpointing here).

    The backward pass runs instance by instance (`lanes=False`, the default): the scalar
    backward kernel on each instance's tapes (bit for bit its own `vjp`), the instances
    shared out to `threads` threads. LLVM leaves a large backward kernel's lanes scalar
    (its cost model finds the lane loop unprofitable), and the lane form has no split
    reductions: on the 30-band equaliser the batch kernel took 9 ms an instance against
    1 ms for the scalar one. `lanes=True` runs the backward batch kernel instead (its
    rows equal the instances' own up to the fast-math rounding, ~1e-13 relative)."""

    def __init__(self, prog: "ReverseProgram", batch: int, threads: int = 1,
                 lanes: bool = False):
        if not prog._compiled or not prog.forward.BATCH_KERNELS \
                or (lanes and not prog.backward.BATCH_KERNELS):
            raise FaustError("this reverse-mode program has no batch kernels "
                             "(the interpreter, or a module generated before them)")
        self.prog, self.batch = prog, int(batch)
        self.num_inputs, self.num_outputs = prog.num_inputs, prog.num_outputs
        self.num_wrt, self.wrt = prog.num_wrt, prog.wrt
        self.threads, self.lanes = max(1, int(threads)), bool(lanes)
        self.fwd = prog.forward.batch(self.batch, threads)
        self.bwd = prog.backward.batch(self.batch, threads) if lanes else None
        self._scalar: list = []   # backward programs of the instance-by-instance pass
        self._rows = prog.num_outputs + prog.num_tapes
        self._tapes = None
        self.reset()

    def set_param(self, label: str, value) -> None:
        """A widget of every instance: one value, or B."""
        self.fwd.set_param(label, value)

    @property
    def params(self) -> list:
        return self.fwd.params

    def reset(self) -> None:
        self.fwd.reset()
        self._hist = np.zeros((self.batch, self._rows, self.prog.history))
        self._block = None

    def gather(self, progs) -> None:
        """Take the state, widgets and tape history of B single instances of this program
        (ReversePrograms of the same modules, at the same sample count) into the lanes."""
        self.fwd.gather([p.forward for p in progs])
        self._hist = np.stack([p._hist for p in progs])
        self._block = None

    def scatter(self, progs) -> None:
        """Give the lanes' state and tape history back to the programs `gather` took them
        from (their own last block is forgotten: `vjp` is this batch's)."""
        self.fwd.scatter([p.forward for p in progs])
        for b, p in enumerate(progs):
            p._hist = self._hist[b].copy()
            p._block = None

    def fits(self, n: int) -> bool:
        """Whether a block of n samples keeps its tapes within TAPE_BUDGET."""
        return self.batch * self._rows * (n + self.prog.history) * 8 <= TAPE_BUDGET

    def compute(self, inputs=None, n: Optional[int] = None) -> np.ndarray:
        """Render a block of every instance and keep its tapes for `vjp`."""
        ins, n = self.fwd._inputs(inputs, n)
        h, no, B = self.prog.history, self.num_outputs, self.batch
        shape = (B, self._rows, h + n + _PAD)
        if self._tapes is None or self._tapes.shape != shape:
            self._tapes = np.empty(shape)   # reused while n stays the same
        tapes = self._tapes
        tapes[:, :, :h] = self._hist
        nbars = len(self.fwd.bargraph_labels)
        bars = np.empty((B, nbars, n)) if nbars else _NONE3(B)
        if n:
            self.fwd.run(ins, tapes, bars, 0, n, n)
        self.fwd.bargraph_traces = bars
        self._hist = tapes[:, :, n:n + h].copy()
        self._block = (n, self.fwd.controls.copy())
        return tapes[:, :no, h:h + n].copy()

    def vjp(self, cotangent) -> tuple:
        """(d_params (B, num_wrt), d_inputs (B, num_inputs, n)) for dL/dy = `cotangent`
        (B, num_outputs, n) of the last block computed."""
        if self._block is None:
            raise FaustError("vjp: compute a block first (vjp differentiates the last one)")
        n, widgets = self._block
        B, no, ni, h = self.batch, self.num_outputs, self.num_inputs, self.prog.history
        ct = np.asarray(cotangent, dtype=np.float64)
        if ct.shape != (B, no, n):
            raise FaustError(f"vjp: the cotangent must have shape ({B}, {no}, {n}) "
                             f"(dL/dy of the last block), got {ct.shape}")
        self._tapes[:, :no, h:h + n] = ct
        finals, d = (self._backward_lanes if self.lanes else self._backward_each)(widgets, n)
        if no and n and not np.all(np.isfinite(finals[:, -1])) and not np.all(np.isfinite(ct)):
            raise FaustError("vjp: the cotangent holds NaN or infinity")
        d_params = self._d_params(finals, widgets, n)
        if not self.prog._spec.get("input_grads", True):
            return d_params, np.zeros((B, ni, n))
        return d_params, d[:, :ni, :n].copy()

    def _backward_lanes(self, widgets, n: int) -> tuple:
        """(finals (B, kept), d (B, outputs, n + pad)) of the backward batch kernel."""
        B = self.batch
        dst, src, count = self.prog._links(self.prog.backward)
        self.bwd.controls[:, dst] = widgets[:, src]
        if count >= 0:
            self.bwd.controls[:, count] = float(n)
        self.bwd.reset()
        d = np.empty((B, self.bwd.num_outputs, n + _PAD))
        if n:
            self.bwd.run(self._tapes, d, _NONE3(B), 0, n, n)
        return self.bwd.finals(), d

    def _backward_each(self, widgets, n: int) -> tuple:
        """(finals (B, kept), d (B, outputs, n + pad)): the scalar backward kernel on each
        instance's tapes (tapes[b] is the (rows, history + n + pad) array it reads in a
        single program), instances b, b + k, ... on thread j of k."""
        B, prog = self.batch, self.prog
        k = min(self.threads, B)
        while len(self._scalar) < k:
            bw = type(prog.backward)()
            self._scalar.append(_Compiled(bw))
        d = np.empty((B, max(1, prog.backward.num_outputs), n + _PAD))
        finals: list = [None] * B

        def share(j: int) -> None:
            bk = self._scalar[j]
            p = bk.prog
            for b in range(j, B, k):
                prog._sync(p, widgets[b], n)   # (its widgets and block length)
                p.reset()
                if n:
                    bk.run(self._tapes[b], d[b], _NONE, 0, n, n)
                finals[b] = p.finals()
        run_each(share, k, k)
        return np.array(finals), d

    def _d_params(self, finals, widgets, n: int) -> np.ndarray:
        """dL/dθ = J·Σ per instance (J from the kernel's kept values, or the interpreter's
        jacobian program for each distinct widget setting)."""
        p, B = self.prog, self.batch
        out = np.zeros((B, p.num_wrt))
        if not (p.num_wrt and p.num_boundary):
            return out
        nb = p.num_boundary
        for b in range(B):
            if p._spec.get("jacobian_inline"):
                jac = p._dense(finals[b, nb:nb + len(p._jac_index)])
            else:
                jac = p._jacobian(widgets[b], n)
            out[b] = jac @ finals[b, :nb]
        return out


_NONE3S: dict = {}


def _NONE3(batch: int) -> np.ndarray:
    """The bargraph array of a batch without bargraphs (only its shape is read)."""
    z = _NONE3S.get(batch)
    if z is None:
        z = _NONE3S[batch] = np.zeros((batch, 0, 0))
    return z


# ---------------------------------------------------------------- compiling

def compile_source(text: str, filename: str = "<string>", sample_rate: float = 44100,
                   include: Iterable = (), wrt="auto", backend: Optional[str] = None,
                   signals=None, input_grads: bool = True) -> ReverseProgram:
    """Compile a program with its backward pass (see the module docstring).
    `input_grads=False`: `vjp` returns zero d_inputs and skips their computation (training
    needs only dL/dθ)."""
    wrt = normalise_wrt(wrt) if not (isinstance(wrt, (list, tuple)) and not wrt) else []
    signals = normalise_signals(signals)
    include = tuple(include)
    sr = int(sample_rate)
    if backend not in (None, "numba"):
        box = evaluate_source(text, filename, include)

        def build():
            parts, spec = _parts(box, wrt, signals, input_grads)

            def factory():
                return tuple(_interp_program(*parts[p], sr) for p in _PARTS)
            return ReverseProgram(*factory(), spec, factory)
        return deep_call(build)
    return _compiled_program(text, filename, sr, include, wrt, signals, input_grads)


def _parts_to_compile(spec) -> tuple:
    """The parts that are Numba modules (the jacobian runs in the interpreter when its
    signals could be written as data)."""
    return _PARTS if spec.get("jacobian_data") is None else _PARTS[:2]


def _compiled_program(text, filename, sr, include, wrt, signals, input_grads):
    """The Numba-compiled parts, from the disk cache or generated now."""
    keytext = (text + f"\n// faustdiff-reverse {_FORMAT}: "
               + json.dumps([wrt, signals, bool(input_grads)]) + "\n")
    mods = _cached(keytext, filename, sr, include)
    if mods is None:
        libs: list = []
        box = evaluate_source(text, filename, include, libraries=libs)

        def build():
            parts, spec = _parts(box, wrt, signals, input_grads)
            out = {}
            for p in _parts_to_compile(spec):
                o, b, i, k, opts = parts[p]
                src, _ = generate_from_signals(o, b, i, sr, "", keep=k, **opts,
                                               source=os.path.basename(filename), key=_HOLE)
                if p == "forward":
                    src += (f"\n\nREVERSE_SPEC = {json.dumps(spec)!r}\nREVERSE_SPEC = "
                            "__import__('json').loads(REVERSE_SPEC)\n")
                out[p] = src
            return out
        sources = deep_call(build)
        for p, src in sources.items():
            cache.store(keytext + p, filename, sr, include, "", libs,
                        lambda key, src=src: src.replace(f"key={_HOLE}\n", f"key={key}\n", 1))
        mods = _cached(keytext, filename, sr, include)
        if mods is None:
            raise FaustError("reverse mode: the compiled modules could not be stored")
    spec = mods["forward"].REVERSE_SPEC
    data = spec.get("jacobian_data")
    jac = None if data is None else deep_call(lambda: S.from_data(data))

    def factory():
        f, b = mods["forward"].FaustProgram(), mods["backward"].FaustProgram()
        j = mods["jacobian"].FaustProgram() if jac is None else \
            Program(jac, 0, sr, "", "interp")
        return f, b, j
    return ReverseProgram(*factory(), spec, factory)


def _interp_program(outs, bars, ins, keep, opts, sr) -> Program:
    """One part as a reference-interpreter Program (the forward program's outputs carry no
    history columns there: `ReverseProgram` adds them)."""
    def make(o, b, ni, rate, keep=(), reverse_io=False):
        return Interpreter(o, b, ni, rate, keep, reverse_io, opts.get("in_offset", 0))
    return Program(outs, ins, sr, "", make, keep=keep,
                   reverse_io=opts.get("reverse_io", False))


def _cached(keytext, filename, sr, include) -> Optional[dict]:
    """The three modules from the disk cache, or None if any is missing or broken."""
    mods: dict = {}
    for p in _PARTS:
        if p == "jacobian" and mods["forward"].REVERSE_SPEC.get("jacobian_data") is not None:
            break
        try:
            path = cache.lookup(keytext + p, filename, sr, include, "")
            if path is None:
                return None
            mods[p] = cache.import_module(path)
            if p == "forward" and not hasattr(mods[p], "REVERSE_SPEC"):
                return None
        except FaustError:
            raise
        except Exception:   # noqa: BLE001 - a broken entry is a miss
            return None
    return mods


def compile_file(path: str, sample_rate: float = 44100, include: Iterable = (), wrt="auto",
                 backend: Optional[str] = None, signals=None,
                 input_grads: bool = True) -> ReverseProgram:
    return compile_source(read_source(str(path)), str(path), sample_rate, include, wrt,
                          backend, signals, input_grads)

