"""Checks faustdiff's bundled Faust standard library (faustdiff/lib/*.lib) against the
Faust 2.54.9 libraries, using the real Faust compiler as the oracle.

Every case is a small Faust program. It is rendered twice with the reference renderer
`faust-ref` (the real compiler, -double, 44100 Hz): once next to symlinks of our .lib files
(Faust searches the .dsp's folder first, so `import("stdfaust.lib")` loads ours) and once
in an empty folder (so the system libraries in /usr/share/faust are used). The two CSVs
must agree within the case's tolerance (1e-9 relative+absolute by default; 0 for the
bit-exact cases such as os.osc and no.noise).

Renders are cached: faust-ref caches a binary per program text, and the text of our
variant carries a hash of the C++ that faust generates from it, so editing one library
function only rebuilds the programs whose generated code changed.

Environment: needs `faust` and `g++` (skipped otherwise) and the faust-ref tool
(FAUST_REF, default /work/shared/tools/faust-ref). FAUSTDIFF_STDLIB_TEST_DIR sets the
work folder (default: $TMPDIR/faustdiff-stdlib-ref).
"""
from __future__ import annotations

import concurrent.futures
import csv
import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LIB_DIR = Path(__file__).resolve().parent.parent / "faustdiff" / "lib"
FAUST_REF = Path(os.environ.get("FAUST_REF", "/work/shared/tools/faust-ref"))
WORK = Path(os.environ.get("FAUSTDIFF_STDLIB_TEST_DIR",
                           Path(tempfile.gettempdir()) / "faustdiff-stdlib-ref"))
NOT_OURS = {"diff.lib"}  # lives in the same folder but is not part of the standard library

pytestmark = pytest.mark.skipif(
    shutil.which("faust") is None or shutil.which("g++") is None or not FAUST_REF.exists(),
    reason="needs the Faust compiler, g++ and the faust-ref tool",
)

# Stimuli written with primitives only, so both renders see the same input signals.
PRELUDE = """import("stdfaust.lib");
t_n = (+(1) ~ _) - 1;                                   // 0, 1, 2, ...
t_gate = ((t_n >= 10) & (t_n < 300)) | ((t_n >= 700) & (t_n < 720)) | (t_n >= 1200);
t_sq(p) = (t_n % p) < (p / 2);                          // 0/1 square wave, period p samples
t_steps = float((t_n / 97) : int % 7) - 3.0;              // staircase -3 .. 3
t_slow = sin(float(t_n) * 0.003) * 0.5 + 0.5;            // slow wave in [0, 1]
"""


@dataclass
class Case:
    id: str
    body: str                 # Faust definitions, must define `process`
    n: int = 2000             # samples
    ins: int = 0              # number of inputs (fed from a generated CSV)
    tol: float = 1e-9
    settings: tuple = ()      # label=value arguments for faust-ref
    extra: dict = field(default_factory=dict)


def C(id, body, **kw):
    return Case(id, body, **kw)


