"""Training from Python: find a program's parameters from input and target audio.

    from faustdiff.learn.train import Trainer
    tr = Trainer("model.dsp", params=["cutoff", "q"], loss="mrstft", optimizer="adam", lr=0.05)
    result = tr.fit(inputs, target, steps=300)       # arrays, audio/CSV/NPY paths, or batches
    result.params        # {"cutoff": 1234.5, "q": 0.71}
    result.losses        # loss before each step
    result.trajectory    # {"cutoff": array of values before each step (and the last)}
    result.plot("training.png")                      # needs matplotlib (`faustdiff[plot]`)

or in one call: `faustdiff.learn.train.fit(model, inputs, target, params=..., ...)`.

One step, for every example b of the batch (in parallel, below):
1. reset the program, set the parameters θ, render the whole block: y_b (outputs, n);
2. the loss and its exact gradient with respect to every output sample (`faustdiff.learn.losses`):
   L_b, G_b = dL_b/dy_b;
3. dL_b/dθ, exact for the whole block, in one of two modes (`grad_mode`):
   forward -- the render also computed P_b = ∂y_b/∂θ (params, outputs, n) (one tangent per
              parameter, `faustdiff.backend.grad`), and dL_b/dθ_i = Σ_o Σ_n G_b[o, n] ·
              P_b[i, o, n];
   reverse -- `vjp(G_b)` of the reverse-mode program (`faustdiff.backend.reverse`): one
              backward pass, whatever the number of parameters;
   auto    -- forward for one or two parameters (faster there: benchmarks/bench_grad.py),
              reverse above.
The loss and gradient are averaged over the batch, the chain rule of the normalisation is
applied and the optimiser (`faustdiff.learn.optim`) takes one step.

Long files in chunks (`fit(..., segment=SECONDS)`, `Dataset(carry=True)`): steps 1-3 run on
consecutive segments of each example without a reset in between (the state carried), their
losses and gradients summed weighted by the segments' lengths (`Trainer._chunked`), so a
step holds one segment's outputs, partials or tapes at a time. `fit(..., log_path=PATH)`
writes the run as JSON Lines (`RunLog`).

Elsewhere (`fit(dataset, executor=...)`, `fit_each(dataset, executor=...)`): an evaluation
is `example_terms` (per example, a pure function of θ and the examples) then
`combine_terms` (their weighted mean, summed in example order), so an executor that
computes the terms of shares of a batch elsewhere gives the one-process numbers;
`faustdiff.learn.distributed.DaskExecutor` does it on Dask workers.

Automatic parameter normalisation (default): a parameter with range [lo, hi] is learned as
u in [0, 1] (p = lo + u·(hi − lo), or p = lo·(hi/lo)^u for a log scale: the widget's
`[scale:log]` metadata or `scales={"cutoff": "log"}`), with dL/du = dL/dp · dp/du, and u is
clipped to [0, 1] after every step, so the learned value always stays in range and
learning rates are comparable across parameters. `normalize=False` learns in the parameter's
own units (the range is still honoured by clipping).

Batches run in parallel in compiled code. A gradient module carries two batch drivers
(`grad._BATCH_DRIVERS`, Numba, cached on disk with it) that run every example's kernel on its
own rows of state: `parallel="threads"` (the default for a batch on several cores) shares the
examples out to a thread pool, each thread running its share in one compiled call that
releases the GIL; `"prange"` spreads them with Numba's `prange` in one call; `"serial"` runs
them in turn in one call. Measured on the 2-core development machine (busy), 16 examples of
1 s through the one-pole lowpass, L2 loss: threads 1825 examples/s, serial 1226, prange 700
(OpenMP's spinning threads lose to the machine's other work); see benchmarks/bench_train.py.
In reverse mode each example has its own program (clones): unless `parallel="serial"`, the
examples (render, loss, backward pass) run on a thread pool, their compiled kernels
releasing the GIL, and the gradients are summed in example order.

`parallel="vectorized"` (what "auto" picks in forward mode for a batch of two or more when
the module has batch kernels, codegen.batch_kernel): every example's program (its state and widgets) is a
lane of one call of the batch kernel, four examples per group of vector registers;
the state goes back to the examples' programs after the call, so segments, resets and
clones work as in the other modes. Outputs and partials are bit for bit the other modes';
reverse mode's gradient is each example's own up to the backward kernel's fast-math
rounding (~1e-13 relative).
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from ..backend import grad as G
from ..backend import reverse as R
from ..backend.build import compile_program, parameter_labels
from ..backend.runtime import run_each
from ..frontend.source import read_source
from . import losses as L
from . import optim as O
from ..errors import FaustError


# ---------------------------------------------------------------- data

def _load_signal(x, what: str, channels: Optional[int]):
    """An array (channels, n) from an array or a signal file; returns (array, sample rate)."""
    sr = None
    if isinstance(x, (str, os.PathLike)):
        from ..audio_io import read_input
        arr, sr = read_input(x)
    else:
        arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise FaustError(f"{what}: expected (channels, samples), got shape {arr.shape}")
    if channels is not None and arr.shape[0] != channels:
        raise FaustError(f"{what}: {arr.shape[0]} channel(s), the program has {channels}")
    return np.ascontiguousarray(arr, dtype=np.float64), sr


def _batch(x, what: str, channels: Optional[int]) -> tuple[list, Optional[int]]:
    """A list of (channels, n) arrays: one example (an array or a file), a (B, channels, n)
    array, or a list of examples (arrays or files)."""
    if x is None:
        return [None], None
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], (str, os.PathLike, np.ndarray)):
        items = [_load_signal(e, f"{what}[{k}]", channels) for k, e in enumerate(x)]
        srs = {sr for _, sr in items if sr}
        return [a for a, _ in items], (srs.pop() if srs else None)
    if not isinstance(x, (str, os.PathLike)):
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 3:
            return [np.ascontiguousarray(a) for a in arr], None
    a, sr = _load_signal(x, what, channels)
    return [a], sr


# ---------------------------------------------------------------- results

@dataclass
class TrainResult:
    params: dict                 # label -> learned value
    losses: np.ndarray           # loss before each step (steps,)
    trajectory: dict             # label -> values before each step, then the final (steps+1,)
    final_loss: float            # loss at the learned values
    steps: int
    seconds: float = 0.0
    history: list = field(default_factory=list)
    source: Optional[tuple] = None   # (text, filename) of the model, when known
    paths: dict = field(default_factory=dict)   # label -> Faust UI path

    def export(self, path: str) -> None:
        """Write the model's source with each learned slider's default replaced by its
        learned value (see `faustdiff.learn.export`)."""
        from .export import write_export
        if self.source is None:
            raise FaustError("export: the model's source is unknown (train from a .dsp path "
                             "or source text, not a compiled program)")
        text, filename = self.source
        write_export(path, text, filename, self.params)

    def write_preset(self, path: str) -> None:
        """Write {"values": {label: value}, "paths": {label: UI path}, "source": file}."""
        from .export import write_preset
        write_preset(path, self.params, self.paths, self.source[1] if self.source else "")

    def plot(self, path: str, title: str = "") -> None:
        """Save a figure: the loss (log scale) and each parameter's trajectory."""
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise FaustError("plotting needs matplotlib: pip install 'faustdiff[plot]' "
                             "(or pip install matplotlib)") from None
        k = len(self.trajectory)
        fig, axes = plt.subplots(1 + k, 1, figsize=(7, 2.2 * (1 + k)), sharex=True)
        axes = np.atleast_1d(axes)
        steps = np.arange(len(self.losses))
        ax = axes[0]
        ax.plot(steps, np.maximum(self.losses, 1e-300))
        ax.set_yscale("log")
        ax.set_ylabel("loss")
        if title:
            ax.set_title(title)
        for ax, (label, values) in zip(axes[1:], self.trajectory.items()):
            ax.plot(np.arange(len(values)), values)
            ax.set_ylabel(label)
        axes[-1].set_xlabel("step")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


