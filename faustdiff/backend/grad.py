"""Derivatives from the outside: programs that also compute ∂outputs/∂parameters.

    compile_source(text, wrt=["gain", "dc"]) -> GradProgram

The parameters (`wrt`) are UI widgets chosen by label (any hslider, vslider or nentry; a full
path `/group/label` also works), or `"auto"`: every *declared* parameter, i.e. every widget
whose label carries `[diff:on]` (or `[diff:1]`; `df.param(hslider(...))` in diff.lib adds it),
in the order of Faust's UI (labels sorted within each group, as `params` lists them).
Each chosen widget's signal gets the tangent seed 1 along its own direction and the AD pass
(`ad.jvp`, the same rules as `diff.lib`'s automatic mode) differentiates every output along
every direction: the compiled program grows `num_wrt × num_outputs` extra outputs, computed in
the same sample loop (through recursions, delays and tables: a recursion's tangent is a
bigger recursion). Two widgets with the same label are one parameter (as `set_param` sets
both).

`GradProgram` is the Program API plus the partials:

* `compute(inputs=None, n=None)` returns the outputs, shape (num_outputs, n), exactly as the
  plain program does, and leaves the partials of that block in `partials`, shape
  (num_wrt, num_outputs, n): `partials[i, o, t]` = ∂out_o[t]/∂wrt_i (the derivative of the
  whole history up to t, since state depends on the parameter too);
* `compute_with_grad(inputs=None, n=None) -> (outputs, partials)`;
* `wrt` (the labels, in the order of `partials`), `param_specs` (label, init, lo, hi, scale
  of each: what `train` uses for automatic normalisation), `params`, `set_param`, `reset`,
  `bargraph_labels`, `bargraphs`, `bargraph_traces`, `clone()` (an independent instance: own state).

Compiled with the Numba backend by default and cached on disk like any program (the cache
key includes `wrt`); `backend="interp"` runs the reference interpreter.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Iterable, Optional, Sequence

import numpy as np

from ..ad.params import (AUTO, ParamSpec, is_declared, metadata, normalise_wrt,  # noqa: F401
                         partial_signals, select, spec_of)
from ..core.deep import deep_call
from .. import ad  # noqa: F401  (diff.lib's builtins and Dual's meaning, before any evaluation)
from ..errors import FaustError
from ..frontend.arity import arity
from ..frontend.source import evaluate_source, read_source
from ..signals import ir as S
from ..signals.propagate import Context, propagate
from . import cache
from .codegen import generate_from_signals
from .program import Program, Wrapper

# ---------------------------------------------------------------- the program object

class GradProgram(Wrapper):
    """A program that also computes ∂outputs/∂wrt (see the module docstring)."""

    def __init__(self, inner, wrt: Sequence[str], specs: Sequence[ParamSpec],
                 num_outputs: int, factory=None):
        self.program = inner
        self.wrt = list(wrt)
        self.param_specs = list(specs)
        self.num_wrt = len(self.wrt)
        self.num_outputs = int(num_outputs)
        self.num_inputs = inner.num_inputs
        self.sample_rate = inner.sample_rate
        self._factory = factory
        self.partials = np.zeros((self.num_wrt, self.num_outputs, 0))

    # the Program API, delegated (Wrapper: params, set_param, bargraph_labels, name)
    @property
    def _inner(self):
        return self.program

    def reset(self) -> None:
        self.program.reset()

    @property
    def bargraphs(self):
        return self.program.bargraphs

    @property
    def bargraph_traces(self):
        return self.program.bargraph_traces

    def compute_with_grad(self, inputs=None, n: Optional[int] = None):
        """(outputs (num_outputs, n), partials (num_wrt, num_outputs, n)) of one block."""
        allout = self.program.compute(inputs, n)
        k = self.num_outputs
        outs = allout[:k]
        self.partials = allout[k:].reshape(self.num_wrt, k, allout.shape[1])
        return outs, self.partials

    def compute(self, inputs=None, n: Optional[int] = None) -> np.ndarray:
        return self.compute_with_grad(inputs, n)[0]

    def column_names(self) -> list[str]:
        """`out0..` then `dout0/dgain, dout1/dgain, ..., dout0/ddc, ...` (the CSV header)."""
        names = [f"out{o}" for o in range(self.num_outputs)]
        return names + [f"dout{o}/d{w}" for w in self.wrt for o in range(self.num_outputs)]

    def clone(self) -> "GradProgram":
        """An independent instance (own state, parameters at their current values)."""
        if self._factory is None:
            raise FaustError("this program cannot be cloned")
        inner = self._factory()
        for k, v in self.program.params.items():
            inner.set_param(k, v)
        inner.reset()
        return GradProgram(inner, self.wrt, self.param_specs, self.num_outputs, self._factory)

    def __repr__(self):
        return (f"<GradProgram {self.num_inputs} in, {self.num_outputs} out, "
                f"wrt {', '.join(self.wrt)}>")


# ---------------------------------------------------------------- compiling

def _spec_json(labels, nodes, num_outputs) -> dict:
    specs = [asdict(spec_of(group[0]).with_(label=lab)) for lab, group in zip(labels, nodes)]
    return {"wrt": labels, "specs": specs, "num_outputs": num_outputs}


def _signals(box, name, wrt):
    """(outputs + partials, bargraphs, inputs, spec dict) of an evaluated program."""
    ins, _ = arity(box)
    outs = propagate(box, None, Context(name=name))
    labels, nodes = select(S.controls(outs), wrt)
    allouts = list(outs) + partial_signals(outs, nodes)
    return allouts, S.bargraphs(allouts), ins, _spec_json(labels, nodes, len(outs))


def _from_spec(inner, spec: dict, factory) -> GradProgram:
    specs = [ParamSpec(**s) for s in spec["specs"]]
    return GradProgram(inner, spec["wrt"], specs, spec["num_outputs"], factory)


_HOLE = "@KEY@"
_GRAD_FORMAT = 2   # bump when what this module appends to generated modules changes

# Appended to a gradient module: whole batches in compiled code (faustdiff.learn.train), each
# example b with its own rows of inputs, outputs, widgets and state. `_batch_par` spreads the
# examples over Numba's threads (prange), `_batch_seq` runs them in turn; both release the
# GIL, so a thread pool can also share a batch out. Cached on disk with the module.
_BATCH_DRIVERS = '''

from numba import prange as _prange

_KMAIN = FaustProgram.KERNELS[0] if hasattr(FaustProgram, "KERNELS") else FaustProgram.kernel


@njit(cache=True, parallel=True, nogil=True)
def _batch_par(n, ins, outs, bars, ctl, iv, fv, di, df, hi, hf):
    for b in _prange(ins.shape[0]):
        _KMAIN(n, 0, n, ins[b], outs[b], bars[b], ctl[b], iv[b], fv[b], di[b], df[b], hi[b],
               hf[b])


@njit(cache=True, nogil=True)
def _batch_seq(n, ins, outs, bars, ctl, iv, fv, di, df, hi, hf):
    for b in range(ins.shape[0]):
        _KMAIN(n, 0, n, ins[b], outs[b], bars[b], ctl[b], iv[b], fv[b], di[b], df[b], hi[b],
               hf[b])
'''


def compile_source(text: str, filename: str = "<string>", sample_rate: float = 44100,
                   include: Iterable = (), wrt="auto", backend: Optional[str] = None
                   ) -> GradProgram:
    """Compile a program with the partials of its outputs with respect to `wrt`."""
    wrt = normalise_wrt(wrt)
    include = tuple(include)
    if backend not in (None, "numba"):
        box = evaluate_source(text, filename, include)

        def build():
            allouts, _bars, ins, spec = _signals(box, "", wrt)

            def factory():
                return Program(allouts, ins, sample_rate, "", backend)
            return _from_spec(factory(), spec, factory)
        return deep_call(build)

    sr = int(sample_rate)
    keytext = text + f"\n// faustdiff-grad {_GRAD_FORMAT}: " + json.dumps(wrt) + "\n"
    try:
        path = cache.lookup(keytext, filename, sr, include, "")
    except OSError:
        path = None
    mod = None
    if path is not None:
        try:
            mod = cache.import_module(path)
            spec = mod.GRAD_SPEC
        except FaustError:
            raise
        except Exception:   # noqa: BLE001 - a broken entry is a miss
            mod = None
    if mod is None:
        libs: list = []
        box = evaluate_source(text, filename, include, libraries=libs)

        def build():
            allouts, bars, ins, spec = _signals(box, "", wrt)
            src, _ = generate_from_signals(allouts, bars, ins, sr, "",
                                           source=os.path.basename(filename), key=_HOLE,
                                           loss_rows=spec["num_outputs"])
            return src + f"\n\nGRAD_SPEC = {json.dumps(spec)!r}\nGRAD_SPEC = " \
                         "__import__('json').loads(GRAD_SPEC)\n" + _BATCH_DRIVERS
        src = deep_call(build)
        path = cache.store(keytext, filename, sr, include, "", libs,
                           lambda key: src.replace(f"key={_HOLE}\n", f"key={key}\n", 1))
        mod = cache.import_module(path)
        spec = mod.GRAD_SPEC
    factory = mod.FaustProgram
    return _from_spec(factory(), spec, factory)


def compile_file(path: str, sample_rate: float = 44100, include: Iterable = (), wrt="auto",
                 backend: Optional[str] = None) -> GradProgram:
    return compile_source(read_source(str(path)), str(path), sample_rate, include, wrt,
                          backend)