CASES = [
    # ---------------------------------------------------------------- maths.lib
    C("ma.constants", "process = ma.PI, ma.E, ma.SR, ma.T, ma.EPSILON, ma.MIN, ma.MAX, ma.INFINITY, ma.BS;", n=4, tol=0),
    C("ma.frac+decimal", "process = _ * 7.3 <: ma.frac, ma.decimal;", ins=1),
    C("ma.signum+neg+inv", "process = _ <: ma.signum, ma.neg, ma.inv(_ + 3), ma.sub(_, 2);", ins=1),
    C("ma.FTZ", "process = _ <: ma.FTZ(_ * 1e-310), ma.FTZ;", ins=1),
    C("ma.modulo", "process = _ * 10 <: ma.modulo(_, 3), ma.modulo(_, -2.5);", ins=1),
    C("ma.np2", "process = ma.np2(t_n % 700 + 1), ma.np2(5), ma.np2(64);"),
    C("ma.nextpow2+log2", "process = ma.nextpow2(t_n + 1), ma.log2(float(t_n) + 0.5);"),
    C("ma.diffn+zc", "process = _ <: ma.diffn, ma.zc;", ins=1),
    C("ma.chebychev", "process = _ <: ma.chebychev(0), ma.chebychev(1), ma.chebychev(4), ma.chebychevpoly((0.5, 0.2, -0.3, 0.1));", ins=1),
    C("ma.hyperbolic", "process = _ * 3 <: ma.sinh, ma.cosh, ma.tanh, ma.asinh, ma.atanh(_ * 0.3), ma.acosh(abs + 1);", ins=1),
    C("ma.cmath1", "process = _ * 4 <: ma.cbrt, ma.log1p(abs), ma.expm1, ma.erf, ma.erfc, ma.gamma(abs + 0.1), ma.lgamma(abs + 0.1), ma.fabs, ma.logb(_ + 5), ma.ilogb(_ + 5);", ins=1),
    C("ma.cmath2", "process = _, _ <: ma.copysign(_, _), ma.hypot(_, _), ma.fmax(_, _), ma.fmin(_, _), ma.nextafter(_, _);", ins=2),
    C("ma.ldexp+scalb", "process = _ <: ma.ldexp(_, 3), ma.scalb(_, -2);", ins=1),
    C("ma.bessel", "process = _ * 5 + 6 <: ma.J0, ma.J1, ma.Jn(3), ma.Y0, ma.Y1, ma.Yn(2);", ins=1),
    C("ma.isnan+isinf", "process = _ <: ma.isnan(log(_)), ma.isinf(exp(_ * 1000)), ma.isnan;", ins=1),
    # ------------------------------------------------------------- platform.lib
    C("pl.constants", "process = pl.SR, pl.BS, pl.tablesize;", n=4, tol=0),
    # --------------------------------------------------------------- basics.lib
    C("ba.conversions1", "process = _ <: ba.samp2sec, ba.sec2samp, ba.db2linear(_ * 40), ba.linear2db(abs), ba.lin2LogGain, ba.log2LinGain(abs);", ins=1),
    C("ba.conversions2", "process = _ * 20 + 60 <: ba.midikey2hz, ba.hz2midikey(abs + 30), ba.semi2ratio, ba.ratio2semi(abs + 1), ba.cent2ratio, ba.ratio2cent(abs + 1), ba.pianokey2hz, ba.hz2pianokey(abs + 30);", ins=1),
    C("ba.tau2pole+pole2tau", "process = _ <: ba.tau2pole(abs * 0.01), ba.tau2pole(0), ba.tau2pole(_ * 1e-17), ba.pole2tau(abs * 0.99);", ins=1),
    C("ba.millisec+tempo", "process = ba.millisec, ba.tempo(120), ba.tempo(t_slow * 100 + 60);"),
    C("ba.counter", "process = ba.counter(t_gate), ba.counter(t_sq(50));"),
    C("ba.countdown+countup", "process = ba.countdown(100, t_sq(300)), ba.countup(150, t_sq(400)), ba.countdown(t_steps * 10, t_gate);"),
    C("ba.sweep", "process = ba.sweep(37, 1), ba.sweep(t_steps + 4, t_gate), ba.sweep(10.5, t_sq(100));"),
    C("ba.time", "process = ba.time, ba.time * 0.5;", tol=0),
    C("ba.ramp", "process = t_steps <: ba.ramp(0), ba.ramp(25), ba.ramp(7);"),
    C("ba.line", "process = ba.line(30, t_steps), ba.line(1, t_steps), ba.line(50, t_slow);"),
    C("ba.period+pulse+pulsen", "process = ba.period(17), ba.pulse(13), ba.pulsen(5, 20), ba.period(t_steps + 5);", tol=0),
    C("ba.beat", "process = ba.beat(6000), ba.beat(t_slow * 5000 + 3000);", n=3000),
    C("ba.pulse_countup+down", "process = t_sq(7) <: ba.pulse_countup(t_gate), ba.pulse_countdown(t_gate), ba.pulse_countup_loop(5, t_gate), ba.pulse_countdown_loop(-4, t_gate);"),
    C("ba.resetCtr+cycle", "process = t_sq(6) <: ba.resetCtr(4, 2), ba.cycle(3);"),
    C("ba.count+take", "process = ba.count((1, 2, 3, 4, 5)), ba.count(7), ba.take(2, (10, 20, 30)), ba.take(3, (10, 20, 30)), ba.take(1, 42), ba.take(4, (_, _ * 2, _ * 3, _ * 4, _ * 5));", ins=1),
    C("ba.subseq", "process = ba.subseq((10, 20, 30, 40, 50), 1, 3), ba.subseq((10, 20, 30), 0, 1), ba.subseq((10, 20, 30), 2, 1), ba.subseq((1, 2), 0, 2);", n=4),
    C("ba.if", "process = _, _ <: ba.if(_ > 0, _, _ * 3), ba.if(t_gate, 1.5, -2);", ins=2),
    C("ba.selector+cselector", "process = _, _, _, _ <: ba.selector(2, 4), ba.selector(0, 4), ba.cselector(1, 2);", ins=4),
    C("ba.select2stereo", "process = _, _, _, _ : ba.select2stereo(t_gate);", ins=4),
    C("ba.selectn", "process = _, _, _, _, _ <: ba.selectn(5, t_steps + 2), ba.selectn(5, t_steps * 0.7 + 1.3), ba.selectn(5, 3), ba.selectn(1, 0), !, !, !, ! ;", ins=5),
    C("ba.selectoutn", "process = _ : ba.selectoutn(4, t_steps + 1);", ins=1),
    C("ba.latch", "process = _ <: ba.latch(t_sq(30)), ba.latch(_);", ins=1),
    C("ba.sAndH", "process = _ <: ba.sAndH(t_gate), ba.sAndH(t_sq(11));", ins=1),
    C("ba.downSample", "process = _ : ba.downSample(3000);", ins=1),
    C("ba.peakhold", "process = _ <: ba.peakhold(t_gate), ba.peakhold(0);", ins=1),
    C("ba.peakholder", "process = _ <: ba.peakholder(20), ba.peakholder(t_steps * 10 + 40);", ins=1),
    C("ba.impulsify", "process = t_gate, t_steps, t_slow : ba.impulsify, ba.impulsify, ba.impulsify;"),
    C("ba.toggle", "process = t_gate, (t_steps + 3), float(t_sq(40)) : ba.toggle, ba.toggle, ba.toggle;"),
    C("ba.on_and_off", "process = ba.on_and_off(t_sq(100), t_sq(70));"),
    C("ba.bitcrusher", "process = _ <: ba.bitcrusher(3), ba.bitcrusher(8);", ins=1),
    C("ba.bypass", "process = (_ <: ba.bypass1(t_gate, fi.pole(0.9)), ba.bypass1to2(t_sq(100), (_ <: _, _ * 2))), (_, _ : ba.bypass2(t_sq(60), (fi.pole(0.5), *(3))));", ins=3),
    C("ba.slidingSum+Mean+RMS", "process = _ <: ba.slidingSum(16), ba.slidingMean(32), ba.slidingRMS(8), ba.slidingMean(1), ba.slidingSum(0);", ins=1),
    C("ba.parallel", "process = _, _, _, _ <: ba.parallelMax(4), ba.parallelMin(4), ba.parallelMean(4), ba.parallelRMS(4), ba.parallelOp(+, 4), ba.parallelOp(-, 4);", ins=4),
    # -------------------------------------------------------------- signals.lib
    C("si.bus+block", "process = (si.bus(3) : _, _ * 2, _), (si.block(2)), si.bus(1), (si.bus(0), si.bus(2));", ins=8),
    C("si.cbus+cmul+cconj", "process = si.cbus(2) : si.cmul, si.cconj(1, 2) : _, _, _, _;", ins=4),
    C("si.interpolate", "process = si.interpolate(t_slow);", ins=2),
    C("si.smooth", "process = _ <: si.smooth(0.9), si.smooth(ba.tau2pole(0.001)), si.smooth(t_slow), si.smoo;", ins=1),
    C("si.polySmooth+smoothAndH", "process = _ <: si.polySmooth(t_steps, 0.99, 10), si.smoothAndH(t_gate, 0.9);", ins=1),
    C("si.bsmooth", "process = t_steps : si.bsmooth;"),
    C("si.dot", "process = si.dot(3);", ins=6),
    C("si.onePoleSwitching+lag_ud", "process = _ <: si.onePoleSwitching(0.001, 0.01), si.lag_ud(0.002, 0);", ins=1),
    # --------------------------------------------------------------- routes.lib
    C("ro.cross", "process = ro.cross(1), ro.cross(2), ro.cross(4), ro.cross2;", ins=11),
    C("ro.crossNM", "process = ro.crossNM(2, 3), ro.crossnn(2), ro.crossn1(2), ro.cross1n(3);", ins=16),
    C("ro.interleave", "process = ro.interleave(3, 2), ro.interleave(2, 3), ro.interleave(1, 2);", ins=14),
    C("ro.butterfly+hadamard", "process = ro.butterfly(2), ro.butterfly(4), ro.hadamard(4), ro.hadamard(8);", ins=18),
    C("ro.bubbleSort", "process = ro.bubbleSort(1), ro.bubbleSort(5);", ins=6),
    # ---------------------------------------------------------- oscillators.lib
    C("os.osc", "process = os.osc(440), os.osc(1000.5), os.osc(7777.7), os.osc(t_slow * 3000 + 20);", n=44100, tol=0),
    C("os.oscsin+osccos", "process = os.oscsin(440), os.osccos(440), os.oscsin(-300);", n=5000, tol=0),
    C("os.osci", "process = os.osci(440), os.osci(1234.5);", n=5000),
    C("os.oscp", "process = os.oscp(440, 0.3), os.oscp(500, t_slow);", n=5000),
    C("os.hs_osc", "process = os.hs_oscsin(440, t_sq(300)), os.hs_osccos(300, t_gate);", n=3000, tol=0),
    C("os.sinwaveform+coswaveform", "process = os.sinwaveform(64), os.coswaveform(100), os.sinwaveform(65536);", n=300, tol=0),
    C("os.phasor", "process = os.phasor(1, 100), os.phasor(65536, 440), os.phasor(10, t_slow * 1000);", n=5000),
    C("os.phasor_imp", "process = os.phasor_imp(440, t_gate, 0.25), os.hs_phasor(8, 300, t_sq(500)), os.hsp_phasor(3, 200, t_gate, 0.5), os.phasor_table(2, 150, 0, 0);", n=3000),
    C("os.lf_sawpos", "process = os.lf_sawpos(440), os.lf_sawpos_phase(100, 0.3), os.lf_sawpos_reset(200, t_sq(300)), os.lf_sawpos_phase_reset(200, 0.7, t_gate);", n=3000),
    C("os.lf_waves", "process = os.lf_imptrain(500), os.lf_pulsetrainpos(300, 0.2), os.lf_pulsetrain(300, 0.7), os.lf_squarewavepos(440), os.lf_squarewave(440), os.lf_trianglepos(220), os.lf_triangle(220), os.saw1(330), os.lf_saw(330), os.lf_rawsaw(37), os.lf_rawsaw(t_steps + 10);", n=3000),
    C("os.sawN", "process = os.sawN(1, 440), os.sawN(2, 440), os.sawN(3, 440), os.sawN(4, 440), os.sawN(7, 10), os.saw3(1000), os.saw4(300);", n=3000),
    C("os.sawNp", "process = os.sawNp(2, 440, 0.25), os.sawNp(3, 1000, 0.5);", n=3000),
    C("os.saw2", "process = os.saw2ptr(440), os.saw2ptr(t_slow * 2000 + 20), os.saw2(1000), os.sawtooth(55), os.saw2dpw(440);", n=3000),
    C("os.impulse", "process = os.impulse;", n=10, tol=0),
    C("os.pulsetrain+square", "process = os.pulsetrainN(2, 440, 0.3), os.pulsetrain(1000, 0.1), os.squareN(3, 500), os.square(440), os.square(t_slow * 1000 + 10);", n=4000),
    C("os.imptrain+triangle", "process = os.imptrainN(2, 440), os.imptrain(1000), os.triangleN(3, 500), os.triangle(440);", n=4000),
    C("os.oscb+oscr", "process = os.oscb(440), os.oscrq(440), os.oscrs(1000), os.oscrc(1000), os.oscrp(300, 0.5), os.oscr(200);", n=4000),
    C("os.oscs+quadosc", "process = os.oscs(440), os.quadosc(440), os.oscs(t_slow * 100 + 100);", n=4000),
    C("os.oscw", "process = os.oscwc(440), os.oscws(440), os.oscq(1000), os.oscw(300);", n=4000),
    C("os.polyblep", "process = os.polyblep(0.1, t_slow), os.polyblep_saw(440), os.polyblep_square(440), os.polyblep_triangle(440);", n=4000),
    # --------------------------------------------------------------- noises.lib
    C("no.noise", "process = no.noise;", n=100000, tol=0),
    C("no.multinoise", "process = no.multirandom(3), no.multinoise(4), no.noises(5, 0), no.noises(5, 3);", n=5000, tol=0),
    C("no.pink", "process = no.pink_filter, no.pink_noise, no.pink_noise_m, no.pink_noise_vm(4);", ins=1, n=5000),
    C("no.lfnoise", "process = no.lfnoise0(100), no.lfnoiseN(2, 200), no.lfnoise(300);", n=5000),
    C("no.gnoise", "process = no.gnoise(5), no.gnoisem(3);", n=5000),
    C("no.sparse+velvet", "process = no.sparse_noise(500), no.velvet_noise(0.5, 1000);", n=5000),
]

