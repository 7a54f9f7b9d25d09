"""The user object: a compiled Faust program you can run, tweak and reset.

`Program(outputs, num_inputs, sample_rate)` wraps output signals and a backend (the
reference interpreter now; the Numba kernel later, behind the same interface: a factory
`backend(outputs, bargraphs, num_inputs, sample_rate)` returning an object with
`set_control(node, value)`, `reset()` and `run(inputs, n) -> (outs, bars)`).

Invariants:
* State is kept between `compute` calls exactly like Faust's `compute`; splitting a render
  into blocks changes nothing except `ma.BS` (the `count` variable is the block length).
* `bargraph_traces` (after `compute`) holds one trace per bargraph, in the order of
  `bargraph_labels`; `bargraphs` maps each label to its trace (to the list of traces, in that
  order, when several bargraphs share a label).
* `bargraph_labels` lists one entry per bargraph node in the order of Faust's UI build (the
  column order of the reference CSVs, see `signals.ui_order`), labels without `[..]`.
* Parameters are the UI widgets reachable from the outputs (Faust drops unused widgets).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from ..signals import ir as S
from .interp import Interpreter
from .runtime import check_inputs, group_traces, remembered_hits, widget_values


def _numba(outputs, bargraphs, num_inputs, sample_rate, keep=(), reverse_io=False):
    """Generated Numba kernels (faustdiff.backend.codegen) behind the backend interface."""
    from .cache import NumbaBackend
    return NumbaBackend(outputs, bargraphs, num_inputs, sample_rate, keep, reverse_io)


_BACKENDS: dict = {None: Interpreter, "interp": Interpreter, "numba": _numba}


class Program:
    def __init__(self, outputs: Sequence[S.Sig], num_inputs: int, sample_rate: int = 44100,
                 name: str = "", backend: Optional[Callable] = None, keep: Sequence = (),
                 reverse_io: bool = False):
        self.outputs = list(outputs)
        self.num_inputs = int(num_inputs)
        self.num_outputs = len(self.outputs)
        self.sample_rate = int(sample_rate)
        self.name = name
        # (bargraphs inside table init signals are never shown per sample: left out)
        self.bargraph_nodes = S.bargraphs(self.outputs)
        self.controls = S.controls(self.outputs + list(keep))
        self.bargraph_labels = [S.strip_metadata(s.attrs[1]) for s in self.bargraph_nodes]
        self._paths = [S.widget_path(s, name) for s in self.controls]
        self._labels = [S.strip_metadata(s.attrs[1]) for s in self.controls]
        self._values = [s.attrs[3] for s in self.controls]
        make = _BACKENDS[backend] if isinstance(backend, str) or backend is None else backend
        args = (self.outputs, self.bargraph_nodes, self.num_inputs, self.sample_rate)
        self._backend = make(*args, keep, reverse_io) if keep or reverse_io else make(*args)
        self.bargraphs: dict = {}
        self.bargraph_traces: list = []   # one per bargraph, in bargraph_labels' order

    @classmethod
    def from_box(cls, box, sample_rate: int = 44100, name: str = "",
                 backend: Optional[Callable] = None) -> "Program":
        """Propagate a normal-form box on fresh audio inputs and wrap the result."""
        from ..frontend.arity import arity
        from ..signals.propagate import Context, propagate
        ins, _ = arity(box)
        ctx = Context(name=name)
        outs = propagate(box, None, ctx)
        program = cls(outs, ins, sample_rate, name, backend)
        program.origins = ctx.origins   # signal -> box (run --check-finite)
        return program

    # ------------------------------------------------------------ parameters

    @property
    def params(self) -> dict:
        """label -> current value (a label shared by several widgets: their full paths)."""
        return widget_values(self._labels, self._paths, self._values)

    def set_param(self, label: str, value: float) -> None:
        """Set a widget by full path, or by label (every widget with that label)."""
        for j in remembered_hits(self, label):
            self._values[j] = float(value)
            self._backend.set_control(self.controls[j], float(value))

    # ------------------------------------------------------------ running

    def reset(self) -> None:
        """Back to the state right after init (delays, recursions zero; tables refilled)."""
        self._backend.reset()

    def finals(self) -> np.ndarray:
        """The values of the `keep` recursions after the last sample computed."""
        return np.array(self._backend.finals(), dtype=np.float64)

    def compute(self, inputs=None, n: Optional[int] = None) -> np.ndarray:
        """Render n samples; inputs is (num_inputs, n) float64 (None: silence)."""
        inputs, n = check_inputs(inputs, n, self.num_inputs)
        outs, bars = self._backend.run([inputs[c, :n] for c in range(self.num_inputs)], n)
        result = np.array(outs, dtype=np.float64).reshape(self.num_outputs, n)
        self.bargraph_traces = [np.array(t, dtype=np.float64) for t in bars]
        self.bargraphs = group_traces(self.bargraph_labels, self.bargraph_traces)
        return result


class Wrapper:
    """The Program API of a program object built around another one (`_inner`: its
    widgets, labels and name); subclasses add what they compute (gradients)."""

    @property
    def params(self) -> dict:
        return self._inner.params

    def set_param(self, label: str, value: float) -> None:
        self._inner.set_param(label, value)

    @property
    def bargraph_labels(self):
        return self._inner.bargraph_labels

    @property
    def name(self):
        return getattr(self._inner, "name", "")