# ---------------------------------------------------------------- the run's log

class RunLog:
    """The JSON Lines log of a run (`fit(..., log_path=PATH)`, `faustdiff train --log`), for
    plotting: one JSON object a line,

        {"type": "step", "step": k, "loss": L, "params": {label: value}, "elapsed": s}
        {"type": "epoch", "epoch": e, "steps": k, "train_loss": L, "val_loss": L or null,
         "seconds": s, "examples_per_s": r, "elapsed": s}                 (datasets)
        {"type": "end", "steps": k, "final_loss": L, "params": {...}, "elapsed": s}

    A step record holds the loss and the values *before* step k (the k-th entries of
    `TrainResult.losses` and `trajectory`), `epoch` too when training over a dataset;
    `elapsed` is the seconds since the run started. The file is written whole or not at all:
    the lines go (flushed one by one) to a temporary file beside PATH, renamed to PATH when
    the run ends; a run that fails or is interrupted leaves PATH as it was. A path that
    cannot be written (no such folder, a folder, no permission) is a FaustError naming it
    when the log is opened, before the first step. `RunLog(None)` records nothing."""

    def __init__(self, path):
        self.path = None if path is None else str(path)
        self._ctx = self._file = None

    def __enter__(self) -> "RunLog":
        if self.path is not None:
            from ..audio_io import atomic_write
            check_log_path(self.path)
            self._ctx = atomic_write(self.path, "w", encoding="utf-8")
            self._file = self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            self._file.flush()
            return bool(ctx.__exit__(*exc))
        return False

    def write(self, record: dict) -> None:
        if self._file is not None:
            import json
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def step(self, step, loss, labels, theta, start, **more) -> None:
        self.write({"type": "step", "step": int(step), **more, "loss": float(loss),
                    "params": dict(zip(labels, map(float, theta))),
                    "elapsed": time.perf_counter() - start})

    def epoch(self, record: dict, start) -> None:
        self.write({"type": "epoch", **record, "elapsed": time.perf_counter() - start})

    def end(self, steps, final_loss, labels, theta, start) -> None:
        self.write({"type": "end", "steps": int(steps), "final_loss": float(final_loss),
                    "params": dict(zip(labels, map(float, theta))),
                    "elapsed": time.perf_counter() - start})


def check_log_path(path) -> None:
    """A FaustError naming `path` when a log cannot be written there (checked before a run
    starts; the write itself may still fail later, e.g. a full disk)."""
    path = str(path)
    folder = os.path.dirname(path) or "."
    if os.path.isdir(path):
        raise FaustError(f"cannot write the log '{path}': it is a folder")
    if not os.path.isdir(folder):
        raise FaustError(f"cannot write the log '{path}': no such folder '{folder}'")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FaustError(f"cannot write the log '{path}': the folder '{folder}' is not "
                         "writable")


# ---------------------------------------------------------------- batch execution

MODES = ("auto", "vectorized", "prange", "threads", "serial")


def batch_runner(prog, batch: int):
    """A `runtime.BatchProgram` of B instances of a compiled program (kept on it, one per
    batch size: its buffers are reused from step to step), or None (an interpreter, or a
    module without a batch kernel)."""
    if not getattr(prog, "BATCH_KERNELS", ()):
        return None
    runners = prog.__dict__.setdefault("_batch_runners", {})
    bp = runners.get(batch)
    if bp is None:
        bp = runners[batch] = prog.batch(batch, _threads())
    return bp


def stack_inputs(inputs, nin: int, n: int):
    """The examples' inputs ((nin, >=n) arrays or None) as one (B, nin, n) array (None:
    silence): the array they are the rows of when they are (`fit` on a (B, nin, n) array:
    no copy every step), else a new one."""
    if not nin or all(x is None for x in inputs):
        return None
    whole = _rows_of(inputs, nin, n)
    if whole is not None:
        return whole
    return np.stack([np.zeros((nin, n)) if x is None else
                     np.asarray(x, dtype=np.float64).reshape(nin, -1)[:, :n] for x in inputs])


def _rows_of(inputs, nin: int, n: int):
    """The C-contiguous float64 (B, nin, n) array whose rows b are inputs[b] (views, as
    `_batch` cuts a (B, nin, n) array), or None."""
    base = getattr(inputs[0], "base", None)
    if not isinstance(base, np.ndarray) or base.dtype != np.float64 \
            or base.shape != (len(inputs), nin, n) or not base.flags.c_contiguous:
        return None
    at = base.__array_interface__["data"][0]
    for b, x in enumerate(inputs):
        if not isinstance(x, np.ndarray) or x.base is not base or x.shape != (nin, n) \
                or x.__array_interface__["data"][0] != at + b * base.strides[0]:
            return None
    return base


def _vectorized(programs, inputs, n: int):
    """run_batch's "vectorized" mode: the examples' programs as the lanes of one batch
    kernel call (their state and widgets gathered, run, given back), or None when the
    programs have no batch kernel. Outputs (B, outputs + partials, n)."""
    inner = [getattr(p, "program", p) for p in programs]
    bp = batch_runner(inner[0], len(inner))
    if bp is None:
        return None
    bp.gather(inner)
    outs = bp.compute(stack_inputs(inputs, inner[0].num_inputs, n), n)
    bp.scatter(inner)
    return outs


def _drivers(prog):
    """(module with the compiled batch drivers, kernel state, widget values) of a
    Numba-compiled GradProgram, or None (interpreter)."""
    inner = getattr(prog, "program", prog)
    mod = sys.modules.get(type(inner).__module__)
    st = getattr(inner, "_state", None)
    if mod is None or st is None or not hasattr(mod, "_batch_seq"):
        return None
    return mod, st, inner._ctl


def _threads() -> int:
    try:
        import numba
        return int(numba.get_num_threads())
    except Exception:   # noqa: BLE001
        return os.cpu_count() or 1


