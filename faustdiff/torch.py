"""A Faust program as a PyTorch layer (`pip install faustdiff[torch]`).

    import faustdiff.torch as ft
    layer = ft.FaustModule("synth.dsp", params=["cutoff"], signals=["gain"])
    y = layer(x, controls)          # x (batch, channels, n), controls (batch, 1, n)
    loss = ((y - target) ** 2).mean()
    loss.backward()                 # layer.raw.grad, x.grad, controls.grad

The program is compiled once in reverse mode (`mode="reverse"`); `forward` renders each
batch element with the compiled forward kernel (keeping its tapes) and the autograd
`backward` is the compiled VJP: the gradient with respect to the learnable sliders, the input
audio and the per-sample control curves, exact (IIR recursions included). Everything is
computed in float64 on the CPU; the outputs have the dtype of the inputs (or of the
parameters when the program has no audio input).

Learnable sliders are one `nn.Parameter`, `raw`, in the normalised [0, 1] coordinates of
the training code (`[scale:log]` honoured: p = lo·(hi/lo)^u); values outside [0, 1] are
clamped (zero gradient outside, as `torch.clamp`). `values()` gives them in the sliders'
own units. Batch elements run in parallel threads (their compiled kernels release the GIL),
`torch.get_num_threads()` of them unless `threads=` says otherwise. State: reset before every call (`carry_state=False`, the default: each call is
a whole example) or carried from call to call (`carry_state=True`, streaming; the gradient
is then truncated at the call's start, see the reverse-mode block rule).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as e:   # pragma: no cover - exercised only without the extra
    raise ImportError("faustdiff.torch needs PyTorch: pip install 'faustdiff[torch]'") from e

from .ad.params import from_units
from .backend.runtime import run_each
from .errors import FaustError

__all__ = ["FaustModule"]


class FaustModule(nn.Module):
    """A compiled Faust program as an `nn.Module` (see the module docstring).

    dsp         -- a .dsp path or Faust source text;
    params      -- the sliders to learn: labels, "auto" (the `[diff:on]` ones) or None
                   (every slider not in `signals`);
    signals     -- sliders driven per sample: extra control channels of `forward`;
    sample_rate -- Hz; include -- extra library folders; carry_state -- see above;
    threads     -- batch elements rendered at once (None: torch.get_num_threads())."""

    def __init__(self, dsp: str, params=None, signals: Sequence[str] = (),
                 sample_rate: float = 44100, include: Sequence[str] = (),
                 carry_state: bool = False, threads: Optional[int] = None):
        super().__init__()
        from .api import compile_source, layer_source
        signals = [str(s) for s in signals]
        text, filename, wrt = layer_source(dsp, params, signals, sample_rate, include)
        self.program = compile_source(text, filename, sample_rate, include, wrt=wrt,
                                      mode="reverse", signals=signals)
        self.labels = list(self.program.wrt)
        self.signals = signals
        self.specs = list(self.program.param_specs)
        self.num_channels = self.program.num_inputs - len(signals)
        self.num_outputs = self.program.num_outputs
        self.sample_rate = sample_rate
        self.carry_state = carry_state
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise FaustError(f"FaustModule: threads must be a positive integer, got {threads!r}")
        self.threads = threads
        # batch elements' programs: with dL/dx (inputs that need gradients), and without
        # (compiled on first use: training sliders only skips the input adjoints)
        self._pools = {True: [self.program], False: []}
        self._compile = (text, filename, sample_rate, tuple(include), wrt, signals)
        u0 = [float(s.to_unit(s.init)) for s in self.specs]
        self.raw = nn.Parameter(torch.tensor(u0, dtype=torch.float64))

    # ------------------------------------------------------------ parameters

    def values(self) -> dict:
        """label -> the learnable sliders' current values in their own units."""
        values, _ = from_units(self.specs, self.raw.detach().cpu().double().numpy())
        return dict(zip(self.labels, values))

    def set_values(self, values: dict) -> None:
        """Set learnable sliders from values in their own units (label -> value)."""
        unknown = set(values) - set(self.labels)
        if unknown:
            raise FaustError(f"unknown parameter(s) {', '.join(sorted(unknown))}; "
                             f"learnable: {', '.join(self.labels) or '(none)'}")
        with torch.no_grad():
            for j, s in enumerate(self.specs):
                if s.label in values:
                    self.raw[j] = float(s.to_unit(values[s.label]))

    def reset(self) -> None:
        """Zero the state of every batch element (with carry_state=True)."""
        for pool in self._pools.values():
            for p in pool:
                p.reset()

    # ------------------------------------------------------------ rendering

    def _programs(self, k: int, input_grads: bool = True) -> list:
        pool = self._pools[input_grads]
        if not pool:
            from .api import compile_source
            text, filename, sr, include, wrt, signals = self._compile
            pool.append(compile_source(text, filename, sr, include, wrt=wrt, mode="reverse",
                                       signals=signals, input_grads=False))
        while len(pool) < k:
            pool.append(pool[0].clone())
        return pool[:k]

    def _shapes(self, x, controls, n: Optional[int]) -> tuple:
        """(batch, n) from the arguments, or a FaustError naming the mismatch."""
        c, s = self.num_channels, len(self.signals)
        if x is not None:
            if x.dim() != 3 or x.shape[1] != c:
                raise FaustError(f"FaustModule: x must have shape (batch, {c}, n), "
                                 f"got {tuple(x.shape)}")
        elif c:
            raise FaustError(f"FaustModule: the program has {c} input channel(s): "
                             f"pass x of shape (batch, {c}, n)")
        if s:
            if controls is None:
                raise FaustError(f"FaustModule: pass controls of shape (batch, {s}, n) "
                                 f"for the signals {', '.join(self.signals)}")
            if controls.dim() != 3 or controls.shape[1] != s:
                raise FaustError(f"FaustModule: controls must have shape (batch, {s}, n), "
                                 f"got {tuple(controls.shape)}")
        elif controls is not None:
            raise FaustError("FaustModule: this module has no signals= (controls given)")
        shapes = [(t.shape[0], t.shape[2]) for t in (x, controls) if t is not None]
        if len(set(shapes)) > 1:
            raise FaustError(f"FaustModule: x and controls differ in batch or length: "
                             f"{tuple(x.shape)} and {tuple(controls.shape)}")
        if shapes:
            b, m = shapes[0]
            if n is not None and n != m:
                raise FaustError(f"FaustModule: n={n} but the inputs have {m} samples")
            return b, m
        if n is None:
            raise FaustError("FaustModule: a program without inputs needs n= (and batch=)")
        return None, int(n)

    def forward(self, x=None, controls=None, n: Optional[int] = None, batch: int = 1):
        """Render: x (batch, channels, n), controls (batch, len(signals), n) -> (batch,
        outputs, n). For a program with no inputs and no signals, pass n= (and batch=)."""
        b, n = self._shapes(x, controls, n)
        b = batch if b is None else b
        if b < 1:
            raise FaustError("FaustModule: the batch is empty")
        dtype = x.dtype if x is not None else (
            controls.dtype if controls is not None else self.raw.dtype)
        x_ = x if x is not None else torch.zeros((b, 0, n), dtype=torch.float64)
        c_ = controls if controls is not None else torch.zeros((b, 0, n), dtype=torch.float64)
        y = _Render.apply(self, self.raw, x_, c_)
        return y.to(dtype)


