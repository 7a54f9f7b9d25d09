"""faustdiff.torch.FaustModule: a compiled Faust program as a PyTorch layer whose backward
is the compiled VJP."""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'faustdiff[torch]')")

import faustdiff  # noqa: E402
from conftest import LAYER_PROGRAM  # noqa: E402
from faustdiff.errors import FaustError  # noqa: E402
from faustdiff.torch import FaustModule  # noqa: E402

# a one-pole lowpass (a recursion) with a log-scaled cutoff and a per-sample gain
SRC = LAYER_PROGRAM


@pytest.fixture(scope="module")
def layer():
    return FaustModule(SRC, params=["cutoff", "drive"], signals=["gain"])


def _data(b=2, n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, 1, n, dtype=torch.float64, generator=g).requires_grad_()
    c = (0.2 + torch.rand(b, 1, n, dtype=torch.float64, generator=g)).requires_grad_()
    return x, c


def test_learnable_sliders_are_one_parameter_in_unit_coordinates(layer):
    assert layer.labels == ["cutoff", "drive"]
    assert [n for n, _ in layer.named_parameters()] == ["raw"]
    u = layer.raw.detach().numpy()
    assert u[0] == pytest.approx(np.log(1000 / 20) / np.log(20000 / 20))   # [scale:log]
    assert u[1] == pytest.approx((1 - 0.5) / 3.5)
    assert layer.values() == pytest.approx({"cutoff": 1000.0, "drive": 1.0})


def test_gradcheck_params_audio_and_controls(layer):
    x, c = _data()
    assert torch.autograd.gradcheck(lambda raw, x, c: layer(x, c), (layer.raw, x, c),
                                    eps=1e-6, atol=1e-6, rtol=1e-5)


def test_forward_is_the_plain_render_and_batch_is_one_at_a_time(layer):
    x, c = _data(b=3)
    y = layer(x, c)
    assert y.shape == (3, 1, 48) and y.dtype == torch.float64
    plain = faustdiff.compile_source(SRC, signals=["gain"])
    plain.set_param("cutoff", 1000.0)
    for k in range(3):
        plain.reset()
        ins = np.vstack([x[k].detach().numpy(), c[k].detach().numpy()])
        np.testing.assert_allclose(y[k].detach().numpy(), plain.compute(ins, 48), rtol=1e-12)
    # gradients of the batch are the sum of the elements' gradients
    y.sum().backward()
    total = layer.raw.grad.clone()
    layer.raw.grad = None
    parts = torch.zeros_like(total)
    for k in range(3):
        layer(x[k:k + 1], c[k:k + 1]).sum().backward()
        parts += layer.raw.grad
        layer.raw.grad = None
    torch.testing.assert_close(total, parts, rtol=1e-10, atol=0)


def test_float32_in_float32_out_with_float64_inside(layer):
    x, c = _data()
    x32 = x.detach().float().requires_grad_()
    c32 = c.detach().float().requires_grad_()
    y32 = layer(x32, c32)
    assert y32.dtype == torch.float32
    y32.sum().backward()
    assert x32.grad.dtype == torch.float32 and c32.grad.dtype == torch.float32
    y64 = layer(x32.detach().double(), c32.detach().double())
    torch.testing.assert_close(y32, y64.float())


def test_backward_after_another_forward_renders_its_batch_again(layer):
    x1, c1 = _data(seed=1)
    x2, c2 = _data(seed=2)
    y1 = layer(x1, c1)
    layer(x2, c2)                   # overwrites the programs' tapes
    y1.sum().backward()
    g_late = x1.grad.clone()
    x1.grad = None
    layer(x1, c1).sum().backward()
    torch.testing.assert_close(g_late, x1.grad, rtol=0, atol=0)


def test_carry_state_streams_blocks():
    m = FaustModule(SRC, params=["cutoff"], signals=["gain"], carry_state=True)
    x, c = _data(b=1, n=64)
    whole = FaustModule(SRC, params=["cutoff"], signals=["gain"])(x, c)
    a = m(x[..., :40], c[..., :40])
    b = m(x[..., 40:], c[..., 40:])
    torch.testing.assert_close(torch.cat([a, b], -1), whole, rtol=1e-12, atol=0)
    m.reset()
    torch.testing.assert_close(m(x[..., :40], c[..., :40]), a, rtol=0, atol=0)