def run_batch(programs: Sequence, inputs: Sequence, n: int, mode: str = "auto"):
    """Run every GradProgram of `programs` (reset, parameters set) on its inputs for n
    samples; returns a list of (outputs, partials) and leaves each program's state as its
    own `compute` would.

    mode -- "prange": one compiled call, examples spread over Numba's threads;
            "threads": a thread pool, each thread runs a share of the examples in one
            compiled call (the drivers release the GIL); "serial": one compiled call, in
            turn; "auto": threads for a batch when there are several cores, else serial.
            The interpreter always runs serially."""
    if mode not in MODES:
        raise ValueError(f"parallel: one of {', '.join(MODES)}, not {mode!r}")
    parts = [_drivers(p) for p in programs]
    if any(p is None for p in parts):
        return [p.compute_with_grad(x, n) for p, x in zip(programs, inputs)]
    B = len(programs)
    # ("auto": measured, benchmarks/bench_train.py; see pick_mode)
    mode = run_mode(mode, B, bool(getattr(parts[0][0].FaustProgram, "BATCH_KERNELS", ())))
    if mode == "vectorized":
        outs = _vectorized(programs, inputs, n)
        if outs is not None:
            return _split_partials(programs, outs, n)
        mode = "threads" if B > 1 and _threads() > 1 else "serial"
    p0 = programs[0].program
    nin, nall, nbar = p0.num_inputs, p0.num_outputs, len(p0.bargraph_labels)
    ins = np.zeros((B, nin, n))
    if nin:
        for b, x in enumerate(inputs):
            ins[b] = np.asarray(x, dtype=np.float64).reshape(nin, -1)[:, :n]
    for _, st, _ in parts:
        if st.hi.shape[0] or st.hf.shape[0]:
            st.reserve(n)
    outs = np.empty((B, nall, n))
    bars = np.empty((B, nbar, n))
    ctl = np.stack([c for _, _, c in parts])
    names = ("iv", "fv", "di", "df", "hi", "hf")
    arrays = [np.stack([getattr(st, a) for _, st, _ in parts]) for a in names]
    mod = parts[0][0]
    try:
        if mode == "prange":
            mod._batch_par(n, ins, outs, bars, ctl, *arrays)
        elif mode == "threads" and B > 1:
            from concurrent.futures import ThreadPoolExecutor
            k = min(B, _threads())
            cuts = np.linspace(0, B, k + 1).astype(int)

            def share(j):
                sl = slice(cuts[j], cuts[j + 1])
                mod._batch_seq(n, ins[sl], outs[sl], bars[sl], ctl[sl],
                               *[a[sl] for a in arrays])
            with ThreadPoolExecutor(max_workers=k) as ex:
                list(ex.map(share, range(k)))
        else:
            mod._batch_seq(n, ins, outs, bars, ctl, *arrays)
    except ZeroDivisionError:
        from ..backend.runtime import _IREM_MESSAGE
        raise FaustError(_IREM_MESSAGE) from None
    for b, (p, (_, st, _)) in enumerate(zip(programs, parts)):
        for a, arr in zip(names, arrays):
            getattr(st, a)[...] = arr[b]
    return _split_partials(programs, outs, n)


def _split_partials(programs, outs, n: int) -> list:
    """(outputs, partials) of every example from the (B, outputs + partials, n) array."""
    results = []
    for b, p in enumerate(programs):
        k = p.num_outputs
        y = outs[b, :k]
        d = outs[b, k:].reshape(p.num_wrt, k, n)
        p.partials = d
        results.append((y, d))
    return results


def run_mode(mode: str, batch: int, vectorizable: bool) -> str:
    """The mode `run_batch` runs a batch in ("auto" resolved by `pick_mode`)."""
    return pick_mode(batch, vectorizable) if mode == "auto" else mode


def pick_mode(batch: int, vectorizable: bool) -> str:
    """parallel="auto": the batch kernel for a batch of two or more when the program has
    one (measured: benchmarks/bench_train.py), else threads on several cores."""
    if batch > 1 and vectorizable:
        return "vectorized"
    return "threads" if batch > 1 and _threads() > 1 else "serial"


# ---------------------------------------------------------------- the trainer

