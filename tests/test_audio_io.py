"""Input generators and the CSV, NumPy and audio (libsndfile) formats, checked against
independent sources: the Faust compiler's reference renders, the stdlib `wave` module,
file bytes built or parsed here from the formats' specifications, scipy when installed."""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

import soundfile

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

USE = ("use a .csv or .npy file, or an audio file: .wav .w64 .rf64 .aiff .aif .aifc .caf .au "
       ".snd .flac .ogg .oga .opus .mp3")


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
    assert str(e.value) == ("error: cannot read 'in.txt': unsupported input format '.txt' "
                            f"({USE})")
    for name in ("in.npy", "in.wav", "in.flac"):
        with pytest.raises(FaustError) as e:
            audio_io.read_input(name)
        assert str(e.value) == f"error: cannot read '{name}': No such file or directory"
    os.mkdir("d.wav")
    with pytest.raises(FaustError) as e:
        audio_io.read_input("d.wav")
    assert str(e.value) == "error: cannot read 'd.wav': Is a directory"


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


# ---------------------------------------------------------------------------- audio input

def available(ext: str, write: bool = False) -> None:
    """Skips the test when the installed libsndfile lacks the format of `ext`."""
    fmt = audio_io.AUDIO_FORMATS[ext]
    if fmt.major not in soundfile.available_formats():
        pytest.skip(f"the installed libsndfile ({soundfile.__libsndfile_version__}) has no "
                    f"{fmt.name} support")
    if write and fmt.write not in ("float", "pcm") \
            and fmt.write not in soundfile.available_subtypes(fmt.major):
        pytest.skip(f"the installed libsndfile cannot write {fmt.write}")


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
    np.testing.assert_array_equal(data, frames.T / full)   # 8-bit: unsigned, offset 128


def test_unknown_chunks_and_odd_padding_are_skipped(tmp_path):
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


def test_12_bit_pcm_in_16_bit_words_is_read_as_16_bit(tmp_path):
    """A sample narrower than its container is read at the container's width (the WAV rule;
    the old hand-written reader refused it)."""
    stdlib_wav(tmp_path / "a.wav", 2, np.array([[16], [-32768]]))
    raw = bytearray((tmp_path / "a.wav").read_bytes())
    raw[34:36] = struct.pack("<H", 12)
    (tmp_path / "a.wav").write_bytes(bytes(raw))
    np.testing.assert_array_equal(read(tmp_path / "a.wav")[0], [[16 / 32768, -1.0]])


def ieee_extended(x: float) -> bytes:
    """An 80-bit IEEE 754 extended number (AIFF's sample rate), for integers x > 0."""
    e = int(x).bit_length() - 1
    return struct.pack(">HQ", 16383 + e, int(x) << (63 - e))


