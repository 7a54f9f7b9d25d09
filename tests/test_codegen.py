"""The Numba code generator (schedule, codegen, runtime, cache) against the interpreter.

* every conformance program: generated code == interpreter, bit for bit (outputs and
  bargraphs), and == the Faust references (compare-csv);
* the hand-built boxes of test_interp (every primitive, foreign functions, delays, tables...)
  through `Program(backend="numba")`: == interpreter, bit for bit;
* block-size invariance (any partition into `compute` calls, and `render(n, block)`);
* the disk cache: hit, miss, library changes, corruption (module, manifest, Numba's files),
  concurrent writers;
* `faustdiff compile -o` modules imported in a fresh process (the .dsp gone), `--emit`,
  FAUSTDIFF_EMIT;
* random programs (Hypothesis, Faust source from a small grammar): numba == interpreter.

JIT time adds up, so compiled programs are shared through session fixtures and the disk
cache (tests/conftest.py points FAUSTDIFF_CACHE_DIR at .pytest_cache); random programs
put several expressions in one program.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import faustdiff
from faustdiff import audio_io
from faustdiff.errors import FaustError

from conftest import CONFORMANCE


FAUST_DIR = CONFORMANCE / "faust"
ROOT_BENCH = CONFORMANCE.parent.parent / "benchmarks" / "dsp"
PKG_PARENT = str(Path(faustdiff.__file__).resolve().parent.parent)


def _same(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def _first_diff(a, b) -> str:
    a, b = np.asarray(a), np.asarray(b)
    bad = np.argwhere(~((a == b) | (np.isnan(a) & np.isnan(b))))
    if not len(bad):
        return "shapes differ"
    k = tuple(bad[0])
    return f"first difference at {k}: {a[k]!r} != {b[k]!r} ({len(bad)} values differ)"


def _traces(prog) -> list:
    """Bargraph traces in label order (a repeated label: its list, in order)."""
    out = []
    seen: dict = {}
    for label in prog.bargraph_labels:
        v = prog.bargraphs[label]
        k = seen.get(label, 0)
        seen[label] = k + 1
        out.append(np.asarray(v[k] if isinstance(v, list) else v))
    return out


# ---------------------------------------------------------------- shared compiled programs

@pytest.fixture(scope="session")
def programs():
    """``programs(dsp, backend)``: a compiled program, once per session, reset to its
    initial state and default controls on every call."""
    cache: dict = {}

    def get(dsp: Path, backend: str = "numba"):
        key = (str(dsp), backend)
        if key not in cache:
            prog = faustdiff.compile_file(str(dsp), sample_rate=44100, backend=backend)
            cache[key] = (prog, dict(prog.params))
        prog, defaults = cache[key]
        prog.reset()
        for label, value in defaults.items():
            prog.set_param(label, value)
        return prog
    return get


# ---------------------------------------------------------------- conformance programs

def _conformance_cases():
    from test_conformance import FAUST_CASES, LOCAL_CASES
    return [pytest.param(p.values[0], id=p.id) for p in FAUST_CASES + LOCAL_CASES]


def _run_case(prog, case):
    for label, value in case.settings:
        prog.set_param(label, value)
    inputs = None
    if case.input is not None:
        inputs, _ = audio_io.read_input(case.input)
        inputs = inputs[:, :case.samples]
    return prog.compute(inputs, case.samples), _traces(prog)


@pytest.mark.parametrize("case", _conformance_cases())
def test_conformance_numba_equals_interpreter(case, programs, tmp_path):
    fast = programs(case.dsp, "numba")
    slow = programs(case.dsp, "interp")
    assert type(fast).__name__ == "FaustProgram"
    assert (fast.num_inputs, fast.num_outputs, fast.bargraph_labels, fast.params) == \
        (slow.num_inputs, slow.num_outputs, slow.bargraph_labels, slow.params)
    y, bars = _run_case(fast, case)
    y_ref, bars_ref = _run_case(slow, case)
    assert _same(y, y_ref), _first_diff(y, y_ref)
    for label, a, b in zip(fast.bargraph_labels, bars, bars_ref):
        assert _same(a, b), f"bargraph {label}: {_first_diff(a, b)}"
    out = tmp_path / "out.csv"
    audio_io.write_output(out, y, list(zip(fast.bargraph_labels, bars)))
    assert case.compare(out) == "ok"


# ---------------------------------------------------------------- hand-built boxes (test_interp)

def _interp_cases():
    from test_interp import CASES
    return sorted(CASES)


@pytest.fixture(scope="session")
def box_programs():
    from faustdiff.backend.program import Program
    from test_interp import CASES
    made: dict = {}

    def get(name, backend):
        if (name, backend) not in made:
            box = CASES[name][1]
            made[(name, backend)] = Program.from_box(box, name=name, backend=backend)
        prog = made[(name, backend)]
        prog.reset()
        return prog
    return get


def _render_box(prog, name, blocks):
    from test_interp import CASES, INPUTS
    for k, v in CASES[name][3].items():
        prog.set_param(k, v)
    x = INPUTS[CASES[name][2]]()
    outs, traces = [], []
    start = 0
    for m in blocks(x.shape[1]):
        outs.append(prog.compute(x[:, start:start + m] if prog.num_inputs else None, m))
        traces.append(_traces(prog))
        start += m
    return np.concatenate(outs, axis=1), [np.concatenate(t) for t in zip(*traces)] \
        if traces and traces[0] else []


@pytest.mark.parametrize("name", _interp_cases())
def test_hand_built_boxes_numba_equals_interpreter(name, box_programs):
    def one(n):
        return [1] * n if name == "foreign" else [n]   # `count` is the block size
    y, bars = _render_box(box_programs(name, "numba"), name, one)
    y_ref, bars_ref = _render_box(box_programs(name, "interp"), name, one)
    assert _same(y, y_ref), _first_diff(y, y_ref)
    for a, b in zip(bars, bars_ref):
        assert _same(a, b), _first_diff(a, b)


# Every foreign function of primitives.FFUNS but arc4random (random) and those named like a
# Faust primitive (`sin`, `fmod`, ...: keywords, they cannot be declared; same templates).
FFUN_SIGS = {
    "float {}(float)": "tanh sinh cosh asinh acosh atanh exp2 expm1 log2 log1p cbrt fabs "
                       "nearbyint trunc erf erfc lgamma tgamma logb j0 j1 y0 y1",
    "float {}(float, float)": "copysign hypot fmin fmax nextafter",
    "int {}(float)": "isnan isinf isfinite ilogb lround lrint",
    "float {}(float, int)": "ldexp scalbn",
    "float {}(int, float)": "jn yn",
}


def test_foreign_functions_numba_equals_interpreter():
    from faustdiff.core.primitives import FFUNS, PRIMITIVES
    calls = []
    for sig, names in FFUN_SIGS.items():
        for name in names.split():
            two = sig.count(",") == 1
            ff = f'ffunction({sig.format(f"{name}f|{name}|{name}l")}, <math.h>, "")'
            if sig.startswith("float {}(int"):   # jn(n, x) loops n times: a small order
                calls.append(f"({ff}(int(x) % 8, y))")
            else:
                calls.append(f"({ff}(x, y))" if two else f"({ff}(x))")
    covered = {n for names in FFUN_SIGS.values() for n in names.split()}
    keywords = {n for n in FFUNS if n in PRIMITIVES or n == "round"}
    assert covered == set(FFUNS) - {"arc4random"} - keywords
    text = "f(x, y) = " + ", ".join(calls) + ";\nprocess = f;\n"
    rng = np.random.default_rng(3)
    special = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, 3.5, -2.5, 1e-310, 1e308, -1e308, 170.5,
               -170.5, 710.0, -710.0, 800.0, -800.0, np.inf, -np.inf, np.nan, 1e10, -3e9, 7.0]
    x = np.concatenate([special, rng.standard_normal(400) * 4, rng.standard_normal(200) * 200])
    y = np.roll(x, 7) * 0.9
    ins = np.array([x, y])
    got = faustdiff.compile_source(text, "<ffuns>").compute(ins)
    ref = faustdiff.compile_source(text, "<ffuns>", backend="interp").compute(ins)
    names = [n for v in FFUN_SIGS.values() for n in v.split()]
    for k, name in enumerate(names):
        assert _same(got[k], ref[k]), f"{name}: {_first_diff(got[k], ref[k])}"


def test_huge_delay_keeps_the_whole_history():
    # a bound above 2**22 samples: the whole history (grown by the runtime), as interp does
    from faustdiff.signals import ir as S
    from faustdiff.backend.program import Program
    # (inputs are [-1, 1], as in Faust: the amount int(|in1| * 5e6) is in [0, 5e6])
    d = S.prim("*", S.prim("abs", S.input_(1)), S.real_const(5e6))
    sig = S.delay(S.input_(0), S.to_int(d))
    prog = Program([sig], 2, backend="numba")
    from faustdiff.backend import schedule
    assert schedule.plan([sig], (), 2).main.lines[id(S.input_(0))].kind == "history"
    rng = np.random.default_rng(1)
    x = rng.standard_normal(3000)
    d = rng.integers(0, 2500, 3000).astype(float)
    scaled = (d + 0.5) / 5e6
    y = np.concatenate([prog.compute(np.array([x[s:s + 700], scaled[s:s + 700]]))[0]
                        for s in range(0, 3000, 700)])
    expected = [x[t - int(d[t])] if t - int(d[t]) >= 0 else 0.0 for t in range(3000)]
    assert y.tolist() == expected


# ---------------------------------------------------------------- blocks

BLOCK_CASES = ["05_prime_mem_delay", "07_recursion_multi", "11_int_overflow_noise",
               "20_bargraph_attach", "21_stdlib_osc", "24_rdtable", "25_rwtable", "26_waveform",
               "27_variable_delay", "28_nested_rec_filter", "36_seed_gain_dc_learn"]


@pytest.mark.parametrize("name", BLOCK_CASES)
def test_block_size_invariance(name, programs):
    dsp = FAUST_DIR / f"{name}.dsp"
    prog = programs(dsp)
    n = 1500
    x = np.random.default_rng(7).standard_normal((prog.num_inputs, n))
    whole = prog.compute(x if prog.num_inputs else None, n)
    whole_bars = _traces(prog)
    rng = np.random.default_rng(abs(hash(name)) % 1000)
    for trial in range(3):
        prog.reset()
        cuts = sorted(set(rng.integers(0, n, size=trial * 7 + 3).tolist()) | {0, n})
        parts, bars = [], []
        for a, b in zip(cuts, cuts[1:]):
            parts.append(prog.compute(x[:, a:b] if prog.num_inputs else None, b - a))
            bars.append(_traces(prog))
        assert _same(np.concatenate(parts, axis=1), whole)
        for k, tr in enumerate(zip(*bars)):
            assert _same(np.concatenate(tr), whole_bars[k])
    for block in (1, 64, 256, 999):
        prog.reset()
        y = prog.render(n, block, x if prog.num_inputs else None)
        assert _same(y, whole)
        for a, b in zip(_traces(prog), whole_bars):
            assert _same(a, b)


def test_int_of_nan_in_delays_and_table_indexes_is_clamped(tmp_path):
    # int(NaN) is INT_MIN, so `int(abs(fmod(x, k))) % 7` may be -2 though its interval is [0, 7]
    text = ("process = _ <: ((+(1) ~ _) @ (int(abs(fmod(_, 1000.0))) % 7)), "
            "rdtable(waveform{1.5, -2, 0.25, 7}, int(abs(fmod(_, 9.0))) % 4), "
            "rwtable(4, 5, int(abs(fmod(_, 9.0))) % 4, _, int(abs(fmod(_, 9.0))) % 4);\n")
    # (int(abs(fmod(x, k))) % n: interval [0, n], so the old interval test skipped clamps)
    x = np.array([[1.0, 3.0, np.nan, 2.0, 1e10, 6.0, -np.inf, 0.0, 5.0, np.nan] * 3])
    y = faustdiff.compile_source(text, "<nan>").compute(x)
    y_ref = faustdiff.compile_source(text, "<nan>", backend="interp").compute(x)
    assert _same(y, y_ref), _first_diff(y, y_ref)


def test_block_size_is_count(tmp_path, programs):
    dsp = tmp_path / "bs.dsp"
    dsp.write_text('import("stdfaust.lib");\nprocess = ma.BS, fvariable(int count, <math.h>);\n')
    prog = programs(dsp)
    y = prog.render(10, 4)
    assert y.tolist() == [[4, 4, 4, 4, 4, 4, 4, 4, 2, 2]] * 2
    assert prog.compute(n=3).tolist() == [[3.0] * 3] * 2


def test_state_persists_and_reset_restarts(programs):
    prog = programs(FAUST_DIR / "11_int_overflow_noise.dsp")
    a = prog.compute(n=50)
    b = prog.compute(n=50)
    prog.reset()
    assert _same(prog.compute(n=100), np.concatenate([a, b], axis=1))


def test_program_api_errors(programs):
    prog = programs(FAUST_DIR / "36_seed_gain_dc_learn.dsp")
    with pytest.raises(FaustError) as e:
        prog.set_param("nope", 1)
    assert "unknown parameter 'nope'" in str(e.value)
    with pytest.raises(ValueError):
        prog.compute()
    prog1 = programs(FAUST_DIR / "06_recursion_basic.dsp")
    with pytest.raises(ValueError):
        prog1.compute(np.zeros((2, 5)))
    assert prog1.compute(np.ones(4)).shape == (prog1.num_outputs, 4)
    assert prog1.compute(np.ones((1, 10)), 4).shape == (prog1.num_outputs, 4)
    assert prog1.compute(np.ones((1, 10))[:, ::2]).shape == (prog1.num_outputs, 5)
    assert prog1.compute(None, 0).shape == (prog1.num_outputs, 0)


def test_int_remainder_by_zero_is_an_error(tmp_path):
    dsp = tmp_path / "rem0.dsp"
    dsp.write_text("process = int(_) % int(_);\n")
    for backend in ("numba", "interp"):
        prog = faustdiff.compile_file(str(dsp), backend=backend)
        with pytest.raises(FaustError, match="remainder by zero"):
            prog.compute(np.array([[5.0, 6.0], [2.0, 0.0]]))


# ---------------------------------------------------------------- the disk cache

SIMPLE = 'import("lib1.lib");\nprocess = _ * k : + ~ *(0.5);\n'


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("FAUSTDIFF_CACHE_DIR", str(d))
    from faustdiff.backend import cache
    monkeypatch.setattr(cache, "_loaded", {})
    return d


def _simple(tmp_path, k="0.25"):
    (tmp_path / "lib1.lib").write_text(f"k = {k};\n")
    dsp = tmp_path / "simple.dsp"
    dsp.write_text(SIMPLE)
    return dsp


def test_cache_hit_skips_the_front_end(tmp_path, fresh_cache, monkeypatch):
    from faustdiff.backend import cache
    dsp = _simple(tmp_path)
    first = faustdiff.compile_file(str(dsp))
    assert list(fresh_cache.glob("fd_*.py")) and list(fresh_cache.glob("m_*.json"))

    def boom(*a, **k):
        raise AssertionError("the front end ran on a cache hit")
    monkeypatch.setattr(cache, "build", boom)
    monkeypatch.setattr(cache, "_loaded", {})
    second = faustdiff.compile_file(str(dsp))
    x = np.arange(8.0)[None, :]
    assert _same(first.compute(x), second.compute(x))
    assert first is not second


def test_cache_keys(tmp_path, fresh_cache):
    dsp = _simple(tmp_path)
    a = faustdiff.compile_file(str(dsp))
    b = faustdiff.compile_file(str(dsp), sample_rate=48000)
    assert (a.sample_rate, b.sample_rate) == (44100, 48000)
    assert len(list(fresh_cache.glob("fd_*.py"))) == 2
    # a changed library is a miss (and the new value is used)
    (tmp_path / "lib1.lib").write_text("k = 2.0;\n")
    c = faustdiff.compile_file(str(dsp))
    assert c.compute(np.ones((1, 1)))[0, 0] == 2.0
    # a new file shadowing a library is a miss too
    sub = tmp_path / "sub"
    sub.mkdir()
    dsp2 = sub / "p.dsp"
    dsp2.write_text(SIMPLE)
    d = faustdiff.compile_file(str(dsp2), include=[str(tmp_path)])
    assert d.compute(np.ones((1, 1)))[0, 0] == 2.0
    (sub / "lib1.lib").write_text("k = 4.0;\n")
    e = faustdiff.compile_file(str(dsp2), include=[str(tmp_path)])
    assert e.compute(np.ones((1, 1)))[0, 0] == 4.0


@pytest.mark.parametrize("damage", ["module", "truncate", "manifest", "manifest-module", "key"])
def test_a_damaged_entry_is_rebuilt(tmp_path, fresh_cache, damage, monkeypatch):
    from faustdiff.backend import cache
    dsp = _simple(tmp_path)
    ref = faustdiff.compile_file(str(dsp)).compute(np.ones((1, 4)))
    module = next(fresh_cache.glob("fd_*.py"))
    manifest = next(fresh_cache.glob("m_*.json"))
    if damage == "module":
        module.write_text(module.read_text().replace("0.25", "0.75"))
    elif damage == "truncate":
        module.write_bytes(module.read_bytes()[:200])
    elif damage == "manifest":
        manifest.write_text("{not json")
    elif damage == "manifest-module":
        m = json.loads(manifest.read_text())
        m["module"] = "fd_elsewhere.py"
        manifest.write_text(json.dumps(m))
    else:   # a valid module for another key under this name
        text = module.read_text().replace(" key=", " key=0")
        module.write_text(cache.seal(text.rpartition(cache._CHECK)[0]))
    monkeypatch.setattr(cache, "_loaded", {})
    again = faustdiff.compile_file(str(dsp))
    assert _same(again.compute(np.ones((1, 4))), ref)
    assert cache.verify(next(fresh_cache.glob("fd_*.py")))


def _subprocess_render(dsp: Path, cache_dir: Path) -> list:
    code = textwrap.dedent(f"""
        import sys, json
        sys.path.insert(0, {PKG_PARENT!r})
        import numpy as np, faustdiff
        p = faustdiff.compile_file({str(dsp)!r})
        print(json.dumps(p.compute(np.ones((1, 6))).tolist()))
    """)
    env = dict(os.environ, FAUSTDIFF_CACHE_DIR=str(cache_dir))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_damaged_numba_cache_files_are_rebuilt(tmp_path, fresh_cache):
    dsp = _simple(tmp_path)
    ref = _subprocess_render(dsp, fresh_cache)
    files = list((fresh_cache / "__pycache__").glob("fd_*"))
    assert any(f.suffix == ".nbi" for f in files) and any(f.suffix == ".nbc" for f in files)
    for f in files:
        f.write_bytes(b"garbage" * 10)
    assert _subprocess_render(dsp, fresh_cache) == ref
    assert _subprocess_render(dsp, fresh_cache) == ref


def test_concurrent_compiles_share_the_cache(tmp_path, fresh_cache):
    dsp = _simple(tmp_path)
    code = textwrap.dedent(f"""
        import sys, json
        sys.path.insert(0, {PKG_PARENT!r})
        import numpy as np, faustdiff
        p = faustdiff.compile_file({str(dsp)!r})
        print(json.dumps(p.compute(np.ones((1, 6))).tolist()))
    """)
    env = dict(os.environ, FAUSTDIFF_CACHE_DIR=str(fresh_cache))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(out.strip().splitlines()[-1])
    assert len(set(results)) == 1
    from faustdiff.backend import cache
    modules = list(fresh_cache.glob("fd_*.py"))
    assert len(modules) == 1 and cache.verify(modules[0])
    assert not list(fresh_cache.glob(".*.tmp"))


def test_an_unwritable_cache_still_compiles(tmp_path, monkeypatch):
    from faustdiff.backend import cache
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FAUSTDIFF_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(cache, "_loaded", {})
    dsp = _simple(tmp_path)
    y = faustdiff.compile_file(str(dsp)).compute(np.ones((1, 3)))
    assert y.tolist() == [[0.25, 0.375, 0.4375]]


def test_cache_location(monkeypatch, tmp_path):
    from faustdiff.backend.cache import cache_dir
    monkeypatch.delenv("FAUSTDIFF_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "faustdiff"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "faustdiff"
    monkeypatch.setenv("FAUSTDIFF_CACHE_DIR", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"


# ---------------------------------------------------------------- generated modules

def test_compile_writes_an_importable_module(tmp_path, cli, programs):
    src = FAUST_DIR / "36_seed_gain_dc_learn.dsp"
    dsp = tmp_path / "learn.dsp"
    dsp.write_text(src.read_text())
    out = tmp_path / "learn_dsp.py"
    r = cli("compile", str(dsp), "-o", str(out))
    assert r.exit_code == 0, r.stderr
    text = out.read_text()
    assert "@njit(cache=True, fastmath=False" in text and "class FaustProgram" in text
    dsp.unlink()                      # the module must not need the Faust source
    code = textwrap.dedent(f"""
        import sys, json
        sys.path.insert(0, {PKG_PARENT!r})
        sys.path.insert(0, {str(tmp_path)!r})
        import learn_dsp
        p = learn_dsp.program
        p.set_param("gain", 0.25)
        y = p.compute(n=300)
        print(json.dumps([p.num_inputs, p.num_outputs, p.bargraph_labels, p.params,
                          y.tolist(), p.bargraphs["loss"].tolist()]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=300, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    nin, nout, labels, params, y, loss = json.loads(r.stdout.strip().splitlines()[-1])
    ref = programs(src, "interp")
    ref.set_param("gain", 0.25)
    y_ref = ref.compute(n=300)
    assert (nin, nout, labels, params) == (ref.num_inputs, ref.num_outputs,
                                           ref.bargraph_labels, ref.params)
    assert _same(np.array(y), y_ref) and _same(np.array(loss), ref.bargraphs["loss"])
    assert (tmp_path / "__pycache__").is_dir()   # Numba cached the kernels beside it


def test_run_emit_and_env_emit(tmp_path, cli, monkeypatch, capfd):
    dsp = tmp_path / "e.dsp"
    dsp.write_text("process = _ : + ~ *(0.5);\n")
    r = cli("run", str(dsp), "--emit")
    assert r.exit_code == 0 and "def _k0(" in r.stdout and "class FaustProgram" in r.stdout
    monkeypatch.setenv("FAUSTDIFF_EMIT", "1")
    from faustdiff.backend import cache
    monkeypatch.setattr(cache, "_loaded", {})
    faustdiff.compile_file(str(dsp))
    assert "def _k0(" in capfd.readouterr().err


def test_run_backends_agree(tmp_path, cli):
    dsp = FAUST_DIR / "20_bargraph_attach.dsp"
    outs = []
    for backend in ("numba", "interp"):
        out = tmp_path / f"{backend}.csv"
        r = cli("run", str(dsp), "--samples", "300", "--backend", backend, "-o", str(out))
        assert r.exit_code == 0, r.stderr
        outs.append(out.read_text())
    assert outs[0] == outs[1]


def test_instances_are_independent(programs):
    prog = programs(FAUST_DIR / "11_int_overflow_noise.dsp")
    other = type(prog)()
    a = prog.compute(n=20)
    assert _same(other.compute(n=20), a)
    assert not _same(prog.compute(n=20), a)


def test_identical_tables_are_shared(programs):
    # 16 os.osc: 16 recursion groups, one structure: one 65536-value table
    prog = programs(ROOT_BENCH / "oscs.dsp")
    assert len(prog.TABLES[0]) == 1 and prog.STATES[0][3] == 65536


def test_schedule_state_layout():
    from faustdiff.backend import schedule
    from faustdiff.signals import ir as S
    x = S.input_(0)
    g = S.RecGroup(["real"])
    g.define([S.prim("-", x, S.prim("*", S.real_const(0.5), S.mem(g.var(0))))])
    w = g.proj(0)
    y = S.prim("+", S.prim("+", w, S.mem(w)), S.delay(w, S.int_const(2)))
    long = S.delay(x, S.int_const(1000))
    var = S.delay(x, S.to_int(S.prim("min", S.prim("max", S.input_(1), S.real_const(0.0)),
                                     S.real_const(20.0))))
    main = schedule.plan([y, long, var], (), 2).main
    line = main.lines[id(w)]                  # w', w'' and (w's recursion variable)'
    assert line.kind == "shift" and line.length == 2 and line.rec is not None
    assert id(g.var(0)) not in main.lines     # merged into w's line
    ring = main.lines[id(x)]                  # x@1000 and x@(0..20) share one ring buffer
    assert ring.kind == "ring" and ring.length == 1024 and len(ring.nodes) == 2
    assert main.ndf == 1024 and main.nfv == 2   # w[t-1] (the recursion), w[t-2]


def test_delay_lines_start_in_different_cache_sets():
    """Power-of-two delay lines packed end to end put every write position in one L1 set
    (zitaRev 3.3x slower): each region starts one 64-byte line past the previous end."""
    from faustdiff.backend import schedule
    from faustdiff.signals import ir as S
    x = S.input_(0)
    # x + k, not k * x: a constant factor leaves a delay (Faust's normal form), so 12
    # products would share x's one line
    outs = [S.delay(S.prim("+", x, S.real_const(float(k + 2))), S.int_const(1000 + k))
            for k in range(12)]
    main = schedule.plan(outs, (), 1).main
    offsets = sorted(line.offset for line in main.lines.values())
    assert offsets == [k * (1024 + 8) for k in range(12)]
    assert len({(o * 8 // 64) % 64 for o in offsets}) == 12   # 12 distinct L1 sets
    assert main.ndf == 11 * (1024 + 8) + 1024


def test_generated_code_is_readable_and_folded(tmp_path):
    from faustdiff.backend.cache import module_source
    text = module_source('import("stdfaust.lib");\n'
                         'process = _ * hslider("g", 1, 0, 2, 0.1) : @(3) : fi.lowpass(1, 1000)'
                         ' : fi.lowpass(1, hslider("fc", 100, 10, 1000, 1)) : _ @ 2000;\n',
                         str(tmp_path / "x.dsp"))
    # (the module's batch kernel _v0 repeats the same code per lane: not looked at here)
    kernel = text[text.index("def _k0("):text.index("def _v0(")]
    loop = kernel[kernel.index("for i in range"):]
    assert "ld(ctl, 0)" in kernel and "ld(ctl, 0)" not in loop    # hoisted control
    assert kernel.count("tan(") == 1 and "tan(" not in loop      # one folded, one hoisted
    assert "(t - 2000) & 2047" in loop                          # ring buffer
    assert "# x[t-3] of a delay line" in kernel                 # shift register
    compile(text, "x.py", "exec")


GUARDED = ('import("stdfaust.lib");\n'
           'on = checkbox("on"); pick = nentry("pick", 0, 0, 3, 1);\n'
           'fx = _ <: de.fdelay(1024, 100 + 50 * os.osc(0.5)) * 0.5,\n'
           '     de.fdelay(1024, 300 + 30 * os.osc(0.7)) * 0.25 :> _;\n'
           'other = _ <: @(10) * sin(_), (_ : + ~ *(0.5)) : +;\n'
           'process = _ <: select2(on, _, fx), select2(pick, other * 2, @(7) * 3);\n')


def test_selects_on_controls_compute_only_the_chosen_branch(tmp_path):
    """select2 on a control-rate selector: an `if` around each branch's own nodes (the
    oscillators, recursions and the line writes stay outside: every sample updates them),
    bit for bit the interpreter's output as the selectors change between blocks."""
    from faustdiff.backend.cache import module_source
    text = module_source(GUARDED, str(tmp_path / "g.dsp"))
    loop = text[text.index("for i in range"):text.index("# end of sample")]
    assert loop.count("if ") == 2 and loop.count("else:") == 2
    inside = [ln for ln in loop.splitlines() if ln.startswith(" " * 16)]
    outside = [ln for ln in loop.splitlines() if not ln.startswith(" " * 16)]
    assert any("st(df" in ln for ln in outside)           # the delay line's write
    assert not any("at t-1" in ln for ln in inside)       # recursions run every sample
    assert sum(bool(re.search(r"ld\(df, \d+ \+ \(\(t - d", ln)) for ln in inside) == 4  # taps
    fast = faustdiff.compile_source(GUARDED, "g.dsp")
    slow = faustdiff.compile_source(GUARDED, "g.dsp", backend="interp")
    x = np.random.default_rng(0).uniform(-1, 1, (1, 1600))
    got = []
    for prog in (fast, slow):
        ys = []
        for k, (on, pick) in enumerate([(0, 0), (1, 0), (0, 2), (1, 1)]):
            prog.set_param("on", on)
            prog.set_param("pick", pick)
            ys.append(prog.compute(x[:, k * 400:(k + 1) * 400], 400))
        got.append(np.hstack(ys))
    assert np.array_equal(got[0], got[1])


# ---------------------------------------------------------------- random programs

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

REALS = ["0.5", "-2.5", "3.0", "1e-3", "1e10", "-7.25", "0.1", "100.0", "2147483647.0"]
INTS = ["0", "1", "2", "3", "7", "-5", "16", "31", "33", "1103515245", "2147483647", "-2147483648"]
UNARY = ["sin", "cos", "tan", "atan", "exp", "log", "log10", "sqrt", "abs", "floor", "ceil",
         "rint", "round", "int", "float", "asin", "acos"]
BINOPS = ["+", "-", "*", "/", "%", "<", ">", "<=", ">=", "==", "!=", "&", "|", "xor", "<<",
          ">>", "^"]
BINFUN = ["min", "max", "pow", "fmod", "remainder", "atan2"]


@st.composite
def faust_expr(draw, depth=0, audio=True):
    """A one-output Faust expression of the input `x` (a random well-formed program);
    without `audio`, no input (table init signals run in a context without inputs)."""
    if depth >= 4 or draw(st.integers(0, 9)) < 2 + depth:
        kind = draw(st.integers(0, 7 if audio else 5))
        if kind == 4:
            return "fconstant(int fSamplingFreq, <math.h>)"
        if kind == 5:
            return "fvariable(int count, <math.h>)"
        if kind == 0:
            return draw(st.sampled_from(INTS))
        if kind == 1:
            return draw(st.sampled_from(REALS))
        if kind == 2:
            k = draw(st.integers(0, 2))
            return f'hslider("s{k}", {0.5 * k}, -1, 3, 0.1)'
        if kind == 3:
            return "(+(1) ~ _)"
        return "x"
    sub = lambda: draw(faust_expr(depth + 1, audio))   # noqa: E731
    kind = draw(st.integers(0, 16))
    if kind == 14:
        label = f"b{draw(st.integers(0, 10**9))}"
        return f'attach({sub()}, {sub()} : hbargraph("{label}", -1, 1))'
    if kind == 15:
        return f"{draw(st.sampled_from(['enable', 'control']))}({sub()}, {sub()})"
    if kind == 16:
        # (no copysign: it reads the sign of a NaN, which C sets where Python's math doesn't)
        name = draw(st.sampled_from(["tanh", "cbrt", "expm1", "asinh", "hypot"]))
        if name == "hypot":
            return (f'ffunction(float {name}f|{name}|{name}l(float, float), <math.h>, "")'
                    f"({sub()}, {sub()})")
        return f'ffunction(float {name}f|{name}|{name}l(float), <math.h>, "")({sub()})'
    if kind <= 2:
        return f"({sub()} {draw(st.sampled_from(BINOPS))} {sub()})"
    if kind == 3:
        return f"{draw(st.sampled_from(BINFUN))}({sub()}, {sub()})"
    if kind == 4:
        return f"{draw(st.sampled_from(UNARY))}({sub()})"
    if kind == 5:
        return f"({sub()})'"
    if kind == 6:
        d = draw(st.sampled_from(["0", "1", "3", "5", "17", "1000", "2.6"]))
        return f"({sub()} @ {d})"
    if kind == 7:
        return f"({sub()} @ (int(abs({sub()})) % {draw(st.sampled_from(['7', '64', '300']))}))"
    if kind == 8:
        return f"({sub()} : + ~ *({draw(st.sampled_from(['0.5', '-0.9', '1']))}))"
    if kind == 9:
        return f"select2({sub()}, {sub()}, {sub()})"
    if kind == 10:
        return f"select3({sub()}, {sub()}, {sub()}, {sub()})"
    if kind == 11:
        return f"prefix({sub()}, {sub()})"
    if kind == 12:
        return f"rdtable(waveform{{1.5, -2, 0.25, 7}}, int({sub()}))"
    init = draw(faust_expr(depth + 1, False))
    return f"rwtable(8, {init}, int({sub()}), {sub()}, int({sub()}))"


def _outcome(prog, x, settings):
    for k, v in settings.items():
        prog.set_param(k, v)
    try:
        with np.errstate(all="ignore"):
            a = prog.compute(x, 70)
            bars = _traces(prog)
            b = prog.compute(x[:, 70:], 130)
            bars = [np.concatenate(p) for p in zip(bars, _traces(prog))]
    except FaustError as e:
        return ("error", str(e))
    return ("ok", np.vstack([np.concatenate([a, b], axis=1)] + [r[None] for r in bars]))


# FAUSTDIFF_RANDOM_EXAMPLES=N runs more examples; FAUSTDIFF_RANDOM_FRESH=1 new ones each run.
@hypothesis.settings(max_examples=int(os.environ.get("FAUSTDIFF_RANDOM_EXAMPLES", "12")),
                     deadline=None, derandomize=not os.environ.get("FAUSTDIFF_RANDOM_FRESH"),
                     suppress_health_check=list(hypothesis.HealthCheck))
@hypothesis.given(exprs=st.lists(faust_expr(), min_size=4, max_size=8),
                  settings=st.dictionaries(st.sampled_from(["s0", "s1", "s2"]),
                                           st.sampled_from([-7.0, 0.0, 0.3, 2.0, 1e9])))
def test_random_programs_numba_equals_interpreter(exprs, settings):
    defs = "".join(f"f{k}(x) = {e};\n" for k, e in enumerate(exprs))
    text = defs + "process = _ <: " + ", ".join(f"f{k}" for k in range(len(exprs))) + ";\n"
    try:
        slow = faustdiff.compile_source(text, "<random>", backend="interp")
    except FaustError:
        hypothesis.assume(False)
    fast = faustdiff.compile_source(text, "<random>")
    settings = {k: v for k, v in settings.items() if k in slow.params}
    specials = [0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -2.5, 1e10, -3e9, np.nan, np.inf, -np.inf,
                7.0, 1e-300, 65537.0, -0.75]
    rng = np.random.default_rng(len(text))
    x = np.concatenate([specials, rng.standard_normal(184) * 4]).reshape(1, 200)
    got, ref = _outcome(fast, x, settings), _outcome(slow, x, settings)
    assert got[0] == ref[0], (text, got, ref)
    if got[0] == "ok":
        assert _same(got[1], ref[1]), text + "\n" + _first_diff(got[1], ref[1])
    else:
        assert got[1] == ref[1]


def test_the_same_recursion_written_twice_is_one_state(tmp_path):
    # two si.smoo of the same slider and two identical oscillators: one state each, in the
    # generated code, and the outputs equal the interpreter's (bit for bit)
    import numpy as np
    from faustdiff import api
    from faustdiff.backend.cache import module_source
    body = ('import("stdfaust.lib");\n'
            'g = hslider("g", 0.5, 0, 1, 0.01);\n'
            'process = _ * (g : si.smoo), _ * (g : si.smoo), os.osc(440) + os.osc(440);\n')
    once = ('import("stdfaust.lib");\n'
            'g = hslider("g", 0.5, 0, 1, 0.01) : si.smoo; o = os.osc(440);\n'
            'process = _ * g, _ * g, o + o;\n')
    states = []
    for k, src in enumerate((body, once)):
        text = module_source(src, str(tmp_path / f"p{k}.dsp"))
        states.append(text[text.index("STATES = ("):].split("\n")[1])
    assert states[0] == states[1]
    x = np.random.default_rng(1).uniform(-1, 1, (2, 300))
    a = api.compile_source(body, str(tmp_path / "a.dsp")).compute(x)
    b = api.compile_source(body, str(tmp_path / "b.dsp"), backend="interp").compute(x)
    assert np.array_equal(a, b)


def test_silence_inputs_are_shared_and_never_written():
    # compute(None, n) on a program with inputs renders zeros; the zero block is kept
    # between calls of the same length (the kernels never write it) and rebuilt for
    # another length; the kernel is compiled once (a read-only block would be a new type)
    prog = faustdiff.compile_source("process = + : +(1) : + ~ *(0.5);")
    a = prog.compute(None, 8)
    z = prog._silence
    b = prog.compute(None, 8)
    assert prog._silence is z and not z.any()
    assert len(prog.KERNELS[0].overloads) == 1
    prog.compute(None, 5)
    assert prog._silence.shape == (2, 5)
    prog.reset()
    np.testing.assert_array_equal(prog.compute(np.zeros((2, 8))), a)
    assert b[0, -1] == pytest.approx(2 - 0.5 ** 15, rel=1e-15)


def test_delay_and_table_clamps_only_where_the_program_does_not_bound_the_amount(tmp_path):
    # the first delay's amount is clamped by the program itself (int max/min with
    # constants: sure whatever the input does), so the kernel reads it as is; the second
    # depends on the input's assumed [-1, 1] interval and keeps its clamp; both render as
    # the interpreter does, with an input far outside [-1, 1] too
    src = ("d1 = min(max(int(_ * 100), 0), 50);\n"
           "d2 = int(abs(_) * 20);\n"
           "process = _ <: (_, d1 : @), (_, d2 : @) : +;\n")
    dsp = tmp_path / "clamps.dsp"
    dsp.write_text(src)
    code = faustdiff.api.compile_module_source(str(dsp), sample_rate=44100)
    loop = code[code.index("for i in range"):code.index("def _v0(")]   # (not the batch kernel)
    assert loop.count("clip(") == 1 and "sel(" in loop
    x = np.sin(np.arange(300) * 0.37)[None, :] * 7.0
    compiled = faustdiff.compile_file(str(dsp))
    interp = faustdiff.compile_file(str(dsp), backend="interp")
    assert _same(compiled.compute(x), interp.compute(x))


def test_recursions_of_a_control_value_read_by_a_recursion_or_an_output():
    """A recursion whose definition is control rate is stored once per block when no sample
    reads it (codegen._block_rate_recursions); one read as another recursion's definition or
    as an output (its value one sample late: the previous block's at a block's first sample)
    stays per sample. Both backends, the slider moved between blocks."""
    from faustdiff.backend.program import Program
    from faustdiff.signals import ir as S
    a = S.ui("hslider", "g", (), 0.5, 0, 1, 0.01)
    late = S.RecGroup(["real"])
    late.define([a])                       # late.var(0): a one sample ago
    echo = S.RecGroup(["real"])
    echo.define([late.var(0)])             # echo: a one sample ago, as a recursion's value
    outs = [S.prim("*", echo.var(0), S.real_const(2.0)), late.var(0)]
    progs = [Program(outs, 0, 44100, "", b) for b in ("interp", "numba")]
    for v, n in ((0.5, 3), (0.25, 1), (0.75, 4)):
        ys = []
        for p in progs:
            p.set_param("g", v)
            ys.append(p.compute(None, n))
        assert np.array_equal(ys[0], ys[1]), (v, ys)