class Trainer:
    """Learn the parameters `params` of a Faust program (see the module docstring).

    model     -- a .dsp path, Faust source text, or a `GradProgram` (compiled with the wrt
                 you want to learn)
    params    -- labels of the sliders/nentries to learn, or "auto" (the declared ones:
                 `[diff:on]` / `df.param`); ignored for a GradProgram (its `wrt`)
    loss      -- a name (`l1`, `l2`/`mse`, `esr`, `huber`, `mrstft`) or a `losses.Loss`
    optimizer -- a name (`sgd`, `momentum`, `rmsprop`, `adam`) or an `optim.Optimizer`
    lr        -- learning rate (in normalised units when normalize=True)
    init      -- {label: starting value} (default: each widget's initial value)
    scales    -- {label: "lin" | "log"} (default: the widget's `[scale:log]` metadata)
    ranges    -- {label: (lo, hi)} (default: the widget's range)
    parallel  -- how a batch runs: "auto" (default), "vectorized", "prange", "threads" or
                 "serial" (see `run_batch`). "vectorized": the examples as the lanes of
                 one call of the generated batch kernels (forward mode: outputs and
                 partials; reverse mode: the forward kernel with its tapes, then the
                 backward kernel; the lane groups of 4 examples shared out to Numba's
                 threads, `numba.get_num_threads()`), falling back to threads where there are none (the
                 interpreter) or, in reverse mode, when the batch's tapes exceed
                 TAPE_BUDGET; "auto" picks it for two examples or more in forward
                 mode (in reverse mode it keeps threads: see `_reverse_batches`)
    grad_mode -- "auto" (default: forward for 1-2 parameters, else reverse), "forward" or
                 "reverse" (ignored for a compiled program: its own mode)
    schedule  -- learning-rate schedule over a `fit`: None (constant), "cosine" (lr·½(1 +
                 cos(π·step/steps))), "exp:R" (lr·R^step), or `f(step, steps) -> factor`
    recipe    -- for a compiled `model`: the keyword arguments of
                 `backend.build.compile_program` that built it (text, filename, sample_rate,
                 include, backend, wrt, mode, input_grads), so that Dask workers can compile
                 the same program (`faustdiff.learn.distributed`); a model given as a path
                 or source records its own (`self.recipe`; None when unknown)
    """

    def __init__(self, model, params="auto", loss="l2", optimizer="adam", lr=None,
                 normalize: bool = True, init: Optional[dict] = None,
                 scales: Optional[dict] = None, ranges: Optional[dict] = None,
                 sample_rate: float = 44100, include=(), backend: Optional[str] = None,
                 parallel: str = "auto", schedule=None, grad_mode: str = "auto",
                 recipe: Optional[dict] = None):
        if grad_mode not in GRAD_MODES:
            raise FaustError(f"grad_mode: one of {', '.join(GRAD_MODES)}, not {grad_mode!r}")
        self.source = None
        self.recipe = None if recipe is None else dict(recipe)
        if isinstance(model, (G.GradProgram, R.ReverseProgram)):
            prog = model
        else:
            text_is_path = isinstance(model, os.PathLike) or (
                isinstance(model, str) and "\n" not in model and model.endswith(".dsp"))
            filename = str(model) if text_is_path else "<string>"
            text = read_source(filename) if text_is_path else model
            self.source = (text, filename)
            mode = choose_grad_mode(text, filename, params, grad_mode, sample_rate, include)
            if mode == "reverse":   # training needs dL/dθ only, not dL/dx
                prog = R.compile_source(text, filename, sample_rate, include, params, backend,
                                        input_grads=False)
            else:
                prog = G.compile_source(text, filename, sample_rate, include, params, backend)
            # what compile_program(**recipe) builds: the same program, the same cache entry
            self.recipe = {"text": text, "filename": filename, "sample_rate": sample_rate,
                           "include": tuple(include), "backend": backend, "wrt": params,
                           "mode": mode, "input_grads": mode != "reverse"}
        self.grad_mode = "reverse" if isinstance(prog, R.ReverseProgram) else "forward"
        self.program = prog
        self.labels = list(prog.wrt)
        specs = {s.label: s for s in prog.param_specs}
        for lab, sc in (scales or {}).items():
            self._check(lab)
            specs[lab] = specs[lab].with_(scale=sc)
        for lab, (lo, hi) in (ranges or {}).items():
            self._check(lab)
            specs[lab] = specs[lab].with_(lo=float(lo), hi=float(hi))
        for lab, v in (init or {}).items():
            self._check(lab)
            specs[lab] = specs[lab].with_(init=float(v))
        self.specs = [specs[lab] for lab in self.labels]
        self.normalize = bool(normalize)
        self.loss = L.get(loss)
        self.optimizer = O.get(optimizer, lr)
        self.parallel = parallel
        self.schedule = _schedule(schedule)
        self._pool: list = [prog]
        self._batches: dict = {}   # (start, size) of a lane group -> its ReverseBatch
        self.theta = np.array([np.clip(s.init, s.lo, s.hi) for s in self.specs])

    def _check(self, label):
        if label not in self.labels:
            raise FaustError(f"unknown parameter '{label}'; learning: {', '.join(self.labels)}")

    # ------------------------------------------------------------ coordinates

    def to_coords(self, theta) -> np.ndarray:
        if not self.normalize:
            return np.asarray(theta, dtype=np.float64).copy()
        return np.array([float(s.to_unit(t)) for s, t in zip(self.specs, theta)])

    def from_coords(self, u) -> np.ndarray:
        if not self.normalize:
            return np.array([float(np.clip(v, s.lo, s.hi)) for s, v in zip(self.specs, u)])
        return np.array([float(s.from_unit(v)) for s, v in zip(self.specs, u)])

    def _clip(self, u) -> np.ndarray:
        if self.normalize:
            return np.clip(u, 0.0, 1.0)
        return np.array([np.clip(v, s.lo, s.hi) for s, v in zip(self.specs, u)])

    def _chain(self, u) -> np.ndarray:
        if not self.normalize:
            return np.ones(len(self.specs))
        return np.array([float(s.dp_du(v)) for s, v in zip(self.specs, u)])

    # ------------------------------------------------------------ one evaluation

    def _programs(self, k: int) -> list:
        while len(self._pool) < k:
            self._pool.append(self.program.clone())
        return self._pool[:k]

    def loss_and_grad(self, theta, inputs, target, weights=None, segment=None,
                      outputs: bool = True):
        """(mean loss, dL/dθ in the parameters' own units, outputs of each example) at θ.
        inputs/target: lists of (channels, n) arrays (see `fit` for the accepted forms);
        weights: one per example (the mean is then Σ w_b L_b / Σ w_b).

        segment -- samples: every example is rendered in consecutive segments of that
                   length, the state carried from one to the next (see `_chunked`);
                   examples may then differ in length
        outputs -- False: the third value is None (a chunked evaluation then keeps no
                   output longer than a segment)

        = `combine_terms(example_terms(θ, inputs, target, chunk_length(target, segment)),
        weights)`: the split a Dask executor makes (terms on the workers, their
        combination here), so both give the same numbers."""
        xs = list(inputs)
        if len(xs) == 1 and len(target) > 1:
            xs = xs * len(target)
        w = np.ones(len(target)) if weights is None else np.asarray(weights, dtype=np.float64)
        chunk = chunk_length(target, segment)
        terms, ys = self.example_terms(theta, xs, list(target), chunk, outputs)
        value, g = combine_terms(terms, w, chunk is not None)
        return value, g, ys

    def example_terms(self, theta, xs, ts, chunk: Optional[int] = None,
                      outputs: bool = False) -> tuple:
        """(terms, outputs or None) of every example at θ, each rendered from the reset
        state: a term is (loss, dL/dθ) of the whole example, or with `chunk` (samples) the
        list of (segment length, loss, dL/dθ) of its consecutive segments, state carried
        (`_chunked`). A pure function of θ and the examples (the programs are reset and
        their parameters set first): a Dask task computes the terms of its share of a
        batch, `combine_terms` weighs them."""
        progs = self._programs(len(ts))
        for p in progs:
            for lab, v in zip(self.labels, theta):
                p.set_param(lab, float(v))
            p.reset()
        if chunk is not None:
            return self._chunked(progs, list(xs), list(ts), int(chunk), outputs)
        n = ts[0].shape[1]
        xs = [None if x is None else x[:, :n] for x in xs]
        per = self._evaluate(progs, xs, list(ts), n, outputs)
        return [(v, gk) for v, gk, _ in per], ([y for _, _, y in per] if outputs else None)

    def _evaluate(self, progs, xs, ts, n: int, outputs: bool = True) -> list:
        """(loss, dL/dθ, outputs) of every example: programs[b] (parameters set, its state
        where the previous block left it) renders xs[b] for n samples against ts[b]
        (`outputs` False: the outputs may be None, see `_fused`)."""
        if self.grad_mode == "reverse":
            return self._reverse(progs, xs, ts, n)
        if not outputs:
            fused = self._fused(progs, xs, ts, n)
            if fused is not None:
                return fused
        results = run_batch(progs, xs, n, self.parallel)
        per: list = [None] * len(ts)

        def one(k: int) -> None:
            (y, d), t = results[k], ts[k]
            v, g = self.loss.contract(y, t, d)
            per[k] = (v, g, y)
        # (a loss whose contraction is compiled without the GIL, L2's, on the batch's
        # threads; numpy's, which holds the GIL too often, measured no faster there)
        parallel = getattr(self.loss, "nogil", False) and self.parallel != "serial"
        run_each(one, len(ts), _threads() if parallel else 1)
        return per

    def _fused(self, progs, xs, ts, n: int):
        """_evaluate in forward mode on the batch kernel that sums the L2 loss itself
        (runtime.BatchProgram.l2_sums: no outputs or partials written), when `parallel`
        is "vectorized" (or "auto" picks it), the loss is L2 and the module has that
        kernel; else None. The outputs are None. Each lane sums in the order
        `losses.L2.contract` sums: the same loss and gradient as the other modes, bit for
        bit."""
        inner = [getattr(p, "program", p) for p in progs]
        mod = inner[0]
        if type(self.loss) is not L.L2 or not getattr(mod, "LOSS_KERNELS", ()) or \
                run_mode(self.parallel, len(progs), True) != "vectorized":
            return None
        bp = batch_runner(mod, len(progs))
        k = mod.LOSS_ROWS
        if bp is None or any(t.shape[0] != k for t in ts):
            return None
        bp.gather(inner)
        acc = bp.l2_sums(stack_inputs(xs, mod.num_inputs, n), stack_inputs(ts, k, n), n)
        bp.scatter(inner)
        return [L.l2_from_sums(acc[b, :k], acc[b, k:].reshape(-1, k), k * n) + (None,)
                for b in range(len(progs))]

    def _reverse(self, progs, xs, ts, n) -> list:
        """_evaluate in reverse mode: render, dL/dy, one backward pass per example; the
        examples on threads as `parallel` says (each has its own program; the kernels
        release the GIL), the results in example order."""
        rbs = self._reverse_batches(len(ts), n)
        if rbs is not None:
            return self._reverse_vectorized(rbs, progs, xs, ts, n)
        per: list = [None] * len(ts)

        def one(k: int) -> None:
            p = progs[k]
            y = p.compute(xs[k], n)
            v, dy = self.loss(y, ts[k])
            dp, _ = p.vjp(dy)
            per[k] = (v, dp, y)
        serial = self.parallel == "serial" or not getattr(self.program, "_compiled", False)
        run_each(one, len(ts), 1 if serial else _threads())
        return per

    def _reverse_batches(self, batch: int, n: int):
        """The ReverseBatches of the batch's lane groups (LANES examples each, the last
        group the rest; kept, one per group) when `parallel` is "vectorized" and the program
        has batch kernels, a group's tapes within the budget; else None. ("auto" keeps
        threads in reverse mode: measured on the 30-band equaliser, the batch step is no
        faster, see docs/architecture.md.)"""
        if self.parallel != "vectorized" or not getattr(self.program, "_compiled", False) \
                or not getattr(self.program.forward, "BATCH_KERNELS", ()):
            return None
        W = int(self.program.forward.LANES)
        rbs = []
        for a in range(0, batch, W):   # (one per group: the groups run at the same time)
            key = (a, min(W, batch - a))
            rb = self._batches.get(key)
            if rb is None:
                rb = self._batches[key] = self.program.batch(key[1], 1)
            if not rb.fits(n):
                return None
            rbs.append(rb)
        return rbs

    def _reverse_vectorized(self, rbs, progs, xs, ts, n) -> list:
        """_reverse on the batch kernels, a lane group at a time on each of the threads:
        its examples' programs as the lanes (their state gathered, run, given back), dL/dy
        of each example from its own loss call, then the group's backward passes, which
        read its forward kernel's tapes while they are still in cache (the whole batch's
        at once, 56 MB for the equaliser's 16 examples of 1 s, went out to memory and
        back)."""
        per: list = [None] * len(ts)
        W = int(self.program.forward.LANES)

        def group(j: int) -> None:
            sl = slice(j * W, min(j * W + W, len(ts)))
            rb, members = rbs[j], progs[sl]
            rb.gather(members)
            y = rb.compute(stack_inputs(xs[sl], self.program.num_inputs, n), n)
            values, ct = [], np.empty_like(y)
            for b, t in enumerate(ts[sl]):
                v, ct[b] = self.loss(y[b], t)
                values.append(v)
            dp, _ = rb.vjp(ct)
            rb.scatter(members)
            for b, v in enumerate(values):
                per[sl.start + b] = (v, dp[b], y[b])
        run_each(group, len(rbs), _threads())
        return per

    def _chunked(self, progs, xs, ts, seg: int, outputs: bool):
        """example_terms in segments of `seg` samples (long files in chunks): each example
        is rendered from the reset state in consecutive segments, its program's state
        carried from one to the next, so at most one segment's outputs, partials or tapes
        exist at a time. Every segment's loss is computed on the segment alone (its term:
        length, loss, gradient; `combine_terms` weighs them by w_b · length). Reverse mode
        treats each segment's incoming state as a constant (truncated backpropagation
        through time at segment boundaries); forward mode carries the tangents with the
        state, so its gradient stays that of the whole example. A segment as long as the
        example is the whole-example evaluation."""
        ns = [t.shape[1] for t in ts]
        if any(x is not None and x.shape[1] < n for x, n in zip(xs, ns)):
            raise FaustError("chunked training: an input is shorter than its target")
        ys = [np.empty((t.shape[0], n)) for t, n in zip(ts, ns)] if outputs else None
        terms: list = [[] for _ in ts]
        for a in range(0, max(ns), seg):
            groups: dict = {}   # segment length -> examples (the last segments are shorter)
            for b, n in enumerate(ns):
                if n > a:
                    groups.setdefault(min(seg, n - a), []).append(b)
            for m, members in groups.items():
                sl = slice(a, a + m)
                per = self._evaluate([progs[b] for b in members],
                                     [None if xs[b] is None else xs[b][:, sl] for b in members],
                                     [ts[b][:, sl] for b in members], m)
                for b, (v, gk, y) in zip(members, per):
                    terms[b].append((m, v, gk))
                    if ys is not None:
                        ys[b][:, sl] = y
        return terms, ys

    # ------------------------------------------------------------ training

    def _data(self, inputs, target):
        prog = self.program
        ts, _ = _batch(target, "target", prog.num_outputs)
        if prog.num_inputs == 0:
            xs = [None]
        else:
            if inputs is None:
                raise FaustError(f"the program has {prog.num_inputs} input(s): give inputs")
            xs, _ = _batch(inputs, "inputs", prog.num_inputs)
        if len(xs) not in (1, len(ts)):
            raise FaustError(f"{len(xs)} inputs for {len(ts)} targets")
        n = min(t.shape[1] for t in ts)
        if any(x is not None and x.shape[1] < n for x in xs):
            n = min(n, min(x.shape[1] for x in xs if x is not None))
        ts = [t[:, :n] for t in ts]
        return xs, ts

    def fit(self, inputs, target=None, steps: int = 100, callback: Optional[Callable] = None,
            progress=False, tol: Optional[float] = None, *, epochs: int = 10,
            patience: Optional[int] = None, checkpoint=None, resume: bool = False,
            log: Optional[Callable] = None, log_path=None,
            segment: Optional[float] = None, executor=None) -> TrainResult:
        """Run `steps` optimiser steps from the current values; returns a TrainResult.

        inputs/target: one example (an array (channels, n), (n,) for one channel, or a
        signal file: any audio format libsndfile reads, CSV, NPY), or a batch (a
        (B, channels, n) array or a list); one input with several targets is shared.
        `callback(step, loss, params_dict)` is called after each evaluation; returning True
        stops. `progress`: draw a progress bar on standard error. `tol`: stop once the loss
        is <= tol. `log_path`: a JSON Lines file of the run, one record per step (see
        `RunLog`; not to be confused with `log`, the per-epoch line callback of datasets).
        `segment`: seconds; a longer example is trained in chunks (long files): every step
        renders it in consecutive segments of that length (the last one may be shorter:
        every sample is trained on) from the reset state, the
        program's state carried from segment to segment, the loss and gradient of the
        segments accumulated (weighted by their lengths) into one optimiser step, so the
        memory a step needs is bounded by a segment, not the file. In reverse mode the
        state entering a segment is a constant (truncated backpropagation at segment
        boundaries); forward mode carries its tangents too (the whole-file gradient). See
        `_chunked`.

        `fit(dataset, epochs=..., patience=..., checkpoint=DIR, resume=...)` with a
        `faustdiff.learn.dataset.Dataset` trains over its mini-batches instead (`steps` and
        `tol` are then ignored; `log` receives one line per epoch): see `fit_dataset`;
        `executor=` (datasets only) evaluates the mini-batches elsewhere, e.g.
        `faustdiff.learn.distributed.DaskExecutor(client)` (data-parallel on Dask)."""
        from .dataset import Dataset
        if isinstance(inputs, Dataset):
            if target is not None:
                raise FaustError("fit(dataset): the dataset holds the targets")
            return self.fit_dataset(inputs, epochs=epochs, patience=patience,
                                    checkpoint=checkpoint, resume=resume, callback=callback,
                                    progress=progress, log=log, log_path=log_path,
                                    executor=executor)
        if target is None:
            raise FaustError("fit: give a target (or a Dataset)")
        if executor is not None:
            raise FaustError("fit: executor= runs datasets (fit(dataset), fit_each), not "
                             "examples given as arrays or files")
        xs, ts = self._data(inputs, target)
        seg = None if segment is None else self.segment_samples(segment)
        with RunLog(log_path) as rec:
            return self._fit_steps(xs, ts, steps, callback, progress, tol, rec, seg)

    def segment_samples(self, seconds) -> int:
        """A segment length in seconds as samples at the program's rate (at least 1)."""
        try:
            sec = float(seconds)
        except (TypeError, ValueError):
            sec = float("nan")
        if not (sec > 0 and math.isfinite(sec)):
            raise FaustError(f"segment must be a positive number of seconds, got {seconds}")
        rate = getattr(self.program, "sample_rate", None) or 44100
        return max(1, int(round(sec * float(rate))))

    def _fit_steps(self, xs, ts, steps, callback, progress, tol, rec, seg) -> TrainResult:
        """The loop of `fit` over one batch (in segments of `seg` samples when given), each
        evaluation recorded by `rec`."""
        u = self.to_coords(self.theta)
        losses: list = []
        traj = {lab: [] for lab in self.labels}
        bar = _Progress(steps, self.labels) if progress else None
        start = time.perf_counter()
        done = 0
        lr0 = self.optimizer.lr
        for step in range(steps):
            theta = self.from_coords(u)
            value, g, _ = self.loss_and_grad(theta, xs, ts, segment=seg, outputs=False)
            losses.append(value)
            for lab, v in zip(self.labels, theta):
                traj[lab].append(v)
            rec.step(step, value, self.labels, theta, start)
            if bar:
                bar.update(step + 1, value, theta)
            if callback is not None and callback(step, value, dict(zip(self.labels, theta))):
                break
            if not math.isfinite(value):
                raise FaustError(f"the loss is not finite at step {step} "
                                 f"({dict(zip(self.labels, theta))})")
            if tol is not None and value <= tol:
                break
            gu = g * self._chain(u)
            self.optimizer.lr = lr0 * self.schedule(step, steps)
            u = self._clip(self.optimizer.step(u, gu))
            done = step + 1
        self.optimizer.lr = lr0
        theta = self.from_coords(u)
        self.theta = theta
        final, _, _ = self.loss_and_grad(theta, xs, ts, segment=seg, outputs=False)
        for lab, v in zip(self.labels, theta):
            traj[lab].append(v)
        rec.end(done, final, self.labels, theta, start)
        if bar:
            bar.close(final, theta)
        return TrainResult(dict(zip(self.labels, map(float, theta))), np.array(losses),
                           {k: np.array(v) for k, v in traj.items()}, float(final), done,
                           time.perf_counter() - start, source=self.source,
                           paths=self._paths())

    # ------------------------------------------------------------ datasets

    def _dataset_loss(self, theta, segs, batch: int, segment: Optional[int] = None) -> float:
        """The weighted mean loss over examples, evaluated `batch` at a time (`segment`:
        whole pairs in chunks, state carried: see `Dataset(carry=True)`; each example then
        weighs its weight times its length)."""
        total = wsum = 0.0
        for j in range(0, len(segs), batch):
            part = segs[j:j + batch]
            w = np.array([s[2] for s in part])
            v, _, _ = self.loss_and_grad(theta, [s[0] for s in part], [s[1] for s in part],
                                         w, segment=segment, outputs=False)
            k = _share(part, w, segment)
            total += v * k
            wsum += k
        return total / wsum

    def fit_dataset(self, dataset, epochs: int = 10, patience: Optional[int] = None,
                    checkpoint=None, resume: bool = False, callback: Optional[Callable] = None,
                    progress=False, log=None, log_path=None, executor=None) -> TrainResult:
        """Train over a Dataset: every epoch, one optimiser step per shuffled mini-batch of
        training segments (weighted mean loss of the batch), then the loss over the
        validation segments (when the dataset holds some out) at the new values.

        patience   -- stop once the validation loss has not improved (strictly) for this
                      many epochs; the parameters returned are then those of the best
                      validation epoch (without a validation split, the last ones)
        checkpoint -- a folder: after every epoch `checkpoint.json` there holds the
                      parameters, the optimiser state, epoch and step, the shuffling RNG's
                      state and the history so far (written atomically)
        resume     -- continue from the checkpoint: the run ends with exactly the parameters
                      of an uninterrupted run of the same epochs
        log        -- a function called with one line per epoch (train/validation loss)
        log_path   -- a JSON Lines file: a record per step (with its epoch), one per epoch
                      (train/validation loss, examples/s) and one at the end (`RunLog`);
                      after `resume`, the records of the resumed part only (step numbers
                      continue the checkpoint's)
        executor   -- None: every evaluation in this process; else an object whose
                      `batch_terms(trainer, θ, dataset, batches)` returns, for each batch
                      of (segment ids, chunk length or None), the terms of its examples
                      (`example_terms`, in order): `faustdiff.learn.distributed.
                      DaskExecutor(client)` computes them on Dask workers, a share of
                      each mini-batch per worker. The driver combines them
                      (`combine_terms`) and steps the optimiser, so the run is the same
                      as in one process (see docs/architecture.md)

        The learning-rate schedule runs over epochs × batches steps. Returns a TrainResult
        (`history`: one dict per epoch; `final_loss`: the validation loss at the returned
        parameters, or the training loss without a validation split)."""
        with RunLog(log_path) as rec:
            return self._fit_dataset(dataset, epochs, patience, checkpoint, resume, callback,
                                     progress, log, rec, executor)

    def _batch_results(self, theta, dataset, batches, seg, executor) -> list:
        """(mean loss, mean dL/dθ, share) of every batch of segment ids at θ (`seg`: whole
        pairs in chunks of that length; share: the batch's weight in a mean over batches,
        see `_share`), the examples' terms computed here or by the executor."""
        plans = []
        for ids in batches:
            ex = [dataset.example(i) for i in ids]
            w = np.array([e[2] for e in ex])
            plans.append((ids, ex, w, chunk_length([e[1] for e in ex], seg)))
        if executor is None:
            terms = [self.example_terms(theta, [e[0] for e in ex], [e[1] for e in ex],
                                        chunk)[0] for _, ex, _, chunk in plans]
        else:
            terms = executor.batch_terms(self, theta, dataset,
                                         [(ids, chunk) for ids, _, _, chunk in plans])
        out = []
        for (_, ex, w, chunk), t in zip(plans, terms):
            value, g = combine_terms(t, w, chunk is not None)
            out.append((value, g, _share(ex, w, seg)))
        return out

    def _ids_loss(self, theta, dataset, ids, seg, executor) -> float:
        """`_dataset_loss` over segment ids, the batches evaluated at once (an executor
        spreads them over its workers)."""
        batches = [ids[j:j + dataset.batch] for j in range(0, len(ids), dataset.batch)]
        total = wsum = 0.0
        for value, _, k in self._batch_results(theta, dataset, batches, seg, executor):
            total += value * k
            wsum += k
        return total / wsum

    def _fit_dataset(self, dataset, epochs, patience, checkpoint, resume, callback, progress,
                     log, rec, executor=None) -> TrainResult:
        """The body of `fit_dataset`, every step and epoch recorded by `rec`."""
        prog = self.program
        dataset.require(prog.num_inputs, prog.num_outputs)
        rate = getattr(prog, "sample_rate", None)
        if dataset.sample_rate and rate and int(rate) != int(dataset.sample_rate):
            raise FaustError(f"dataset '{dataset.source}': {dataset.sample_rate} Hz files, the "
                             f"program is compiled at {int(rate)} Hz")
        if int(epochs) < 0:
            raise FaustError(f"epochs must be 0 or more, got {epochs}")
        if patience is not None and (int(patience) < 1 or not dataset.val):
            raise FaustError("patience needs a validation split (val > 0) and a patience of "
                             "1 or more")
        val_ids = dataset.segment_ids(dataset.val)
        seg = dataset.segment if dataset.carry else None   # whole pairs, in chunks
        rng = np.random.default_rng([dataset.seed, 1])
        nb = len(dataset.batch_ids(np.random.default_rng(0)))
        total_steps = int(epochs) * nb
        sign = {"labels": self.labels, "train": [p.name for p in dataset.train],
                "val": [p.name for p in dataset.val], "segment": dataset.segment,
                "batch": dataset.batch, "seed": dataset.seed}
        if dataset.carry:
            sign["carry"] = True
        u = self.to_coords(self.theta)
        state = {"epoch": 0, "step": 0, "losses": [], "traj": [], "history": [],
                 "best": None, "best_u": None, "bad": 0, "stopped": False}
        path = None
        if checkpoint is not None:
            path = os.path.join(str(checkpoint), "checkpoint.json")
        if resume:
            if path is None:
                raise FaustError("resume needs a checkpoint folder")
            if not os.path.exists(path):
                raise FaustError(f"resume: no checkpoint '{path}'")
            import json
            try:
                with open(path, encoding="utf-8") as f:
                    ck = json.load(f)
            except (OSError, ValueError) as e:
                raise FaustError(f"resume: cannot read '{path}': {e}") from None
            if ck.get("signature") != sign:
                raise FaustError(f"resume: '{path}' is a checkpoint of another run (other "
                                 "parameters, pairs, segment, batch or seed)")
            u = np.array(ck["u"], dtype=np.float64)
            self.optimizer.load_state_dict(ck["optimizer"])
            rng.bit_generator.state = ck["rng"]
            state = ck["state"]
        if path is not None:
            try:
                os.makedirs(str(checkpoint), exist_ok=True)
            except OSError as e:
                raise FaustError(f"cannot make the checkpoint folder '{checkpoint}': "
                                 f"{e.strerror or e}") from None
        lr0 = self.optimizer.lr
        bar = _Progress(total_steps, self.labels) if progress else None
        start = time.perf_counter()
        losses, traj = state["losses"], state["traj"]
        try:
            for epoch in range(state["epoch"], int(epochs)):
                if state["stopped"]:
                    break
                t0 = time.perf_counter()
                tl = tw = 0.0
                seen = 0
                for ids in dataset.batch_ids(rng):
                    seen += len(ids)
                    step = state["step"]
                    theta = self.from_coords(u)
                    (value, g, share), = self._batch_results(theta, dataset, [ids], seg,
                                                             executor)
                    losses.append(value)
                    traj.append([float(v) for v in theta])
                    rec.step(step, value, self.labels, theta, start, epoch=epoch + 1)
                    if bar:
                        bar.update(min(step + 1, bar.total), value, theta)
                    if not math.isfinite(value):
                        raise FaustError(f"the loss is not finite at step {step} "
                                         f"({dict(zip(self.labels, theta))})")
                    if callback is not None and callback(step, value,
                                                         dict(zip(self.labels, theta))):
                        state["stopped"] = True
                        break
                    tl += value * share
                    tw += share
                    self.optimizer.lr = lr0 * self.schedule(step, total_steps)
                    u = self._clip(self.optimizer.step(u, g * self._chain(u)))
                    self.optimizer.lr = lr0
                    state["step"] = step + 1
                theta = self.from_coords(u)
                secs = time.perf_counter() - t0
                hist = {"epoch": epoch + 1, "steps": state["step"],
                        "train_loss": tl / tw if tw else float("nan"), "val_loss": None,
                        "seconds": secs, "examples_per_s": seen / secs if secs > 0 else 0.0}
                if val_ids:
                    vl = self._ids_loss(theta, dataset, val_ids, seg, executor)
                    hist["val_loss"] = vl
                    if state["best"] is None or vl < state["best"]:
                        state["best"], state["best_u"], state["bad"] = vl, list(map(float, u)), 0
                    else:
                        state["bad"] += 1
                        if patience is not None and state["bad"] >= int(patience):
                            state["stopped"] = True
                state["history"].append(hist)
                state["epoch"] = epoch + 1
                rec.epoch(hist, start)
                if log is not None:
                    shown = hist["val_loss"]
                    vtxt = "" if shown is None else f", validation {shown:.6g}"
                    log(f"epoch {epoch + 1}/{epochs}: train {hist['train_loss']:.6g}{vtxt} "
                        f"({hist['seconds']:.2f} s, {hist['examples_per_s']:.0f} "
                        f"{dataset.unit}/s)")
                if path is not None:
                    self._write_checkpoint(path, sign, u, rng, state)
        finally:
            self.optimizer.lr = lr0
        if state["best_u"] is not None and patience is not None:
            u = np.array(state["best_u"])
        theta = self.from_coords(u)
        self.theta = theta
        final = self._ids_loss(theta, dataset, val_ids or dataset.segment_ids(dataset.train),
                               seg, executor)
        rec.end(state["step"], final, self.labels, theta, start)
        if bar:
            bar.close(final, theta)
        tr = np.array(traj + [list(map(float, theta))]).reshape(-1, len(self.labels))
        res = TrainResult(dict(zip(self.labels, map(float, theta))), np.array(losses),
                          {lab: tr[:, i] for i, lab in enumerate(self.labels)}, float(final),
                          state["step"], time.perf_counter() - start, list(state["history"]),
                          source=self.source, paths=self._paths())
        return res

    def _write_checkpoint(self, path, sign, u, rng, state) -> None:
        import json
        from ..audio_io import atomic_write
        data = {"version": 1, "signature": sign, "epoch": state["epoch"],
                "step": state["step"], "params": dict(zip(self.labels,
                                                          map(float, self.from_coords(u)))),
                "u": [float(v) for v in u], "optimizer": self.optimizer.state_dict(),
                "rng": rng.bit_generator.state, "state": state}
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(data, f)

    def fit_each(self, dataset, steps: int = 100, tol: Optional[float] = None,
                 progress=False, log=None, executor=None,
                 segment: Optional[float] = None) -> list:
        """Fit the parameters separately for every pair of the dataset (the whole pair; the
        validation split is ignored), each from the same starting values with a fresh
        optimiser. Returns one dict per pair, in the dataset's order: `file`, each label,
        `loss` (at the learned values), `steps`. `segment` (seconds): each pair's steps
        run on its consecutive segments with the state carried, as `fit(..., segment=)`
        (a long recording in bounded memory). `executor`: an object whose
        `fit_pairs(trainer, dataset, θ0, steps, tol, segment)` yields those rows in order,
        each computed by `fit_pair` elsewhere (`faustdiff.learn.distributed.DaskExecutor`:
        one Dask task per pair)."""
        if segment is not None:
            self.segment_samples(segment)   # (a bad value fails before any fit)
        dataset.require(self.program.num_inputs, self.program.num_outputs)
        theta0 = self.theta.copy()
        if executor is None:
            rows = (self.fit_pair(p.x, p.t, p.name, theta0, steps, tol, progress, segment)
                    for p in dataset.pairs)
        else:
            rows = executor.fit_pairs(self, dataset, theta0, steps, tol, segment)
        out = []
        try:
            for row in rows:
                out.append(row)
                if log is not None:
                    vals = " ".join(f"{k}={_fmt(row[k])}" for k in self.labels)
                    log(f"{row['file']}: loss {row['loss']:.6g}, {vals}")
        finally:
            self.theta = theta0
            if hasattr(rows, "close"):   # an executor's generator ends its tasks now
                rows.close()
        return out

    def fit_pair(self, x, t, name: str, theta0, steps: int, tol=None, progress=False,
                 segment: Optional[float] = None) -> dict:
        """One row of `fit_each`: `fit(x, t, steps, tol, segment=)` from θ0 with the
        optimiser reset (a pure function of its arguments and the trainer's
        configuration)."""
        self.theta = np.array(theta0, dtype=np.float64)
        self.optimizer.reset()
        r = self.fit(x, t, steps=steps, tol=tol, progress=progress, segment=segment)
        return {"file": name, **r.params, "loss": r.final_loss, "steps": r.steps}

    def _paths(self) -> dict:
        """label -> Faust UI path of the learned widgets (the first, for a shared label)."""
        p = self.program
        for _ in range(4):
            if hasattr(p, "_paths"):
                break
            p = getattr(p, "_inner", None) or getattr(p, "program", None)
        if p is None or not hasattr(p, "_paths"):
            return {}
        out: dict = {}
        for lab, path in zip(p._labels, p._paths):
            if lab in self.labels:
                out.setdefault(lab, path)
        return out