def _each(module: FaustModule, b: int, fn) -> None:
    """fn(0) .. fn(b-1), the batch elements, on up to `threads` threads (each element has
    its own program, so they share nothing but the read-only inputs)."""
    run_each(fn, b, module.threads or torch.get_num_threads())


def _render(module: FaustModule, prog, values, x, n: int) -> np.ndarray:
    """One batch element: parameters set, state reset (unless carried), rendered with its
    tapes kept for `vjp`."""
    for lab, v in zip(module.labels, values):
        prog.set_param(lab, v)
    if not module.carry_state:
        prog.reset()
    return prog.compute(x, n)


class _Render(torch.autograd.Function):
    """The compiled forward (tapes kept) and, as backward, the compiled VJP of each batch
    element."""

    @staticmethod
    def forward(ctx, module: FaustModule, raw, x, controls):
        values, chain = from_units(module.specs, raw.detach().cpu().double().numpy())
        parts = [t.detach().cpu().double().numpy() for t in (x, controls) if t.shape[1]]
        xs = parts[0] if len(parts) == 1 else (
            np.concatenate(parts, 1) if parts else np.zeros((x.shape[0], 0, x.shape[2])))
        for t, what in zip(parts, [w for w, t in (("x", x), ("controls", controls))
                                   if t.shape[1]]):
            # (a finite sum means finite elements, and is 3x cheaper than isfinite each)
            if not np.isfinite(t.sum()) and not np.all(np.isfinite(t)):
                raise FaustError(f"FaustModule: {what} holds NaN or infinity")
        b, _, n = xs.shape
        # (carried state lives in one set of programs: always the one with dL/dx)
        need_dx = bool(x.requires_grad or controls.requires_grad or module.carry_state)
        progs = module._programs(b, need_dx)
        ys = np.empty((b, module.num_outputs, n))
        token = object()

        def element(k: int) -> None:
            p = progs[k]
            ys[k] = _render(module, p, values, xs[k], n)
            p._faust_token = token
        _each(module, b, element)
        ctx.module, ctx.progs, ctx.chain = module, progs, chain
        ctx.token, ctx.values, ctx.xs = token, values, xs
        ctx.nx, ctx.need_dx = x.shape[1], need_dx
        ctx.meta = (raw.dtype, x.dtype, controls.dtype)
        return torch.from_numpy(ys)

    @staticmethod
    def backward(ctx, grad_y):
        g = grad_y.detach().cpu().double().numpy()
        b, _, n = g.shape
        d_params = np.zeros((b, len(ctx.chain)))
        d_in = np.zeros((b, ctx.progs[0].num_inputs, n)) if ctx.need_dx else None
        stale = [p for p in ctx.progs if getattr(p, "_faust_token", None) is not ctx.token]
        if stale and ctx.module.carry_state:
            raise FaustError("FaustModule: with carry_state=True, call backward "
                             "before the next forward (the state has moved on)")

        def element(k: int) -> None:
            p = ctx.progs[k]
            if getattr(p, "_faust_token", None) is not ctx.token:
                # another forward ran since: render this element again (same parameters,
                # inputs and the same starting state)
                _render(ctx.module, p, ctx.values, ctx.xs[k], n)
                p._faust_token = ctx.token
            d_params[k], dx = p.vjp(g[k])
            if d_in is not None:
                d_in[k] = dx
        _each(ctx.module, b, element)
        d_raw = d_params.sum(axis=0)   # (in element order, whatever the threads did)
        raw_t, x_t, c_t = ctx.meta
        d_raw = torch.from_numpy(d_raw * ctx.chain).to(raw_t)
        if d_in is None:
            return None, d_raw, None, None
        d_in = torch.from_numpy(d_in)
        return None, d_raw, d_in[:, :ctx.nx].to(x_t), d_in[:, ctx.nx:].to(c_t)
