"""Every conformance case (tests/conformance/{faust,diff}, a copy of ../shared/conformance made
by tools/sync-conformance, and our own tests/conformance/local) rendered through the Python
API and compared with the reference
made by the real Faust compiler, plus a few cases through the `faustdiff` command line.

A case is run like ../shared/tools/run-conformance does: `// set: label=value ...` lines set
controls, NAME.in.csv is the input, as many samples as the reference has rows are rendered,
and the result is compared by tests/conformance/compare-csv (the shared tool itself: outputs
by position, bargraphs by label, |a-b| <= T + T|b|, T from `// tolerance:`, default 1e-9).
"""
from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.util
import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from faustdiff import audio_io
from conftest import CONFORMANCE, cli_command


def _load_compare_csv():
    loader = importlib.machinery.SourceFileLoader("compare_csv", str(CONFORMANCE / "compare-csv"))
    spec = importlib.util.spec_from_loader("compare_csv", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


compare_csv = _load_compare_csv()


@dataclass(frozen=True)
class Case:
    dsp: Path
    settings: tuple[tuple[str, float], ...]
    tolerance: str
    samples: int

    @property
    def name(self) -> str:
        return self.dsp.stem

    @property
    def ref(self) -> Path:
        return self.dsp.with_suffix(".ref.csv")

    @property
    def input(self) -> Path | None:
        p = self.dsp.with_suffix(".in.csv")
        return p if p.exists() else None

    def compare(self, actual: Path) -> str:
        """compare-csv's verdict: "ok" or its first mismatches."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            compare_csv.main([str(actual), str(self.ref), "--tol", self.tolerance])
        return out.getvalue().strip()


def load_case(dsp: Path) -> Case:
    text = dsp.read_text()
    settings = []
    for line in re.findall(r"^// set: (.*)$", text, re.M):
        for kv in line.split():
            label, _, value = kv.partition("=")
            settings.append((label, float(value)))
    tol = re.search(r"^// tolerance: (\S+)", text, re.M)
    with open(dsp.with_suffix(".ref.csv")) as f:
        rows = sum(1 for line in f if line.strip()) - 1
    return Case(dsp, tuple(settings), tol.group(1) if tol else "1e-9", rows)


def cases(suite: str):
    params = []
    for dsp in sorted((CONFORMANCE / suite).glob("*.dsp")):
        if not dsp.with_suffix(".ref.csv").exists():
            continue
        params.append(pytest.param(load_case(dsp), id=f"{suite}/{dsp.stem}"))
    return params


FAUST_CASES = cases("faust")
DIFF_CASES = cases("diff")
LOCAL_CASES = cases("local")  # ours: `// set:` lines, bargraph labels with metadata
# faust-ddsp's later API (its main and neural-networks branches), rendered with its own library
DDSP_CASES = cases("ddsp")


def test_the_suite_is_there():
    assert len(FAUST_CASES) >= 36 and len(DIFF_CASES) >= 12 and len(LOCAL_CASES) >= 2
    assert len(DDSP_CASES) >= 17


@pytest.fixture(scope="session")
def compiled():
    """``compiled(case)``: the case's Program, compiled once per session, reset to its
    initial state and default controls on every call."""
    import faustdiff
    cache: dict[Path, tuple] = {}

    def get(case: Case):
        if case.dsp not in cache:
            program = faustdiff.compile_file(str(case.dsp), sample_rate=44100)
            cache[case.dsp] = (program, dict(program.params))
        program, defaults = cache[case.dsp]
        program.reset()
        for label, value in defaults.items():
            program.set_param(label, value)
        return program
    return get


def render(program, case: Case, out: Path) -> None:
    """What `faustdiff run CASE --samples N [--input IN] [--set ...] -o OUT` does."""
    for label, value in case.settings:
        program.set_param(label, value)
    inputs = None
    if case.input is not None:
        inputs, _ = audio_io.read_input(case.input)
        assert inputs.shape[0] == program.num_inputs
        inputs = inputs[:, :case.samples]
    outputs = program.compute(inputs, case.samples)
    assert outputs.shape == (program.num_outputs, case.samples)
    bars = list(zip(program.bargraph_labels, program.bargraph_traces))
    audio_io.write_output(out, outputs, bars)


@pytest.mark.parametrize("case", FAUST_CASES + DIFF_CASES + LOCAL_CASES + DDSP_CASES)
def test_api(case, compiled, tmp_path):
    program = compiled(case)
    out = tmp_path / "out.csv"
    render(program, case, out)
    assert case.compare(out) == "ok"


def test_a_cached_program_renders_the_same_twice(compiled, tmp_path):
    case = load_case(CONFORMANCE / "local" / "l01_set_controls.dsp")
    for i in range(2):
        render(compiled(case), case, tmp_path / f"{i}.csv")
    assert (tmp_path / "0.csv").read_text() == (tmp_path / "1.csv").read_text()


# The command line in a subprocess, exactly as ../shared/tools/run-conformance calls it.
CLI_CASES = ["faust/01_seq_par", "faust/20_bargraph_attach", "faust/21_stdlib_osc",
             "faust/30_labels_par_index", "local/l01_set_controls", "local/l02_set_osc_bargraphs"]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli(name, tmp_path):
    case = load_case(CONFORMANCE / f"{name}.dsp")
    args = ["run", str(case.dsp), "--samples", str(case.samples)]
    if case.input is not None:
        args += ["--input", str(case.input)]
    for label, value in case.settings:
        args += ["--set", f"{label}={value!r}"]
    out = tmp_path / "out.csv"
    r = subprocess.run(cli_command() + args + ["-o", str(out)], capture_output=True, text=True,
                       timeout=300)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert case.compare(out) == "ok"