def _share(examples, w, segment) -> float:
    """The weight of a batch's mean loss in a mean over batches: Σ w_b, or in chunks
    (`segment` given) Σ w_b · length_b, as `_chunked` weighs the samples."""
    if segment is None:
        return float(np.sum(w))
    return float(np.dot(w, [e[1].shape[1] for e in examples]))


def chunk_length(targets, segment) -> Optional[int]:
    """The segment length (samples) a batch is evaluated in, or None for whole examples:
    chunks when `segment` is given and an example is longer than it or the lengths differ
    (decided for the whole batch, before it is shared out)."""
    if segment is None:
        return None
    lengths = [t.shape[1] for t in targets]
    if any(n > int(segment) for n in lengths) or len(set(lengths)) > 1:
        return int(segment)
    return None


def combine_terms(terms, w, chunked: bool) -> tuple:
    """(mean loss, mean dL/dθ) of a batch from its examples' terms (`example_terms`, in
    example order) and weights: Σ w_b L_b / Σ w_b, or chunked Σ_b Σ_k w_b m_bk L_bk /
    Σ_b Σ_k w_b m_bk. Summed in example order, so the terms computed anywhere (threads,
    Dask workers) give the same floating-point result."""
    if not chunked:
        total, g = 0.0, 0.0
        for wk, (v, gk) in zip(w, terms):
            total += wk * v
            g = g + wk * gk
        k = float(np.sum(w))
        return total / k, g / k
    total = wsum = 0.0
    g = 0.0
    for wb, segs in zip(w, terms):
        for m, v, gk in segs:
            total += wb * m * v
            g = g + wb * m * gk
            wsum += wb * m
    return total / wsum, g / wsum


