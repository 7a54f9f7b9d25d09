"""The command line: options, input kinds and files, outputs, messages and exit statuses.

Most tests drive the CLI in-process over a fake Program (see conftest.FakeProgram) so they
test the CLI alone; the others run real Faust programs, some in a subprocess.
Error messages are asserted whole.
"""
from __future__ import annotations

import copy
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest

import faustdiff
from faustdiff import audio_io
from conftest import EXAMPLES, ROOT, cli_command


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


def write_csv(name, rows, header=None):
    lines = ([header] if header else []) + [",".join(repr(float(v)) for v in r) for r in rows]
    Path(name).write_text("\n".join(lines) + "\n")
    return name


# ---------------------------------------------------------------------------- basics

def test_version(cli):
    r = cli("--version")
    assert (r.exit_code, r.stdout, r.stderr) == (0, f"faustdiff {faustdiff.__version__}\n", "")


def test_version_matches_the_installed_distribution(cli):
    from importlib.metadata import PackageNotFoundError, version
    try:
        assert version("faustdiff") == faustdiff.__version__
    except PackageNotFoundError:
        pytest.skip("faustdiff is not installed")


def test_help_lists_commands_and_options(cli):
    r = cli("--help")
    assert r.exit_code == 0 and "run" in r.stdout and "compile" in r.stdout
    r = cli("run", "--help")
    assert r.exit_code == 0
    for opt in ("--input", "--samples", "--sr", "--set", "-I", "--output", "--emit", "--wav-bits"):
        assert opt in r.stdout


def test_run_default_is_impulse_44100_samples_and_a_summary(cli, fake, dsp):
    dsp("// fake: inputs=1 outputs=2 params=gain:0.5 bargraphs=level", "p.dsp")
    r = cli("run", "p.dsp")
    assert r.exit_code == 0, r
    prog = fake.program
    expected_in = np.zeros((1, 44100))
    expected_in[0, 0] = 1.0
    np.testing.assert_array_equal(prog.received, expected_in)
    assert fake.calls == [("p.dsp", 44100, ())]
    # out0 = 0.5*impulse: peak 0.5, rms 0.5/sqrt(44100); out1 = out0 + 1
    rms0 = 0.5 / np.sqrt(44100)
    rms1 = np.sqrt((1.5 ** 2 + 44099) / 44100)
    assert r.stdout == (
        "p.dsp: 1 input, 2 outputs, 44100 samples at 44100 Hz, input impulse, libraries: bundled\n"
        f"  out0: peak 0.5  rms {rms0:.6g}\n"
        f"  out1: peak 1.5  rms {rms1:.6g}\n"
        "  bargraph 'level': final 0\n")
    assert r.stderr == ""


def test_program_without_inputs_gets_none(cli, fake, dsp):
    dsp("// fake: inputs=0 outputs=1", "gen.dsp")
    r = cli("run", "gen.dsp", "--samples", "3", "--input", "noise")
    assert r.exit_code == 0, r
    assert fake.program.received is None
    assert r.stdout == ("gen.dsp: 0 inputs, 1 output, 3 samples at 44100 Hz, libraries: bundled\n"
                        "  out0: peak 1  rms 1\n")


def test_zero_samples(cli, fake, dsp):
    dsp("// fake: inputs=1 outputs=1 bargraphs=b", "p.dsp")
    r = cli("run", "p.dsp", "-n", "0")
    assert r.exit_code == 0, r
    assert r.stdout == ("p.dsp: 1 input, 1 output, 0 samples at 44100 Hz, input impulse, libraries: bundled\n"
                        "  out0: no samples\n  bargraph 'b': no samples\n")
    assert cli("run", "p.dsp", "-n", "0", "-o", "o.csv").exit_code == 0
    assert Path("o.csv").read_text() == "out0,b\n"


@pytest.mark.parametrize("kind", audio_io.INPUT_KINDS)
def test_every_input_kind_reaches_every_input(cli, fake, dsp, kind):
    dsp("// fake: inputs=3 outputs=1", "p.dsp")
    r = cli("run", "p.dsp", "--input", kind, "--samples", "64", "--sr", "48000", "-o", "o.npy")
    assert r.exit_code == 0, r
    np.testing.assert_array_equal(fake.program.received,
                                  audio_io.generate_input(kind, 3, 64, 48000))
    assert fake.calls == [("p.dsp", 48000, ())]


