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
(FAUST_REF, default /work/shared/tools/faust-ref). Set FAUSTDIFF_SKIP_STDLIB_REF=1 to skip
these cases. Several test runs may share faust-ref's binary cache at the same time: each
render holds a lock on its cache entry.
"""
from __future__ import annotations

import atexit
import concurrent.futures
import csv
import fcntl
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
FAUST_REF_CACHE = Path(os.environ.get("FAUST_REF_CACHE",
                                      Path(os.environ.get("TMPDIR", "/tmp")) / "faust-ref-cache"))
_WORK_DIR = tempfile.TemporaryDirectory(prefix="faustdiff-stdlib-ref-")
atexit.register(_WORK_DIR.cleanup)
WORK = Path(_WORK_DIR.name)
NOT_OURS = {"diff.lib", "diff-nn.lib"}  # in the same folder, not part of the standard library

pytestmark = pytest.mark.skipif(
    shutil.which("faust") is None or shutil.which("g++") is None or not FAUST_REF.exists()
    or os.environ.get("FAUSTDIFF_SKIP_STDLIB_REF") == "1",
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
    ref: str | None = None    # body for the reference render, when 2.54.9 spells it differently
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
    C("ba.if", "process = (_, _, _ : ba.if(_ > 0, _, _ * 3)), ba.if(t_gate, 1.5, -2), ba.if(t_sq(10), t_steps, t_slow);", ins=3),
    C("ba.selector+cselector", "process = _, _, _, _ <: ba.selector(2, 4), ba.selector(0, 4), ba.cselector(1, 2);", ins=4),
    C("ba.select2stereo", "process = _, _, _, _ : ba.select2stereo(t_gate);", ins=4),
    C("ba.selectn", "process = _, _, _, _, _ <: ba.selectn(5, t_steps + 2), ba.selectn(5, t_steps * 0.7 + 1.3), ba.selectn(5, 3), ba.selectn(1, 0), !, !, !, ! ;", ins=5),
    C("ba.selectoutn", "process = _ : ba.selectoutn(4, t_steps + 1);", ins=1),
    C("ba.latch", "process = _ <: ba.latch(t_sq(30)), ba.latch(t_steps), ba.latch(t_slow - 0.5);", ins=1),
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
    C("ba.bypass_fade", "process = _, _ : ba.bypass_fade(50, t_gate, (fi.pole(0.9), *(2)));", ins=2),
    C("ba.bpf+listInterp", "process = t_slow * 6 <: (ba.bpf.start(0, 1) : ba.bpf.point(2, 3) : ba.bpf.point(3, -1) : ba.bpf.end(5, 0)), ba.listInterp((1, 4, 2)), ba.listInterp((0, 1, 0.5, 2, -1, 3));"),
    C("ba.slidingReduce", "process = _ <: ba.slidingSump(5, 8), ba.slidingMax(7, 16), ba.slidingMin(3, 4), ba.slidingMeanp(6, 8), ba.slidingRMSp(9, 16), ba.slidingReduce(max, 1, 1, 0), ba.slidingMax(t_steps + 4, 8), ba.slidingSump(hslider(\"n\", 5, 1, 32, 1), 32);", ins=1),
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
    C("os.phasor", "process = os.phasor(1, 100), os.phasor(65536, 440), os.phasor(10, t_slow * 1000);", n=5000, tol=0),
    C("os.phasor_imp", "process = os.phasor_imp(440, t_gate, 0.25), os.hs_phasor(8, 300, t_sq(500)), os.hsp_phasor(3, 200, t_gate, 0.5), os.phasor_table(2, 150, 0, 0);", n=3000),
    C("os.lf_sawpos", "process = os.lf_sawpos(440), os.lf_sawpos_phase(100, 0.3), os.lf_sawpos_reset(200, t_sq(300)), os.lf_sawpos_phase_reset(200, 0.7, t_gate);", n=3000, tol=0),
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
    # --------------------------------------------------------------- delays.lib
    C("de.delay", "process = _ <: de.delay(100, 17), de.delay(10, 30), de.delay(64, t_steps * 5 + 20), de.delay(8, -3);", ins=1),
    C("de.fdelay", "process = _ <: de.fdelay(100, 17.3), de.fdelay(64, t_slow * 40 + 2), de.fdelay(10, 12.5);", ins=1),
    C("de.fdelayltv", "process = _ <: de.fdelayltv(3, 64, 10.4), de.fdelay1(64, 7.7), de.fdelay2(64, 9.1), de.fdelay3(64, t_slow * 30 + 3), de.fdelay4(64, 20.25), de.fdelay5(64, 30.9);", ins=1),
    C("de.fdelaylti", "process = _ <: de.fdelaylti(3, 64, 10.4), de.fdelaylti(1, 64, 7.7), de.fdelaylti(2, 64, t_slow * 30 + 3), de.fdelaylti(5, 64, 30.9);", ins=1),
    C("de.fdelayNa", "process = _ <: de.fdelay1a(64, 7.7), de.fdelay2a(64, 9.1), de.fdelay3a(64, t_slow * 30 + 5), de.fdelay4a(64, 20.25);", ins=1),
    C("de.sdelay", "process = _ <: de.sdelay(128, 32, t_steps * 10 + 40), de.sdelay(64, 5, 20), de.sdelay(64, 100, t_sq(600) * 30);", ins=1, n=3000),
    C("de.delayNs", "process = _ <: de.delay1s(100), de.delay2s(1000), de.delay5s(3), de.delay10s(7), de.delay21s(1), de.delay43s(2), de.fdelay1s(10.5), de.fdelay2s(3.3), de.fdelay5s(1.1), de.fdelay10s(2.2), de.fdelay21s(7.7), de.fdelay43s(0.4);", ins=1, n=1500),
    # -------------------------------------------------------------- filters.lib
    C("fi.pole+zero+integrator", "process = _ <: fi.pole(0.9), fi.zero(0.5), fi.integrator, fi.pole(t_slow), fi.zero(-1);", ins=1),
    C("fi.dcblocker", "process = _ <: fi.dcblocker, fi.dcblockerat(35), fi.dcblockerat(500);", ins=1),
    C("fi.lpt", "process = _ <: fi.lptN(40, 0.01), fi.lptau(0.002), fi.lpt60(0.05), fi.lpt19(0.01), fi.avg_tau(0.001), fi.avg_rect(0.001);", ins=1),
    C("fi.fir", "process = _ <: fi.fir((0.5, 0.3, -0.2, 0.1)), fi.fir(0.7), fi.fir((1, 2)), fi.conv((0.25, 0.25, 0.25, 0.25));", ins=1),
    C("fi.fir_sliders", "process = _ : fi.fir((hslider(\"a\", 0.3, -1, 1, 0.01), 0.5, hslider(\"b\", -0.2, -1, 1, 0.01) * t_slow));", ins=1),
    # fi.convN does not compile in 2.54.9 (it calls an undefined `take`): compare with fi.fir
    C("fi.convN", "process = _ : fi.convN(3, (0.1, 0.2, 0.3, 0.4));", ref="process = _ : fi.fir((0.1, 0.2, 0.3));", ins=1),
    C("fi.iir", "process = _ <: fi.iir((0.2, 0.3, 0.1), (-0.5, 0.2)), fi.iir((1), (0.5)), fi.iir((0.1, 0.2, 0.3, 0.2), (-0.9, 0.4, -0.05));", ins=1),
    C("fi.tf1+tf2+tf3", "process = _ <: fi.tf1(0.5, 0.3, -0.6), fi.tf2(0.2, 0.4, 0.2, -0.3, 0.1), fi.tf3(0.1, 0.2, 0.2, 0.1, -0.5, 0.3, -0.05), fi.tf2(t_slow, 0.1, 0.2, -0.2, 0.1);", ins=1),
    C("fi.tf2_8cascade", "bq(k) = fi.tf2(0.05 + 0.01 * k, 0.1, 0.05, -1.2 + 0.05 * k, 0.5 - 0.02 * k); process = _ : seq(k, 8, bq(k));", ins=1, n=5000),
    C("fi.biquad", "process = _ : fi.biquad(0.2, 0.4, 0.2, -0.3, 0.1);", ref="process = _ : fi.tf2(0.2, 0.4, 0.2, -0.3, 0.1);", ins=1),
    C("fi.tf2_variants", "process = _ <: fi.tf21(0.2, 0.4, 0.2, -0.3, 0.1), fi.tf22(0.2, 0.4, 0.2, -0.3, 0.1), fi.tf22t(0.2, 0.4, 0.2, -0.3, 0.1), fi.tf21t(0.2, 0.4, 0.2, -0.3, 0.1), fi.tf21(0.3, -0.4, 0.2, -1.6, 0.8);", ins=1, n=3000),
    C("fi.notchw", "process = _ <: fi.notchw(100, 1000), fi.notchw(10, 5000);", ins=1),
    C("fi.tf1s+tf2s", "process = _ <: fi.tf1s(0, 1, 1, 2 * ma.PI * 1000), fi.tf1s(1, 0.5, 2, 3000), fi.tf2s(0, 0, 1, 1.414, 1, 2 * ma.PI * 500), fi.tf2s(1, 0.3, 2, 0.5, 3, 20000);", ins=1),
    C("fi.resonlp+hp+bp", "process = _ <: fi.resonlp(1000, 5, 0.5), fi.resonhp(2000, 2, 1), fi.resonbp(500, 10, 1), fi.resonlp(t_slow * 3000 + 100, 3, 1);", ins=1),
    C("fi.lowpass", "process = _ <: fi.lowpass(1, 1000), fi.lowpass(2, 1000), fi.lowpass(3, 2000), fi.lowpass(4, 500), fi.lowpass(5, 3000), fi.lowpass(8, 5000), fi.lowpass(3, t_slow * 3000 + 100);", ins=1, n=3000),
    C("fi.highpass", "process = _ <: fi.highpass(1, 1000), fi.highpass(2, 1000), fi.highpass(3, 2000), fi.highpass(4, 500), fi.highpass(7, 3000), fi.lowpass0_highpass1(1, 6, 800);", ins=1, n=3000),
    C("fi.bandpass+bandstop", "process = _ <: fi.bandpass(1, 500, 2000), fi.bandpass(2, 300, 3000), fi.bandpass(3, 1000, 1500), fi.bandstop(1, 500, 2000), fi.bandstop(2, 300, 3000), fi.bandstop(3, 1000, 1500);", ins=1, n=3000),
    C("fi.tf2sb+tf1sb", "process = _ <: fi.tf2sb(0.3, 0.5, 1, 1.2, 1, 2000, 3000), fi.tf1sb(0.4, 1, 1, 1500, 2500);", ins=1, n=3000),
    C("fi.elliptic3", "process = _ <: fi.lowpass3e(1000), fi.highpass3e(2000);", ins=1, n=3000),
    C("fi.peak_eq", "process = _ <: fi.peak_eq(6, 1000, 100), fi.peak_eq(-10, 3000, 500), fi.peak_eq(t_steps * 3, 2000, 300);", ins=1, n=3000),
    C("fi.peak_eq_cq+rm", "process = _ <: fi.peak_eq_cq(6, 1000, 2), fi.peak_eq_rm(-6, 2000, 0.1), fi.peak_eq_rm(t_steps, 500, 0.05);", ins=1, n=3000),
    C("fi.shelf1", "process = _ <: fi.low_shelf1(6, 500), fi.low_shelf1_l(0.5, 300), fi.high_shelf1(-4, 3000), fi.high_shelf1_l(2, 2000);", ins=1, n=3000),
    C("fi.avg_t60+t19", "process = _ <: fi.avg_t60(0.01), fi.avg_t19(0.002);", ins=1),
    C("fi.combs_fb_runtime", "process = _ <: fi.fb_comb(64, t_steps + 10, 0.9, 0.5), fi.allpass_comb(64, t_steps * 3 + 20, -0.6), fi.fb_fcomb(64, t_slow * 30 + 2, 1, 0.7);", ins=1, n=3000),
    C("fi.combs_ff", "process = _ <: fi.ff_comb(64, 10, 0.5, 0.4), fi.ff_fcomb(64, 10.3, 0.5, -0.4), fi.ffcombfilter(64, 7, 0.7), fi.ff_comb(64, t_steps + 5, 1, 1);", ins=1),
    C("fi.combs_fb", "process = _ <: fi.fb_comb(64, 10, 0.5, 0.4), fi.fb_comb(64, 1, 1, -0.5), fi.fb_fcomb(64, 10.3, 0.5, -0.4), fi.rev1(64, 13, 0.8), fi.fbcombfilter(64, 9, 0.6), fi.ffbcombfilter(64, 9.4, 0.6);", ins=1, n=3000),
    C("fi.combs_allpass", "process = _ <: fi.allpass_comb(64, 10, 0.5), fi.allpass_comb(64, 1, -0.3), fi.allpass_fcomb(64, 10.3, 0.5), fi.allpass_fcomb5(64, 12.6, 0.4), fi.allpass_fcomb1a(64, 8.2, 0.6), fi.rev2(64, 17, 0.7);", ins=1, n=3000),
    C("fi.nlf2+wgr", "process = _ <: fi.nlf2(1000, 0.999), fi.wgr(700, 0.99);", ins=1, n=3000),
    C("fi.svf", "process = _ <: fi.svf.lp(1000, 0.7), fi.svf.bp(1000, 2), fi.svf.hp(1000, 0.7), fi.svf.notch(2000, 1), fi.svf.peak(500, 3), fi.svf.ap(800, 1), fi.svf.bell(1000, 2, 6), fi.svf.ls(300, 0.7, -6), fi.svf.hs(3000, 0.7, 4);", ins=1, n=3000),
    C("fi.LR4", "process = _ <: fi.lowpassLR4(1000), fi.highpassLR4(1000), fi.crossover2LR4(500);", ins=1, n=3000),
    # ------------------------------------------------------------ envelopes.lib
    C("en.ar", "process = en.ar(0.001, 0.002, t_gate), en.ar(0, 0, t_sq(100)), en.ar(0.0005, 0.01, t_sq(700)), en.ar(0.002, 0.003, t_gate * 0.5);", n=3000),
    C("en.asr", "process = en.asr(0.001, 0.6, 0.002, t_gate), en.asr(0, 1, 0, t_sq(100)), en.asr(0.003, 0.5, 0.001, t_sq(500) * 0.7);", n=3000),
    C("en.adsr", "process = en.adsr(0.001, 0.002, 0.6, 0.003, t_gate), en.adsr(0.05, 0.05, 1, 0.9, t_sq(2000)), en.adsr(0, 0, 0.5, 0, t_sq(100)), en.adsr(0.0005, 0.001, 0.3, 0.002, t_sq(600) * 0.8);", n=3000),
    C("en.smoothEnvelope", "process = en.smoothEnvelope(0.001, t_gate), en.smoothEnvelope(0, t_steps);", n=3000),
    C("en.asrfe+family", "process = en.asrfe(0.002, 0.7, 0.004, 0.1, t_gate), en.arfe(0.001, 0.003, 0.2, t_sq(900)), en.are(0.001, 0.003, t_gate), en.asre(0.001, 0.5, 0.003, t_gate);", n=3000),
    C("en.adsre+ahdsre", "process = en.adsre(0.002, 0.003, 0.6, 0.004, t_gate), en.ahdsre(0.001, 0.002, 0.003, 0.5, 0.004, t_gate), en.adsre(0, 0.001, 0.2, 0.001, t_sq(300));", n=3000),
    # ------------------------------------------------------------ analyzers.lib
    C("an.followers", "process = _ <: an.amp_follower(0.01), an.peak_envelope(0.001), an.amp_follower_ud(0.001, 0.01), an.amp_follower_ar(0.001, 0.01);", ins=1),
    C("an.envelopes", "process = _ <: an.abs_envelope_rect(0.001), an.abs_envelope_tau(0.001), an.ms_envelope_rect(0.002), an.ms_envelope_tau(0.002), an.rms_envelope_rect(0.001), an.rms_envelope_tau(0.001), an.zcr(0.001);", ins=1),
    C("an.envelopes_t60_t19", "process = _ <: an.abs_envelope_t60(0.01), an.abs_envelope_t19(0.002), an.ms_envelope_t60(0.01), an.ms_envelope_t19(0.002), an.rms_envelope_t60(0.01), an.rms_envelope_t19(0.002);", ins=1),
    C("an.mth_octave", "process = _ <: an.mth_octave_analyzer(3, 1, 8000, 4), an.mth_octave_analyzer5(2, 5000, 3);", ins=1, n=3000),
    C("an.fft", "process = si.cbus(8) <: an.fft(8), an.ifft(8), (an.fft(2), si.block(12));", ins=16, n=200),
    C("an.fft16", "process = si.cbus(16) : an.fft(16);", ins=32, n=100),
    C("an.rfft_analyzer_magsq", "process = _ <: an.rfft_analyzer_magsq(16), an.rfft_analyzer_magsq(2), an.rfft_analyzer_c(8), an.rfft_analyzer_db(4);", ins=1, n=1000),
    C("an.rtocv+select", "process = (_ <: an.rtorv(4), an.rtocv(3)), (si.bus(4) : an.rvtocv(4)), (si.bus(8) : an.select_pos_freqs(8)), (si.cbus(4) : an.c_select_pos_freqs(4));", ins=21, n=100),
    C("an.rfft_analyzer_magsq_64", "process = _ : an.rfft_analyzer_magsq(64) :> _;", ins=1, n=300),
    C("an.c_magsq+c_magdb", "process = si.cbus(3) <: an.c_magsq(3), an.c_magdb(3);", ins=6, n=300),
    C("an.mth_octave_analyzer3", "process = _ : an.mth_octave_analyzer3(2, 6000, 3);", ins=1, n=2000),
    # -------------------------------------------------------------- reverbs.lib
    C("re.mono_freeverb", "process = _ <: re.mono_freeverb(0.84, 0.5, 0.2, 23), re.mono_freeverb(0.5, 0.3, 0.5, 0);", ins=1, n=6000),
    C("re.stereo_freeverb", "process = re.stereo_freeverb(0.84, 0.5, 0.2, 23);", ins=2, n=6000),
    C("re.jcrev+satrev", "process = _ <: re.jcrev, re.satrev;", ins=1, n=6000),
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
    body = case.ref if (variant == "reference" and case.ref is not None) else case.body
    text = PRELUDE + body + "\n"
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
    dsp.write_text(text)
    return dsp


def _cache_lock(dsp: Path):
    """A lock on faust-ref's cache entry for this program (same key as faust-ref's)."""
    arch = FAUST_REF.parent / "faust-ref-arch.cpp"
    key = hashlib.sha256(dsp.read_bytes() + arch.read_bytes()).hexdigest()[:16]
    FAUST_REF_CACHE.mkdir(parents=True, exist_ok=True)
    f = open(FAUST_REF_CACHE / f"{key}.lock", "w")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def _render(case: Case, variant: str) -> Path:
    dsp = _prepare(case, variant)
    out = dsp.with_suffix(".csv")
    cmd = [str(FAUST_REF), str(dsp), str(case.n)]
    if case.ins:
        inp = dsp.parent / "in.csv"
        _input_csv(inp, case.n, case.ins)
        cmd.append(str(inp))
    cmd += list(case.settings)
    for attempt in range(3):
        with _cache_lock(dsp):
            res = subprocess.run(cmd, capture_output=True, text=True, cwd=dsp.parent,
                                 env={**os.environ, "FAUST_REF_CACHE": str(FAUST_REF_CACHE)})
        # a concurrent faust-ref that does not take the lock can disturb the cache entry
        if res.returncode == 0 or not re.search(r"Text file busy|cannot stat", res.stderr):
            break
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


def test_every_library_declares_its_name():
    """Our files declare a name starting with "faustdiff": the renders use it to prove that
    none of the system libraries was loaded in place of ours."""
    for lib in _our_libs():
        if lib.name == "stdfaust.lib":
            continue
        m = re.search(r'^declare name "([^"]*)";', lib.read_text(), re.M)
        assert m and m.group(1).startswith("faustdiff"), f"{lib.name} lacks `declare name \"faustdiff ...\"`"