@pytest.mark.parametrize("bits", [8, 16])
def test_aiff_pcm_built_by_hand(tmp_path, bits):
    """Big-endian signed PCM (AIFF 8-bit is signed, unlike WAV's)."""
    full = 2 ** (bits - 1)
    frames = np.array([[0, -full], [full - 1, 1], [-full // 2, 3]])
    data = frames.astype(">i1" if bits == 8 else ">i2").tobytes()
    comm = struct.pack(">hIh", 2, 3, bits) + ieee_extended(22050)
    body = (b"AIFF" + b"COMM" + struct.pack(">I", len(comm)) + comm
            + b"SSND" + struct.pack(">III", 8 + len(data), 0, 0) + data)
    p = tmp_path / "a.aiff"
    p.write_bytes(b"FORM" + struct.pack(">I", len(body)) + body)
    got, sr = read(p)
    assert sr == 22050
    np.testing.assert_array_equal(got, frames.T / full)


def mangled(tmp_path, mangle, name="a.wav"):
    stdlib_wav(tmp_path / "ok.wav", 2, np.array([[1], [2]]))
    (tmp_path / name).write_bytes(mangle((tmp_path / "ok.wav").read_bytes()))
    return name


@pytest.mark.parametrize("mangle, why", [
    (lambda b: b"not a wav file", "format not recognised"),
    (lambda b: b"", "format not recognised"),
    (lambda b: b"RIFX" + b[4:], "malformed 'fmt ' chunk"),
    (lambda b: b[:12], "no 'data' chunk marker"),
    (lambda b: b[:12 + 8 + 16], "no 'data' chunk marker"),
    (lambda b: b[:20] + b"\x99\x09" + b[22:], "malformed 'fmt ' chunk"),
    (lambda b: b[:20] + b"\x02\x00" + b[22:], "invalid bit width"),   # MS ADPCM, 16 bits
    (lambda b: b[:22] + b"\x00\x00" + b[24:], "channel count is zero"),
])
def test_wav_errors(tmp_path, monkeypatch, mangle, why):
    monkeypatch.chdir(tmp_path)
    mangled(tmp_path, mangle)
    with pytest.raises(FaustError) as e:
        audio_io.read_input("a.wav")
    assert str(e.value) == f"error: 'a.wav' is not a readable WAV file: {why}"


def test_truncated_wav_data_is_read_as_far_as_it_goes(tmp_path):
    p = tmp_path / "a.wav"
    stdlib_wav(p, 2, np.array([[1, 2], [3, 4], [5, 6]]))
    p.write_bytes(p.read_bytes()[:-3])  # the last frame is cut
    np.testing.assert_array_equal(read(p)[0] * 32768, [[1, 3], [2, 4]])


def test_truncated_and_damaged_flac(tmp_path, monkeypatch):
    available(".flac")
    monkeypatch.chdir(tmp_path)
    x = np.sin(np.arange(20000) * 0.01)[None] * 0.5
    audio_io.write_output("ok.flac", x)
    raw = Path("ok.flac").read_bytes()
    Path("cut.flac").write_bytes(raw[:len(raw) // 2])
    with pytest.raises(FaustError) as e:
        audio_io.read_input("cut.flac")
    assert str(e.value) == ("error: 'cut.flac' is not a readable FLAC file: flac decoder lost "
                            "sync (while decoding its samples: the file may be damaged or "
                            "truncated)")
    Path("bad.flac").write_bytes(b"fLaC" + b"\x00" * 40)
    with pytest.raises(FaustError) as e:
        audio_io.read_input("bad.flac")
    assert str(e.value).startswith("error: 'bad.flac' is not a readable FLAC file: ")


def test_a_format_the_installed_libsndfile_lacks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    formats = {k: v for k, v in soundfile.available_formats().items() if k != "MP3"}
    monkeypatch.setattr(soundfile, "available_formats", lambda: formats)
    version = soundfile.__libsndfile_version__
    Path("a.mp3").write_bytes(b"\xff\xfb" + b"\x00" * 100)
    with pytest.raises(FaustError) as e:
        audio_io.read_input("a.mp3")
    assert str(e.value) == (f"error: cannot read 'a.mp3': the installed libsndfile ({version}) "
                            f"does not support MP3 files")
    with pytest.raises(FaustError) as e:
        audio_io.check_output_path("o.mp3")
    assert str(e.value) == (f"error: cannot write 'o.mp3': the installed libsndfile ({version}) "
                            f"cannot write MP3 files")


def test_without_soundfile_csv_and_npy_still_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "soundfile", None)   # `import soundfile` fails
    stdlib_wav("a.wav", 2, np.array([[1]]))
    with pytest.raises(FaustError) as e:
        audio_io.read_input("a.wav")
    assert str(e.value) == ("error: cannot read 'a.wav': audio files need the soundfile package "
                            "and its libsndfile (pip install soundfile): import of soundfile "
                            "halted; None in sys.modules")
    audio_io.write_output("o.npy", np.ones((1, 2)))
    assert read("o.npy")[0].tolist() == [[1.0, 1.0]]


# ---------------------------------------------------------------------------- audio output

def riff_chunks(raw: bytes) -> dict:
    """The chunks of a RIFF/WAVE file, parsed here from the specification."""
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    assert struct.unpack_from("<I", raw, 4)[0] == len(raw) - 8
    chunks, pos = {}, 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        chunks[cid] = raw[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    assert pos == len(raw)
    return chunks


@pytest.mark.parametrize("bits", [32, 64])
@pytest.mark.parametrize("channels", [1, 2, 5])
def test_wav_output_round_trip_and_header(tmp_path, bits, channels):
    rng = np.random.default_rng(channels)
    out = rng.standard_normal((channels, 100)) * 3
    out[0, :3] = [np.nan, np.inf, -np.inf]   # a float file keeps every value
    p = tmp_path / "o.wav"
    w = audio_io.write_output(p, out, [("ignored", np.zeros(100))], sample_rate=48000,
                              wav_bits=bits)
    assert (w.subtype, w.clipped, w.nans, w.warning()) == (
        "FLOAT" if bits == 32 else "DOUBLE", 0, 0, None)
    data, sr = audio_io.read_audio(p)
    assert sr == 48000
    np.testing.assert_array_equal(data, out.astype(np.float32) if bits == 32 else out)
    raw = p.read_bytes()
    chunks = riff_chunks(raw)
    tag, ch, rate, avg, align, b = struct.unpack_from("<HHIIHH", chunks[b"fmt "])
    assert (tag, ch, rate, avg, align, b) == (0xFFFE if channels > 2 else 3, channels, 48000,
                                               48000 * channels * bits // 8, channels * bits // 8, bits)
    if channels > 2:   # WAVE_FORMAT_EXTENSIBLE with the IEEE float sub-format
        assert chunks[b"fmt "][24:40] == bytes.fromhex("0300000000001000800000aa00389b71")
    assert struct.unpack("<I", chunks[b"fact"]) == (100,)
    assert chunks[b"data"] == out.T.astype("<f4" if bits == 32 else "<f8").tobytes()
    assert b"PEAK" not in chunks   # no time stamp: the same render gives the same bytes
    audio_io.write_output(tmp_path / "again.wav", out, sample_rate=48000, wav_bits=bits)
    assert (tmp_path / "again.wav").read_bytes() == raw


@pytest.mark.filterwarnings(r"ignore:Chunk \(non-data\) not understood")   # libsndfile's PAD
def test_wav_output_readable_by_scipy(tmp_path):
    wavfile = pytest.importorskip("scipy.io.wavfile")
    out = np.array([[0.5, -0.5, 0.25], [1, 2, 3], [4, 5, 6]])
    audio_io.write_audio(tmp_path / "o.wav", out, 44100, 32)
    sr, data = wavfile.read(tmp_path / "o.wav")
    assert sr == 44100 and data.dtype == np.float32
    np.testing.assert_array_equal(data, out.T)


def aiff_chunks(raw: bytes) -> dict:
    assert raw[:4] == b"FORM" and raw[8:12] == b"AIFC"
    assert struct.unpack_from(">I", raw, 4)[0] == len(raw) - 8
    chunks, pos = {}, 12
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack_from(">I", raw, pos + 4)[0]
        chunks[cid] = raw[pos + 8:pos + 8 + size]
        pos += 8 + size + (size & 1)
    return chunks


@pytest.mark.parametrize("bits", [32, 64])
def test_aiff_and_au_outputs_parsed_by_hand(tmp_path, bits):
    """AIFF-C with big-endian float samples, and Sun .au (encoding 6/7: 32/64-bit float)."""
    out = np.array([[0.5, -0.5, 0.25, 1.5], [1.0, -1.0, -2.0, 1e-3]])
    big = out.T.astype(">f4" if bits == 32 else ">f8").tobytes()
    audio_io.write_output(tmp_path / "o.aif", out, sample_rate=48000, wav_bits=bits)
    chunks = aiff_chunks((tmp_path / "o.aif").read_bytes())
    ch, frames, b = struct.unpack_from(">hIh", chunks[b"COMM"])
    assert (ch, frames, b) == (2, 4, bits)
    assert chunks[b"COMM"][8:18] == ieee_extended(48000)
    assert chunks[b"COMM"][18:22].upper() == (b"FL32" if bits == 32 else b"FL64")
    offset, _ = struct.unpack_from(">II", chunks[b"SSND"])
    assert chunks[b"SSND"][8 + offset:] == big
    audio_io.write_output(tmp_path / "o.au", out, sample_rate=48000, wav_bits=bits)
    raw = (tmp_path / "o.au").read_bytes()
    magic, offset, size, encoding, rate, ch = struct.unpack_from(">4sIIIII", raw)
    assert (magic, size, encoding, rate, ch) == (b".snd", len(big), 6 if bits == 32 else 7, 48000, 2)
    assert raw[offset:] == big


def flac_streaminfo(raw: bytes) -> tuple:
    """(sample rate, channels, bits per sample, total samples, MD5 of the decoded samples)
    from a FLAC file's STREAMINFO block, parsed here from the specification."""
    assert raw[:4] == b"fLaC" and raw[4] & 0x7F == 0 and raw[5:8] == b"\x00\x00\x22"
    info = int.from_bytes(raw[8:8 + 34], "big")
    total_bits = 34 * 8
    field = lambda start, width: (info >> (total_bits - start - width)) & ((1 << width) - 1)
    return (field(80, 20), field(100, 3) + 1, field(103, 5) + 1, field(108, 36),
            raw[8 + 18:8 + 34])


def test_flac_output_is_24_bit_pcm_with_clipping_counted(tmp_path):
    """The samples' MD5 that libFLAC stores in STREAMINFO, checked against the 24-bit
    integers computed here: rint(x * 2**23), clipped, NaN as 0."""
    available(".flac", write=True)
    rng = np.random.default_rng(3)
    out = rng.uniform(-1, 1, (2, 500))
    out[0, :6] = [1.0, -1.0, 1.5, -7.0, np.nan, 0.5 + 2 ** -25]
    w = audio_io.write_output(tmp_path / "o.flac", out, sample_rate=96000)
    ints = np.rint(np.nan_to_num(out, nan=0.0) * 2 ** 23).clip(-2 ** 23, 2 ** 23 - 1).astype(np.int64)
    assert (w.major, w.subtype, w.samples, w.clipped, w.nans) == ("FLAC", "PCM_24", 1000, 3, 1)
    assert w.warning() == (f"'{tmp_path}/o.flac' holds 24-bit integer PCM: 3 of 1000 samples "
                           "were outside [-1, 1) and were clipped; 1 NaN sample written as 0")
    le24 = np.ascontiguousarray(ints.T, dtype="<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    assert flac_streaminfo((tmp_path / "o.flac").read_bytes()) == (
        96000, 2, 24, 500, hashlib.md5(le24).digest())
    data, sr = audio_io.read_input(tmp_path / "o.flac")
    assert sr == 96000
    np.testing.assert_array_equal(data, ints / 2 ** 23)


FLOAT_EXTS = [".wav", ".w64", ".rf64", ".aiff", ".aif", ".aifc", ".caf", ".au", ".snd"]
LOSSY = {".ogg": ("OGG", "VORBIS", 44100), ".oga": ("OGG", "VORBIS", 44100),
         ".opus": ("OGG", "OPUS", 48000), ".mp3": ("MP3", "MPEG_LAYER_III", 44100)}


@pytest.mark.parametrize("ext", FLOAT_EXTS)
@pytest.mark.parametrize("bits", [32, 64])
def test_float_formats_round_trip_exactly(tmp_path, ext, bits):
    available(ext, write=True)
    rng = np.random.default_rng(7)
    out = rng.standard_normal((3, 257)) * 4
    out[1, :3] = [np.nan, np.inf, -np.inf]
    w = audio_io.write_output(tmp_path / f"o{ext}", out, sample_rate=32000, wav_bits=bits)
    assert (w.subtype, w.clipped, w.nans) == ("FLOAT" if bits == 32 else "DOUBLE", 0, 0)
    assert w.major == ("WAVEX" if ext == ".wav" else audio_io.AUDIO_FORMATS[ext].major)
    assert soundfile.info(str(tmp_path / f"o{ext}")).format == w.major
    data, sr = audio_io.read_input(tmp_path / f"o{ext}")
    assert sr == 32000
    np.testing.assert_array_equal(data, out.astype(np.float32) if bits == 32 else out)


@pytest.mark.parametrize("ext", sorted(LOSSY))
def test_lossy_formats_round_trip_closely(tmp_path, ext):
    """Vorbis, Opus and MP3 keep the rate, the channels and the length; the decoded sine is
    within -20 dB of the original (the codecs' delay is compensated by libsndfile)."""
    available(ext, write=True)
    major, subtype, rate = LOSSY[ext]
    n = rate // 2
    t = np.arange(n) / rate
    out = np.vstack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)])
    out[0, 100] = 3.0    # clipped to 1
    w = audio_io.write_output(tmp_path / f"o{ext}", out, sample_rate=rate)
    assert (w.major, w.subtype, w.clipped, w.nans) == (major, subtype, 1, 0)
    data, sr = audio_io.read_input(tmp_path / f"o{ext}")
    assert sr == rate and data.shape == out.shape
    ref = np.clip(out, -1, 1)
    body = slice(n // 10, n - n // 10)
    err = np.sqrt(np.mean((data[:, body] - ref[:, body]) ** 2))
    assert err < 0.1 * np.sqrt(np.mean(ref[:, body] ** 2)), err


def test_output_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, why in [("o.txt", "unsupported output format '.txt'"), ("o", "no file extension")]:
        with pytest.raises(FaustError) as e:
            audio_io.check_output_path(name)
        assert str(e.value) == f"error: cannot write '{name}': {why} ({USE})"
    with pytest.raises(FaustError) as e:
        audio_io.write_output("no/such/o.csv", np.zeros((1, 2)))
    assert str(e.value) == "error: cannot write 'no/such/o.csv': No such file or directory"
    with pytest.raises(FaustError) as e:
        audio_io.write_output("no/such/o.flac", np.zeros((1, 2)))
    assert str(e.value) == "error: cannot write 'no/such/o.flac': No such file or directory"


@pytest.mark.parametrize("name, shape, rate, message", [
    ("o.wav", (0, 4), 44100, "the program has no outputs (an audio file needs at least one channel)"),
    ("o.flac", (0, 4), 44100, "the program has no outputs (an audio file needs at least one channel)"),
    ("o.flac", (9, 4), 44100, "9 channels (a FLAC file holds at most 8)"),
    ("o.mp3", (3, 4), 44100, "3 channels (an MP3 file holds at most 2)"),
    ("o.ogg", (256, 4), 44100, "256 channels (an Ogg file holds at most 255)"),
    ("o.wav", (1025, 4), 44100, "1025 channels (a WAV file holds at most 1024)"),
    ("o.ogg", (1, 4), 200001, "200001 Hz (libsndfile's Vorbis encoder takes at most 200000 Hz)"),
    ("o.flac", (1, 4), 655351, "flac does not support this sample rate (1 channel at 655351 Hz, "
                               "24-bit integer PCM)"),
    ("o.mp3", (1, 4), 96000, "MPEG-1/2/2.5 only supports sample rates of 8000, 11025, 12000, "
                             "16000, 22050, 24000, 32000, 44100, and 48000 (1 channel at "
                             "96000 Hz, MPEG Layer III)"),
    ("o.opus", (1, 4), 44100, "Opus only supports sample rates of 8000, 12000, 16000, 24000, and "
                              "48000 (1 channel at 44100 Hz, Opus)"),
])
def test_audio_output_errors_leave_no_file(tmp_path, monkeypatch, name, shape, rate, message):
    available("." + name.split(".")[1], write=True)
    monkeypatch.chdir(tmp_path)
    Path(name).write_bytes(b"old")
    with pytest.raises(FaustError) as e:
        audio_io.write_output(name, np.zeros(shape), sample_rate=rate)
    assert str(e.value) == f"error: cannot write '{name}': {message}"
    assert os.listdir(".") == [name] and Path(name).read_bytes() == b"old"


def test_4_gib_limit_of_wav_aiff_au(tmp_path, monkeypatch):
    """Checked before anything is converted or written (a zero-stride array: no memory)."""
    monkeypatch.chdir(tmp_path)
    big = np.broadcast_to(np.zeros((1, 1)), (2, 2 ** 29))   # 2**32 bytes of float32
    for name, kind in [("o.wav", "a WAV"), ("o.aiff", "an AIFF"), ("o.au", "an AU")]:
        with pytest.raises(FaustError) as e:
            audio_io.write_output(name, big)
        assert str(e.value) == (f"error: cannot write '{name}': 4294967296 bytes of samples do "
                                f"not fit in {kind} file (4 GiB at most); use .w64, .rf64, "
                                f".caf or .npy")
    assert os.listdir(".") == []


def test_wav_bits_only_for_formats_that_hold_floats(tmp_path):
    assert audio_io.check_output_path("o.caf", 64) == ".caf"
    assert audio_io.check_output_path("o.flac") == ".flac"
    for name, what in [("o.flac", "24-bit integer PCM"), ("o.ogg", "Vorbis"),
                       ("o.mp3", "MPEG Layer III")]:
        with pytest.raises(FaustError) as e:
            audio_io.check_output_path(name, 32)
        assert str(e.value) == (f"error: --wav-bits 32: '{name}' is written as {what}, not "
                                f"floats (drop --wav-bits)")
    with pytest.raises(FaustError) as e:
        audio_io.write_audio(tmp_path / "o.wav", np.zeros((1, 1)), 44100, 16)
    assert str(e.value) == "error: cannot write 16-bit float samples (use 32 or 64)"


def test_npy_output_round_trip(tmp_path):
    out = np.arange(6.0).reshape(2, 3)
    assert audio_io.write_output(tmp_path / "o.npy", out) is None
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
    assert oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_an_audio_file_is_renamed_into_place_whole(tmp_path, monkeypatch):
    """libsndfile writes the temporary file; the target appears only complete."""
    p = tmp_path / "o.flac"
    p.write_bytes(b"old")
    seen = []
    real = audio_io._no_peak_chunk

    def spy(sf, f):   # called while libsndfile has the temporary file open
        seen.append((p.read_bytes(), sorted(os.listdir(tmp_path))))
        real(sf, f)
    monkeypatch.setattr(audio_io, "_no_peak_chunk", spy)
    audio_io.write_output(p, np.full((1, 10), 0.5))
    (old, names), = seen
    assert old == b"old" and len(names) == 2 and names[0].startswith(".o.flac.")
    assert os.listdir(tmp_path) == ["o.flac"]
    np.testing.assert_array_equal(audio_io.read_input(p)[0], np.full((1, 10), 0.5))


def test_a_failed_audio_write_is_an_error_and_leaves_the_old_file(tmp_path, monkeypatch):
    """soundfile asserts that libsndfile wrote every frame (a full disk makes it write fewer);
    a failure while closing (the header) is a LibsndfileError."""
    monkeypatch.chdir(tmp_path)
    Path("o.wav").write_bytes(b"old")

    def short(self, data):
        raise AssertionError
    monkeypatch.setattr(soundfile.SoundFile, "write", short)
    with pytest.raises(FaustError) as e:
        audio_io.write_output("o.wav", np.zeros((1, 4)))
    assert str(e.value) == ("error: cannot write 'o.wav': libsndfile could not write every "
                            "sample (is the disk full?)")
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)

    real_close = soundfile.SoundFile.close

    def failing_close(self):
        was_open = not self.closed   # not when __del__ closes a closed file again
        real_close(self)
        if was_open:
            raise soundfile.LibsndfileError(2, "Error closing: ")
    monkeypatch.setattr(soundfile.SoundFile, "close", failing_close)
    with pytest.raises(FaustError) as e:
        audio_io.write_output("o.wav", np.zeros((1, 4)))
    monkeypatch.undo()
    assert str(e.value) == "error: cannot write 'o.wav': system error"
    assert os.listdir(tmp_path) == ["o.wav"] and (tmp_path / "o.wav").read_bytes() == b"old"