def test_samples_sr_include_and_set(cli, fake, dsp):
    dsp("// fake: inputs=1 outputs=1 params=gain:0.5,bias:0,learned_gain:1", "p.dsp")
    r = cli("run", "p.dsp", "-n", "5", "--sr", "22050", "-I", "libs", "-I", "/x",
            "--set", "gain=2", "--set", "bias=-1e-3", "--set", "learned gain=7", "-o", "o.csv")
    assert r.exit_code == 0, r
    assert fake.calls == [("p.dsp", 22050, ("libs", "/x"))]
    assert fake.program.params == {"gain": 2.0, "bias": -1e-3, "learned gain": 7.0}
    assert Path("o.csv").read_text() == "out0\n1.9990000000000001\n-0.001\n-0.001\n-0.001\n-0.001\n"


# ---------------------------------------------------------------------------- input files

def test_csv_input_sets_the_sample_count(cli, fake, dsp):
    dsp("// fake: inputs=2 outputs=1", "p.dsp")
    write_csv("in.csv", [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]], header="a,b")
    r = cli("run", "p.dsp", "--input", "in.csv", "-o", "o.csv")
    assert r.exit_code == 0, r
    np.testing.assert_array_equal(fake.program.received, [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]])


def test_input_file_is_cut_or_followed_by_zeros(cli, fake, dsp):
    dsp("// fake: inputs=1 outputs=1", "p.dsp")
    write_csv("in.csv", [[1], [2], [3]])
    assert cli("run", "p.dsp", "--input", "in.csv", "-n", "2").exit_code == 0
    np.testing.assert_array_equal(fake.program.received, [[1, 2]])
    assert cli("run", "p.dsp", "--input", "in.csv", "-n", "5").exit_code == 0
    np.testing.assert_array_equal(fake.program.received, [[1, 2, 3, 0, 0]])


def test_npy_input(cli, fake, dsp):
    dsp("// fake: inputs=2 outputs=1", "p.dsp")
    data = np.arange(8.0).reshape(2, 4) / 10
    np.save("in.npy", data)
    assert cli("run", "p.dsp", "--input", "in.npy", "-o", "o.npy").exit_code == 0
    np.testing.assert_array_equal(fake.program.received, data)


def test_wav_input_gives_its_sample_rate_unless_sr_is_given(cli, fake, dsp):
    dsp("// fake: inputs=2 outputs=1", "p.dsp")
    data = np.array([[0.5, -0.25, 0.125], [1.0, 0.0, -1.0]])
    audio_io.write_audio("in.wav", data, 48000, 64)
    r = cli("run", "p.dsp", "--input", "in.wav", "-o", "o.npy")
    assert (r.exit_code, r.stderr) == (0, "")
    assert fake.calls[-1] == ("p.dsp", 48000, ())
    np.testing.assert_array_equal(fake.program.received, data)
    r = cli("run", "p.dsp", "--input", "in.wav", "--sr", "44100", "-o", "o.npy")
    assert r.exit_code == 0
    assert fake.calls[-1] == ("p.dsp", 44100, ())
    assert r.stderr == "faustdiff: warning: 'in.wav' is at 48000 Hz, rendering at 44100 Hz (no resampling)\n"


# ---------------------------------------------------------------------------- outputs

def test_csv_output_has_outputs_then_bargraphs_with_17_digits(cli, fake, dsp):
    dsp("// fake: inputs=1 outputs=2 params=gain:0.1 bargraphs=level,gradient_0", "p.dsp")
    write_csv("in.csv", [[1.0], [3.0]])
    r = cli("run", "p.dsp", "--input", "in.csv", "-o", "o.csv")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    assert Path("o.csv").read_text() == (
        "out0,out1,level,gradient 0\n"
        "0.10000000000000001,1.1000000000000001,0.10000000000000001,0.20000000000000001\n"
        "0.30000000000000004,1.3,0.30000000000000004,0.60000000000000009\n")


