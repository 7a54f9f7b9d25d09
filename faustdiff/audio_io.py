"""Signals in and out of a render: input generators and the CSV, WAV and NumPy file formats.

Every signal block here is a float64 array of shape ``(channels, n)``, the layout of
`Program.compute`'s inputs and outputs. Problems with the user's files are `FaustError`s
(with a ``file:line:col`` span where one makes sense), never tracebacks.

Input generators (the same signal on every input):
  impulse  1 then 0s
  zeros    0s
  osc      Faust's ``os.osc(440)`` exactly (Debian 2.54.9 libraries): a truncating 65536-point
           sine table read by a phase accumulator
  noise    Faust's ``no.noise``: the int32 LCG ``+(12345) ~ *(1103515245)`` times 1/2147483647
  sine     ``sin(2*pi*440*t/SR)``

Input files (chosen by extension):
  .csv  one row per sample, one column per input, comma-separated; the first row is a header
        (and is skipped) when one of its cells is not a number; blank lines and lines starting
        with ``#`` are skipped
  .wav  PCM 8/16/24/32-bit integer or 32/64-bit IEEE float, plain or WAVE_FORMAT_EXTENSIBLE,
        one channel per input; integers are scaled to [-1, 1) by 2**(bits-1) (8-bit is
        unsigned, offset 128)
  .npy  a 2-D array of shape (inputs, n), the layout of the .npy output (so one program's
        output file can feed another); a 1-D array is one input

Output files:
  .csv  header ``out0,...,outK-1`` then one column per bargraph (named by its label); values
        printed with 17 significant digits (``%.17g``, exact round trip of a double)
  .wav  32-bit (default) or 64-bit IEEE float, one channel per output
  .npy  float64 array of shape (outputs, n)
Every output is written to a temporary file in the destination's folder and then renamed, so
a reader never sees a half-written file.
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
import struct
import tempfile
from pathlib import Path
from typing import IO, Iterator, Sequence

import numpy as np

from .errors import FaustError, Span

INPUT_KINDS = ("impulse", "zeros", "osc", "noise", "sine")
INPUT_EXTENSIONS = (".csv", ".wav", ".npy")
OUTPUT_EXTENSIONS = (".csv", ".wav", ".npy")
WAV_FLOAT_BITS = (32, 64)

OSC_FREQ = 440.0
SINE_FREQ = 440.0
_TABLE_SIZE = 65536  # pl.tablesize = 1 << 16


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---------------------------------------------------------------------------- generators

def generate_input(kind: str, channels: int, n: int, sample_rate: int) -> np.ndarray:
    """The input signal `kind` (one of `INPUT_KINDS`) on every one of `channels` inputs."""
    if kind == "impulse":
        sig = np.zeros(n)
        sig[:1] = 1.0
    elif kind == "zeros":
        sig = np.zeros(n)
    elif kind == "osc":
        sig = faust_osc(OSC_FREQ, n, sample_rate)
    elif kind == "noise":
        sig = faust_noise(n)
    elif kind == "sine":
        sig = np.sin(2.0 * math.pi * SINE_FREQ * np.arange(n, dtype=np.float64) / sample_rate)
    else:
        raise FaustError(f"unknown input kind '{kind}': expected one of {', '.join(INPUT_KINDS)}")
    return np.tile(sig, (channels, 1)) if channels else np.zeros((0, n))


def faust_osc(freq: float, n: int, sample_rate: float) -> np.ndarray:
    """``os.osc(freq)`` as the Debian Faust 2.54.9 libraries compute it, bit for bit.

    The phase is ``p(t) = inc + (p(t-1) - floor(inc + p(t-1)))`` (the Faust compiler's order
    for ``frac(p + inc)``), ``p(-1) = 0``, ``inc = freq / clamp(SR, 1, 192000)``; the output is
    ``TABLE[int(65536 * p(t))]`` with ``TABLE[i] = sin(i * (2*pi/65536))``.
    """
    inc = float(freq) / min(192000.0, max(1.0, float(sample_rate)))
    phase = np.empty(n)
    p = 0.0
    floor = math.floor
    for t in range(n):  # a recurrence: the rounding of every step matters
        p = inc + (p - floor(inc + p))
        phase[t] = p
    idx = np.clip((_TABLE_SIZE * phase).astype(np.int64), 0, _TABLE_SIZE - 1)
    step = (2.0 * 3.14159265358979323846) / _TABLE_SIZE
    return np.sin(idx.astype(np.float64) * step)


def faust_noise(n: int) -> np.ndarray:
    """``no.noise``: ``random(t) = 12345 + 1103515245 * random(t-1)`` wrapped to int32,
    ``random(-1) = 0``, times the folded constant ``1/2147483647.0`` (as Faust compiles it)."""
    out = np.empty(n, dtype=np.int64)
    r = 0
    for t in range(n):
        r = (12345 + r * 1103515245) & 0xFFFFFFFF
        out[t] = r
    signed = out.astype(np.uint32).view(np.int32).astype(np.float64)
    return signed * (1.0 / 2147483647.0)


# ---------------------------------------------------------------------------- input files

def file_kind(path: str | os.PathLike) -> str:
    """The lower-case extension of `path` ('' when it has none)."""
    return Path(path).suffix.lower()


def read_input(path: str | os.PathLike) -> tuple[np.ndarray, int | None]:
    """Reads an input file: ``(signals (channels, n) float64, sample rate or None)``.

    The sample rate is known for WAV files only."""
    ext = file_kind(path)
    if ext not in INPUT_EXTENSIONS:
        raise FaustError(f"cannot read '{path}': unsupported input format "
                         f"'{ext or '(no extension)'}' (use a .csv, .wav or .npy file)")
    try:
        if ext == ".csv":
            return read_csv(path), None
        if ext == ".wav":
            return read_wav(path)
        return read_npy(path), None
    except OSError as e:
        raise FaustError(f"cannot read '{path}': {e.strerror or e}") from None


def channel_unit(path: str | os.PathLike) -> str:
    """What a channel of an input file is called, for messages."""
    return {".csv": "column", ".wav": "channel", ".npy": "row"}.get(file_kind(path), "channel")


def read_csv(path: str | os.PathLike) -> np.ndarray:
    rows: list[list[float]] = []
    width = None
    first_line = 0
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for lineno, line in enumerate(f, 1):
            text = line.rstrip("\r\n")
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            cells = next(csv.reader([text])) if '"' in text else text.split(",")
            values = []
            bad = None
            col = 1
            for cell in cells:
                try:
                    values.append(float(cell))
                except ValueError:
                    if bad is None:
                        bad = (col + len(cell) - len(cell.lstrip()),
                               f"'{cell.strip()}' is not a number" if cell.strip() else "missing value")
                col += len(cell) + 1
            if width is None:
                width, first_line = len(cells), lineno
                if bad is not None:  # the header row
                    continue
            if bad is not None:
                raise FaustError(bad[1], Span(str(path), lineno, bad[0]))
            if len(values) != width:
                raise FaustError(f"this row has {plural(len(values), 'value')}, "
                                 f"line {first_line} has {width}", Span(str(path), lineno, 1))
            rows.append(values)
    if width is None:
        raise FaustError(f"'{path}' has no rows")
    return np.array(rows, dtype=np.float64).reshape(len(rows), width).T.copy()


def read_npy(path: str | os.PathLike) -> np.ndarray:
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise FaustError(f"'{path}' is not a valid .npy file (it does not start with the "
                             f".npy signature)")
    try:
        arr = np.load(path, allow_pickle=False)
    except OSError:
        raise
    except Exception as e:  # numpy reports a bad file as ValueError/EOFError/...
        raise FaustError(f"'{path}' is not a valid .npy file ({e})") from None
    if not isinstance(arr, np.ndarray) or not (np.issubdtype(arr.dtype, np.number)
                                               or arr.dtype == np.bool_):
        raise FaustError(f"'{path}' holds {arr.dtype} values: expected real numbers")
    if np.iscomplexobj(arr):
        raise FaustError(f"'{path}' holds complex numbers: expected real numbers")
    if arr.ndim == 1:
        arr = arr[None, :]
    elif arr.ndim != 2:
        raise FaustError(f"'{path}' has shape {arr.shape}: expected (inputs, samples) "
                         f"or a 1-D array for one input")
    return np.ascontiguousarray(arr, dtype=np.float64)


_PCM, _FLOAT, _EXTENSIBLE = 1, 3, 0xFFFE


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Reads a RIFF/WAVE file (PCM or IEEE float, plain or extensible)."""
    data = Path(path).read_bytes()

    def bad(why: str) -> FaustError:
        return FaustError(f"'{path}' is not a readable WAV file: {why}")

    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise bad("no RIFF/WAVE header")
    fmt = None
    samples = None
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            if len(body) < 16:
                raise bad("'fmt ' chunk too short")
            tag, channels, rate, _, align, bits = struct.unpack_from("<HHIIHH", body)
            if tag == _EXTENSIBLE:
                if len(body) < 40:
                    raise bad("extensible 'fmt ' chunk too short")
                tag = struct.unpack_from("<H", body, 24)[0]
            fmt = (tag, channels, rate, align, bits)
        elif cid == b"data":
            samples = body  # a short (truncated) last chunk is read as far as it goes
            if fmt is not None:
                break
        pos += 8 + size + (size & 1)
    if fmt is None:
        raise bad("no 'fmt ' chunk")
    if samples is None:
        raise bad("no 'data' chunk")
    tag, channels, rate, align, bits = fmt
    if channels == 0:
        raise bad("0 channels")
    kinds = {(_PCM, 8): "u1", (_PCM, 16): "<i2", (_PCM, 24): "i3", (_PCM, 32): "<i4",
             (_FLOAT, 32): "<f4", (_FLOAT, 64): "<f8"}
    dtype = kinds.get((tag, bits))
    if dtype is None:
        what = {_PCM: f"{bits}-bit PCM", _FLOAT: f"{bits}-bit float"}.get(tag, f"format tag {tag:#x}")
        raise bad(f"unsupported sample format ({what}; "
                  f"supported: 8/16/24/32-bit PCM, 32/64-bit float)")
    width = bits // 8
    if align != channels * width:
        raise bad(f"block align {align} does not match {channels} channels of {bits} bits")
    frames = len(samples) // align
    raw = samples[:frames * align]
    if dtype == "i3":
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16))
        values = ((ints ^ 0x800000) - 0x800000).astype(np.float64) / 8388608.0
    else:
        values = np.frombuffer(raw, dtype=dtype).astype(np.float64)
        if dtype == "u1":
            values = (values - 128.0) / 128.0
        elif tag == _PCM:
            values /= float(2 ** (bits - 1))
    return values.reshape(frames, channels).T.copy(), rate


