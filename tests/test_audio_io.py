"""Input generators and the CSV/WAV/NumPy formats, checked against independent sources:
the Faust compiler's reference renders, the stdlib `wave` module, hand-built file bytes."""
from __future__ import annotations

import csv
import os
import shutil
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from faustdiff import audio_io
from faustdiff.errors import FaustError
from conftest import CONFORMANCE, ROOT


def ref_column(case: str, column: str) -> np.ndarray:
    with open(CONFORMANCE / "faust" / f"{case}.ref.csv", newline="") as f:
        return np.array([float(row[column]) for row in csv.DictReader(f)])


# ---------------------------------------------------------------------------- generators

def test_impulse_and_zeros():
    np.testing.assert_array_equal(audio_io.generate_input("impulse", 2, 4, 44100),
                                  [[1, 0, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(audio_io.generate_input("zeros", 1, 3, 44100), [[0, 0, 0]])
    assert audio_io.generate_input("impulse", 0, 5, 44100).shape == (0, 5)
    assert audio_io.generate_input("osc", 3, 0, 44100).shape == (3, 0)


def test_osc_is_faust_os_osc_bit_for_bit():
    # 21_stdlib_osc's out0 is os.osc(440) rendered by Faust 2.54.9 (-double)
    ref = ref_column("21_stdlib_osc", "out0")
    got = audio_io.generate_input("osc", 2, len(ref), 44100)
    np.testing.assert_array_equal(got[0], ref)
    np.testing.assert_array_equal(got[1], ref)
    assert got[0, :3].tolist() == [0.062564702234460604, 0.12497938736343399, 0.18690288027833948]


def test_noise_is_faust_no_noise_bit_for_bit():
    ref = ref_column("23_stdlib_noise", "out0")
    got = audio_io.generate_input("noise", 1, len(ref), 44100)[0]
    np.testing.assert_array_equal(got, ref)
    assert got[0] == 5.748588594490936e-06


def test_sine():
    got = audio_io.generate_input("sine", 1, 100, 48000)[0]
    t = np.arange(100)
    np.testing.assert_allclose(got, np.sin(2 * np.pi * 440 * t / 48000), rtol=0, atol=1e-15)
    assert got[0] == 0.0


def test_unknown_kind():
    with pytest.raises(FaustError) as e:
        audio_io.generate_input("square", 1, 4, 44100)
    assert str(e.value) == "error: unknown input kind 'square': expected one of impulse, zeros, osc, noise, sine"


@pytest.mark.skipif(not (shutil.which("faust") and shutil.which("g++")),
                    reason="needs Debian's faust and g++")
def test_osc_and_noise_match_faust_for_a_whole_second(tmp_path):
    """One second of os.osc(440) and no.noise from the real compiler (about 10 s to build)."""
    tool = ROOT.parent / "shared" / "tools" / "faust-ref"
    if not tool.exists():
        pytest.skip("../shared/tools/faust-ref is not beside the repository")
    dsp = tmp_path / "gen.dsp"
    dsp.write_text('import("stdfaust.lib");\nprocess = os.osc(440), no.noise;\n')
    out = subprocess.run([str(tool), str(dsp), "44100"], capture_output=True, text=True,
                         check=True, env={**os.environ, "FAUST_REF_CACHE": str(tmp_path)}).stdout
    ref = np.array([[float(v) for v in line.split(",")] for line in out.splitlines()[1:]]).T
    np.testing.assert_array_equal(audio_io.generate_input("osc", 1, 44100, 44100)[0], ref[0])
    np.testing.assert_array_equal(audio_io.generate_input("noise", 1, 44100, 44100)[0], ref[1])


# ---------------------------------------------------------------------------- CSV input

def read(path):
    data, sr = audio_io.read_input(path)
    assert data.dtype == np.float64 and data.flags.c_contiguous
    return data, sr


def test_csv_without_and_with_header(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("0.5,-1\n1e-3, 2\n")
    data, sr = read(p)
    assert sr is None
    np.testing.assert_array_equal(data, [[0.5, 1e-3], [-1, 2]])
    p.write_text("# a comment\nin0,in1\r\n\r\n0.5,-1\r\n1e-3,2\r\n")
    np.testing.assert_array_equal(read(p)[0], [[0.5, 1e-3], [-1, 2]])
    p.write_text("x\n")  # a header and no samples
    assert read(p)[0].shape == (1, 0)


def test_csv_exact_values_and_specials(tmp_path):
    p = tmp_path / "a.csv"
    values = [0.1, -0.0050083322917286663, 5e-324, 1.7976931348623157e308]
    p.write_text("\n".join("%.17g" % v for v in values) + "\nnan\ninf\n-inf\n")
    data = read(p)[0][0]
    assert data[:4].tolist() == values
    assert np.isnan(data[4]) and data[5] == np.inf and data[6] == -np.inf


@pytest.mark.parametrize("text, message", [
    ("1,2\n3,abc\n", "a.csv:2:3: error: 'abc' is not a number"),
    ("1,2\n3,  abc\n", "a.csv:2:5: error: 'abc' is not a number"),
    ("1,2\n3,\n", "a.csv:2:3: error: missing value"),
    ("a,b\n1,2\n3\n", "a.csv:3:1: error: this row has 1 value, line 1 has 2"),
    ("1\n2,3\n", "a.csv:2:1: error: this row has 2 values, line 1 has 1"),
    ("", "error: 'a.csv' has no rows"),
    ("# only a comment\n\n", "error: 'a.csv' has no rows"),
])
def test_csv_errors(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    Path("a.csv").write_text(text)
    with pytest.raises(FaustError) as e:
        audio_io.read_input("a.csv")
    assert str(e.value) == message


def test_unsupported_input_extension_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FaustError) as e:
        audio_io.read_input("in.txt")
    assert str(e.value) == "error: cannot read 'in.txt': unsupported input format '.txt' (use a .csv, .wav or .npy file)"
    with pytest.raises(FaustError) as e:
        audio_io.read_input("in.npy")
    assert str(e.value) == "error: cannot read 'in.npy': No such file or directory"


# ---------------------------------------------------------------------------- NPY input

def test_npy_shapes(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.array([1, 2, 3], dtype=np.int16))
    np.testing.assert_array_equal(read(p)[0], [[1, 2, 3]])
    np.save(p, np.arange(6, dtype=np.float32).reshape(2, 3))
    np.testing.assert_array_equal(read(p)[0], [[0, 1, 2], [3, 4, 5]])
    np.save(p, np.asfortranarray(np.arange(6.0).reshape(3, 2)))
    np.testing.assert_array_equal(read(p)[0], [[0, 1], [2, 3], [4, 5]])


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 2, 2)), "'a.npy' has shape (2, 2, 2): expected (inputs, samples) or a 1-D array for one input"),
    (np.array(["a", "b"]), "'a.npy' holds <U1 values: expected real numbers"),
    (np.array([1j, 2]), "'a.npy' holds complex numbers: expected real numbers"),
])
def test_npy_errors(tmp_path, monkeypatch, array, message):
    monkeypatch.chdir(tmp_path)
    np.save("a.npy", array)
    with pytest.raises(FaustError) as e:
        audio_io.read_input("a.npy")
    assert str(e.value) == "error: " + message