_IDS = [c.id for c in CASES]
assert len(set(_IDS)) == len(_IDS), "duplicate case ids"


# ------------------------------------------------------------------ rendering
def _input_csv(path: Path, n: int, k: int) -> None:
    """Deterministic input signals: mixtures of sines, a pseudo-random part and steps."""
    state = 987654321
    rows = []
    for t in range(n):
        row = []
        for c in range(k):
            state = (1664525 * state + 1013904223) % 2**32
            r = state / 2**32 - 0.5
            v = 0.7 * math.sin(0.013 * (c + 1) * t + 0.5 * c) + 0.4 * r
            if (t // (50 + 13 * c)) % 5 == 0:
                v += 0.6 * (-1) ** c
            row.append(repr(v))
        rows.append(",".join(row))
    path.write_text("\n".join(rows) + "\n")


def _our_libs():
    return sorted(p for p in LIB_DIR.glob("*.lib") if p.name not in NOT_OURS)


def _prepare(case: Case, variant: str) -> Path:
    d = WORK / variant / re.sub(r"[^A-Za-z0-9_.+-]", "_", case.id)
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("*.lib"):
        old.unlink()
    text = PRELUDE + case.body + "\n"
    if variant == "ours":
        for lib in _our_libs():
            (d / lib.name).symlink_to(lib)
        probe = d / "probe.dsp"
        probe.write_text(text)
        gen = subprocess.run(["faust", "-double", "-I", str(d), str(probe)],
                             capture_output=True, text=True, cwd=d)
        if gen.returncode != 0:
            raise RuntimeError(f"faust failed with our libraries:\n{gen.stderr}")
        foreign = [m for m in re.findall(r'm->declare\("(\w+\.lib)/name", "([^"]*)"\)', gen.stdout)
                   if not m[1].startswith("faustdiff")]
        if foreign:
            raise RuntimeError(f"system libraries were loaded instead of ours: {foreign}")
        text += "// ours, generated code " + hashlib.sha256(gen.stdout.encode()).hexdigest()[:16] + "\n"
    else:
        text += "// reference: system libraries\n"
    dsp = d / "prog.dsp"
    if not dsp.exists() or dsp.read_text() != text:
        dsp.write_text(text)
    return dsp


def _render(case: Case, variant: str) -> Path:
    dsp = _prepare(case, variant)
    out = dsp.with_suffix(".csv")
    cmd = [str(FAUST_REF), str(dsp), str(case.n)]
    if case.ins:
        inp = dsp.parent / "in.csv"
        _input_csv(inp, case.n, case.ins)
        cmd.append(str(inp))
    cmd += list(case.settings)
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=dsp.parent)
    if res.returncode != 0:
        raise RuntimeError(f"faust-ref failed ({variant}):\n{res.stderr}")
    out.write_text(res.stdout)
    return out


