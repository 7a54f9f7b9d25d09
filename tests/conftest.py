"""Shared fixtures: the command line in-process, a fake Program for CLI mechanics, and paths.

The tests run against the INSTALLED package (`pip install .[test]`, then `pytest -q` from the
repository root): the `pytest` command does not put the repository root on sys.path, so
`import faustdiff` finds site-packages (an editable install maps it back to this tree).
Under CI (CI=true) a source-tree import is refused, because the source tree has no
`faustdiff/grammar` and would hide packaging mistakes.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import faustdiff
from faustdiff.errors import FaustError, Span

ROOT = Path(__file__).resolve().parent.parent
CONFORMANCE = ROOT / "tests" / "conformance"
EXAMPLES = ROOT / "examples"

# The program the PyTorch and JAX binding tests differentiate: a one-pole lowpass (a
# recursion) after a tanh drive, a log-scaled cutoff, a drive and a per-sample gain.
LAYER_PROGRAM = """
import("stdfaust.lib");
fc = hslider("cutoff [scale:log]", 1000, 20, 20000, 1);
g = hslider("gain", 0.5, 0, 2, 0.01);
q = hslider("drive", 1, 0.5, 4, 0.01);
p = exp(-2 * ma.PI * fc / ma.SR);
process = *(g) : *(q) : ma.tanh : *(1 - p) : + ~ *(p);
"""


def _package_location() -> Path:
    return Path(faustdiff.__file__).resolve().parent


def pytest_report_header(config):
    return f"faustdiff {faustdiff.__version__} from {_package_location()}"


def pytest_configure(config):
    # The tests check the bundled libraries (and must not depend on whether this machine has
    # Faust's installed): they come first unless a test says otherwise (see test_cli's
    # tests of the default, and test_real_libs, which asks for Faust's with -I).
    os.environ.setdefault("FAUSTDIFF_LIBS", "bundled")
    # Compiled programs (generated modules and Numba's caches) go to a cache of the test
    # runs, kept between runs (JIT time adds up), not to the user's ~/.cache/faustdiff.
    if "FAUSTDIFF_CACHE_DIR" not in os.environ and getattr(config, "cache", None):
        os.environ["FAUSTDIFF_CACHE_DIR"] = str(config.cache.mkdir("faustdiff-cache"))
    if os.environ.get("CI") == "true" and _package_location() == ROOT / "faustdiff":
        raise pytest.UsageError(
            f"faustdiff was imported from the source tree ({_package_location()}), not from "
            f"the installed package: run `pytest`, not `python -m pytest`, after `pip install .`")


# ---------------------------------------------------------------------------- the CLI

class CliResult:
    def __init__(self, exit_code: int, stdout: str, stderr: str):
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def __repr__(self):
        return f"CliResult({self.exit_code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


@pytest.fixture
def cli():
    """``cli("run", "x.dsp", ...)`` runs the command line in-process (separate stdout/stderr)."""
    from faustdiff.cli import main
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()  # click >= 8.2 always keeps stderr apart

    def run(*args: str) -> CliResult:
        r = runner.invoke(main, [str(a) for a in args], prog_name="faustdiff",
                          catch_exceptions=False)
        return CliResult(r.exit_code, r.stdout, r.stderr)
    return run


def cli_command() -> list[str]:
    """The installed ``faustdiff`` console script (beside this Python), else ``python -m``."""
    script = Path(sys.executable).with_name("faustdiff")
    return [str(script)] if script.exists() else [sys.executable, "-m", "faustdiff.cli"]


# ---------------------------------------------------------------------------- a fake Program

class FakeProgram:
    """A stand-in honouring the Program contract, configured by a ``// fake:`` line.

    ``// fake: inputs=2 outputs=3 params=gain:0.5,bias:0 bargraphs=level,meter``
    computes ``out[k](t) = gain * (sum of the inputs(t), or 1 with no inputs) + bias + k``
    and each bargraph ``b`` (i-th) traces ``out0 * (i + 1)``. State: ``calls`` counts
    `compute` calls, ``received`` keeps the last inputs.
    """

    def __init__(self, spec: dict, sample_rate, include):
        self.num_inputs = int(spec.get("inputs", 1))
        self.num_outputs = int(spec.get("outputs", 1))
        self.sample_rate = sample_rate
        self.include = include
        self.defaults = {}
        for item in filter(None, spec.get("params", "").split(",")):
            label, _, value = item.partition(":")
            self.defaults[label.replace("_", " ")] = float(value)
        self.params = dict(self.defaults)
        self.bargraph_labels = [b.replace("_", " ") for b in spec.get("bargraphs", "").split(",") if b]
        self.bargraphs = {}
        self.bargraph_traces = []
        self.calls = 0
        self.received = None

    def set_param(self, label, value):
        if label not in self.params:
            raise KeyError(label)
        self.params[label] = float(value)

    def reset(self):
        self.calls = 0

    def compute(self, inputs=None, n=None):
        if self.num_inputs:
            inputs = np.asarray(inputs, dtype=np.float64)
            assert inputs.shape[0] == self.num_inputs
            n = inputs.shape[1] if n is None else n
            assert inputs.shape == (self.num_inputs, n)
            base = inputs.sum(axis=0)
        else:
            assert inputs is None
            base = np.ones(n)
        self.received = inputs
        self.calls += 1
        g, b = self.params.get("gain", 1.0), self.params.get("bias", 0.0)
        out = np.array([g * base + b + k for k in range(self.num_outputs)]).reshape(self.num_outputs, n)
        self.bargraph_traces = [out[0] * (i + 1) for i in range(len(self.bargraph_labels))]
        self.bargraphs = dict(zip(self.bargraph_labels, self.bargraph_traces))
        return out


class FakePipeline:
    """What the fake `compile_file` saw and made."""

    def __init__(self):
        self.programs: list[FakeProgram] = []
        self.calls: list[tuple] = []
        self.module_source = None  # str: what a fake compile_module_source returns

    @property
    def program(self) -> FakeProgram:
        return self.programs[-1]

    def compile_file(self, path, sample_rate=44100, include=()):
        self.calls.append((str(path), sample_rate, tuple(include)))
        text = Path(path).read_text()
        spec = {}
        for line in text.splitlines():
            if line.startswith("// fake-error:"):
                # "// fake-error: LINE COL message" (LINE 0: no position)
                line_no, col, msg = line.split(":", 1)[1].split(None, 2)
                span = Span(str(path), int(line_no), int(col)) if int(line_no) else None
                raise FaustError(msg, span)
            if line.startswith("// fake:"):
                spec = dict(kv.split("=", 1) for kv in line.split(":", 1)[1].split())
        self.programs.append(FakeProgram(spec, sample_rate, include))
        return self.program

    def compile_module_source(self, path, sample_rate=44100, include=()):
        self.calls.append((str(path), sample_rate, tuple(include)))
        return self.module_source


@pytest.fixture
def fake(monkeypatch):
    """Replaces `faustdiff.api.compile_file` (and `compile_module_source`) with the fake."""
    import faustdiff.api as api
    pipe = FakePipeline()
    monkeypatch.setattr(api, "compile_file", pipe.compile_file)
    monkeypatch.setattr(api, "compile_module_source", pipe.compile_module_source, raising=False)
    return pipe


@pytest.fixture
def dsp(tmp_path):
    """``dsp("// fake: inputs=2")`` writes a .dsp file in tmp_path and returns its path."""
    counter = iter(range(10**6))

    def make(text: str, name: str | None = None) -> Path:
        path = tmp_path / (name or f"p{next(counter)}.dsp")
        path.write_text(text + "\n")
        return path
    return make


def diff_on_model(tmp_path_factory, name: str, source: str, labels) -> str:
    """A model file (in a fresh temporary folder) whose sliders `labels` (their full label
    text, metadata included) are marked `[diff:on]`, for `faustdiff train` tests."""
    for label in labels:
        source = source.replace(f'"{label}"', f'"{label} [diff:on]"')
    path = tmp_path_factory.mktemp("model") / name
    path.write_text(source + "\n")
    return str(path)