GRAD_MODES = ("auto", "forward", "reverse")
# Measured (benchmarks/bench_grad.py): forward mode is as fast or faster up to two
# parameters, reverse mode faster from a few parameters on.
FORWARD_UP_TO = 2


def choose_grad_mode(text: str, filename: str, params, grad_mode: str = "auto",
                     sample_rate: float = 44100, include=()) -> str:
    """"forward" or "reverse" for learning `params` of a program (see Trainer)."""
    if grad_mode != "auto":
        return grad_mode
    if isinstance(params, (list, tuple)) or (isinstance(params, str) and params != "auto"
                                             and params.strip().lower() != "auto"):
        count = len(params if isinstance(params, (list, tuple)) else params.split(","))
    else:
        count = len(parameter_labels(text, filename, sample_rate, include, params))
    return "forward" if count <= FORWARD_UP_TO else "reverse"


def _schedule(spec) -> Callable:
    """A learning-rate factor f(step, steps) from a schedule spec (see Trainer)."""
    if spec is None or spec == "constant":
        return lambda step, steps: 1.0
    if callable(spec):
        return spec
    if spec == "cosine":
        return lambda step, steps: 0.5 * (1.0 + math.cos(math.pi * step / max(1, steps)))
    if isinstance(spec, str) and spec.startswith("exp:"):
        r = float(spec[4:])
        return lambda step, steps: r ** step
    raise FaustError(f"unknown schedule {spec!r} (constant, cosine, exp:R or a function)")