def test_a_training_loop_recovers_a_cutoff():
    src = ('import("stdfaust.lib"); fc = hslider("cutoff [scale:log]", 300, 20, 20000, 1);'
           'p = exp(-2 * ma.PI * fc / ma.SR); process = *(1 - p) : + ~ *(p);')
    m = FaustModule(src)
    assert m.labels == ["cutoff"]
    x = torch.randn(4, 1, 2048, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    target = FaustModule(src)
    target.set_values({"cutoff": 3000.0})
    with torch.no_grad():
        t = target(x)
    opt = torch.optim.Adam(m.parameters(), lr=0.05)
    for _ in range(150):
        opt.zero_grad()
        loss = ((m(x) - t) ** 2).mean()
        loss.backward()
        opt.step()
    assert m.values()["cutoff"] == pytest.approx(3000.0, rel=1e-3)


@pytest.mark.parametrize("call, message", [
    (lambda m: m(torch.zeros(2, 3, 8), torch.zeros(2, 1, 8)),
     "error: FaustModule: x must have shape (batch, 1, n), got (2, 3, 8)"),
    (lambda m: m(torch.zeros(2, 1, 8)),
     "error: FaustModule: pass controls of shape (batch, 1, n) for the signals gain"),
    (lambda m: m(torch.zeros(2, 1, 8), torch.zeros(2, 1, 9)),
     "error: FaustModule: x and controls differ in batch or length: (2, 1, 8) and (2, 1, 9)"),
    (lambda m: m(torch.full((1, 1, 4), float("nan")), torch.zeros(1, 1, 4)),
     "error: FaustModule: x holds NaN or infinity"),
    (lambda m: m.set_values({"nope": 1.0}),
     "error: unknown parameter(s) nope; learnable: cutoff, drive"),
])
def test_errors_name_the_mismatch(layer, call, message):
    with pytest.raises(FaustError) as e:
        call(layer)
    assert str(e.value) == message


def test_a_dsp_file_path(tmp_path):
    f = tmp_path / "gain.dsp"
    f.write_text('process = *(hslider("g", 0.5, 0, 1, 0.01));\n')
    m = FaustModule(str(f))
    y = m(torch.ones(1, 1, 4, dtype=torch.float64))
    torch.testing.assert_close(y, torch.full((1, 1, 4), 0.5, dtype=torch.float64))


def test_parameter_gradients_without_input_gradients_are_the_same(layer):
    x, c = _data(seed=4)
    layer.raw.grad = None
    layer(x, c).pow(2).sum().backward()       # x, c require grad: the dL/dx program
    full = layer.raw.grad.clone()
    layer.raw.grad = None
    layer(x.detach(), c.detach()).pow(2).sum().backward()   # sliders only: input_grads=False
    torch.testing.assert_close(layer.raw.grad, full, rtol=1e-12, atol=0)
    assert len(layer._pools[False]) >= 1


def test_batch_elements_on_threads_equal_one_at_a_time():
    # threads=4 renders and differentiates the 5 elements concurrently (the kernels are
    # compiled nogil): the same outputs and gradients, bit for bit, in element order
    x, c = _data(b=5, n=64, seed=4)
    results = []
    for threads in (1, 4):
        lay = FaustModule(SRC, params=["cutoff", "drive"], signals=["gain"], threads=threads)
        xx, cc = x.detach().clone().requires_grad_(), c.detach().clone().requires_grad_()
        y = lay(xx, cc)
        (y * torch.linspace(-1, 1, 64, dtype=torch.float64)).sum().backward()
        results.append((y.detach(), lay.raw.grad.clone(), xx.grad.clone(), cc.grad.clone()))
    for a, b in zip(*results):
        assert torch.equal(a, b)
    prog = lay._programs(1)[0]
    for part in (prog.forward, prog.backward):
        assert part.KERNELS[0].targetoptions["nogil"] is True


def test_threads_must_be_a_positive_integer():
    with pytest.raises(FaustError) as e:
        FaustModule(SRC, params=["cutoff"], threads=0)
    assert str(e.value) == "error: FaustModule: threads must be a positive integer, got 0"
