"""Learned parameters back to Faust: `--export learned.dsp` (the source with learned
defaults) and `--preset learned.json`."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import faustdiff
from faustdiff.errors import FaustError
from faustdiff.learn.export import export_source

MODEL = """// a model
import("stdfaust.lib");
fc = hslider("cutoff [scale:log][unit:Hz]", 300, 20, 20000, 1);
g = nentry("gain", -6.5, -60, 0, 0.1) : ba.db2linear;
process = *(g) : fi.lowpass(1, fc) : *(vgroup("v", hslider("cutoff", 300, 20, 20000, 1)) > 0);
"""


def test_export_replaces_only_the_learned_defaults():
    out = export_source(MODEL, "m.dsp", {"cutoff": 1234.5678901234567, "gain": -3.0})
    assert out == MODEL.replace('Hz]", 300,', 'Hz]", 1234.5678901234567,') \
                       .replace('"gain", -6.5,', '"gain", -3.0,') \
                       .replace('("cutoff", 300,', '("cutoff", 1234.5678901234567,')
    p = faustdiff.compile_source(out, "m.dsp")
    assert p.params["gain"] == -3.0


@pytest.mark.parametrize("src, values, message", [
    ('process = hslider("a", 1 + 1, 0, 9, 1);', {"a": 3.0},
     "error: m.dsp:1:11: cannot export 'a': its default is not a number literal"),
    ('process = hslider("a", 1, 0, 9, 1);', {"b": 3.0},
     "error: m.dsp: cannot export 'b': no slider with that label in this file "
     "(defined in a library?)"),
])
def test_export_errors(src, values, message):
    with pytest.raises(FaustError) as e:
        export_source(src, "m.dsp", values)
    assert str(e.value) == message


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`faustdiff train --export --preset` on a one-pole whose cutoff is hidden."""
    from click.testing import CliRunner
    from faustdiff.cli import main
    d = tmp_path_factory.mktemp("export")
    model = d / "model.dsp"
    model.write_text('import("stdfaust.lib");\n'
                     'fc = hslider("h:filter/cutoff [scale:log]", 300, 20, 20000, 1);\n'
                     'process = fi.lowpass(1, fc);\n')
    hidden = faustdiff.compile_file(str(model))
    hidden.set_param("cutoff", 2000.0)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 4096))
    np.save(d / "x.npy", x)
    np.save(d / "t.npy", hidden.compute(x, 4096))
    r = CliRunner().invoke(main, ["train", str(model), "--input", str(d / "x.npy"),
                                  "--target", str(d / "t.npy"), "--params", "cutoff",
                                  "--steps", "150", "--lr", "0.05", "-q",
                                  "--export", str(d / "learned.dsp"),
                                  "--preset", str(d / "learned.json")])
    assert r.exit_code == 0, r.output
    return d, x


def test_cli_export_and_preset(trained):
    d, x = trained
    preset = json.loads((d / "learned.json").read_text())
    assert set(preset) == {"values", "paths", "source"}
    assert preset["paths"] == {"cutoff": "/filter/cutoff"} and preset["source"] == "model.dsp"
    learned = preset["values"]["cutoff"]
    assert learned == pytest.approx(2000.0, rel=1e-3)
    exported = faustdiff.compile_file(str(d / "learned.dsp"))
    assert exported.params["cutoff"] == learned          # the default is the learned value
    model = faustdiff.compile_file(str(d / "model.dsp"))
    model.set_param("cutoff", learned)
    np.testing.assert_array_equal(exported.compute(x, 4096), model.compute(x, 4096))


@pytest.mark.skipif(not shutil.which("faust"), reason="needs Debian's faust")
def test_the_real_compiler_reads_the_learned_default(trained):
    d, _ = trained
    learned = json.loads((d / "learned.json").read_text())["values"]["cutoff"]
    subprocess.run(["faust", "-json", "-o", "/dev/null", "learned.dsp"], cwd=d, check=True,
                   capture_output=True)
    ui = json.loads((d / "learned.dsp.json").read_text())["ui"]

    def items(xs):
        for it in xs:
            yield it
            yield from items(it.get("items", []))
    (slider,) = [it for it in items(ui) if it.get("label") == "cutoff"]
    assert float(slider["init"]) == pytest.approx(learned, rel=1e-6)


FAUST_REF = Path(__file__).resolve().parents[2] / "shared" / "tools" / "faust-ref"


@pytest.mark.skipif(not (shutil.which("faust") and shutil.which("g++") and FAUST_REF.exists()),
                    reason="needs Debian's faust, g++ and shared/tools/faust-ref beside the "
                           "repository (to build the exported file with the real compiler)")
def test_the_real_compiler_renders_the_exported_file_as_the_trained_model(trained):
    """The file `train --export` wrote, compiled by Faust 2.54.9 (-double, with its own
    libraries) and rendered on the training input, equals the trained model's render."""
    d, x = trained
    learned = json.loads((d / "learned.json").read_text())["values"]["cutoff"]
    n = x.shape[1]
    (d / "x.csv").write_text("".join("%.17g\n" % v for v in x[0]))
    out = subprocess.run([str(FAUST_REF), str(d / "learned.dsp"), str(n), str(d / "x.csv")],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "FAUST_REF_CACHE": str(d / "faust-ref-cache")}).stdout
    lines = out.splitlines()
    assert lines[0] == "out0" and len(lines) == n + 1
    ref = np.array([float(v) for v in lines[1:]])
    model = faustdiff.compile_file(str(d / "model.dsp"))
    model.set_param("cutoff", learned)
    got = model.compute(x, n)[0]
    assert np.max(np.abs(got)) > 0.1                    # a real signal, not silence
    np.testing.assert_allclose(ref, got, rtol=0, atol=1e-9)


def test_trainer_result_export(tmp_path):
    src = 'process = *(hslider("g", 0.2, 0, 1, 0.01));'
    t = faustdiff.learn.train.Trainer(src, params=["g"], lr=0.05)
    x = np.ones((1, 64))
    res = t.fit(x, 0.7 * x, steps=100)
    res.export(str(tmp_path / "g.dsp"))
    res.write_preset(str(tmp_path / "g.json"))
    assert (tmp_path / "g.dsp").read_text() == src.replace("0.2,", f"{res.params['g']!r},")
    assert json.loads((tmp_path / "g.json").read_text())["paths"] == {"g": "/g"}
