"""A Faust program as a JAX function (`pip install faustdiff[jax]`).

    from faustdiff.jax import faust_function
    fn, params0 = faust_function("filter.dsp", params=["cutoff"], signals=["gain"])
    y = fn(params0, x, controls)                    # x (channels, n), controls (1, n)
    g = jax.grad(lambda p: jnp.mean((fn(p, x, c) - t) ** 2))(params0)

`fn(params, x, controls=None)` renders the compiled program from its reset state; params is
a dict label -> normalised value in [0, 1] (the training code's coordinates, `[scale:log]`
honoured; clamped to [0, 1], zero gradient outside). Its derivative is a `jax.custom_vjp`
over the compiled forward and VJP, called through `jax.pure_callback`: it works under
`jax.jit`, `jax.grad`, `jax.value_and_grad` and `jax.vmap` (a batch runs its elements in
turn on the host). The backward callback renders the example again before its VJP (one
extra forward render per gradient): the callbacks keep no state between calls, so any order
of evaluation JAX chooses is right. Computation is float64; the result has x's dtype (or
float32/float64 as JAX's x64 setting says, for programs without inputs).
"""
from __future__ import annotations

import threading
from typing import Sequence

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as e:   # pragma: no cover - exercised only without the extra
    raise ImportError("faustdiff.jax needs JAX: pip install 'faustdiff[jax]'") from e

from .ad.params import from_units
from .errors import FaustError

__all__ = ["faust_function"]


class _Host:
    """The compiled reverse-mode program and the host side of the callbacks (one call at
    a time: the program's buffers are shared)."""

    def __init__(self, program, specs):
        self.program, self.specs = program, specs
        self.lock = threading.Lock()

    def _render(self, u, xs) -> np.ndarray:
        p = self.program
        for s, v in zip(self.specs, from_units(self.specs, u)[0]):
            p.set_param(s.label, v)
        p.reset()
        xs = np.asarray(xs, dtype=np.float64)
        if not np.all(np.isfinite(xs)):
            raise FaustError("faust_function: x or controls hold NaN or infinity")
        return p.compute(xs, xs.shape[1])

    def forward(self, u, xs, n: int) -> np.ndarray:
        with self.lock:
            return self._render(u, np.asarray(xs).reshape(-1, n))

    def backward(self, u, xs, ct, n: int) -> tuple:
        with self.lock:
            self._render(u, np.asarray(xs).reshape(-1, n))
            dp, dx = self.program.vjp(np.asarray(ct, dtype=np.float64))
        return dp * from_units(self.specs, u)[1], dx


def faust_function(dsp: str, params=None, signals: Sequence[str] = (),
                   sample_rate: float = 44100, include: Sequence[str] = ()):
    """(fn, params0): `fn(params, x, controls=None)` renders the program (see the module
    docstring); params0 maps each learnable slider's label to its initial normalised value.

    dsp -- a .dsp path or Faust source; params -- labels, "auto" ([diff:on]) or None (every
    slider not in `signals`); signals -- sliders driven per sample by `controls`."""
    from .api import compile_source, layer_source
    signals = [str(s) for s in signals]
    text, filename, wrt = layer_source(dsp, params, signals, sample_rate, include)
    program = compile_source(text, filename, sample_rate, include, wrt=wrt, mode="reverse",
                             signals=signals)
    specs = list(program.param_specs)
    labels = [s.label for s in specs]
    host = _Host(program, specs)
    n_in = program.num_inputs - len(signals)
    n_out = program.num_outputs

    def _inputs(x, controls):
        parts = []
        if n_in:
            if x is None or jnp.ndim(x) != 2 or jnp.shape(x)[0] != n_in:
                got = None if x is None else tuple(jnp.shape(x))
                raise FaustError(f"faust_function: x must have shape ({n_in}, n), got {got}")
            parts.append(x)
        if signals:
            if controls is None or jnp.ndim(controls) != 2 or \
                    jnp.shape(controls)[0] != len(signals):
                got = None if controls is None else tuple(jnp.shape(controls))
                raise FaustError(f"faust_function: controls must have shape "
                                 f"({len(signals)}, n) for {', '.join(signals)}, got {got}")
            parts.append(controls)
        if not parts:
            raise FaustError("faust_function: this program has no inputs; "
                             "use fn(params, jnp.zeros((0, n)))")
        lens = {jnp.shape(p)[1] for p in parts}
        if len(lens) > 1:
            raise FaustError("faust_function: x and controls differ in length")
        return parts

    def _render_dtype(xs):
        return xs.dtype if jnp.issubdtype(xs.dtype, jnp.floating) else jnp.float64

    @jax.custom_vjp
    def render(u, xs):
        n = xs.shape[1]
        out = jax.ShapeDtypeStruct((n_out, n), _render_dtype(xs))
        return jax.pure_callback(lambda u_, x_: host.forward(u_, x_, n).astype(out.dtype),
                                 out, u, xs, vmap_method="sequential")

    def render_fwd(u, xs):
        return render(u, xs), (u, xs)

    def render_bwd(res, ct):
        u, xs = res
        n = xs.shape[1]
        shapes = (jax.ShapeDtypeStruct(u.shape, u.dtype),
                  jax.ShapeDtypeStruct(xs.shape, xs.dtype))

        def cb(u_, x_, c_):
            du, dx = host.backward(u_, x_, c_, n)
            return du.astype(shapes[0].dtype), dx.astype(shapes[1].dtype)
        return jax.pure_callback(cb, shapes, u, xs, ct, vmap_method="sequential")

    render.defvjp(render_fwd, render_bwd)

    def fn(params: dict, x=None, controls=None):
        unknown = set(params) - set(labels)
        missing = set(labels) - set(params)
        if unknown or missing:
            raise FaustError(f"faust_function: params must have exactly the keys "
                             f"{', '.join(labels) or '(none)'}"
                             + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
                             + (f"; missing: {', '.join(sorted(missing))}" if missing else ""))
        if n_in == 0 and not signals:
            xs = jnp.asarray(x) if x is not None else None
            if xs is None or jnp.ndim(xs) != 2:
                raise FaustError("faust_function: this program has no inputs; "
                                 "pass x = jnp.zeros((0, n)) to say n")
        else:
            xs = jnp.concatenate([jnp.asarray(p) for p in _inputs(x, controls)], 0)
        u = jnp.stack([jnp.asarray(params[lab], dtype=xs.dtype if
                                   jnp.issubdtype(xs.dtype, jnp.floating) else None)
                       for lab in labels]) if labels else jnp.zeros((0,), xs.dtype)
        return render(u, xs)

    params0 = {s.label: float(s.to_unit(s.init)) for s in specs}
    fn.labels = labels
    fn.program = program
    return fn, params0
