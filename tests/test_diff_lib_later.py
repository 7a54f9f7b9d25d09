"""diff.lib's later faust-ddsp API: what goes beyond faust-ddsp (its semantics are checked by
tests/conformance/ddsp against the real Faust compiler with faust-ddsp's own library).

* env's extra activations (tanh, leaky ReLU, GELU) against their closed forms and
  derivatives;
* weightsAndBiasesRandom: deterministic, in range, different per seed;
* `var`: the seed's var(I, x, nvars) and the neural-networks branch's var(meter, init) in
  both diff.lib and diff-nn.lib;
* user errors in these names are reported at the user's call.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import faustdiff
from faustdiff.errors import FaustError



ACT = """
df = library("diff.lib");
v = df.vars((hslider("a", 1, 0, 2, .1)));
d = df.env(v);
z = (+(1) ~ _) / 64 - 4;
process = z <: (d.input, v.var(1) : d.diff(*)) <: d.activations.tanh,
    d.activations.leakyRelu(.1), d.activations.gelu;
"""


def test_extra_activations_and_their_partials():
    out = faustdiff.compile_source(ACT, "<act>").compute(n=512)
    z = np.arange(1, 513) / 64 - 4            # u = a z with a = 1: du/da = z
    t = np.tanh(z)
    c = math.sqrt(2 / math.pi)
    th = np.tanh(c * (z + 0.044715 * z ** 3))
    gelu = 0.5 * z * (1 + th)
    dgelu = 0.5 * (1 + th) + 0.5 * z * (1 - th ** 2) * c * (1 + 3 * 0.044715 * z ** 2)
    expected = [t, (1 - t ** 2) * z, np.where(z >= 0, z, .1 * z), np.where(z >= 0, 1, .1) * z,
                gelu, dgelu * z]
    for got, want in zip(out, expected):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_tanh_saturates_without_nan():
    src = ACT.replace("z = (+(1) ~ _) / 64 - 4;", "z = (+(1) ~ _) * 100;")
    out = faustdiff.compile_source(src, "<act>").compute(n=8)
    assert out[0].tolist() == [1.0] * 8 and out[1].tolist() == [0.0] * 8


RANDOM = """
df = library("diff.lib");
S = ((3, 2, 1, 3));
v = df.weightsAndBiasesRandom(S, SEED);
process = par(i, v.N, 0 : v.var(i + 1) : _, par(j, v.N, !));
"""


def _initial(seed):
    out = faustdiff.compile_source(RANDOM.replace("SEED", str(seed)), "<w>").compute(n=1)
    return out[:, 0]


def test_random_weights_are_deterministic_in_range_and_seeded():
    w = _initial(1)
    assert len(w) == 3 * 3 + 1 * 4       # (2 weights + bias) x 3, then 3 weights + bias
    assert np.array_equal(w, _initial(1))
    assert not np.array_equal(w, _initial(2))
    weights = np.r_[w[0:2], w[3:5], w[6:8]]
    assert np.all(np.abs(weights) <= 1 / math.sqrt(2)) and len(set(weights)) == 6
    assert np.all(np.abs(w[9:12]) <= 1 / math.sqrt(3))
    assert w[2] == w[5] == w[8] == w[12] == 0.0      # biases


@pytest.mark.parametrize("lib", ["diff.lib", "diff-nn.lib"])
def test_var_is_both_the_seeds_and_the_neural_networks_branchs(lib):
    src = f"""
df = library("{lib}");
process = df.var(hbargraph("p", -1, 1), 0.5), df.var(hbargraph("q", -1, 1)), df.var(2, 7, 3);
"""
    p = faustdiff.compile_source(src, "<nn>")
    assert (p.num_inputs, p.num_outputs) == (3, 6)
    ins = np.array([[0.1] * 4, [0.2] * 4, [0.1] * 4])
    out = p.compute(ins, 4)
    # var(meter, init): p[n] = (accumulated -steps) + init: 0.4, 0.3, 0.2, 0.1
    np.testing.assert_allclose(out[0], [0.4, 0.3, 0.2, 0.1], rtol=1e-15)
    # var(meter): init is its first input, the step its second
    np.testing.assert_allclose(out[1], [0.1, 0.0, -0.1, -0.2], rtol=1e-15, atol=1e-16)
    # var(I, x, nvars): x, then the one-hot vector of its partials
    assert out[2:, 0].tolist() == [7, 0, 1, 0]
    assert p.bargraph_labels == ["p", "q"]


def test_a_wrong_env_call_is_reported_at_the_users_line():
    src = 'df = library("diff.lib");\nv = df.vars((1, 2));\nd = df.env(v);\nprocess = d.sumall(2) : d.diff(+);\n'
    with pytest.raises(FaustError) as e:
        faustdiff.compile_source(src, "prog.dsp")
    assert str(e.value) == (
        "prog.dsp:4:11: error: ERROR in sequential composition A:B\n"
        "The number of outputs [3] of A must be equal to the number of inputs [6] of B\n\n"
        "Here  A = __fd_dual_seed(+, 2),(0 : !);\nhas 3 outputs\n\n"
        "while B = __fd_dual_seed(+, 2);\nhas 6 inputs")


def test_the_mlp_waveshaper_example_learns_its_curve_from_python():
    from conftest import EXAMPLES
    from faustdiff.learn.train import Trainer
    tr = Trainer(EXAMPLES / "mlp_waveshaper.dsp", params="auto", loss="l2", optimizer="adam",
                 lr=0.02)
    assert len(tr.labels) == 16 * 2 + 16 * 17 + 17
    assert tr.grad_mode == "reverse"      # grad_mode="auto": reverse above two parameters
    x = np.linspace(-1, 1, 256)[None]
    result = tr.fit(x, np.sin(np.pi * x) / 2, steps=100)
    assert result.losses[0] > 0.1
    assert result.losses[-1] < 1e-3


def test_random_init_matches_the_faust_compiler_values():
    # rendered by Faust 2.54.9 (-double): df.randomInit(1, 0, 0, 0), (1, 0, 0, 1), (2, 1, 0, 1)
    src = 'df = library("diff.lib");\nprocess = df.randomInit(1, 0, 0, 0), df.randomInit(1, 0, 0, 1), df.randomInit(2, 1, 0, 1);'
    out = faustdiff.compile_source(src, "<r>").compute(n=1)[:, 0]
    expected = [2 * u - 1 for u in (0.4113277170859872, 0.25841748353951494, 0.84157942274658915)]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-15)
