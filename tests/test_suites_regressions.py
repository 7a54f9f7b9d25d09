"""Programs written here after failures of the compiler's and the libraries' own test suites
(tools/compiler-suite, tools/libtests-suite), each with the output of Faust 2.54.9 (made with
shared/tools/faust-ref, compute(1) per sample, double precision) written in. Both backends
must reproduce it."""
import numpy as np
import pytest

import faustdiff

CASES = {
    # faustlibraries' freeverb_demo test: Faust's normal form of a real product is its
    # coefficient times its factors in order of rate (constant, control, sample), so
    # int(s*46*SR/44100) is int(((46/44100)*SR)*s) = int(22.999999999999996) = 22, not 23,
    # however the product is written (stereo spread one sample shorter than ours was).
    "real_product_in_faust_normal_form": (
        'import("stdfaust.lib"); s = vslider("s", 0.5, 0, 1, 0.01);'
        "process = int(s * 46 * ma.SR / 44100), int((ma.SR * (s * 46)) / 44100),"
        "int(46 * s / 44100 * ma.SR), int(s * 46 * ma.SR / 44100 * 2 * 0.5),"
        "int(0.5 * 46 * ma.SR / 44100);",
        [[22, 22, 22, 22, 22]]),
}


@pytest.mark.parametrize("backend", ["interp", "numba"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_renders_like_faust(name, backend):
    src, ref = CASES[name]
    ref = np.array(ref, dtype=float).T
    prog = faustdiff.compile_source(src, f"{name}.dsp", backend=backend)
    out = prog.compute(None, ref.shape[1])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=0)