def _load(path: Path):
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    return rows[0], [[float(v) for v in r] for r in rows[1:]]


def _compare(ours: Path, ref: Path, tol: float) -> list[str]:
    h1, a = _load(ours)
    h2, b = _load(ref)
    problems = []
    if h1 != h2:
        problems.append(f"columns differ: {h1} vs {h2}")
    if len(a) != len(b):
        problems.append(f"rows differ: {len(a)} vs {len(b)}")
    for t, (ra, rb) in enumerate(zip(a, b)):
        for c, (x, y) in enumerate(zip(ra, rb)):
            same = (math.isnan(x) and math.isnan(y)) or x == y or abs(x - y) <= tol + tol * abs(y)
            if not same:
                problems.append(f"{h2[c]} sample {t}: ours {x!r}, reference {y!r}")
                break
        if len(problems) >= 8:
            break
    return problems


_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))
_FUTURES: dict[tuple[str, str], concurrent.futures.Future] = {}
_BY_ID = {c.id: c for c in CASES}


def _submit(case: Case):
    for variant in ("ours", "reference"):
        key = (case.id, variant)
        if key not in _FUTURES:
            _FUTURES[key] = _POOL.submit(_render, case, variant)


@pytest.fixture(scope="module")
def prefetch(request):
    """Starts every selected case's renders in parallel, in collection order."""
    for item in request.session.items:
        cs = getattr(item, "callspec", None)
        if cs is not None and item.module.__name__ == __name__ and "case" in cs.params:
            _submit(cs.params["case"])
    yield
    _POOL.shutdown(wait=False, cancel_futures=True)


