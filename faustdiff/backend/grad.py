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
  `bargraph_labels`, `bargraphs`, `clone()` (an independent instance: own state).

Compiled with the Numba backend by default and cached on disk like any program (the cache
key includes `wrt`); `backend="interp"` runs the reference interpreter.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, asdict
from typing import Iterable, Optional, Sequence

import numpy as np

from ..errors import FaustError

AUTO = "auto"
_META = re.compile(r"\[\s*([^\]:\s]+)\s*(?::\s*([^\]]*?))?\s*\]")
_SLIDERS = ("hslider", "vslider", "nentry")


def metadata(label: str) -> dict:
    """The `[key:value]` metadata of a raw widget label (`[key]` alone: value '')."""
    return {k.lower(): (v or "").strip() for k, v in _META.findall(label)}


def is_declared(label: str) -> bool:
    """A widget label that declares a learnable parameter: `[diff:on]` / `[diff:1]`."""
    v = metadata(label).get("diff")
    return v is not None and v.lower() in ("on", "1", "true", "yes", "")


@dataclass(frozen=True)
class ParamSpec:
    """A differentiable parameter: its label, initial value, range and scale.

    `scale` is 'lin' or 'log' (from the widget's `[scale:log]` metadata, or given): the
    normalised coordinate u in [0, 1] maps to p = lo + u·(hi − lo) (lin) or
    p = lo·(hi/lo)^u (log, needs 0 < lo < hi)."""
    label: str
    init: float
    lo: float
    hi: float
    scale: str = "lin"
    step: float = 0.0

    def __post_init__(self):
        if self.scale not in ("lin", "log"):
            raise FaustError(f"parameter '{self.label}': unknown scale '{self.scale}' "
                             "(lin or log)")
        if not self.hi > self.lo:
            raise FaustError(f"parameter '{self.label}': empty range [{self.lo}, {self.hi}]")
        if self.scale == "log" and not self.lo > 0:
            raise FaustError(f"parameter '{self.label}': a log scale needs a positive range, "
                             f"not [{self.lo}, {self.hi}]")

    def with_(self, **kw) -> "ParamSpec":
        d = asdict(self)
        d.update(kw)
        return ParamSpec(**d)

    def to_unit(self, p):
        p = np.clip(np.asarray(p, dtype=np.float64), self.lo, self.hi)
        if self.scale == "log":
            return np.log(p / self.lo) / math.log(self.hi / self.lo)
        return (p - self.lo) / (self.hi - self.lo)

    def from_unit(self, u):
        u = np.asarray(u, dtype=np.float64)
        if self.scale == "log":
            return self.lo * np.exp(u * math.log(self.hi / self.lo))
        return self.lo + u * (self.hi - self.lo)

    def dp_du(self, u):
        """dp/du at u (the chain-rule factor of the normalisation)."""
        if self.scale == "log":
            return self.from_unit(u) * math.log(self.hi / self.lo)
        return np.full_like(np.asarray(u, dtype=np.float64), self.hi - self.lo)


def spec_of(node) -> ParamSpec:
    """The ParamSpec of a `ui` signal node."""
    from ..signals.ir import strip_metadata
    kind, label, _groups, init, lo, hi, step = node.attrs
    scale = "log" if metadata(label).get("scale", "").lower() == "log" and lo > 0 else "lin"
    return ParamSpec(strip_metadata(label), float(init), float(lo), float(hi), scale,
                     float(step))


# ---------------------------------------------------------------- choosing the parameters

def normalise_wrt(wrt) -> object:
    """`wrt` as given by a user: 'auto', a comma-separated string, or labels."""
    if wrt is True or (isinstance(wrt, str) and wrt.strip().lower() == AUTO):
        return AUTO
    if isinstance(wrt, str):
        wrt = [w for w in wrt.split(",")]
    labels = [str(w).strip() for w in wrt]
    if not labels or any(not w for w in labels):
        raise FaustError("wrt: give parameter labels (e.g. ['gain', 'dc']) or 'auto'")
    if len(set(labels)) != len(labels):
        raise FaustError(f"wrt: a parameter is named twice in {', '.join(labels)}")
    return labels


