"""`faustdiff json FILE.dsp`: the interface in the shape of `faust -json` (issue 14)."""
import json
import shutil
import subprocess

import pytest

from faustdiff.cli import ui_description

PROGRAMS = {
    "named.dsp": 'declare name "t";\ndeclare author "me";\n'
                 'process = _ * hslider("gain[scale:log][unit:dB]", 0.5, 0.1, 1, 0.01) '
                 ': vgroup("g", +(nentry("b", 0, 0, 1, 0.1)));\n',
    "plain.dsp": 'process = _ * button("go"), checkbox("on") : + '
                 ': hbargraph("level", 0, 2);\n',
    "groups.dsp": 'process = hgroup("h", vslider("[1]z", 1, 0, 2, 0.5) + '
                  'tgroup("t", hslider("[0]a", 0, -1, 1, 0.25)));\n',
}


def _strip(node):
    """What we compare: the ui tree without shortnames, numbers as floats."""
    if isinstance(node, list):
        return [_strip(n) for n in node]
    if isinstance(node, dict):
        return {k: (float(v) if isinstance(v, (int, float)) and k != "items" else _strip(v))
                for k, v in node.items() if k != "shortname"}
    return node


@pytest.mark.skipif(shutil.which("faust") is None, reason="the Faust compiler is not installed")
@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_matches_faust_json(tmp_path, name):
    dsp = tmp_path / name
    dsp.write_text(PROGRAMS[name])
    subprocess.run(["faust", "-json", str(dsp), "-o", str(tmp_path / "out.cpp")], check=True,
                   capture_output=True, cwd=tmp_path)
    ref = json.loads((tmp_path / (name + ".json")).read_text())
    ours = ui_description(PROGRAMS[name], str(dsp), 44100)
    for k in ("name", "filename", "inputs", "outputs"):
        assert ours[k] == ref[k], k
    want = {k: v for d in ref["meta"] for k, v in d.items()
            if k not in ("compile_options",) and not k.endswith(".lib/name")}
    assert {k: v for d in ours["meta"] for k, v in d.items()} == want
    assert _strip(ours["ui"]) == _strip(ref["ui"])


def test_cli_prints_json(tmp_path):
    from click.testing import CliRunner
    from faustdiff.cli import main
    dsp = tmp_path / "plain.dsp"
    dsp.write_text(PROGRAMS["plain.dsp"])
    r = CliRunner().invoke(main, ["json", str(dsp)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["ui"][0]["label"] == "plain"