def test_npy_refuses_pickles(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("a.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FaustError) as e:
        audio_io.read_input("a.npy")
    assert str(e.value).startswith("error: 'a.npy' is not a valid .npy file (")


# ---------------------------------------------------------------------------- WAV input

def stdlib_wav(path, width, frames: np.ndarray, rate=44100):
    """A PCM file written by the stdlib `wave` module: frames (n, channels) of ints."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        if width == 1:
            raw = (frames + 128).astype(np.uint8).tobytes()
        elif width == 3:
            le = frames.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3]
            raw = le.tobytes()
        else:
            raw = frames.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
        w.writeframes(raw)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_pcm_wav_written_by_the_stdlib(tmp_path, width):
    full = 2 ** (8 * width - 1)
    frames = np.array([[0, -full], [full - 1, 1], [-1, full // 2], [-full // 4, 0]], dtype=np.int64)
    p = tmp_path / "a.wav"
    stdlib_wav(p, width, frames, 22050)
    data, sr = read(p)
    assert sr == 22050
    np.testing.assert_array_equal(data, frames.T / full)


def test_stdlib_wave_reads_our_header_layout_for_pcm_too(tmp_path):
    """Our chunk walker skips unknown chunks (LIST) and odd-size padding."""
    frames = np.array([[100], [-200], [300]], dtype="<i2")
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = (b"WAVE" + b"LIST" + struct.pack("<I", 3) + b"abc\x00"
            + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", 6) + frames.tobytes())
    p = tmp_path / "a.wav"
    p.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    with wave.open(str(p)) as w:  # the stdlib agrees it is a valid file
        assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (1, 8000, 3)
    data, sr = read(p)
    assert sr == 8000
    np.testing.assert_array_equal(data, [[100 / 32768, -200 / 32768, 300 / 32768]])


def float_wav_bytes(frames: np.ndarray, bits: int, rate: int, extensible: bool) -> bytes:
    """A float WAV built by hand from the format's specification."""
    n, ch = frames.shape
    align = ch * bits // 8
    common = struct.pack("<HIIHH", ch, rate, rate * align, align, bits)
    if extensible:
        guid = bytes.fromhex("0300000000001000800000aa00389b71")
        fmt = struct.pack("<H", 0xFFFE) + common + struct.pack("<HHI", 22, bits, 0) + guid
    else:
        fmt = struct.pack("<H", 3) + common
    data = frames.astype("<f4" if bits == 32 else "<f8").tobytes()
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("extensible", [False, True])
def test_float_wav_built_by_hand(tmp_path, bits, extensible):
    frames = np.array([[0.5, -1.5, 3.0], [0.1, 0.2, -0.3]])
    p = tmp_path / "a.wav"
    p.write_bytes(float_wav_bytes(frames, bits, 96000, extensible))
    data, sr = read(p)
    assert sr == 96000
    np.testing.assert_array_equal(data, frames.T.astype("<f4" if bits == 32 else "<f8"))


def test_extensible_pcm_24_in_32(tmp_path):
    guid = bytes.fromhex("0100000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHH", 0xFFFE, 1, 44100, 176400, 4, 32) + struct.pack("<HHI", 22, 24, 4) + guid
    samples = np.array([0x7FFFFF00, -0x80000000, 0x100], dtype="<i4")
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", 12) + samples.tobytes())
    p = tmp_path / "a.wav"
    p.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    np.testing.assert_array_equal(read(p)[0], [samples / 2 ** 31])


@pytest.mark.parametrize("mangle, why", [
    (lambda b: b"RIFX" + b[4:], "no RIFF/WAVE header"),
    (lambda b: b[:12], "no 'fmt ' chunk"),
    (lambda b: b[:12 + 8 + 16], "no 'data' chunk"),
    (lambda b: b[:34] + b"\x0c\x00" + b[36:], "unsupported sample format (12-bit PCM; supported: 8/16/24/32-bit PCM, 32/64-bit float)"),
    (lambda b: b[:20] + b"\x02\x00" + b[22:], "unsupported sample format (format tag 0x2; supported: 8/16/24/32-bit PCM, 32/64-bit float)"),
    (lambda b: b[:22] + b"\x00\x00" + b[24:], "0 channels"),
    (lambda b: b[:32] + b"\x03\x00" + b[34:], "block align 3 does not match 1 channels of 16 bits"),
])
def test_wav_errors(tmp_path, monkeypatch, mangle, why):
    monkeypatch.chdir(tmp_path)
    stdlib_wav("ok.wav", 2, np.array([[1], [2]]))
    Path("a.wav").write_bytes(mangle(Path("ok.wav").read_bytes()))
    with pytest.raises(FaustError) as e:
        audio_io.read_input("a.wav")
    assert str(e.value) == f"error: 'a.wav' is not a readable WAV file: {why}"


def test_truncated_wav_data_is_read_as_far_as_it_goes(tmp_path):
    p = tmp_path / "a.wav"
    stdlib_wav(p, 2, np.array([[1, 2], [3, 4], [5, 6]]))
    p.write_bytes(p.read_bytes()[:-3])  # the last frame is cut
    np.testing.assert_array_equal(read(p)[0] * 32768, [[1, 3], [2, 4]])


# ---------------------------------------------------------------------------- outputs

@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_wav_output_round_trip_and_header(tmp_path, bits, channels):
    rng = np.random.default_rng(channels)
    out = rng.standard_normal((channels, 100))
    p = tmp_path / "o.wav"
    audio_io.write_output(p, out, [("ignored", np.zeros(100))], sample_rate=48000, wav_bits=bits)
    data, sr = audio_io.read_wav(p)
    assert sr == 48000
    np.testing.assert_array_equal(data, out.astype(np.float32) if bits == 32 else out)
    raw = p.read_bytes()
    tag, ch, rate, avg, align, b = struct.unpack_from("<HHIIHH", raw, 20)
    assert (tag, ch, rate, avg, align, b) == (0xFFFE if channels > 2 else 3, channels, 48000,
                                               48000 * channels * bits // 8, channels * bits // 8, bits)
    assert struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8
    assert raw.index(b"fact") > 0 and raw.endswith(data.T.astype("<f4" if bits == 32 else "<f8").tobytes())


def test_wav_output_readable_by_scipy(tmp_path):
    wavfile = pytest.importorskip("scipy.io.wavfile")
    out = np.array([[0.5, -0.5, 0.25], [1, 2, 3], [4, 5, 6]])
    audio_io.write_wav(tmp_path / "o.wav", out, 44100, 32)
    sr, data = wavfile.read(tmp_path / "o.wav")
    assert sr == 44100 and data.dtype == np.float32
    np.testing.assert_array_equal(data, out.T)


def test_npy_output_round_trip(tmp_path):
    out = np.arange(6.0).reshape(2, 3)
    audio_io.write_output(tmp_path / "o.npy", out)
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), out)
    np.testing.assert_array_equal(audio_io.read_input(tmp_path / "o.npy")[0], out)


def test_csv_output_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(1)
    out = rng.standard_normal((3, 50)) * 10.0 ** rng.integers(-300, 300, (3, 50))
    out[0, :3] = [np.nan, np.inf, -np.inf]
    bars = [("a, \"quoted\" label", out[1] * 2)]
    p = tmp_path / "o.csv"
    audio_io.write_output(p, out, bars)
    with open(p, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["out0", "out1", "out2", 'a, "quoted" label']
    back = np.array(rows[1:], dtype=np.float64).T
    np.testing.assert_array_equal(back, np.vstack([out, out[1] * 2]))
    # an output file read back as an input file: the header is skipped
    np.testing.assert_array_equal(audio_io.read_input(tmp_path / "o.csv")[0][:3], out)


def test_atomic_write_keeps_the_old_file_and_no_temporary(tmp_path):
    p = tmp_path / "o.csv"
    p.write_text("old\n")
    with pytest.raises(RuntimeError):
        with audio_io.atomic_write(p, "w") as f:
            f.write("half")
            raise RuntimeError("interrupted")
    assert p.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["o.csv"]
    with audio_io.atomic_write(p, "w") as f:
        f.write("new\n")
        assert p.read_text() == "old\n"  # nothing visible before the rename
    assert p.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["o.csv"]


def test_output_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, why in [("o.flac", "unsupported output format '.flac'"), ("o", "no file extension")]:
        with pytest.raises(FaustError) as e:
            audio_io.check_output_path(name)
        assert str(e.value) == f"error: cannot write '{name}': {why} (use a .csv, .wav or .npy file)"
    with pytest.raises(FaustError) as e:
        audio_io.write_output("no/such/o.csv", np.zeros((1, 2)))
    assert str(e.value) == "error: cannot write 'no/such/o.csv': No such file or directory"