def select(controls: Sequence, wrt) -> tuple[list[str], list[list]]:
    """(labels, nodes per label) of the parameters `wrt` among the `ui` nodes `controls`."""
    from ..signals.ir import strip_metadata, widget_path
    wrt = normalise_wrt(wrt)
    sliders = [c for c in controls if c.attrs[0] in _SLIDERS]
    if wrt == AUTO:
        labels: list[str] = []
        nodes: list[list] = []
        for c in sliders:
            if is_declared(c.attrs[1]):
                lab = strip_metadata(c.attrs[1])
                if lab in labels:
                    nodes[labels.index(lab)].append(c)
                else:
                    labels.append(lab)
                    nodes.append([c])
        if not labels:
            raise FaustError("the program declares no parameter: mark sliders with "
                             "[diff:on] (or df.param), or name them with wrt")
        return labels, nodes
    out = []
    for w in wrt:
        hits = [c for c in sliders if widget_path(c) == w]
        if not hits:
            hits = [c for c in sliders if strip_metadata(c.attrs[1]) == strip_metadata(w)]
        if not hits:
            known = [strip_metadata(c.attrs[1]) for c in sliders]
            other = [strip_metadata(c.attrs[1]) for c in controls if c not in sliders]
            msg = f"unknown parameter '{w}'"
            if strip_metadata(w) in other:
                msg = f"'{w}' is a button or checkbox, not a continuous parameter"
            raise FaustError(f"{msg}; differentiable parameters: "
                             f"{', '.join(sorted(set(known))) or '(none)'}")
        out.append(hits)
    return list(wrt), out


def partial_signals(outputs: Sequence, nodes: Sequence[Sequence]) -> list:
    """The partial-derivative signals, parameter-major: [∂out_0/∂p_0, ∂out_1/∂p_0, ...,
    ∂out_0/∂p_1, ...] (structurally zero ones are the constant 0.0)."""
    from ..ad import forward as ad
    from ..signals import ir as S
    w = len(nodes)
    seeds = {}
    for i, group in enumerate(nodes):
        for node in group:
            seeds[node] = [S.const(1.0) if d == i else None for d in range(w)]
    tans = ad.jvp(list(outputs), seeds, w, "auto")
    return [S.const(0.0) if tans[o][i] is None else S.to_real(tans[o][i])
            for i in range(w) for o in range(len(outputs))]


# ---------------------------------------------------------------- the program object

class GradProgram:
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

    # the Program API, delegated
    @property
    def params(self) -> dict:
        return self.program.params

    def set_param(self, label: str, value: float) -> None:
        self.program.set_param(label, value)

    def reset(self) -> None:
        self.program.reset()

    @property
    def bargraph_labels(self):
        return self.program.bargraph_labels

    @property
    def bargraphs(self):
        return self.program.bargraphs

    @property
    def name(self):
        return getattr(self.program, "name", "")

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
    from ..signals import ir as S
    from ..frontend.arity import arity
    from ..signals.propagate import Context, propagate
    ins, _ = arity(box)
    outs = propagate(box, None, Context(name=name))
    every = S.topo_order(outs, follow_tables=True)
    controls = S.ui_order([s for s in every if s.op == "ui"])
    labels, nodes = select(controls, wrt)
    parts = partial_signals(outs, nodes)
    allouts = list(outs) + parts
    every = S.topo_order(allouts, follow_tables=True)
    per_sample = {id(s) for s in S.topo_order(allouts)}
    bars = S.ui_order([s for s in every if s.op == "bargraph" and id(s) in per_sample])
    return allouts, bars, ins, _spec_json(labels, nodes, len(outs))


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
    from .. import api
    from ..core.deep import deep_call
    wrt = normalise_wrt(wrt)
    include = tuple(include)
    if backend not in (None, "numba"):
        box = api.evaluate_source(text, filename, include)

        def build():
            from .program import Program
            allouts, _bars, ins, spec = _signals(box, "", wrt)

            def factory():
                return Program(allouts, ins, sample_rate, "", backend)
            return _from_spec(factory(), spec, factory)
        return deep_call(build)

    from . import cache
    from .codegen import generate_from_signals
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
        box = api.evaluate_source(text, filename, include, libraries=libs)

        def build():
            allouts, bars, ins, spec = _signals(box, "", wrt)
            src, _ = generate_from_signals(allouts, bars, ins, sr, "",
                                           source=os.path.basename(filename), key=_HOLE)
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
    from ..api import read_source
    return compile_source(read_source(str(path)), str(path), sample_rate, include, wrt,
                          backend)