def fit(model, inputs, target, params="auto", loss="l2", optimizer="adam", lr=None,
        steps: int = 100, **kw) -> TrainResult:
    """`Trainer(model, params, loss, optimizer, lr, **kw).fit(inputs, target, steps)`;
    keyword arguments of `fit` (callback, progress, tol) are passed on too."""
    fit_kw = {k: kw.pop(k) for k in ("callback", "progress", "tol", "log_path", "segment")
              if k in kw}
    return Trainer(model, params, loss, optimizer, lr, **kw).fit(inputs, target, steps,
                                                                   **fit_kw)


def render(model, inputs=None, n: Optional[int] = None, params: Optional[dict] = None,
           sample_rate: float = 44100, include=()) -> np.ndarray:
    """Outputs of a program (path, source or program object) with some parameters set:
    handy to make targets with hidden values."""
    if isinstance(model, str) and "\n" not in model and model.endswith(".dsp"):
        prog = compile_program(read_source(model), model, sample_rate, include)
    elif isinstance(model, str):
        prog = compile_program(model, "<string>", sample_rate, include)
    else:
        prog = model
    for k, v in (params or {}).items():
        prog.set_param(k, v)
    prog.reset()
    return prog.compute(inputs, n)


# ---------------------------------------------------------------- progress bar

