r"""Loss functions for training from Python, each with its exact gradient.

A loss compares a prediction `y` with a target `t` (float arrays of the same shape, normally
(num_outputs, n): one row per output of the program) and returns `(value, dL/dy)`: the loss
(a float) and its gradient with respect to every sample of `y` (an array shaped like `y`).
`faustdiff.learn.train` turns dL/dy into parameter gradients with the program's forward-mode
partials: dL/dθ = Σ_o Σ_n dL/dy[o, n] · ∂y[o, n]/∂θ, exact for the whole block.

Losses (`get("name")` or the classes):

| name | value | dL/dy |
|---|---|---|
| `l1`, `mae` | mean \|y − t\| | sign(y − t) / size (0 where y = t) |
| `l2`, `mse` | mean (y − t)² | 2 (y − t) / size |
| `esr` | Σ (y − t)² / (Σ t² + ε), the error-to-signal ratio | 2 (y − t) / (Σ t² + ε) |
| `huber` | mean of ½e² (\|e\| ≤ δ), δ(\|e\| − ½δ) (else) | e / size, or δ·sign(e) / size |
| `mrstft` | multi-resolution STFT: mean over FFT sizes of spectral convergence + mean log-magnitude distance | analytic, through the FFTs (below) |

The multi-resolution STFT loss (Yamamoto et al., Parallel WaveGAN; Engel et al., DDSP): for
each FFT size N (default 2048, 1024, 512, 256, 128, 64; sizes longer than the signal are
skipped), frames of N samples every N/4 lying inside the signal (`center=True`: zero padding
of N/2 at both ends first), a periodic Hann window w, spectra Y_f = rfft(w·y_f),
magnitudes |Y| = sqrt(Re² + Im² + ε²) (ε keeps the log and the gradient finite at silence):

    SC  = ‖ |T| − |Y| ‖_F / ‖ |T| ‖_F
    LIN = mean | |T| − |Y| |
    LOG = mean | log |T| − log |Y| |
    L   = mean over sizes of (w_sc·SC + w_lin·LIN + w_log·LOG)     (defaults 1, 1, 0)

The log-magnitude term (w_log, common in the literature) is off by default: measured on a sine
whose frequency is learned, its gradient changes sign every few Hz (the log of the near-silent
bins between partials is noise-like), while SC and LIN give the right sign almost everywhere.

Gradient: with G = dL/d|Y| per bin, ∂|Y_k|/∂y[m] = Re(conj(Y_k)/|Y_k| · w[m] e^{−2πikm/N}),
so dL/dy_f[m] = w[m] · Σ_k Re(Z_k e^{2πikm/N}) with Z_k = G_k Y_k/|Y_k|: one inverse real FFT
per frame (N·irfft of Z with its interior bins halved, since irfft counts them twice), then
overlap-add. Checked against central differences in the tests.

Why frames stay inside the signal by default: a frame that crosses the end of the signal
sees a sine cut at a phase that turns with its frequency, which ripples the loss with a
period of SR/n Hz; as the partials ∂y/∂f of an oscillator grow with time, those last frames
dominate the gradient, whose sign then flips every few Hz near the optimum (measured:
`center=True` stalls frequency learning, the default converges).

Several outputs or a batch: arrays of any leading shape; the last axis is time. Values are
means over everything (the STFT loss: over the leading axes too).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit


class Loss:
    """Base class: `loss(y, target) -> (value, dL/dy)`."""
    name = "loss"

    def __call__(self, y, target):
        y = np.asarray(y, dtype=np.float64)
        t = np.asarray(target, dtype=np.float64)
        if y.shape != t.shape:
            raise ValueError(f"{self.name}: prediction {y.shape} and target {t.shape} "
                             "must have the same shape")
        return self.compute(y, t)

    def compute(self, y: np.ndarray, t: np.ndarray):   # pragma: no cover - abstract
        raise NotImplementedError

    def value(self, y, target) -> float:
        return self(y, target)[0]

    def contract(self, y, target, partials) -> tuple:
        """(value, dL/dθ) of one example in forward mode: Σ_o Σ_n dL/dy[o, n] ·
        partials[i, o, n] (partials: (params, outputs, n)). Losses whose gradient is a
        multiple of the error e = y - t override it to contract e directly (one pass
        over the partials, no dL/dy array)."""
        v, dy = self(y, target)
        return v, np.einsum("on,ion->i", dy, partials)

    def __repr__(self):
        return f"{type(self).__name__}()"


class L1(Loss):
    """Mean absolute error."""
    name = "l1"

    def compute(self, y, t):
        e = y - t
        return float(np.mean(np.abs(e))), np.sign(e) / e.size


# The sums of L2 in compiled loops, one pass over y and t per sum, no error array (a training
# step of the one-pole on 16 examples of 1 s spent a third of its time in numpy's y - t and
# einsums). Each sum runs in sample order, output by output (no fast-math): the order in
# which the vectorised batch kernel's lanes sum the same loss (`runtime.BatchProgram.
# l2_sums`), so that a step gives the same numbers whichever way its batch runs. NaN and
# infinity propagate.
_SUMS = dict(cache=True, nogil=True)


@njit(**_SUMS)
def _l2_rows(y, t, d):
    """s[c] = Σ_j e[c, j]² and g[i, c] = Σ_j d[i, c, j] e[c, j], e = y - t, of y, t (k, n)
    and partials d (P, k, n) (P may be 0), each sum in sample order from 0.0. Four sums a
    pass (the squares with rows 0-2, then rows four at a time), side by side: each sum is
    one serial chain of additions, so several in flight keep the adder busy (a missing
    row in a pass repeats the last one, its sum unused)."""
    k, n = y.shape
    P = d.shape[0]
    s = np.empty(k)
    g = np.empty((P, k))
    last = max(P - 1, 0)
    for c in range(k):
        a0 = a1 = a2 = a3 = 0.0
        if P == 0:
            for j in range(n):
                e = y[c, j] - t[c, j]
                a0 += e * e
        else:
            r1, r2 = min(1, last), min(2, last)
            for j in range(n):
                e = y[c, j] - t[c, j]
                a0 += e * e
                a1 += d[0, c, j] * e
                a2 += d[r1, c, j] * e
                a3 += d[r2, c, j] * e
            g[0, c] = a1
            g[r1, c] = a2
            g[r2, c] = a3
        s[c] = a0
        for i0 in range(3, P, 4):
            r1, r2, r3 = min(i0 + 1, last), min(i0 + 2, last), min(i0 + 3, last)
            b0 = b1 = b2 = b3 = 0.0
            for j in range(n):
                e = y[c, j] - t[c, j]
                b0 += d[i0, c, j] * e
                b1 += d[r1, c, j] * e
                b2 += d[r2, c, j] * e
                b3 += d[r3, c, j] * e
            g[r3, c] = b3
            g[r2, c] = b2
            g[r1, c] = b1
            g[i0, c] = b0
    return s, g


def l2_total(rows) -> float:
    """Σ of per-output sums, in output order (how `L2` and `Trainer._fused` add them)."""
    total = 0.0
    for v in rows:
        total += float(v)
    return total


def l2_from_sums(s, g, size: int) -> tuple:
    """(mean e², dL/dθ) from the per-output sums of `_l2_rows` (s (k,), g (P, k))."""
    grad = np.array([l2_total(row) for row in g]) * (2.0 / size)
    return l2_total(s) / size, grad


def _rows(a, shape) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).reshape(shape)


class L2(Loss):
    """Mean squared error."""
    name = "l2"
    nogil = True   # (`contract` runs in compiled code without the GIL: see _SUMS)

    def compute(self, y, t):
        # (the value summed as `contract` sums it: the same loss in both modes)
        k = y.shape[0] if y.ndim > 1 else 1
        s, _ = _l2_rows(_rows(y, (k, -1)), _rows(t, (k, -1)), np.empty((0, k, y.size // k)))
        return l2_total(s) / y.size, (2.0 / y.size) * (y - t)

    def contract(self, y, target, partials) -> tuple:
        """(mean e², 2/N · partials · e), e = y - t, one pass per sum (see _SUMS)."""
        y = np.asarray(y, dtype=np.float64)
        t = np.asarray(target, dtype=np.float64)
        if y.shape != t.shape:
            return Loss.contract(self, y, t, partials)   # (its message)
        k = y.shape[0] if y.ndim > 1 else 1
        n = y.size // k
        s, g = _l2_rows(_rows(y, (k, n)), _rows(t, (k, n)), _rows(partials, (-1, k, n)))
        return l2_from_sums(s, g, y.size)


MSE = L2
MAE = L1


class ESR(Loss):
    """Error-to-signal ratio Σe² / (Σt² + eps) (over all outputs of one example)."""
    name = "esr"

    def __init__(self, eps: float = 1e-10):
        self.eps = float(eps)

    def compute(self, y, t):
        e = y - t
        den = float(np.sum(t * t)) + self.eps
        return float(np.sum(e * e)) / den, 2.0 * e / den

    def __repr__(self):
        return f"ESR(eps={self.eps})"


class Huber(Loss):
    """Mean Huber loss: ½e² for |e| ≤ delta, delta·(|e| − ½delta) beyond."""
    name = "huber"

    def __init__(self, delta: float = 1.0):
        if delta <= 0:
            raise ValueError("huber: delta must be positive")
        self.delta = float(delta)

    def compute(self, y, t):
        e = y - t
        a = np.abs(e)
        d = self.delta
        small = a <= d
        val = np.where(small, 0.5 * e * e, d * (a - 0.5 * d))
        grad = np.where(small, e, d * np.sign(e))
        return float(np.mean(val)), grad / e.size

    def __repr__(self):
        return f"Huber(delta={self.delta})"


_HANN: dict = {}


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window (the usual STFT window)."""
    w = _HANN.get(n)
    if w is None:
        w = _HANN[n] = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    return w


