"""`faustdiff.backend.finite`: where the first NaN or infinity of a render comes from."""
from __future__ import annotations

import numpy as np

from faustdiff import api

from faustdiff.backend import finite


def explain(src: str, x):
    prog = api.compile_source(src, "f.dsp", backend="interp")
    ins = np.array([x], dtype=float) if prog.num_inputs else None
    with np.errstate(all="ignore"):
        out = prog.compute(ins, len(x))
    err = finite.check(prog, out, [(l, prog.bargraphs[l]) for l in prog.bargraph_labels],
                       ins, lambda: None)
    return str(err) if err else None


HEAD = "non-finite value: output 0 is "
TAIL = " (the first NaN or infinity of the render); it comes from "


def test_finite_renders_pass():
    assert explain("process = _ * 2;", [1, 2, 3]) is None


def test_through_a_recursion():
    assert explain("process = + ~ (_ * 10 : exp);", [1, 0, 0, 0, 0, 0]) == \
        "f.dsp:1:16: error: " + HEAD + "+inf at sample 2" + TAIL + "exp(_ * 10)"


def test_through_a_delay_to_an_earlier_sample():
    assert explain("process = log(_) : @(2);", [0, 1, 1, 1]) == \
        "f.dsp:1:11: error: " + HEAD + "-inf at sample 2" + TAIL + "log(_) at sample 0"


def test_only_the_selected_branch_counts():
    # at sample 1 both branches are NaN, only sqrt (selected by x > 0 == 0) reaches the output
    src = "process = _ <: select2(_ > 0, sqrt(_ - 5), log(_));"
    assert explain(src, [9, -1]) == \
        "f.dsp:1:31: error: " + HEAD + "NaN at sample 1" + TAIL + "sqrt(_ - 5)"


def test_a_non_finite_input():
    assert explain("process = _ * 2 + 1;", [1, np.inf]) == \
        "error: " + HEAD + "+inf at sample 1" + TAIL + "input 0"


def test_first_nonfinite_prefers_the_earliest_sample_then_outputs():
    hit = finite.first_nonfinite(np.array([[1, 1, np.nan], [1, np.inf, 1]]),
                                 [("bargraph", "b", [np.nan, 1, 1])])
    assert (hit.t, hit.name, finite.describe(hit.value)) == (0, "bargraph 'b'", "NaN")
    hit = finite.first_nonfinite(np.array([[1, 1, np.nan], [1, -np.inf, 1]]))
    assert (hit.t, hit.name, finite.describe(hit.value)) == (1, "output 1", "-inf")
