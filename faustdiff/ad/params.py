"""The parameters that gradients are taken with respect to (`wrt=`), at the signal level.

* `metadata(label)`, `is_declared(label)`: a widget's `[key:value]` metadata; `[diff:on]`
  declares a learnable parameter (`df.param` adds it);
* `ParamSpec`: a parameter's label, initial value, range and scale, with the normalised
  coordinate u in [0, 1] that training uses (`to_unit`, `from_unit`, `dp_du`);
* `select(controls, wrt)`: the `ui` nodes named by `wrt` (labels, paths, or "auto": every
  declared parameter, in Faust's UI order), one list of nodes per parameter (widgets that
  share a label are one parameter);
* `partial_signals(outputs, nodes)`: ∂outputs/∂parameters as signals (forward mode).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, asdict
from typing import Sequence

import numpy as np

from ..errors import FaustError
from ..signals import ir as S
from .forward import jvp

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


def from_units(specs, u) -> tuple:
    """(values, chain) of normalised coordinates u (one per spec), as the framework
    bindings use them: u clamped to [0, 1], each value `from_unit` of its clamped u, and
    chain = dp/du there, 0 where u was outside [0, 1] (the clamp's gradient)."""
    u = np.asarray(u, dtype=np.float64)
    uc = np.clip(u, 0.0, 1.0)
    values = [float(s.from_unit(v)) for s, v in zip(specs, uc)]
    chain = np.array([float(s.dp_du(v)) for s, v in zip(specs, uc)])
    chain[(u < 0.0) | (u > 1.0)] = 0.0
    return values, chain


def spec_of(node) -> ParamSpec:
    """The ParamSpec of a `ui` signal node."""
    kind, label, _groups, init, lo, hi, step = node.attrs
    scale = "log" if metadata(label).get("scale", "").lower() == "log" and lo > 0 else "lin"
    return ParamSpec(S.strip_metadata(label), float(init), float(lo), float(hi), scale,
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
    wrt = normalise_wrt(wrt)
    sliders = [c for c in controls if c.attrs[0] in _SLIDERS]
    if wrt == AUTO:
        labels: list[str] = []
        nodes: list[list] = []
        for c in sliders:
            if is_declared(c.attrs[1]):
                lab = S.strip_metadata(c.attrs[1])
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
        hits = [c for c in sliders if S.widget_path(c) == w]
        if not hits:
            hits = [c for c in sliders if S.strip_metadata(c.attrs[1]) == S.strip_metadata(w)]
        if not hits:
            known = [S.strip_metadata(c.attrs[1]) for c in sliders]
            other = [S.strip_metadata(c.attrs[1]) for c in controls if c not in sliders]
            msg = f"unknown parameter '{w}'"
            if S.strip_metadata(w) in other:
                msg = f"'{w}' is a button or checkbox, not a continuous parameter"
            raise FaustError(f"{msg}; differentiable parameters: "
                             f"{', '.join(sorted(set(known))) or '(none)'}")
        out.append(hits)
    return list(wrt), out


def partial_signals(outputs: Sequence, nodes: Sequence[Sequence]) -> list:
    """The partial-derivative signals, parameter-major: [∂out_0/∂p_0, ∂out_1/∂p_0, ...,
    ∂out_0/∂p_1, ...] (structurally zero ones are the constant 0.0)."""
    w = len(nodes)
    seeds = {}
    for i, group in enumerate(nodes):
        for node in group:
            seeds[node] = [S.const(1.0) if d == i else None for d in range(w)]
    tans = jvp(list(outputs), seeds, w, "auto")
    return [S.const(0.0) if tans[o][i] is None else S.to_real(tans[o][i])
            for i in range(w) for o in range(len(outputs))]