@pytest.mark.parametrize("case", CASES, ids=_IDS)
def test_matches_faust_libraries(case, prefetch):
    _submit(case)
    ours = _FUTURES[(case.id, "ours")].result()
    ref = _FUTURES[(case.id, "reference")].result()
    problems = _compare(ours, ref, case.tol)
    assert not problems, f"{case.id}: our library differs from Faust 2.54.9:\n" + "\n".join(problems)


# ------------------------------------------------------------ static checks
def test_libraries_only_load_each_other():
    """Every library("x")/import("x") in our files names one of our files."""
    ours = {p.name for p in _our_libs()}
    for lib in _our_libs():
        for ref in re.findall(r'(?:library|import)\("([^"]+)"\)', lib.read_text()):
            assert ref in ours, f"{lib.name} loads {ref}, which is not one of our libraries"


def test_stdfaust_environments():
    text = (LIB_DIR / "stdfaust.lib").read_text()
    envs = dict(re.findall(r'^(\w+)\s*=\s*library\("([^"]+)"\)', text, re.M))
    for prefix in "ma si ro ba os no de fi an en re pl".split():
        assert prefix in envs, f"stdfaust.lib lacks {prefix}"
        assert (LIB_DIR / envs[prefix]).exists(), f"{envs[prefix]} is missing"
