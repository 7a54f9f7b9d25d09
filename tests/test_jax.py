"""faustdiff.jax.faust_function: a compiled Faust program as a JAX function with a
custom VJP (the compiled backward pass) through pure_callback."""
import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="JAX is not installed (pip install 'faustdiff[jax]')")
jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
from jax.test_util import check_grads  # noqa: E402

import faustdiff  # noqa: E402
from conftest import LAYER_PROGRAM  # noqa: E402
from faustdiff.errors import FaustError  # noqa: E402
from faustdiff.jax import faust_function  # noqa: E402

SRC = LAYER_PROGRAM


@pytest.fixture(scope="module")
def fn_params():
    return faust_function(SRC, params=["cutoff", "drive"], signals=["gain"])


def _data(n=40, seed=0, b=None):
    rng = np.random.default_rng(seed)
    shape = (1, n) if b is None else (b, 1, n)
    return jnp.asarray(rng.standard_normal(shape)), jnp.asarray(0.2 + rng.random(shape))


def test_render_equals_the_plain_program(fn_params):
    fn, p0 = fn_params
    assert p0 == pytest.approx({"cutoff": np.log(50) / np.log(1000), "drive": 0.5 / 3.5})
    x, c = _data()
    y = fn(p0, x, c)
    plain = faustdiff.compile_source(SRC, signals=["gain"])
    np.testing.assert_allclose(np.asarray(y), plain.compute(np.vstack([x, c]), 40), rtol=1e-12)


def test_check_grads_reverse_wrt_params_x_and_controls(fn_params):
    fn, p0 = fn_params
    x, c = _data()
    check_grads(lambda p, x, c: fn(p, x, c), (p0, x, c), order=1, modes=["rev"],
                eps=1e-6, atol=1e-6, rtol=1e-5)


def test_jit_grad_and_vmap(fn_params):
    fn, p0 = fn_params
    xb, cb = _data(b=3)
    t = jnp.zeros((1, 40))

    def loss(p, x, c):
        return jnp.mean((fn(p, x, c) - t) ** 2)
    g_batch = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0, 0)))(p0, xb, cb)
    for k in range(3):
        g = jax.jit(jax.grad(loss))(p0, xb[k], cb[k])
        for lab in p0:
            assert float(g_batch[lab][k]) == pytest.approx(float(g[lab]), rel=1e-12)
    y = jax.vmap(fn, in_axes=(None, 0, 0))(p0, xb, cb)
    assert y.shape == (3, 1, 40)


def test_gradient_descent_recovers_a_cutoff():
    src = ('import("stdfaust.lib"); fc = hslider("cutoff [scale:log]", 300, 20, 20000, 1);'
           'p = exp(-2 * ma.PI * fc / ma.SR); process = *(1 - p) : + ~ *(p);')
    fn, p0 = faust_function(src)
    x = jnp.asarray(np.random.default_rng(1).standard_normal((1, 2048)))
    spec = fn.program.param_specs[0]
    t = fn({"cutoff": float(spec.to_unit(3000.0))}, x)
    step = jax.jit(jax.value_and_grad(lambda p: jnp.mean((fn(p, x) - t) ** 2)))
    p, m, v = dict(p0), 0.0, 0.0
    for k in range(1, 201):   # Adam by hand (no optax needed)
        _, g = step(p)
        m = 0.9 * m + 0.1 * g["cutoff"]
        v = 0.999 * v + 0.001 * g["cutoff"] ** 2
        p["cutoff"] = p["cutoff"] - 0.02 * (m / (1 - 0.9 ** k)) / (jnp.sqrt(v / (1 - 0.999 ** k)) + 1e-12)
    assert float(spec.from_unit(p["cutoff"])) == pytest.approx(3000.0, rel=1e-3)


@pytest.mark.parametrize("args, message", [
    (lambda p, x, c: (p, jnp.zeros((2, 8)), c),
     "error: faust_function: x must have shape (1, n), got (2, 8)"),
    (lambda p, x, c: (p, x, None),
     "error: faust_function: controls must have shape (1, n) for gain, got None"),
    (lambda p, x, c: ({"cutoff": 0.5}, x, c),
     "error: faust_function: params must have exactly the keys cutoff, drive; missing: drive"),
])
def test_errors(fn_params, args, message):
    fn, p0 = fn_params
    x, c = _data()
    with pytest.raises(FaustError) as e:
        fn(*args(p0, x, c))
    assert str(e.value) == message


def test_the_readme_snippets_run():
    """README's "Use from PyTorch" and "Use from JAX" code, as written."""
    pytest.importorskip("torch", reason="PyTorch is not installed")
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    part = text[text.index("## Use from PyTorch"):text.index("## Automatic differentiation")]
    scope: dict = {}
    torch_code, jax_code = re.findall(r"```python\n(.*?)```", part, re.S)
    exec(torch_code, scope)
    assert scope["layer"].raw.grad is not None and scope["gain"].grad.shape == (16, 1, 44100)
    exec(jax_code, scope)
    assert set(scope["grads"]) == {"cutoff"} and scope["batch"].shape == (1, 1, 4410)
