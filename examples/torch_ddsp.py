"""Neural-DDSP style training with a Faust program inside a PyTorch model.

    python examples/torch_ddsp.py [--steps 150] [--seed 0]

A Faust filter (a 2nd-order lowpass and a gain, examples/ddsp_filter.dsp) is driven sample by
sample through `signals=["cutoff", "gain"]`. The model is two learned control curves, one
value per frame (32 frames over half a second), squashed to each slider's range and
interpolated to the sample rate; the target is the same filter driven by hidden curves. The
loss is a multi-resolution STFT loss written in torch (spectral convergence plus log
magnitude at three FFT sizes); its gradient reaches the curves through the compiled
reverse-mode pass of the Faust program. Prints the loss every 10 steps and the final curves'
error; `train()` returns the loss history (tests/test_examples_torch.py checks it falls 10x).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from faustdiff.torch import FaustModule

HERE = Path(__file__).resolve().parent
SR = 16000
N = SR // 2          # half a second
FRAMES = 32
CUTOFF = (80.0, 6000.0)   # the curves' range for the cutoff (Hz, log scale) ...
GAIN = (0.05, 1.0)        # ... and for the gain


def curves(logits: torch.Tensor) -> torch.Tensor:
    """(2, FRAMES) unconstrained values -> (1, 2, N) per-sample cutoff (Hz) and gain."""
    s = torch.sigmoid(logits)
    lo, hi = CUTOFF
    cutoff = lo * (hi / lo) ** s[0]
    gain = GAIN[0] + (GAIN[1] - GAIN[0]) * s[1]
    frames = torch.stack([cutoff, gain])[None]             # (1, 2, FRAMES)
    return F.interpolate(frames, size=N, mode="linear", align_corners=True)


def mrstft(y: torch.Tensor, t: torch.Tensor, sizes=(256, 512, 1024)) -> torch.Tensor:
    """Multi-resolution STFT loss of (batch, 1, n) signals: per FFT size, spectral
    convergence ||T - Y|| / ||T|| plus the mean |log Y - log T|."""
    total = y.new_zeros(())
    for size in sizes:
        win = torch.hann_window(size, dtype=y.dtype)
        Y, T = (torch.stft(s[:, 0], size, size // 4, window=win, return_complex=True).abs()
                for s in (y, t))
        total = total + torch.linalg.norm(T - Y) / torch.linalg.norm(T)
        total = total + (torch.log(Y + 1e-7) - torch.log(T + 1e-7)).abs().mean()
    return total / len(sizes)


def hidden_logits() -> torch.Tensor:
    """The target's control curves: a cutoff sweep up and down, a gain swell."""
    k = torch.linspace(0, 1, FRAMES, dtype=torch.float64)
    return torch.stack([2.0 * torch.sin(2 * math.pi * k), 1.5 * torch.cos(math.pi * k)])


def train(steps: int = 150, seed: int = 0, lr: float = 0.1, verbose: bool = False) -> list:
    """Train the curves; returns the loss at every step (and after the last)."""
    torch.manual_seed(seed)
    layer = FaustModule(str(HERE / "ddsp_filter.dsp"), params=[],
                        signals=["cutoff", "gain"], sample_rate=SR)
    x = torch.rand(1, 1, N, dtype=torch.float64) * 2 - 1           # white noise in
    with torch.no_grad():
        target = layer(x, curves(hidden_logits()))
    logits = torch.zeros(2, FRAMES, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=lr)
    history = []
    for step in range(steps):
        opt.zero_grad()
        loss = mrstft(layer(x, curves(logits)), target)
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
        if verbose and step % 10 == 0:
            print(f"step {step:4d}  loss {history[-1]:.5f}")
    with torch.no_grad():
        history.append(float(mrstft(layer(x, curves(logits)), target)))
        err = (curves(logits) - curves(hidden_logits())).abs().amax(-1)[0]
    if verbose:
        print(f"final loss {history[-1]:.5f} ({history[0] / history[-1]:.0f}x lower); "
              f"largest curve error: cutoff {float(err[0]):.1f} Hz, gain {float(err[1]):.4f}")
    return history


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.1)
    a = ap.parse_args()
    train(a.steps, a.seed, a.lr, verbose=True)


if __name__ == "__main__":
    main()
