"""What a generated module needs at run time: the `CompiledProgram` base class.

A module written by `faustdiff.backend.codegen` defines `FaustProgram(CompiledProgram)` with its
metadata (inputs, outputs, widgets, bargraph labels, state sizes) and its Numba kernels;
this class turns them into the Program API (the same contract as `faustdiff.backend.program.Program`:
`num_inputs`, `num_outputs`, `sample_rate`, `params`, `set_param`, `reset`, `compute`,
`bargraph_labels`, `bargraphs`), plus `render(n, block)`, which runs a whole render in
blocks inside compiled code (identical results to one `compute` per block).

Kept light on purpose (numpy only; no parser, no signals): it is imported on every run of a
cached program.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Optional

import numpy as np

from ..errors import FaustError
from .heap import keep_heap_pages

keep_heap_pages()   # (see heap.py: audio-sized arrays without a page fault per step)

FORMAT = 8   # layout version of generated modules (part of the cache key)
_IREM_MESSAGE = "integer remainder by zero at run time (`%` of ints)"


def _strip_metadata(label: str) -> str:
    import re
    return re.sub(r"\s*\[[^\]]*\]\s*", " ", label).strip() if "[" in label else label



def widget_values(labels, paths, values) -> dict:
    """`params` of a program: label -> value (a label shared by several widgets: their full
    paths)."""
    return {label if labels.count(label) == 1 else path: value
            for label, path, value in zip(labels, paths, values)}


def widget_hits(labels, paths, label: str) -> list:
    """Indexes of the widgets `set_param(label)` sets: the one with that full path, else
    every widget with that label (metadata ignored); an unknown one is a FaustError."""
    hits = [j for j, p in enumerate(paths) if p == label]
    if not hits:
        hits = [j for j, lab in enumerate(labels)
                if lab == label or lab == _strip_metadata(label)]
    if not hits:
        known = ", ".join(sorted(set(labels) | set(paths))) or "(none)"
        raise FaustError(f"unknown parameter '{label}'; known parameters: {known}")
    return hits


def remembered_hits(prog, label: str) -> list:
    """widget_hits of prog's widgets (`_labels`, `_paths`, fixed), remembered per label:
    set_param in a training loop resolved the label anew each call (30 us for 30 sliders)."""
    memo = prog.__dict__.setdefault("_hit_memo", {})
    hits = memo.get(label)
    if hits is None:
        hits = memo[label] = widget_hits(prog._labels, prog._paths, label)
    return hits


def group_traces(labels, traces) -> dict:
    """label -> per-sample trace; a label shared by several bargraphs maps to the list of
    their traces, in order."""
    out: dict = {}
    for label, trace in zip(labels, traces):
        if label in out:
            prev = out[label]
            out[label] = (prev if isinstance(prev, list) else [prev]) + [trace]
        else:
            out[label] = trace
    return out


def check_inputs(inputs, n, num_inputs: int):
    """`compute(inputs, n)`'s argument rules, shared by every backend: None means silence;
    a 1-D array is the single input; n defaults to the inputs' length. Returns a C-contiguous
    float64 (num_inputs, >= n) array and n."""
    if inputs is None:
        if n is None:
            raise ValueError("compute: give inputs or n")
        return np.zeros((num_inputs, n)), n
    inputs = np.asarray(inputs, dtype=np.float64)
    if inputs.ndim == 1 and num_inputs == 1:
        inputs = inputs[None, :]
    if n is None:
        n = inputs.shape[1] if inputs.ndim == 2 and inputs.shape[0] else 0
        if num_inputs == 0:
            raise ValueError("compute: a program without inputs needs n")
    if inputs.shape[0] != num_inputs or (num_inputs and inputs.shape[1] < n):
        raise ValueError(f"compute: inputs must have shape ({num_inputs}, {n}), "
                         f"got {inputs.shape}")
    if inputs.ndim != 2:
        inputs = inputs.reshape(num_inputs, -1)
    if not inputs.flags.c_contiguous:
        inputs = np.ascontiguousarray(inputs)
    return inputs, n

class KernelState:
    """The state arrays of one program instance (see codegen: iv, fv, di, df, hi, hf)."""
    __slots__ = ("iv", "fv", "di", "df", "hi", "hf")

    def __init__(self, sizes):
        niv, nfv, ndi, ndf, nhi, nhf = sizes
        self.iv = np.zeros(niv, np.int64)
        self.fv = np.zeros(nfv, np.float64)
        self.di = np.zeros(ndi, np.int32)
        self.df = np.zeros(ndf, np.float64)
        self.hi = np.zeros((nhi, 0), np.int32)
        self.hf = np.zeros((nhf, 0), np.float64)

    def clear(self) -> None:
        for a in (self.iv, self.fv, self.di, self.df):
            if a.size:
                a.fill(0)
        if self.hi.shape[1]:   # (a fresh empty history costs as much as the fills)
            self.hi = np.zeros((self.hi.shape[0], 0), np.int32)
        if self.hf.shape[1]:
            self.hf = np.zeros((self.hf.shape[0], 0), np.float64)

    def reserve(self, n: int) -> None:
        """Whole-history delay lines (rows of hi/hf, indexed by t) get room for n more."""
        need = int(self.iv[0]) + n
        for name in ("hi", "hf"):
            h = getattr(self, name)
            if h.shape[0] and h.shape[1] < need:
                grown = np.zeros((h.shape[0], max(need, 2 * h.shape[1], 1024)), h.dtype)
                grown[:, :h.shape[1]] = h
                setattr(self, name, grown)


class CompiledProgram:
    """A program compiled to Numba kernels (subclassed by each generated module)."""
    NAME = ""
    NUM_INPUTS = 0
    NUM_OUTPUTS = 0
    SAMPLE_RATE = 44100
    CONTROLS: tuple = ()         # (label without metadata, full path, initial value)
    BARGRAPH_LABELS: tuple = ()
    KERNELS: tuple = ()          # per context: _kC(block, s0, s1, ins, outs, bars, ctl, ...)
    BATCH_KERNELS: tuple = ()    # (_v0(block, s0, s1, ins, outs, bars, ctl, ivs, ...),) or ()
    LANES = 8                    # instances per lane group of the batch kernel
    LOSS_KERNELS = ()            # the batch kernel summing an L2 loss (codegen, loss=True)
    LOSS_ROWS = 0                # ... of this many outputs (their partials follow)
    STATES: tuple = ()           # per context: (iv, fv, di, df, hi rows, hf rows) sizes
    TABLES: tuple = ()           # per context: ((offset, size, type, init context), ...)
    FINALS: tuple = ()           # ('iv'|'fv', slot) of each kept recursion (`finals`)
    REVERSE_IO = False           # sample i of a run reads/writes sample n-1-i of the arrays
    IN_OFFSET = 0                # columns before sample 0 of the inputs' rows
    OUT_OFFSET = 0               # ... and of the outputs' rows

    def __init__(self):
        self.name = self.NAME
        self.num_inputs = self.NUM_INPUTS
        self.num_outputs = self.NUM_OUTPUTS
        self.sample_rate = self.SAMPLE_RATE
        self.bargraph_labels = list(self.BARGRAPH_LABELS)
        self._labels = [c[0] for c in self.CONTROLS]
        self._paths = [c[1] for c in self.CONTROLS]
        self._ctl = np.array([c[2] for c in self.CONTROLS], dtype=np.float64)
        self._ctl0 = self._ctl.copy()
        self._state = KernelState(self.STATES[0])
        self._none = np.zeros((0, 0))
        self._nbars = len(self.bargraph_labels)
        self._history = bool(self.STATES[0][4] or self.STATES[0][5])
        self._silence = None
        self._finals_fv = np.array([j for _, j in self.FINALS], dtype=np.int64) \
            if all(kind == "fv" for kind, _ in self.FINALS) else None
        self.bargraphs: dict = {}
        self.bargraph_traces: list = []   # one per bargraph, in bargraph_labels' order
        self.reset()

    # ------------------------------------------------------------ parameters

    @property
    def params(self) -> dict:
        """label -> current value (a label shared by several widgets: their full paths)."""
        return widget_values(self._labels, self._paths, self._ctl.tolist())

    def set_param(self, label: str, value: float) -> None:
        """Set a widget by full path, or by label (every widget with that label)."""
        for j in remembered_hits(self, label):
            self._ctl[j] = float(value)

    def set_control(self, index: int, value: float) -> None:
        self._ctl[index] = float(value)

    def batch(self, batch: int, threads: int = 1) -> "BatchProgram":
        """B instances of this program run together by its batch kernel (`BatchProgram`):
        each with its own widgets (this program's values to start with) and state."""
        return BatchProgram(self, batch, threads)

    def finals(self) -> np.ndarray:
        """The current values of the kept recursions (their state after the last sample)."""
        st = self._state
        if self._finals_fv is not None:   # all real (reverse mode's): one gather
            return st.fv[self._finals_fv]
        return np.array([float((st.iv if kind == "iv" else st.fv)[j]) for kind, j in self.FINALS])

    # ------------------------------------------------------------ running

    def reset(self) -> None:
        """Back to the state right after init (delays, recursions zero; tables refilled
        with the widgets' current values)."""
        st = self._state
        st.clear()
        self._fill_tables(0, self._ctl, st.di, st.df)

    @property
    def kernel(self):
        return self.KERNELS[0]

    def _fill_tables(self, c: int, ctl, di, df) -> None:
        """Fill context c's tables, each with the first `size` samples of its init signal
        run in its own context from t=0 (fresh state). Tables of the program see the
        widgets' current values; tables inside table init signals their defaults (as the
        interpreter does)."""
        for offset, size, type_, sub in self.TABLES[c]:
            values = self._run_context(sub, size, ctl if c == 0 else self._ctl0)
            (di if type_ == "int" else df)[offset:offset + size] = values

    def _run_context(self, c: int, n: int, ctl) -> np.ndarray:
        st = KernelState(self.STATES[c])
        st.hi = np.zeros((st.hi.shape[0], n), np.int32)
        st.hf = np.zeros((st.hf.shape[0], n), np.float64)
        self._fill_tables(c, ctl, st.di, st.df)
        out = np.zeros((1, n))
        self._run(self.KERNELS[c], n, 0, n, np.zeros((0, n)), out, np.zeros((0, n)), ctl,
                  st.iv, st.fv, st.di, st.df, st.hi, st.hf)
        return out[0]

    @staticmethod
    def _run(fn, *args):
        try:
            return fn(*args)
        except ZeroDivisionError:
            raise FaustError(_IREM_MESSAGE) from None

    def _inputs(self, inputs, n):
        """Program.compute's argument rules; returns (C-contiguous (inputs, >=n) array, n)."""
        if inputs is None and n is not None:
            if not self.num_inputs:
                return self._none, n
            # silence: one zero block kept while n stays the same (the kernels only read
            # their inputs; a fresh one per 256-sample call was a fifth of it). Not flagged
            # read-only: Numba would compile the kernel again for a read-only array type.
            z = self._silence
            if z is None or z.shape[1] != n:
                z = self._silence = np.zeros((self.num_inputs, n))
            return z, n
        return check_inputs(inputs, n, self.num_inputs)

    def compute(self, inputs=None, n: Optional[int] = None) -> np.ndarray:
        """Render n samples; inputs is (num_inputs, n) float64 (None: silence)."""
        return self._go(inputs, n, 0)

    def render(self, n: Optional[int] = None, block: int = 256, inputs=None) -> np.ndarray:
        """Like one `compute` per `block` samples (state, `count`, results identical), with
        the block loop in compiled code; `bargraphs` holds the whole traces."""
        if block <= 0:
            raise ValueError("render: block must be positive")
        return self._go(inputs, n, int(block))

    def _go(self, inputs, n, block) -> np.ndarray:
        ins, n = self._inputs(inputs, n)
        n = int(n)
        if self.IN_OFFSET:   # (reverse mode's backward programs) history columns first
            ins = np.ascontiguousarray(np.pad(ins[:, :n], ((0, 0), (self.IN_OFFSET, 0))))
        outs = np.empty((self.num_outputs, self.OUT_OFFSET + n))
        bars = np.empty((self._nbars, n)) if self._nbars else self._none
        if n > 0:
            st = self._state
            if self._history:
                st.reserve(n)
            try:
                self.KERNELS[0](block or n, 0, n, ins, outs, bars, self._ctl,
                                st.iv, st.fv, st.di, st.df, st.hi, st.hf)
            except ZeroDivisionError:
                raise FaustError(_IREM_MESSAGE) from None
        if self._nbars:
            self.bargraph_traces = list(bars)
            self.bargraphs = group_traces(self.bargraph_labels, bars)
        elif self.bargraph_traces or self.bargraphs:
            self.bargraph_traces, self.bargraphs = [], {}
        return outs[:, self.OUT_OFFSET:] if self.OUT_OFFSET else outs


_POOLS: dict = {}
_POOLS_LOCK = threading.Lock()


def run_each(fn: Callable[[int], None], count: int, threads: int) -> None:
    """fn(0) .. fn(count-1) on up to `threads` threads of a shared pool (the generated
    kernels release the GIL: independent programs, such as the elements of a batch, run in
    parallel); in turn when one thread would do. The first failure, in index order, is
    raised once every call is done."""
    threads = min(int(count), int(threads))
    if threads <= 1:
        for k in range(count):
            fn(k)
        return
    with _POOLS_LOCK:
        pool = _POOLS.get(threads)
        if pool is None:
            pool = _POOLS[threads] = ThreadPoolExecutor(threads, "faustdiff")
    futures = [pool.submit(fn, k) for k in range(count)]
    wait(futures)
    for f in futures:
        f.result()


# ---------------------------------------------------------------- batches

class BatchState:
    """The state arrays of B instances in lane groups (codegen.batch_kernel): iv, fv, di,
    df shaped (groups, size, lanes), hi, hf (groups, rows, t, lanes); instance
    g * lanes + b is lane b of group g; the lanes past the last instance repeat it."""
    __slots__ = ("iv", "fv", "di", "df", "hi", "hf")

    def __init__(self, sizes, batch: int, lanes: int):
        niv, nfv, ndi, ndf, nhi, nhf = sizes
        g = -(-int(batch) // lanes)
        self.iv = np.zeros((g, niv, lanes), np.int64)
        self.fv = np.zeros((g, nfv, lanes), np.float64)
        self.di = np.zeros((g, ndi, lanes), np.int32)
        self.df = np.zeros((g, ndf, lanes), np.float64)
        self.hi = np.zeros((g, nhi, 0, lanes), np.int32)
        self.hf = np.zeros((g, nhf, 0, lanes), np.float64)

    def arrays(self) -> tuple:
        return self.iv, self.fv, self.di, self.df, self.hi, self.hf

    def clear(self) -> None:
        for a in (self.iv, self.fv, self.di, self.df):
            if a.size:
                a.fill(0)
        for name in ("hi", "hf"):
            h = getattr(self, name)
            if h.shape[2]:
                setattr(self, name, np.zeros(h.shape[:2] + (0, h.shape[3]), h.dtype))

    def reserve(self, n: int) -> None:
        """Whole-history delay lines get room for n more samples (as KernelState)."""
        need = int(self.iv[0, 0, 0]) + n
        for name in ("hi", "hf"):
            h = getattr(self, name)
            if h.shape[1] and h.shape[2] < need:
                cols = max(need, 2 * h.shape[2], 1024)
                grown = np.zeros(h.shape[:2] + (cols, h.shape[3]), h.dtype)
                grown[:, :, :h.shape[2]] = h
                setattr(self, name, grown)




def call_batch_kernel(kernel, *args) -> None:
    """A batch kernel's call (an integer remainder by zero in it: the FaustError)."""
    try:
        kernel(*args)
    except ZeroDivisionError:
        raise FaustError(_IREM_MESSAGE) from None


class BatchProgram:
    """B instances of a compiled program, each with its own widgets, inputs and state, run
    by the module's batch kernel in one call (LANES instances side by side in vector
    registers; see codegen.batch_kernel). Results are bit for bit those of B separate
    programs. Made by `CompiledProgram.batch(B)`: every instance starts with the
    program's widget values, reset.

    compute(inputs, n) -- inputs (B, num_inputs, n) (None: silence; a (num_inputs, n)
                          array: the same for every instance) -> outputs (B, num_outputs, n)
    set_param(label, value) -- value: one for all, or B values (one per instance)
    controls            -- (B, widgets) array of the widget values (CONTROLS order), writable
    params              -- one {label: value} per instance
    reset(), render(n, block, inputs), finals() (B, kept), bargraph_traces (B, bars, n)
    threads             -- lane groups run on up to this many threads (default 1)"""

    def __init__(self, prog: "CompiledProgram", batch: int, threads: int = 1):
        if not getattr(prog, "BATCH_KERNELS", ()):
            raise FaustError("this program has no batch kernel (regenerate it: "
                             "`faustdiff compile`)")
        if int(batch) < 1:
            raise ValueError("batch: give at least one instance")
        self.program = prog
        self.batch = int(batch)
        self.lanes = int(prog.LANES)
        self.threads = int(threads)
        self.num_inputs, self.num_outputs = prog.num_inputs, prog.num_outputs
        self.sample_rate, self.name = prog.sample_rate, prog.name
        self.bargraph_labels = list(prog.bargraph_labels)
        self.controls = np.tile(prog._ctl, (self.batch, 1))
        self._state = BatchState(prog.STATES[0], self.batch, self.lanes)
        self._history = prog._history
        self._empty = np.zeros((self.batch, 0, 0))
        self.bargraph_traces = np.zeros((self.batch, len(self.bargraph_labels), 0))
        self.reset()

    # ------------------------------------------------------------ parameters

    @property
    def params(self) -> list:
        p = self.program
        return [widget_values(p._labels, p._paths, row.tolist()) for row in self.controls]

    def set_param(self, label: str, value) -> None:
        """Set a widget (by full path or label) of every instance: one value, or B."""
        v = np.asarray(value, dtype=np.float64)
        if v.ndim and v.shape != (self.batch,):
            raise ValueError(f"set_param: give one value or {self.batch}, got {v.shape}")
        for j in remembered_hits(self.program, label):
            self.controls[:, j] = v

    # ------------------------------------------------------------ running

    def reset(self) -> None:
        """Every instance back to the state right after init (tables refilled with its
        own widget values)."""
        st, p = self._state, self.program
        st.clear()
        if not p.TABLES[0]:
            return
        filled: dict = {}
        for g in range(st.iv.shape[0]):
            for b in range(self.lanes):
                row = self.controls[min(g * self.lanes + b, self.batch - 1)]
                key = row.tobytes()
                if key not in filled:   # (instances with the same widgets: one fill)
                    di, df = np.zeros(st.di.shape[1], np.int32), np.zeros(st.df.shape[1])
                    p._fill_tables(0, row.copy(), di, df)
                    filled[key] = (di, df)
                st.di[g, :, b], st.df[g, :, b] = filled[key]

    def finals(self) -> np.ndarray:
        """(B, kept): the values of the kept recursions of every instance."""
        st, p = self._state, self.program
        out = np.empty((self.batch, len(p.FINALS)))
        for k, (kind, j) in enumerate(p.FINALS):
            out[:, k] = (st.iv if kind == "iv" else st.fv)[:, j, :].reshape(-1)[:self.batch]
        return out

    def _inputs(self, inputs, n) -> tuple:
        B, ni = self.batch, self.num_inputs
        if inputs is None:
            if n is None:
                raise ValueError("compute: give inputs or n")
            return np.zeros((B, ni, int(n) if ni else 0)), int(n)
        x = np.asarray(inputs, dtype=np.float64)
        if x.ndim == 2 or (x.ndim == 1 and ni == 1):
            x = np.broadcast_to(x.reshape(ni, -1), (B, ni, x.size // max(ni, 1)))
        if n is None:
            n = x.shape[2] if x.ndim == 3 else 0
            if ni == 0:
                raise ValueError("compute: a program without inputs needs n")
        if x.ndim != 3 or x.shape[0] != B or x.shape[1] != ni or (ni and x.shape[2] < n):
            raise ValueError(f"compute: inputs must have shape ({B}, {ni}, {n}), "
                             f"got {x.shape}")
        x = x[:, :, :n] if ni else self._empty
        if self.program.IN_OFFSET and ni:   # (a backward program's history columns first)
            return np.ascontiguousarray(np.pad(x, ((0, 0), (0, 0),
                                                   (self.program.IN_OFFSET, 0)))), int(n)
        return np.ascontiguousarray(x), int(n)

    def compute(self, inputs=None, n: Optional[int] = None) -> np.ndarray:
        """n samples of every instance: (B, num_outputs, n)."""
        return self._go(inputs, n, 0)

    def render(self, n: Optional[int] = None, block: int = 256, inputs=None) -> np.ndarray:
        """Like one `compute` per `block` samples, the block loop in compiled code."""
        if block <= 0:
            raise ValueError("render: block must be positive")
        return self._go(inputs, n, int(block))

    def _go(self, inputs, n, block) -> np.ndarray:
        ins, n = self._inputs(inputs, n)
        p = self.program
        outs = np.empty((self.batch, self.num_outputs, p.OUT_OFFSET + n))
        nbars = len(self.bargraph_labels)
        bars = np.empty((self.batch, nbars, n)) if nbars else self._empty
        if n > 0:
            self.run(ins, outs, bars, 0, n, block or n)
        self.bargraph_traces = bars if nbars else np.zeros((self.batch, 0, n))
        return outs[:, :, p.OUT_OFFSET:] if p.OUT_OFFSET else outs

    def run(self, ins, outs, bars, s0: int, s1: int, block: int) -> None:
        """The batch kernel over samples s0..s1-1 of arrays the caller owns (C-contiguous
        float64: ins (B, inputs, >=n), outs (B, outputs, >=n), bars (B, bars, n) or
        (B, 0, 0)), the lane groups shared out to `threads` threads."""
        self._run_groups(self.program.BATCH_KERNELS[0], ins, outs, bars, s0, s1, block)

    def _run_groups(self, kernel, ins, outs, bars, s0: int, s1: int, block: int) -> None:
        """kernel(block, s0, s1, ins, outs, bars, widgets, state...) over the lane groups,
        shared out to `threads` threads (each its groups' rows of every array)."""
        st = self._state
        if self._history:
            st.reserve(s1 - s0)
        arrays = st.arrays()
        groups = st.iv.shape[0]
        k = max(1, min(self.threads, groups))
        if k == 1:
            call_batch_kernel(kernel, block, s0, s1, ins, outs, bars, self.controls, *arrays)
            return
        cuts = np.linspace(0, groups, k + 1).astype(int)
        W = self.lanes

        def share(j: int) -> None:
            g = slice(cuts[j], cuts[j + 1])
            e = slice(cuts[j] * W, min(cuts[j + 1] * W, self.batch))
            call_batch_kernel(kernel, block, s0, s1, ins[e], outs[e], bars[e],
                              self.controls[e], *[a[g] for a in arrays])
        run_each(share, k, k)

    def l2_sums(self, inputs, targets, n: int) -> np.ndarray:
        """n samples of every instance, as `compute` would run them (the state advances
        alike), returning instead of the outputs their L2 sums (B, outputs): row c <
        k = LOSS_ROWS: Σ (out_c - t_c)², row r >= k: Σ out_r · (out_c - t_c) with
        c = (r - k) mod k (a forward-mode partial of output c). targets (B, k, n). Each
        sum runs sample by sample from 0.0 in its lane, as losses._l2_rows sums."""
        p = self.program
        if not p.LOSS_KERNELS:
            raise FaustError("this program has no loss kernel (a forward-mode GradProgram "
                             "made by this version has one)")
        ins, n = self._inputs(inputs, n)
        t = np.ascontiguousarray(targets, dtype=np.float64)
        if t.shape != (self.batch, p.LOSS_ROWS, n):
            raise ValueError(f"l2_sums: targets must have shape ({self.batch}, "
                             f"{p.LOSS_ROWS}, {n}), got {t.shape}")
        acc = np.zeros((self.batch, self.num_outputs))
        if n > 0:
            self._run_groups(p.LOSS_KERNELS[0], ins, t, acc, 0, n, n)
        return acc

    # ------------------------------------------------------------ single programs

    def gather(self, progs) -> None:
        """Take the widgets and state of B single instances of this program (its
        `FaustProgram`s, all at the same sample count) into the lanes."""
        B, W, st = self.batch, self.lanes, self._state
        if len(progs) != B:
            raise ValueError(f"gather: give {B} programs, got {len(progs)}")
        states = [p._state for p in progs]
        if len({int(s.iv[0]) for s in states}) > 1:
            raise ValueError("gather: the programs must be at the same sample count "
                             "(reset together)")
        self.controls[:] = [p._ctl for p in progs]
        pad = [B - 1] * (st.iv.shape[0] * W - B)
        for name in ("iv", "fv", "di", "df"):
            lanes = getattr(st, name)
            if lanes.shape[1]:
                rows = np.stack([getattr(s, name) for s in states])[list(range(B)) + pad]
                lanes[...] = rows.reshape(-1, W, lanes.shape[1]).transpose(0, 2, 1)
        for name in ("hi", "hf"):
            h = getattr(st, name)
            if h.shape[1]:
                cols = max(getattr(s, name).shape[1] for s in states)
                full = np.zeros((B, h.shape[1], cols), h.dtype)
                for k, s in enumerate(states):
                    a = getattr(s, name)
                    full[k, :, :a.shape[1]] = a
                full = full[list(range(B)) + pad]
                setattr(st, name, np.ascontiguousarray(
                    full.reshape(-1, W, h.shape[1], cols).transpose(0, 2, 3, 1)))

    def scatter(self, progs) -> None:
        """Give the lanes' state back to the B single programs `gather` took it from."""
        B, W, st = self.batch, self.lanes, self._state
        for name in ("iv", "fv", "di", "df"):
            lanes = getattr(st, name)
            if lanes.shape[1]:
                rows = lanes.transpose(0, 2, 1).reshape(-1, lanes.shape[1])
                for k, p in enumerate(progs):
                    getattr(p._state, name)[:] = rows[k]
        for name in ("hi", "hf"):
            h = getattr(st, name)
            if h.shape[1]:
                rows = h.transpose(0, 3, 1, 2).reshape(-1, h.shape[1], h.shape[2])
                for k, p in enumerate(progs):
                    setattr(p._state, name, rows[k].copy())
