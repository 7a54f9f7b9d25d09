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
* jacobian -- ∂(those control-rate values)/∂θ, control rate only: one sample per block.

`signals=[labels]` turns those sliders into extra audio inputs, appended after the
program's own in the order given (a caller drives them per sample, and their per-sample
gradients come back in `d_inputs`); it also works for plain programs (`build`).

Memory: the tapes are float64 (tapes, n) per block, all kept until `vjp`.
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
from .codegen import generate_from_signals
from .program import Program

_FORMAT = 2   # bump when the modules or the spec this file writes change
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
    controls = _controls(outs)
    if signals:
        labels, nodes = select(controls, list(signals))
        mapping = {n: S.input_(ins + j) for j, group in enumerate(nodes) for n in group}
        outs = substitute(outs, mapping)
        ins += len(labels)
        controls = _controls(outs)
    return outs, ins, controls


def _controls(outs) -> list:
    every = S.topo_order(list(outs), follow_tables=True)
    return S.ui_order([s for s in every if s.op == "ui"])


def _bargraphs(outs) -> list:
    every = S.topo_order(list(outs), follow_tables=True)
    per_sample = {id(s) for s in S.topo_order(list(outs))}
    return S.ui_order([s for s in every if s.op == "bargraph" and id(s) in per_sample])


def _parts(box, wrt, signals):
    """The three programs' signals and the spec of a reverse program."""
    outs, ins, controls = program_signals(box, signals)
    if wrt == AUTO or wrt:
        labels, nodes = select(controls, wrt)
    else:
        labels, nodes = [], []
    bw = backward(outs, ins, nodes)
    specs = [asdict(spec_of(g[0]).with_(label=lab)) for lab, g in zip(labels, nodes)]
    spec = {"wrt": labels, "specs": specs, "num_outputs": len(outs), "num_inputs": ins,
            "num_tapes": len(bw.tapes), "num_boundary": len(bw.boundary),
            "signals": list(signals)}
    parts = {
        "forward": (list(outs) + bw.tapes, _bargraphs(outs), ins, ()),
        "backward": (bw.d_inputs or [S.real_const(0.0)], [], bw.num_backward_inputs,
                     bw.finals),   # reverse_io
        "jacobian": (bw.jacobian or [S.real_const(0.0)], [], 0, ()),
    }
    return parts, spec


# ---------------------------------------------------------------- the program object

class ReverseProgram:
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
        self._tapes: Optional[np.ndarray] = None
        self._block_params: dict = {}

    # the Program API, delegated to the forward program
    @property
    def params(self) -> dict:
        return self.forward.params

    def set_param(self, label: str, value: float) -> None:
        self.forward.set_param(label, value)

    def reset(self) -> None:
        self.forward.reset()
        self._tapes = None

    @property
    def bargraph_labels(self):
        return self.forward.bargraph_labels

    @property
    def bargraphs(self):
        return self.forward.bargraphs

    @property
    def name(self):
        return getattr(self.forward, "name", "")

    def compute(self, inputs=None, n: Optional[int] = None) -> np.ndarray:
        """Render a block (outputs (num_outputs, n), as the plain program) and keep what
        `vjp` needs."""
        allout = self.forward.compute(inputs, n)
        k = self.num_outputs
        self._tapes = allout     # rows k.. are the tapes; vjp writes dL/dy over rows 0..k-1
        self._n = allout.shape[1]
        self._block_params = dict(self._paths_values(self.forward))
        return allout[:k].copy()

    def vjp(self, cotangent) -> tuple:
        """(d_params (num_wrt,), d_inputs (num_inputs, n)) for dL/dy = `cotangent` of the
        last block computed."""
        if self._tapes is None:
            raise FaustError("vjp: compute a block first (vjp differentiates the last one)")
        n = self._n
        ct = np.asarray(cotangent, dtype=np.float64)
        if ct.ndim == 1 and self.num_outputs == 1:
            ct = ct[None, :]
        if ct.shape != (self.num_outputs, n):
            raise FaustError(f"vjp: the cotangent must have shape ({self.num_outputs}, {n}) "
                             f"(dL/dy of the last block), got {ct.shape}")
        if not np.all(np.isfinite(ct)):
            raise FaustError("vjp: the cotangent holds NaN or infinity")
        # The backward program runs in reversed time, reading its inputs (dL/dy, then the
        # tapes: the forward program's own output array) and writing dL/dx last sample
        # first: no array is flipped or copied.
        ins = self._tapes
        ins[:self.num_outputs] = ct
        bw = self.backward
        self._sync(bw)
        bw.reset()
        d = bw.compute(ins, n)
        d_inputs = d[:self.num_inputs]
        d_params = np.zeros(self.num_wrt)
        if self.num_wrt and self.num_boundary:
            self._sync(self.jacobian)
            jac = self.jacobian.compute(None, 1)[:, 0].reshape(self.num_wrt, self.num_boundary)
            d_params = jac @ bw.finals()
        return d_params, d_inputs

    def value_and_grad(self, inputs, loss_grad, n: Optional[int] = None):
        """compute + vjp: `loss_grad(y) -> (loss, dL/dy)`; returns (loss, y, d_params,
        d_inputs)."""
        y = self.compute(inputs, n)
        loss, ct = loss_grad(y)
        dp, dx = self.vjp(ct)
        return loss, y, dp, dx

    @staticmethod
    def _paths_values(prog):
        return zip(prog._paths, prog._values if hasattr(prog, "_values") else
                   prog._ctl.tolist())

    def _sync(self, prog) -> None:
        """The widget values of the last block, in a backward or jacobian program."""
        for path in prog._paths:
            if path in self._block_params:
                prog.set_param(path, self._block_params[path])

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