try:                       # SciPy's FFT is faster than NumPy's (and optional)
    from scipy import fft as _sfft

    def _rfft(x):
        return _sfft.rfft(x, axis=-1)

    def _irfft(x, n):
        return _sfft.irfft(x, n=n, axis=-1)
except ImportError:        # pragma: no cover
    def _rfft(x):
        return np.fft.rfft(x, axis=-1)

    def _irfft(x, n):
        return np.fft.irfft(x, n=n, axis=-1)


def _digest(a: np.ndarray) -> str:
    import hashlib
    a = np.ascontiguousarray(a)
    return hashlib.blake2b(a.tobytes(), digest_size=16).hexdigest() + str(a.shape)


class MultiResolutionSTFT(Loss):
    """Multi-resolution STFT loss (see the module docstring) with its analytic gradient."""
    name = "mrstft"

    def __init__(self, fft_sizes: Sequence[int] = (2048, 1024, 512, 256, 128, 64),
                 hop_ratio: float = 0.25, w_sc: float = 1.0, w_log: float = 0.0,
                 w_lin: float = 1.0, eps: float = 1e-5, center: bool = False):
        sizes = [int(s) for s in fft_sizes]
        if not sizes or any(s < 4 or s % 2 for s in sizes):
            raise ValueError("mrstft: FFT sizes must be even numbers >= 4")
        self.fft_sizes = tuple(sizes)
        self.hop_ratio = float(hop_ratio)
        self.w_sc, self.w_log, self.w_lin = float(w_sc), float(w_log), float(w_lin)
        self.eps = float(eps)
        self.center = bool(center)
        self._cache: dict = {}

    def __repr__(self):
        return (f"MultiResolutionSTFT(fft_sizes={self.fft_sizes}, hop_ratio={self.hop_ratio},"
                f" w_sc={self.w_sc}, w_log={self.w_log}, w_lin={self.w_lin})")

    def compute(self, y, t):
        shape = y.shape
        n = shape[-1]
        y2 = y.reshape(-1, n)
        t2 = t.reshape(-1, n)
        total = 0.0
        grad = np.zeros_like(y2)
        sizes = [s for s in self.fft_sizes if s <= n] or [min(self.fft_sizes)]
        tkey = _digest(t2)
        for size in sizes:
            v, g = self._one(y2, t2, size, tkey)
            total += v
            grad += g
        k = len(sizes)
        return total / k, (grad / k).reshape(shape)

    def _frames(self, x: np.ndarray, size: int, hop: int):
        """(rows, frames, size) windowed frames of x and the padded length: frames lie
        inside the signal (a signal shorter than `size` is zero-padded at the end), or, with
        `center`, x is zero-padded by size/2 at both ends first."""
        rows, n = x.shape
        pad = size // 2 if self.center else 0
        length = n + 2 * pad
        nframes = 1 + max(0, (length - size) // hop)
        total = max(length, (nframes - 1) * hop + size)
        if pad or total != n:
            xp = np.zeros((rows, total))
            xp[:, pad:pad + n] = x
        else:
            xp = x
        view = np.lib.stride_tricks.sliding_window_view(xp, size, axis=-1)[:, ::hop]
        return view[:, :nframes] * _hann(size), total, pad

    def _target(self, t, size, hop, key):
        """|T| of the target (cached: the target is the same at every step)."""
        ck = (key, size, hop, self.eps, self.center)
        hit = self._cache.get(ck)
        if hit is None:
            T = _rfft(self._frames(t, size, hop)[0])
            hit = np.sqrt(T.real ** 2 + T.imag ** 2 + self.eps * self.eps)
            if len(self._cache) >= 64:
                self._cache.clear()
            self._cache[ck] = hit
        return hit

    def _one(self, y, t, size, tkey):
        hop = max(1, int(round(size * self.hop_ratio)))
        yf, total, pad = self._frames(y, size, hop)
        Y = _rfft(yf)
        my = np.sqrt(Y.real ** 2 + Y.imag ** 2 + self.eps * self.eps)
        mt = self._target(t, size, hop, tkey)
        diff = my - mt
        value = 0.0
        G = np.zeros_like(my)
        if self.w_sc:
            num = float(np.sqrt(np.sum(diff * diff)))
            den = float(np.sqrt(np.sum(mt * mt)))
            value += self.w_sc * num / den
            if num > 0:
                G += diff * (self.w_sc / (num * den))
        if self.w_log:
            ld = np.log(my) - np.log(mt)
            value += self.w_log * float(np.mean(np.abs(ld)))
            G += np.sign(ld) / my * (self.w_log / ld.size)
        if self.w_lin:
            value += self.w_lin * float(np.mean(np.abs(diff)))
            G += np.sign(diff) * (self.w_lin / diff.size)
        G /= my
        Z = Y * G
        Z[..., 1:size // 2] *= 0.5
        gf = _irfft(Z, size)
        gf *= size * _hann(size)                           # (rows, frames, size)
        return value, _overlap_add(gf, hop, total)[:, pad:pad + y.shape[1]]


MRSTFT = MultiResolutionSTFT


def _overlap_add(frames: np.ndarray, hop: int, total: int) -> np.ndarray:
    """Sum frames (rows, F, size), frame f starting at f·hop, into (rows, total)."""
    rows, nf, size = frames.shape
    out = np.zeros((rows, total))
    if size % hop == 0:      # size/hop strided passes, each a contiguous block add
        for j in range(size // hop):
            chunk = frames[:, :, j * hop:(j + 1) * hop].reshape(rows, nf * hop)
            out[:, j * hop:j * hop + nf * hop] += chunk
        return out
    idx = np.arange(size)[None, :] + hop * np.arange(nf)[:, None]
    for r in range(rows):
        np.add.at(out[r], idx.ravel(), frames[r].ravel())
    return out

_NAMES = {
    "l1": L1, "mae": L1, "l2": L2, "mse": L2, "esr": ESR, "huber": Huber,
    "mrstft": MultiResolutionSTFT, "stft": MultiResolutionSTFT,
}


def get(loss) -> Loss:
    """A loss by name (`l1`/`mae`, `l2`/`mse`, `esr`, `huber`, `mrstft`) or the object."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str):
        cls = _NAMES.get(loss.lower())
        if cls is None:
            raise ValueError(f"unknown loss '{loss}'; known: {', '.join(sorted(_NAMES))}")
        return cls()
    if callable(loss):
        return _Callable(loss)
    raise TypeError(f"not a loss: {loss!r}")


class _Callable(Loss):
    """A user function `f(y, t) -> (value, dL/dy)`."""

    def __init__(self, fn):
        self.fn = fn
        self.name = getattr(fn, "__name__", "loss")

    def compute(self, y, t):
        v, g = self.fn(y, t)
        return float(v), np.asarray(g, dtype=np.float64).reshape(y.shape)