def test_wav_output_float32_and_float64(cli, fake, dsp):
    dsp("// fake: inputs=1 outputs=3 params=gain:0.1", "p.dsp")
    assert cli("run", "p.dsp", "-n", "4", "--sr", "8000", "-o", "o.wav").exit_code == 0
    data, sr = audio_io.read_audio("o.wav")
    expected = np.array([[0.1, 0, 0, 0], [1.1, 1, 1, 1], [2.1, 2, 2, 2]])
    assert sr == 8000
    np.testing.assert_array_equal(data, expected.astype(np.float32))
    assert Path("o.wav").read_bytes()[34:36] == b"\x20\x00"  # bits per sample
    assert cli("run", "p.dsp", "-n", "4", "--wav-bits", "64", "-o", "o.wav").exit_code == 0
    data, sr = audio_io.read_audio("o.wav")
    assert sr == 44100
    np.testing.assert_array_equal(data, expected)


def test_npy_output(cli, fake, dsp):
    dsp("// fake: inputs=0 outputs=2", "p.dsp")
    assert cli("run", "p.dsp", "-n", "3", "-o", "o.npy").exit_code == 0
    out = np.load("o.npy")
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[1, 1, 1], [2, 2, 2]])


def test_output_is_written_atomically(cli, fake, dsp, monkeypatch):
    dsp("// fake: inputs=1 outputs=1", "p.dsp")
    Path("o.csv").write_text("old\n")

    def broken(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", broken)
    r = cli("run", "p.dsp", "-n", "10", "-o", "o.csv")
    assert (r.exit_code, r.stdout) == (1, "")
    assert r.stderr == "faustdiff: error: cannot write 'o.csv': No space left on device\n"
    assert Path("o.csv").read_text() == "old\n"
    assert sorted(os.listdir()) == ["o.csv", "p.dsp"]
    monkeypatch.undo()


def test_output_file_gets_normal_permissions(cli, fake, dsp):
    dsp("// fake: inputs=1 outputs=1", "p.dsp")
    old = os.umask(0o022)
    try:
        assert cli("run", "p.dsp", "-n", "1", "-o", "o.csv").exit_code == 0
    finally:
        os.umask(old)
    assert Path("o.csv").stat().st_mode & 0o777 == 0o644


# ---------------------------------------------------------------------------- errors

def err(cli, *args):
    r = cli(*args)
    assert r.exit_code == 1, r
    assert r.stdout == ""
    return r.stderr


def test_faust_error_with_a_position(cli, fake, dsp):
    dsp("// fake-error: 3 14 undefined symbol: foo", "p.dsp")
    assert err(cli, "run", "p.dsp") == "p.dsp:3:14: error: undefined symbol: foo\n"


def test_faust_error_without_a_position(cli, fake, dsp):
    dsp("// fake-error: 0 0 the program has no outputs", "p.dsp")
    assert err(cli, "run", "p.dsp") == "faustdiff: error: the program has no outputs\n"


def test_unknown_set_label(cli, fake, dsp):
    dsp("// fake: params=gain:0.5,freq:100", "p.dsp")
    assert err(cli, "run", "p.dsp", "--set", "gian=1") == (
        "faustdiff: error: --set 'gian': 'p.dsp' has no control labelled 'gian' "
        "(its controls: freq, gain)\n")
    dsp("// fake: inputs=1", "q.dsp")
    assert err(cli, "run", "q.dsp", "--set", "x=1") == (
        "faustdiff: error: --set 'x': 'q.dsp' has no control labelled 'x' (its controls: none)\n")


@pytest.mark.parametrize("setting, message", [
    ("gain", "--set 'gain': expected LABEL=VALUE"),
    ("=3", "--set '=3': expected LABEL=VALUE"),
    ("gain=", "--set 'gain=': '' is not a number"),
    ("gain=loud", "--set 'gain=loud': 'loud' is not a number"),
])
def test_malformed_set(cli, fake, dsp, setting, message):
    dsp("// fake: params=gain:0.5", "p.dsp")
    assert err(cli, "run", "p.dsp", "--set", setting) == f"faustdiff: error: {message}\n"
    assert fake.calls == []  # rejected before compiling


def test_wrong_column_count(cli, fake, dsp):
    dsp("// fake: inputs=1", "p.dsp")
    write_csv("in.csv", [[1, 2]])
    np.save("in.npy", np.zeros((3, 4)))
    audio_io.write_audio("in.wav", np.zeros((2, 4)), 44100)
    audio_io.write_audio("in.flac", np.zeros((3, 4)), 44100)
    assert err(cli, "run", "p.dsp", "--input", "in.csv") == (
        "faustdiff: error: 'in.csv' has 2 columns, but 'p.dsp' has 1 input\n")
    assert err(cli, "run", "p.dsp", "--input", "in.npy") == (
        "faustdiff: error: 'in.npy' has 3 rows, but 'p.dsp' has 1 input\n")
    assert err(cli, "run", "p.dsp", "--input", "in.wav") == (
        "faustdiff: error: 'in.wav' has 2 channels, but 'p.dsp' has 1 input\n")
    assert err(cli, "run", "p.dsp", "--input", "in.flac") == (
        "faustdiff: error: 'in.flac' has 3 channels, but 'p.dsp' has 1 input\n")
    dsp("// fake: inputs=0", "gen.dsp")
    assert err(cli, "run", "gen.dsp", "--input", "in.csv") == (
        "faustdiff: error: 'in.csv' has 2 columns, but 'gen.dsp' has 0 inputs\n")


def test_malformed_input_files(cli, fake, dsp):
    dsp("// fake: inputs=2", "p.dsp")
    Path("bad.csv").write_text("1,2\n3,x\n")
    assert err(cli, "run", "p.dsp", "--input", "bad.csv") == "bad.csv:2:3: error: 'x' is not a number\n"
    Path("ragged.csv").write_text("1,2\n3\n")
    assert err(cli, "run", "p.dsp", "--input", "ragged.csv") == (
        "ragged.csv:2:1: error: this row has 1 value, line 1 has 2\n")
    Path("empty.csv").write_text("")
    assert err(cli, "run", "p.dsp", "--input", "empty.csv") == "faustdiff: error: 'empty.csv' has no rows\n"
    Path("bad.wav").write_bytes(b"not a wav file")
    assert err(cli, "run", "p.dsp", "--input", "bad.wav") == (
        "faustdiff: error: 'bad.wav' is not a readable WAV file: format not recognised\n")
    Path("bad.ogg").write_bytes(b"OggS" + bytes(60))
    assert err(cli, "run", "p.dsp", "--input", "bad.ogg") == (
        "faustdiff: error: 'bad.ogg' is not a readable Ogg file: file contains data in an "
        "unimplemented format\n")
    Path("bad.npy").write_bytes(b"\x93NUMPY garbage")
    msg = err(cli, "run", "p.dsp", "--input", "bad.npy")
    assert msg.startswith("faustdiff: error: 'bad.npy' is not a valid .npy file (") and msg.count("\n") == 1
    assert err(cli, "run", "p.dsp", "--input", "missing.csv") == (
        "faustdiff: error: cannot read 'missing.csv': No such file or directory\n")
    assert err(cli, "run", "p.dsp", "--block", "0") == "faustdiff: error: --block must be 1 or more, got 0\n"
    assert fake.calls == []


def test_unknown_input_kind(cli, fake, dsp):
    dsp("// fake: inputs=1", "p.dsp")
    assert err(cli, "run", "p.dsp", "--input", "square") == (
        "faustdiff: error: unknown --input 'square': expected one of impulse, zeros, osc, "
        "noise, sine, or a file (use a .csv or .npy file, or an audio file: .wav .w64 .rf64 "
        ".aiff .aif .aifc .caf .au .snd .flac .ogg .oga .opus .mp3)\n")


@pytest.mark.parametrize("out, why", [
    ("o.txt", "unsupported output format '.txt'"),
    ("out", "no file extension"),
])
def test_bad_output_extension(cli, fake, dsp, out, why):
    dsp("// fake: inputs=1", "p.dsp")
    assert err(cli, "run", "p.dsp", "-o", out) == (
        f"faustdiff: error: cannot write '{out}': {why} (use a .csv or .npy file, or an audio "
        f"file: .wav .w64 .rf64 .aiff .aif .aifc .caf .au .snd .flac .ogg .oga .opus .mp3)\n")
    assert fake.calls == []


def test_output_in_a_missing_folder(cli, fake, dsp):
    dsp("// fake: inputs=1", "p.dsp")
    assert err(cli, "run", "p.dsp", "-n", "1", "-o", "nowhere/o.csv") == (
        "faustdiff: error: cannot write 'nowhere/o.csv': No such file or directory\n")


def test_audio_output_needs_an_output(cli, fake, dsp):
    dsp("// fake: inputs=1 outputs=0", "p.dsp")
    for name in ("o.wav", "o.flac"):
        assert err(cli, "run", "p.dsp", "-n", "1", "-o", name) == (
            f"faustdiff: error: cannot write '{name}': the program has no outputs "
            "(an audio file needs at least one channel)\n")
        assert not Path(name).exists()


def test_flac_output_warns_of_clipped_samples(cli, fake, dsp):
    """out_k = gain * impulse + k: [0.1, 0, 0, 0] and [1.1, 1, 1, 1] (1 is past the largest
    24-bit sample, 1 - 2**-23)."""
    dsp("// fake: inputs=1 outputs=2 params=gain:0.1", "p.dsp")
    r = cli("run", "p.dsp", "-n", "4", "-o", "o.flac")
    assert (r.exit_code, r.stdout) == (0, "")
    assert r.stderr == ("faustdiff: warning: 'o.flac' holds 24-bit integer PCM: 4 of 8 samples "
                        "were outside [-1, 1) and were clipped\n")
    data, sr = audio_io.read_audio("o.flac")
    assert sr == 44100
    np.testing.assert_array_equal(data, [[round(0.1 * 2 ** 23) / 2 ** 23, 0, 0, 0],
                                         [1 - 2 ** -23] * 4])
    dsp("// fake: inputs=1 outputs=1 params=gain:-3", "q.dsp")
    r = cli("run", "q.dsp", "-n", "4", "-o", "o.flac")
    assert (r.exit_code, r.stderr) == (0, "faustdiff: warning: 'o.flac' holds 24-bit integer "
                                          "PCM: 1 of 4 samples were outside [-1, 1) and were "
                                          "clipped\n")
    np.testing.assert_array_equal(audio_io.read_audio("o.flac")[0], [[-1, 0, 0, 0]])
    r = cli("run", "q.dsp", "-n", "4", "--set", "gain=-1", "-o", "o.flac")
    assert (r.exit_code, r.stderr) == (0, "")   # -1 is a 24-bit sample
    np.testing.assert_array_equal(audio_io.read_audio("o.flac")[0], [[-1, 0, 0, 0]])


def test_an_output_rate_the_format_refuses_fails_before_compiling(cli, fake, dsp):
    import soundfile
    if not {"MP3", "OGG"} <= set(soundfile.available_formats()) \
            or "OPUS" not in soundfile.available_subtypes("OGG"):
        pytest.skip(f"the installed libsndfile ({soundfile.__libsndfile_version__}) writes "
                    f"no MP3 or no Opus")
    dsp("// fake: inputs=1 outputs=1", "p.dsp")
    assert err(cli, "run", "p.dsp", "--sr", "96000", "-o", "o.mp3") == (
        "faustdiff: error: cannot write 'o.mp3': MPEG-1/2/2.5 only supports sample rates of "
        "8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, and 48000 (96000 Hz, MPEG "
        "Layer III)\n")
    assert err(cli, "run", "p.dsp", "--sr", "250000", "-o", "o.ogg") == (
        "faustdiff: error: cannot write 'o.ogg': 250000 Hz (libsndfile's Vorbis encoder takes "
        "at most 200000 Hz)\n")
    audio_io.write_audio("in.wav", np.zeros((1, 4)), 44100)
    assert err(cli, "run", "p.dsp", "--input", "in.wav", "-o", "o.opus") == (
        "faustdiff: error: cannot write 'o.opus': Opus only supports sample rates of 8000, "
        "12000, 16000, 24000, and 48000 (44100 Hz, Opus)\n")
    assert fake.calls == [] and sorted(os.listdir(".")) == ["in.wav", "p.dsp"]


def test_wav_bits_for_a_format_without_floats(cli, fake, dsp):
    dsp("// fake: inputs=1 outputs=1", "p.dsp")
    assert err(cli, "run", "p.dsp", "--wav-bits", "64", "-o", "o.flac") == (
        "faustdiff: error: --wav-bits 64: 'o.flac' is written as 24-bit integer PCM, not floats "
        "(drop --wav-bits)\n")
    assert fake.calls == []   # before compiling
    r = cli("run", "p.dsp", "-n", "2", "--wav-bits", "64", "-o", "o.aiff")
    assert (r.exit_code, r.stderr) == (0, "")
    assert audio_io.read_audio("o.aiff")[0].dtype == np.float64


def test_negative_samples_and_bad_sr(cli, fake, dsp):
    dsp("// fake: inputs=1", "p.dsp")
    assert err(cli, "run", "p.dsp", "--samples", "-5") == "faustdiff: error: --samples must be 0 or more, got -5\n"
    assert err(cli, "run", "p.dsp", "--sr", "0") == (
        "faustdiff: error: --sr must be a positive number of samples per second, got 0\n")
    assert fake.calls == []


@pytest.mark.parametrize("args", [
    ["run", "p.dsp", "--bogus"],
    ["run"],
    ["run", "p.dsp", "--samples", "many"],
    ["run", "p.dsp", "--wav-bits", "16"],
    ["frobnicate"],
])
def test_click_usage_errors_keep_clicks_text_but_exit_1(cli, args):
    """The same text as plain click (whose wording varies between versions), status 1, not 2."""
    from click.testing import CliRunner
    from faustdiff.cli import main
    plain_group = copy.copy(main)
    plain_group.__class__ = click.Group  # the same commands, click's own main()
    plain = CliRunner().invoke(plain_group, args, prog_name="faustdiff")
    assert plain.exit_code == 2 and plain.output.startswith("Usage: faustdiff ")
    assert "\nError: " in plain.output
    assert err(cli, *args) == plain.output


def test_missing_dsp_file(cli):
    assert err(cli, "run", "nothere.dsp") == "faustdiff: error: nothere.dsp: no such file\n"


def test_internal_errors_are_reported_as_bugs(cli, fake, dsp, monkeypatch):
    dsp("// fake: inputs=1", "p.dsp")
    from conftest import FakeProgram

    def boom(self, inputs=None, n=None):
        raise ZeroDivisionError("oops")
    monkeypatch.setattr(FakeProgram, "compute", boom)
    monkeypatch.delenv("FAUSTDIFF_DEBUG", raising=False)
    r = cli("run", "p.dsp")
    assert r.exit_code == 1
    assert r.stderr == ("faustdiff: internal error: ZeroDivisionError: oops (this is a bug in "
                        "faustdiff; run with FAUSTDIFF_DEBUG=1 for the traceback)\n")
    monkeypatch.setenv("FAUSTDIFF_DEBUG", "1")
    r = cli("run", "p.dsp")
    assert r.exit_code == 1
    assert r.stderr.startswith("Traceback (most recent call last):\n")
    assert r.stderr.endswith("ZeroDivisionError: oops\nfaustdiff: internal error: "
                             "ZeroDivisionError: oops (this is a bug in faustdiff; run with "
                             "FAUSTDIFF_DEBUG=1 for the traceback)\n")


# ---------------------------------------------------------------------------- compile, --emit

def test_compile_writes_the_generated_module(cli, fake, dsp):
    dsp("// fake: inputs=1", "p.dsp")
    fake.module_source = "# generated\nNUM_INPUTS = 1\n"
    r = cli("compile", "p.dsp", "-o", "mod.py", "--sr", "48000", "-I", "lib")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    assert Path("mod.py").read_text() == fake.module_source
    assert fake.calls == [("p.dsp", 48000, ("lib",))]
    r = cli("compile", "p.dsp")
    assert (r.exit_code, r.stdout) == (0, fake.module_source)
    r = cli("run", "p.dsp", "--emit")
    assert (r.exit_code, r.stdout) == (0, fake.module_source)


def test_compile_needs_a_py_output(cli, fake, dsp):
    dsp("// fake: inputs=1", "p.dsp")
    assert err(cli, "compile", "p.dsp", "-o", "mod.txt") == (
        "faustdiff: error: cannot write 'mod.txt': a Python module needs a .py file name\n")


# ---------------------------------------------------------------------------- real programs

HELLO_REF = [3.8168187764766754e-07, -0.022895976187694358, -0.066012962570636158,
             -0.078828235652774886, -0.061271541221264401, -0.085232605189892313,
             -0.041402672721381178, -0.062298907776917878]  # Debian faust 2.54.9, -double


def test_hello_example_matches_faust(cli):
    r = cli("run", EXAMPLES / "hello.dsp", "--samples", "8", "-o", "o.csv")
    assert r.exit_code == 0, r
    rows = Path("o.csv").read_text().splitlines()
    assert rows[0] == "out0,level"
    got = np.array([[float(v) for v in row.split(",")] for row in rows[1:]])
    np.testing.assert_allclose(got[:, 0], HELLO_REF, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(got[:, 0], got[:, 1])


def test_real_syntax_error_is_one_positioned_line(cli):
    Path("bad.dsp").write_text("process = _ :\n  + (;\n")
    msg = err(cli, "run", "bad.dsp")
    assert re.fullmatch(r"bad\.dsp:2:\d+: error: [^\n]+\n", msg), msg


def test_the_package_carries_its_grammar_and_libraries():
    from importlib.resources import files
    assert (files("faustdiff.grammar") / "faust.lark").is_file()
    assert (files("faustdiff.lib") / "stdfaust.lib").is_file()


def test_console_script_from_any_directory(tmp_path):
    """The installed console script (python -m faustdiff.cli without one), in an empty folder."""
    cmd = cli_command()
    if os.environ.get("CI") == "true":
        assert len(cmd) == 1, "pip install did not create the faustdiff script"
    r = subprocess.run(cmd + ["--version"], capture_output=True, text=True, cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (0, f"faustdiff {faustdiff.__version__}\n", "")
    r = subprocess.run(cmd + ["run", "x.dsp", "--samples=-1"], capture_output=True, text=True,
                       cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "faustdiff: error: --samples must be 0 or more, got -1\n")


def test_bargraphs_sharing_a_label_keep_a_column_each(cli):
    """Two bargraphs named `Cutoff` (faust-ddsp's lowpass, the compiler's UITester): a CSV
    column and a summary line each, in Faust's order (faust-ref's header, Faust 2.54.9)."""
    Path("d.dsp").write_text('process = 0.5 : hbargraph("Cutoff", 0, 1), '
                             '(0.25 : hbargraph("Cutoff", 0, 1)), (0.75 : vbargraph("Other", 0, 1));\n')
    r = cli("run", "d.dsp", "-n", "2", "-o", "d.csv")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "", "")
    assert Path("d.csv").read_text() == (
        "out0,out1,out2,Cutoff,Cutoff,Other\n" + "0.5,0.25,0.75,0.5,0.25,0.75\n" * 2)
    r = cli("run", "d.dsp", "-n", "2")
    assert r.stdout.splitlines()[-3:] == ["  bargraph 'Cutoff': final 0.5",
                                          "  bargraph 'Cutoff': final 0.25",
                                          "  bargraph 'Other': final 0.75"]
    p = faustdiff.compile_source(Path("d.dsp").read_text(), "d.dsp")
    p.compute(None, 2)
    assert [t.tolist() for t in p.bargraphs["Cutoff"]] == [[0.5, 0.5], [0.25, 0.25]]
    assert [t.tolist() for t in p.bargraph_traces] == [[0.5, 0.5], [0.25, 0.25], [0.75, 0.75]]


def test_installed_faust_libraries_are_the_default(cli, tmp_path, monkeypatch):
    """Where Faust's libraries are installed, import("stdfaust.lib") reads them, as the
    compiler does (the summary says so); --bundled-libs forces ours; diff.lib is ours."""
    from faustdiff.frontend import evaluate
    inst = tmp_path / "share" / "faust"
    inst.mkdir(parents=True)
    (inst / "stdfaust.lib").write_text('ma = library("maths.lib");\n')
    (inst / "maths.lib").write_text("PI = 3;\n")
    (inst / "diff.lib").write_text("nothing = 0;\n")
    monkeypatch.setattr(evaluate, "INSTALLED_LIB_DIRS", (str(inst),))
    monkeypatch.delenv("FAUSTDIFF_LIBS")
    Path("p.dsp").write_text('import("stdfaust.lib");\nprocess = ma.PI;\n')
    r = cli("run", "p.dsp", "-n", "1", "--backend", "interp")
    assert r.stdout == (f"p.dsp: 0 inputs, 1 output, 1 sample at 44100 Hz, libraries: Faust {inst}\n"
                        "  out0: peak 3  rms 3\n")
    r = cli("run", "p.dsp", "-n", "1", "--backend", "interp", "--bundled-libs")
    assert r.stdout.startswith("p.dsp: 0 inputs, 1 output, 1 sample at 44100 Hz, libraries: bundled\n")
    assert f"out0: peak {math.pi:.6g}" in r.stdout
    monkeypatch.delenv("FAUSTDIFF_LIBS")
    r = evaluate.Resolver((), str(tmp_path))
    assert os.path.dirname(r.find("diff.lib", str(tmp_path))) == r.bundled


def test_block_sets_faust_count(cli):
    """`--block N`: one compute call per N samples, so `count` (ma.BS) is N, state carried
    over; faust-ref runs compute(1), and the compiler's impulse test `bs` then gives 10."""
    Path("bs.dsp").write_text("process = fvariable(int count, <math.h>), (+(1) ~ _);\n")
    assert cli("run", "bs.dsp", "-n", "5", "--block", "2", "-o", "o.csv").exit_code == 0
    assert Path("o.csv").read_text() == "out0,out1\n2,1\n2,2\n2,3\n2,4\n1,5\n"
    assert cli("run", "bs.dsp", "-n", "3", "-o", "o.csv").exit_code == 0
    assert Path("o.csv").read_text() == "out0,out1\n3,1\n3,2\n3,3\n"


def test_installed_command_runs_from_any_directory(tmp_path):
    """A real program through the console script, in a folder with no project files."""
    cmd = cli_command()
    r = subprocess.run(cmd + ["run", str(EXAMPLES / "hello.dsp"), "--samples", "8",
                              "--set", "gain=0.25"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"{EXAMPLES / 'hello.dsp'}: 0 inputs, 1 output, 8 samples at 44100 Hz, libraries: bundled\n")
    r = subprocess.run(cmd + ["run", "nothere.dsp"], capture_output=True, text=True, cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "faustdiff: error: nothere.dsp: no such file\n")


# ---------------------------------------------------------------------------- docs and CI

def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", readme, re.S)
    first = blocks[0].strip().splitlines()
    assert len(first) == 2 and first[0].startswith("pip install . && faustdiff run examples/")
    test_command = first[1]
    assert "pytest" in test_command
    assert re.search(r"^\s*" + re.escape(test_command) + r"(\s|$)", ci, re.M), test_command


def test_python_m_faustdiff_is_the_command_line(tmp_path):
    dsp = tmp_path / "a.dsp"
    dsp.write_text("process = 0.5;\n")
    out = tmp_path / "a.csv"
    r = subprocess.run([sys.executable, "-m", "faustdiff", "run", str(dsp), "--samples", "2",
                        "-o", str(out)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert r.returncode == 0, r.stderr
    assert out.read_text().splitlines() == ["out0", "0.5", "0.5"]
    r = subprocess.run([sys.executable, "-m", "faustdiff", "run", str(tmp_path / "no.dsp")],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
    assert (r.returncode, r.stderr) == (1, f"faustdiff: error: {tmp_path / 'no.dsp'}: no such file\n")
