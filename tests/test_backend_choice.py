"""The default backend: Numba, except for programs too large for it to compile quickly."""
import numpy as np

import faustdiff
from faustdiff.backend.cache import NUMBA_NODE_LIMIT
from faustdiff.backend.program import Program


def test_a_very_large_program_runs_in_the_interpreter(capfd):
    n = NUMBA_NODE_LIMIT  # n inputs and n-1 additions: about twice the limit in nodes
    prog = faustdiff.compile_source("process = " + "+".join(["_"] * n) + ";", "big.dsp")
    assert isinstance(prog, Program)
    err = capfd.readouterr().err
    assert err.startswith(f"faustdiff: note: the program has {2 * n - 1} signal nodes; above "
                          f"{NUMBA_NODE_LIMIT} the Numba back end takes minutes to compile; "
                          "running it in the interpreter (--backend numba compiles it anyway)")
    out = prog.compute(np.ones((n, 3)))
    np.testing.assert_array_equal(out, [[n, n, n]])


def test_a_small_program_is_compiled_by_numba(capfd):
    prog = faustdiff.compile_source("process = _ * 2;", "small.dsp")
    assert not isinstance(prog, Program)
    assert "note" not in capfd.readouterr().err