class _Progress:
    """Training progress on standard error: on a terminal, a tqdm bar (rate, ETA, the
    current loss and values; our own one-line bar where tqdm is not installed); elsewhere
    (logs, pipes), a line at the first and last steps and every 2 s."""

    def __init__(self, total: int, labels, stream=None, width: int = 24):
        self.total, self.labels, self.width = max(1, total), labels, width
        self.stream = stream or sys.stderr
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.last = 0.0
        self.start = time.perf_counter()
        self.bar = None
        if self.tty:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=self.total, file=self.stream, unit="step",
                                dynamic_ncols=True, leave=True)
            except ImportError:
                pass

    def _line(self, step, loss, theta) -> str:
        frac = step / self.total
        full = int(frac * self.width)
        barstr = "=" * full + (">" if full < self.width else "") + " " * (self.width - full - 1)
        vals = " ".join(f"{lab}={_fmt(v)}" for lab, v in zip(self.labels, theta))
        rate = step / max(1e-9, time.perf_counter() - self.start)
        eta = (self.total - step) / rate if rate > 0 else 0.0
        return (f"step {step:>{len(str(self.total))}}/{self.total} [{barstr[:self.width]}] "
                f"loss {loss:.4g} {vals} ({rate:.1f} steps/s, ETA {eta:.0f} s)")

    def update(self, step, loss, theta) -> None:
        now = time.perf_counter()
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            if now - self.last >= 0.1 or step == self.total:
                post = {"loss": f"{loss:.4g}"}
                post.update((lab, _fmt(v)) for lab, v in zip(self.labels, theta))
                self.bar.set_postfix(post, refresh=True)
                self.last = now
            return
        if self.tty:
            if now - self.last >= 0.05 or step == self.total:
                self.stream.write("\r\x1b[K" + self._line(step, loss, theta))
                self.stream.flush()
                self.last = now
        elif step == 1 or step == self.total or now - self.last >= 2.0:
            self.stream.write(self._line(step, loss, theta) + "\n")
            self.stream.flush()
            self.last = now

    def close(self, loss, theta) -> None:
        if self.bar is not None:
            self.bar.close()
            return
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


def _fmt(v: float) -> str:
    return f"{v:.6g}"