# ---------------------------------------------------------------------------- output files

@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **kw) -> Iterator[IO]:
    """Opens a temporary file beside `path`, yields it, then renames it to `path`.

    On any exception the temporary file is removed and `path` is left as it was; an OSError
    (disk full, no such folder, ...) becomes a FaustError naming `path`."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, mode, **kw) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, OSError):
            raise FaustError(f"cannot write '{path}': {e.strerror or e}") from None
        raise


def check_output_path(path: str | os.PathLike) -> str:
    """The output format of `path` ('.csv', '.wav' or '.npy'), or a FaustError."""
    ext = file_kind(path)
    if ext not in OUTPUT_EXTENSIONS:
        what = f"unsupported output format '{ext}'" if ext else "no file extension"
        raise FaustError(f"cannot write '{path}': {what} (use a .csv, .wav or .npy file)")
    return ext


def write_output(path: str | os.PathLike, outputs: np.ndarray,
                 bargraphs: Sequence[tuple[str, np.ndarray]] = (), sample_rate: int = 44100,
                 wav_bits: int = 32) -> None:
    """Writes `outputs` (num_outputs, n) and, in CSV only, the bargraph traces."""
    ext = check_output_path(path)
    outputs = np.asarray(outputs, dtype=np.float64)
    if ext == ".csv":
        write_csv(path, outputs, bargraphs)
    elif ext == ".wav":
        write_wav(path, outputs, sample_rate, wav_bits)
    else:
        with atomic_write(path) as f:
            np.save(f, outputs)


def write_csv(path: str | os.PathLike, outputs: np.ndarray,
              bargraphs: Sequence[tuple[str, np.ndarray]] = ()) -> None:
    n = outputs.shape[1]
    columns = list(outputs)
    for label, values in bargraphs:
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (n,):
            raise ValueError(f"bargraph '{label}' has shape {values.shape}, expected ({n},)")
        columns.append(values)
    names = [f"out{i}" for i in range(len(outputs))] + [_csv_field(label) for label, _ in bargraphs]
    rows = np.array(columns).T.tolist() if columns else [()] * n
    line = ",".join(["%.17g"] * len(columns)) + "\n"
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(",".join(names) + "\n")
        f.writelines(line % tuple(row) for row in rows)


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


_FLOAT_GUID = bytes.fromhex("0300000000001000800000aa00389b71")


def write_wav(path: str | os.PathLike, outputs: np.ndarray, sample_rate: int,
              bits: int = 32) -> None:
    """IEEE float WAV, one channel per output (WAVE_FORMAT_EXTENSIBLE above 2 channels)."""
    if bits not in WAV_FLOAT_BITS:
        raise FaustError(f"cannot write {bits}-bit float WAV (use 32 or 64)")
    channels, n = outputs.shape
    if channels == 0:
        raise FaustError(f"cannot write '{path}': the program has no outputs "
                         f"(a WAV file needs at least one channel)")
    width = bits // 8
    data_size = channels * n * width
    if data_size + 80 > 0xFFFFFFFF:
        raise FaustError(f"cannot write '{path}': {data_size} bytes of samples do not fit in "
                         f"a WAV file (4 GiB at most); use .npy")
    align = channels * width
    head = struct.pack("<HIIHH", channels, int(sample_rate), int(sample_rate) * align, align, bits)
    if channels > 2:
        fmt = struct.pack("<H", _EXTENSIBLE) + head + struct.pack("<HHI", 22, bits, 0) + _FLOAT_GUID
    else:
        fmt = struct.pack("<H", _FLOAT) + head + struct.pack("<H", 0)
    chunks = (b"fmt " + struct.pack("<I", len(fmt)) + fmt
              + b"fact" + struct.pack("<II", 4, n)
              + b"data" + struct.pack("<I", data_size))
    frames = np.ascontiguousarray(outputs.T, dtype="<f4" if bits == 32 else "<f8")
    with atomic_write(path) as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + len(chunks) + data_size) + b"WAVE" + chunks)
        f.write(frames.tobytes())
