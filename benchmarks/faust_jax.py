"""Faust's own JAX back end, for the benchmarks that compare with it.

    dsp, state0 = faust_jax(dsp_text_or_path, sample_rate, n)   # or None if unavailable

`faust -lang jax -double` writes a flax module; it is loaded without flax (a stand-in
`nn.Module`), and its initial state gets every widget's initial value (the generated
`build_interface` calls `add_slider(state, key, ...)`-style methods). `state0` maps the
state's names (`fHslider0`, `fRec0`, ...) to jax arrays; `dsp.tick(state, inputs)` runs one
sample."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import numpy as np


def faust_jax(dsp, sample_rate: int, n: int):
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    faust = shutil.which("faust")
    if faust is None:
        return None
    jax.config.update("jax_enable_x64", True)
    with tempfile.TemporaryDirectory() as d:
        path = dsp
        if "\n" in dsp or not os.path.exists(dsp):
            path = os.path.join(d, "m.dsp")
            with open(path, "w") as f:
                f.write(dsp)
        out = os.path.join(d, "m.py")
        subprocess.run([faust, "-lang", "jax", "-double", path, "-o", out], check=True,
                       capture_output=True)
        code = open(out).read()
    code = code.replace("from jax.config import config", "config = __import__('jax').config")

    class _Module:                     # the generated class derives from flax's nn.Module
        pass
    nn = type("nn", (), {"Module": _Module})
    ns = {"jnp": jnp, "np": np, "json": json, "nn": nn, "jax": jax}
    exec(compile(code, "m.py", "exec"), ns)
    mod = ns["mydsp"]

    class _UI:   # build_interface's widget calls: a widget's state entry is its initial value
        def __getattr__(self, name):
            def add(state, key, path, label, init=0.0, *rest):
                state[key] = init
            return add
    state0 = mod.initialize(mod, sample_rate, None, n)
    mod.build_interface(_UI(), state0, None, n)
    return mod, {k: jnp.asarray(v) for k, v in state0.items()}
