"""Gradient-descent optimisers for training from Python.

An optimiser turns a gradient g (a float array, one entry per parameter) into a step:
`opt.step(params, grad) -> new params` (arrays; `params` is not modified). Its state (moments,
step count) lives in the object; `reset()` forgets it, `state_dict()` returns it as JSON-able
values and `load_state_dict(d)` restores it (checkpoints of `Trainer.fit(dataset, ...)`).

| name | update (t = 1, 2, …) |
|---|---|
| `sgd` | θ ← θ − lr·g |
| `momentum` | v ← μ·v + g;  θ ← θ − lr·v   (`nesterov=True`: θ ← θ − lr·(g + μ·v)) |
| `rmsprop` | s ← ρ·s + (1−ρ)·g²;  θ ← θ − lr·g / (√s + ε) |
| `adam` | m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;  m̂ = m/(1−β1^t), v̂ = v/(1−β2^t);  θ ← θ − lr·m̂/(√v̂ + ε) |

Adam uses the standard bias correction 1/(1 − β^t) (Kingma & Ba 2015), not the constant
1/(1 − β) of faust-ddsp's in-circuit `Adam` (faust-ddsp-reference §4).
"""
from __future__ import annotations

import numpy as np


class Optimizer:
    name = "optimizer"
    default_lr = 0.01

    def __init__(self, lr=None):
        self.lr = float(self.default_lr if lr is None else lr)
        self.t = 0

    def reset(self) -> None:
        self.t = 0

    _STATE: tuple = ()   # names of the array attributes of the state (None until the first step)

    def state_dict(self) -> dict:
        """The optimiser's state as plain JSON-able values (floats round-trip exactly through
        `json`): name, lr, step count and the moment arrays."""
        d = {"name": self.name, "lr": self.lr, "t": self.t}
        for a in self._STATE:
            v = getattr(self, a)
            d[a] = None if v is None else [float(x) for x in np.asarray(v).ravel()]
        return d

    def load_state_dict(self, d: dict) -> None:
        """Restore what `state_dict` returned (of an optimiser of the same kind)."""
        if d.get("name") != self.name:
            raise ValueError(f"optimizer state of '{d.get('name')}', not of '{self.name}'")
        self.lr = float(d["lr"])
        self.t = int(d["t"])
        for a in self._STATE:
            v = d.get(a)
            setattr(self, a, None if v is None else np.array(v, dtype=np.float64))

    def step(self, params, grad) -> np.ndarray:
        params = np.asarray(params, dtype=np.float64)
        grad = np.asarray(grad, dtype=np.float64)
        if params.shape != grad.shape:
            raise ValueError(f"{self.name}: params {params.shape} and gradient {grad.shape} "
                             "differ in shape")
        self.t += 1
        return params - self.delta(grad)

    def delta(self, grad: np.ndarray) -> np.ndarray:   # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}(lr={self.lr})"


class SGD(Optimizer):
    name = "sgd"

    def delta(self, g):
        return self.lr * g


class Momentum(Optimizer):
    name = "momentum"
    _STATE = ("v",)

    def __init__(self, lr=None, momentum: float = 0.9, nesterov: bool = False):
        super().__init__(lr)
        self.mu = float(momentum)
        self.nesterov = bool(nesterov)
        self.v = None

    def reset(self):
        super().reset()
        self.v = None

    def delta(self, g):
        if self.v is None:
            self.v = np.zeros_like(g)
        self.v = self.mu * self.v + g
        return self.lr * (g + self.mu * self.v if self.nesterov else self.v)

    def __repr__(self):
        return f"Momentum(lr={self.lr}, momentum={self.mu}, nesterov={self.nesterov})"


class RMSProp(Optimizer):
    name = "rmsprop"
    default_lr = 0.001
    _STATE = ("s",)

    def __init__(self, lr=None, rho: float = 0.9, eps: float = 1e-8):
        super().__init__(lr)
        self.rho, self.eps = float(rho), float(eps)
        self.s = None

    def reset(self):
        super().reset()
        self.s = None

    def delta(self, g):
        if self.s is None:
            self.s = np.zeros_like(g)
        self.s = self.rho * self.s + (1.0 - self.rho) * g * g
        return self.lr * g / (np.sqrt(self.s) + self.eps)

    def __repr__(self):
        return f"RMSProp(lr={self.lr}, rho={self.rho}, eps={self.eps})"


class Adam(Optimizer):
    name = "adam"
    default_lr = 0.001
    _STATE = ("m", "v")

    def __init__(self, lr=None, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        self.b1, self.b2, self.eps = float(beta1), float(beta2), float(eps)
        self.m = self.v = None

    def reset(self):
        super().reset()
        self.m = self.v = None

    def delta(self, g):
        if self.m is None:
            self.m = np.zeros_like(g)
            self.v = np.zeros_like(g)
        self.m = self.b1 * self.m + (1.0 - self.b1) * g
        self.v = self.b2 * self.v + (1.0 - self.b2) * g * g
        mhat = self.m / (1.0 - self.b1 ** self.t)
        vhat = self.v / (1.0 - self.b2 ** self.t)
        return self.lr * mhat / (np.sqrt(vhat) + self.eps)

    def __repr__(self):
        return f"Adam(lr={self.lr}, beta1={self.b1}, beta2={self.b2}, eps={self.eps})"


_NAMES = {"sgd": SGD, "momentum": Momentum, "rmsprop": RMSProp, "adam": Adam}


def get(opt, lr=None) -> Optimizer:
    """An optimiser by name (`sgd`, `momentum`, `rmsprop`, `adam`) or the object itself
    (`lr`, when given, overrides its learning rate)."""
    if isinstance(opt, Optimizer):
        if lr is not None:
            opt.lr = float(lr)
        return opt
    if isinstance(opt, str):
        cls = _NAMES.get(opt.lower())
        if cls is None:
            raise ValueError(f"unknown optimizer '{opt}'; known: {', '.join(sorted(_NAMES))}")
        return cls(lr)
    raise TypeError(f"not an optimizer: {opt!r}")
