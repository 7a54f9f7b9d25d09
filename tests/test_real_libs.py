"""`import("stdfaust.lib")` against the real Faust libraries (Debian's faust package).

Each program is rendered by faustdiff with `-I /usr/share/faust` and by the real compiler
(`shared/tools/faust-ref`), and compared sample by sample. Skipped only when the package (or
g++) is absent.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

FAUST_LIBS = Path("/usr/share/faust")
FAUST_REF = Path(__file__).resolve().parents[2] / "shared" / "tools" / "faust-ref"

pytestmark = pytest.mark.skipif(
    not (FAUST_LIBS.joinpath("stdfaust.lib").exists() and shutil.which("faust")
         and shutil.which("g++") and FAUST_REF.exists()),
    reason="needs Debian's faust package, g++ and shared/tools/faust-ref")

PROGRAMS = {
    "osc_noise": "process = os.osc(440), os.osc(1234.5), no.noise;",
    "lowpass": "process = no.noise <: fi.lowpass(2, 1000), fi.lowpass(5, 3000), fi.highpass(3, 500);",
    "fdelay": 'process = no.noise <: de.fdelay(1024, 10.5), de.fdelay(64, hslider("d", 3.25, 0, 60, 0.01)), de.delay(100, 37);',
    "freeverb": "process = no.noise : re.mono_freeverb(0.5, 0.5, 0.5, 10);",
    "tanh_smooth": "process = no.noise <: ma.tanh, si.smooth(0.9), ba.slidingMean(8);",
    # its fanflip rule for N = 8 matches (N, 2) : / only when 8/2 is the int 4, as in Faust
    "zita_rev1": "process = no.noise <: re.zita_rev1_stereo(0, 200, 6000, 3, 2, 44100);",
}

N = 4000


def render_ref(path: Path) -> np.ndarray:
    out = subprocess.run([str(FAUST_REF), str(path), str(N)], capture_output=True, text=True,
                         check=True).stdout
    rows = [r.split(",") for r in out.strip().splitlines()[1:]]
    return np.array(rows, dtype=float).T


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_real_library_program_matches_faust(name, tmp_path):
    src = 'import("stdfaust.lib");\n' + PROGRAMS[name] + "\n"
    dsp = tmp_path / f"{name}.dsp"
    dsp.write_text(src)
    out = tmp_path / "out.npy"
    subprocess.run([sys.executable, "-m", "faustdiff.cli", "run", str(dsp), "-I", str(FAUST_LIBS),
                    "--samples", str(N), "-o", str(out)], check=True, cwd=tmp_path)
    got = np.load(out)
    ref = render_ref(dsp)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("expr", ["fi.fir((0.5, 0.25, 0.125))", "fi.fir(0.3)", "fi.conv((1, 2))",
                                  "fi.iir((1, 0.5), 0.1)", "fi.iir((1, 0.5, 0.25), (0.1, 0.2))"])
def test_bundled_filters_have_faust_box_structure(expr):
    """Programs that pattern-match on block diagrams (faust-ddsp's fwdAD) see our bundled
    fi.fir/fi.iir exactly as they see the real libraries' (the same normal-form box)."""
    from faustdiff import api
    src = f'import("stdfaust.lib"); process = {expr};'
    ours = api.evaluate_source(src, "f.dsp")
    real = api.evaluate_source(src, "f.dsp", include=(str(FAUST_LIBS),))
    assert ours == real