# ---------------------------------------------------------------- compiling

def compile_source(text: str, filename: str = "<string>", sample_rate: float = 44100,
                   include: Iterable = (), wrt="auto", backend: Optional[str] = None,
                   signals=None) -> ReverseProgram:
    """Compile a program with its backward pass (see the module docstring)."""
    wrt = normalise_wrt(wrt) if not (isinstance(wrt, (list, tuple)) and not wrt) else []
    signals = normalise_signals(signals)
    include = tuple(include)
    sr = int(sample_rate)
    if backend not in (None, "numba"):
        box = evaluate_source(text, filename, include)

        def build():
            parts, spec = _parts(box, wrt, signals)

            def factory():
                return tuple(Program(o, i, sr, "", backend, keep=k, reverse_io=p == "backward")
                             for p, (o, _b, i, k) in ((p, parts[p]) for p in _PARTS))
            return ReverseProgram(*factory(), spec, factory)
        return deep_call(build)

    keytext = (text + f"\n// faustdiff-reverse {_FORMAT}: "
               + json.dumps([wrt, signals]) + "\n")
    mods = _cached(keytext, filename, sr, include)
    if mods is None:
        libs: list = []
        box = evaluate_source(text, filename, include, libraries=libs)

        def build():
            parts, spec = _parts(box, wrt, signals)
            out = {}
            for p in _PARTS:
                o, b, i, k = parts[p]
                src, _ = generate_from_signals(o, b, i, sr, "", keep=k,
                                               reverse_io=p == "backward",
                                               source=os.path.basename(filename), key=_HOLE)
                if p == "forward":
                    src += (f"\n\nREVERSE_SPEC = {json.dumps(spec)!r}\nREVERSE_SPEC = "
                            "__import__('json').loads(REVERSE_SPEC)\n")
                out[p] = src
            return out
        sources = deep_call(build)
        for p in _PARTS:
            src = sources[p]
            cache.store(keytext + p, filename, sr, include, "", libs,
                        lambda key, src=src: src.replace(f"key={_HOLE}\n", f"key={key}\n", 1))
        mods = _cached(keytext, filename, sr, include)
        if mods is None:
            raise FaustError("reverse mode: the compiled modules could not be stored")
    spec = mods["forward"].REVERSE_SPEC

    def factory():
        return tuple(mods[p].FaustProgram() for p in _PARTS)
    return ReverseProgram(*factory(), spec, factory)


def _cached(keytext, filename, sr, include) -> Optional[dict]:
    """The three modules from the disk cache, or None if any is missing or broken."""
    mods = {}
    for p in _PARTS:
        try:
            path = cache.lookup(keytext + p, filename, sr, include, "")
            if path is None:
                return None
            mods[p] = cache.import_module(path)
        except FaustError:
            raise
        except Exception:   # noqa: BLE001 - a broken entry is a miss
            return None
    if not hasattr(mods["forward"], "REVERSE_SPEC"):
        return None
    return mods


def compile_file(path: str, sample_rate: float = 44100, include: Iterable = (), wrt="auto",
                 backend: Optional[str] = None, signals=None) -> ReverseProgram:
    return compile_source(read_source(str(path)), str(path), sample_rate, include, wrt,
                          backend, signals)

