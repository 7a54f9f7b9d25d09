"""Signals in and out of a render: input generators, CSV and NumPy files, audio files.

Every signal block here is a float64 array of shape ``(channels, n)``, the layout of
`Program.compute`'s inputs and outputs. Problems with the user's files are `FaustError`s
naming the file (with a ``file:line:col`` span where one makes sense), never tracebacks.

Input generators (the same signal on every input):
  impulse  1 then 0s
  zeros    0s
  osc      Faust's ``os.osc(440)`` exactly (Debian 2.54.9 libraries): a truncating 65536-point
           sine table read by a phase accumulator
  noise    Faust's ``no.noise``: the int32 LCG ``+(12345) ~ *(1103515245)`` times 1/2147483647
  sine     ``sin(2*pi*440*t/SR)``

Files, chosen by extension:
  .csv  input: one row per sample, one column per input, comma-separated; the first row is
        a header (and is skipped) when one of its cells is not a number; blank lines and
        lines starting with ``#`` are skipped. Output: header ``out0,...,outK-1`` then one
        column per bargraph (named by its label); values printed with 17 significant digits
        (``%.17g``, exact round trip of a double)
  .npy  input: a 2-D array of shape (inputs, n), the layout of the .npy output (so one
        program's output file can feed another), a 1-D array is one input. Output: float64,
        shape (outputs, n)
  audio (`AUDIO_FORMATS`: .wav .w64 .rf64 .aiff .aif .aifc .caf .au .snd .flac .ogg .oga
        .opus .mp3) through libsndfile (the `soundfile` package), one channel per input or
        output, with the file's sample rate. Input: whatever libsndfile decodes, integers
        scaled to [-1, 1) by 2**(bits-1) (8-bit unsigned: offset 128). Output: 32-bit
        (default) or 64-bit IEEE float where the format holds floats; FLAC as 24-bit integer
        PCM; .ogg/.oga Vorbis, .opus Opus, .mp3 MPEG Layer III; integer and lossy outputs
        are clipped to [-1, 1] and `AudioWritten` counts what was clipped. What the
        installed libsndfile supports is asked at run time (`soundfile.available_formats`).
Every output is written to a temporary file in the destination's folder and then renamed, so
a reader never sees a half-written file.
"""
from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Sequence

import numpy as np

from .errors import FaustError, Span

INPUT_KINDS = ("impulse", "zeros", "osc", "noise", "sine")
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

    The sample rate is known for audio files (read through libsndfile) only."""
    ext = file_kind(path)
    if ext not in INPUT_EXTENSIONS:
        raise FaustError(f"cannot read '{path}': unsupported input format "
                         f"'{ext or '(no extension)'}' ({USE_A_FILE})")
    try:
        if ext == ".csv":
            return read_csv(path), None
        if ext == ".npy":
            return read_npy(path), None
        return read_audio(path)
    except OSError as e:
        raise FaustError(f"cannot read '{path}': {e.strerror or e}") from None


def channel_unit(path: str | os.PathLike) -> str:
    """What a channel of an input file is called, for messages."""
    return {".csv": "column", ".npy": "row"}.get(file_kind(path), "channel")


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


# ---------------------------------------------------------------------------- audio files

@dataclass(frozen=True)
class AudioFormat:
    """An audio file type, chosen by extension, read and written through libsndfile."""
    name: str            # in messages: "WAV", "FLAC", ...
    major: str           # libsndfile's major format (soundfile's `format=`)
    write: str           # "float": 32/64-bit IEEE float (--wav-bits); "pcm": the widest
                         # integer PCM the format takes; else the lossy codec's subtype
    max_channels: int = 1024          # libsndfile's SF_MAX_CHANNELS, or the format's limit
    riff32: bool = False              # 32-bit chunk sizes: at most 4 GiB of samples
    max_rate: int | None = None       # above it libsndfile's encoder fails (or crashes)


_WAV = AudioFormat("WAV", "WAV", "float", riff32=True)
_AIFF = AudioFormat("AIFF", "AIFF", "float", riff32=True)
_AU = AudioFormat("AU", "AU", "float", riff32=True)
AUDIO_FORMATS: dict[str, AudioFormat] = {
    ".wav": _WAV,
    ".w64": AudioFormat("Wave64", "W64", "float"),
    ".rf64": AudioFormat("RF64", "RF64", "float"),
    ".aiff": _AIFF, ".aif": _AIFF, ".aifc": _AIFF,
    ".caf": AudioFormat("CAF", "CAF", "float"),
    ".au": _AU, ".snd": _AU,
    ".flac": AudioFormat("FLAC", "FLAC", "pcm", max_channels=8),
    # libvorbis crashes the process (through libsndfile 1.2.2) above 255 channels or
    # 200 kHz: both are refused before libsndfile is called
    ".ogg": AudioFormat("Ogg", "OGG", "VORBIS", max_channels=255, max_rate=200000),
    ".oga": AudioFormat("Ogg", "OGG", "VORBIS", max_channels=255, max_rate=200000),
    ".opus": AudioFormat("Opus", "OGG", "OPUS", max_channels=255),
    ".mp3": AudioFormat("MP3", "MP3", "MPEG_LAYER_III", max_channels=2),
}
AUDIO_EXTENSIONS = tuple(AUDIO_FORMATS)
INPUT_EXTENSIONS = (".csv", ".npy") + AUDIO_EXTENSIONS
OUTPUT_EXTENSIONS = INPUT_EXTENSIONS
USE_A_FILE = "use a .csv or .npy file, or an audio file: " + " ".join(AUDIO_EXTENSIONS)
_FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_I",
                             "MPEG_LAYER_II", "MPEG_LAYER_III"})
_PCM_BITS = {"PCM_32": 32, "PCM_24": 24, "PCM_16": 16, "PCM_S8": 8, "PCM_U8": 8}
_CODEC_NAMES = {"VORBIS": "Vorbis", "OPUS": "Opus", "MPEG_LAYER_III": "MPEG Layer III"}


def _soundfile(doing: str, path):
    """The soundfile module, or a FaustError when it (or libsndfile) is missing."""
    try:
        import soundfile
    except (ImportError, OSError) as e:
        raise FaustError(f"cannot {doing} '{path}': audio files need the soundfile package "
                         f"and its libsndfile (pip install soundfile): {e}") from None
    return soundfile


def _a(name: str) -> str:
    """The format's name with its article: a WAV, an AIFF, an MP3 (em-pee-three), an RF64."""
    return ("an " if name[0] in "AEIOUMR" else "a ") + name


def _audio_format(path) -> AudioFormat:
    return AUDIO_FORMATS[file_kind(path)]


def _sf_reason(e: Exception) -> str:
    """libsndfile's reason for a failure, as the tail of one of our messages."""
    text = (getattr(e, "error_string", None) or str(e)).strip()
    text = re.sub(r"^Error\s*:\s*", "", text)
    text = re.sub(r"^Error in [^.]* file\.\s*", "", text).rstrip(".")
    if text.startswith("File does not exist or is not a regular file"):
        # what libsndfile says when its MP3 decoder finds no frame in an existing file
        text = "libsndfile cannot decode it"
    if text[:1].isupper() and not text[1:2].isupper() \
            and text.split(" ")[0] not in ("Opus", "Vorbis", "Ogg"):
        text = text[0].lower() + text[1:]
    return text or "libsndfile gives no reason"


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Reads an audio file through libsndfile: ``(signals (channels, n) float64, rate)``.

    Integer samples (PCM, and the codecs libsndfile decodes to integers: u-law, ADPCM,
    ...) are read as 32-bit integers (libsndfile puts a b-bit sample in the top b bits) and
    divided by 2**31, i.e. scaled by 2**(b-1) exactly (8-bit unsigned: offset 128); float
    files and the lossy codecs (Vorbis, Opus, MP3) are read as doubles. A WAV, AIFF or AU
    file whose data stops short of its header's length is read as far as it goes."""
    fmt = _audio_format(path)
    sf = _soundfile("read", path)
    if fmt.major not in sf.available_formats():
        raise FaustError(f"cannot read '{path}': the installed libsndfile "
                         f"({sf.__libsndfile_version__}) does not support {fmt.name} files")
    with open(path, "rb"):   # an OSError (no such file, a folder, ...) names the problem
        pass
    what = f"'{path}' is not a readable {fmt.name} file"
    try:
        f = sf.SoundFile(str(path))
    except Exception as e:   # LibsndfileError, or soundfile's own checks
        raise FaustError(f"{what}: {_sf_reason(e)}") from None
    try:
        with f:
            rate, subtype = f.samplerate, f.subtype
            if subtype in _FLOAT_SUBTYPES:
                frames = f.read(dtype="float64", always_2d=True)
            else:
                frames = f.read(dtype="int32", always_2d=True) * (1.0 / 2147483648.0)
    except MemoryError:
        raise
    except Exception as e:
        raise FaustError(f"{what}: {_sf_reason(e)} (while decoding its samples: the file "
                         f"may be damaged or truncated)") from None
    return np.ascontiguousarray(frames.T, dtype=np.float64), int(rate)


# ---------------------------------------------------------------------------- output files

@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields the name of a new temporary file beside `path`; renames it to `path` after
    the block (its data synced to disk first, its mode a normal file's).

    On any exception the temporary file is removed and `path` is left as it was; an OSError
    (disk full, no such folder, ...) becomes a FaustError naming `path`."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
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


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **kw) -> Iterator[IO]:
    """Opens a temporary file beside `path`, yields it, then renames it to `path` (see
    `atomic_path`: never a half-written `path`, OSErrors as FaustErrors)."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kw) as f:
            yield f


def check_output_path(path: str | os.PathLike, wav_bits: int | None = None) -> str:
    """The output format (extension) of `path`, or a FaustError: an unknown extension, an
    audio format the installed libsndfile cannot write, or `wav_bits` (given explicitly)
    for a format that holds no floats."""
    ext = file_kind(path)
    if ext not in OUTPUT_EXTENSIONS:
        what = f"unsupported output format '{ext}'" if ext else "no file extension"
        raise FaustError(f"cannot write '{path}': {what} ({USE_A_FILE})")
    if ext in AUDIO_FORMATS:
        major, subtype = audio_subtype(path, wav_bits or 32)
        if wav_bits is not None and subtype not in ("FLOAT", "DOUBLE"):
            raise FaustError(f"--wav-bits {wav_bits}: '{path}' is written as "
                             f"{sample_format(subtype)}, not floats (drop --wav-bits)")
    return ext


def check_output_rate(path: str | os.PathLike, sample_rate: int) -> None:
    """A FaustError when `path`'s audio format cannot be written at `sample_rate` (MP3, Opus,
    FLAC and Vorbis take some rates only): asked of libsndfile by opening a one-channel
    writer on a temporary file, so that a long render does not end in that error."""
    if file_kind(path) not in AUDIO_FORMATS:
        return
    fmt = _audio_format(path)
    major, subtype = audio_subtype(path)
    _check_rate(path, fmt, subtype, sample_rate)
    sf = _soundfile("write", path)
    fd, tmp = tempfile.mkstemp(suffix=".tmp")
    os.close(fd)
    try:
        sf.SoundFile(tmp, "w", samplerate=int(sample_rate), channels=1, subtype=subtype,
                     format=major).close()
    except Exception as e:
        raise FaustError(f"cannot write '{path}': {_sf_reason(e)} ({sample_rate} Hz, "
                         f"{sample_format(subtype)})") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _check_rate(path, fmt: AudioFormat, subtype: str, sample_rate: int) -> None:
    if fmt.max_rate is not None and sample_rate > fmt.max_rate:
        raise FaustError(f"cannot write '{path}': {sample_rate} Hz (libsndfile's "
                         f"{sample_format(subtype)} encoder takes at most {fmt.max_rate} Hz)")


def audio_subtype(path: str | os.PathLike, bits: int = 32, channels: int = 1) -> tuple[str, str]:
    """(libsndfile major format, subtype) that `write_audio` uses for `path`: 32/64-bit
    float (`bits`) where the format holds floats, else its widest integer PCM, else its
    codec; WAV above 2 channels is WAVE_FORMAT_EXTENSIBLE. A FaustError when the installed
    libsndfile cannot write it."""
    if bits not in WAV_FLOAT_BITS:
        raise FaustError(f"cannot write {bits}-bit float samples (use 32 or 64)")
    fmt = _audio_format(path)
    sf = _soundfile("write", path)
    major = "WAVEX" if fmt is _WAV and channels > 2 else fmt.major
    subtypes = sf.available_subtypes(major) if major in sf.available_formats() else {}
    if fmt.write == "float":
        choice = ["FLOAT" if bits == 32 else "DOUBLE"]
    elif fmt.write == "pcm":
        choice = list(_PCM_BITS)
    else:
        choice = [fmt.write]
    for subtype in choice:
        if subtype in subtypes and sf.check_format(major, subtype):
            return major, subtype
    raise FaustError(f"cannot write '{path}': the installed libsndfile "
                     f"({sf.__libsndfile_version__}) cannot write {fmt.name} files"
                     + (f" as {sample_format(choice[0])}" if subtypes else ""))


def sample_format(subtype: str) -> str:
    """How a libsndfile subtype's samples are described in messages and help."""
    if subtype in ("FLOAT", "DOUBLE"):
        return f"{32 if subtype == 'FLOAT' else 64}-bit float"
    if subtype in _PCM_BITS:
        return f"{_PCM_BITS[subtype]}-bit integer PCM"
    return _CODEC_NAMES.get(subtype, subtype)


@dataclass(frozen=True)
class AudioWritten:
    """What `write_audio` did: the file's format and how many samples it could not hold."""
    path: str
    major: str
    subtype: str
    samples: int          # channels x frames written
    clipped: int = 0      # samples outside the format's range, clipped to it
    nans: int = 0         # NaN samples, written as 0 (integer PCM and lossy codecs)

    def warning(self) -> str | None:
        """One line for the user when samples were changed, else None."""
        if not (self.clipped or self.nans):
            return None
        parts = []
        if self.clipped:
            lo_hi = "[-1, 1]" if self.subtype not in _PCM_BITS else "[-1, 1)"
            parts.append(f"{self.clipped} of {self.samples} samples were outside {lo_hi} "
                         f"and were clipped")
        if self.nans:
            parts.append(f"{plural(self.nans, 'NaN sample')} written as 0")
        return f"'{self.path}' holds {sample_format(self.subtype)}: " + "; ".join(parts)


def write_output(path: str | os.PathLike, outputs: np.ndarray,
                 bargraphs: Sequence[tuple[str, np.ndarray]] = (), sample_rate: int = 44100,
                 wav_bits: int = 32) -> AudioWritten | None:
    """Writes `outputs` (num_outputs, n) and, in CSV only, the bargraph traces. For an
    audio file, returns what `write_audio` did (its `warning()` tells of clipped samples)."""
    ext = check_output_path(path)
    outputs = np.asarray(outputs, dtype=np.float64)
    if ext == ".csv":
        write_csv(path, outputs, bargraphs)
    elif ext == ".npy":
        with atomic_write(path) as f:
            np.save(f, outputs)
    else:
        return write_audio(path, outputs, sample_rate, wav_bits)
    return None


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


_RIFF_LIMIT = 0xFFFFFFFF - 4096   # 32-bit chunk sizes, less room for the header chunks
_SFC_SET_ADD_PEAK_CHUNK = 0x1050


def write_audio(path: str | os.PathLike, outputs: np.ndarray, sample_rate: int,
                bits: int = 32) -> AudioWritten:
    """Writes `outputs` (channels, n), one channel per output, at `sample_rate`, in the format
    of `path`'s extension (`audio_subtype`). Float formats keep every value (NaN, inf, and
    beyond +-1); integer PCM is ``rint(x * 2**(b-1))`` clipped to b bits, the lossy codecs
    get x clipped to [-1, 1]; NaN becomes 0 in both. The returned `AudioWritten` counts them."""
    fmt = _audio_format(path)
    outputs = np.asarray(outputs, dtype=np.float64)
    channels, n = outputs.shape
    major, subtype = audio_subtype(path, bits, channels)
    if channels == 0:
        raise FaustError(f"cannot write '{path}': the program has no outputs "
                         f"(an audio file needs at least one channel)")
    if channels > fmt.max_channels:
        raise FaustError(f"cannot write '{path}': {channels} channels "
                         f"({_a(fmt.name)} file holds at most {fmt.max_channels})")
    _check_rate(path, fmt, subtype, sample_rate)
    width = {"FLOAT": 4, "DOUBLE": 8}.get(subtype) or _PCM_BITS.get(subtype, 0) // 8
    data_size = channels * n * width
    if fmt.riff32 and data_size > _RIFF_LIMIT:
        raise FaustError(f"cannot write '{path}': {data_size} bytes of samples do not fit in "
                         f"{_a(fmt.name)} file "
                         f"(4 GiB at most); use .w64, .rf64, .caf or .npy")
    clipped = nans = 0
    if subtype == "FLOAT":
        frames = outputs.T.astype(np.float32)
    elif subtype == "DOUBLE":
        frames = outputs.T
    else:
        if subtype in _PCM_BITS:
            b = _PCM_BITS[subtype]
            lo, hi = -2.0 ** (b - 1), 2.0 ** (b - 1) - 1
            with np.errstate(invalid="ignore", over="ignore"):
                x = np.rint(outputs * 2.0 ** (b - 1))
        else:
            lo, hi = -1.0, 1.0
            x = outputs.copy()
        nan = np.isnan(x)
        nans = int(np.count_nonzero(nan))
        clipped = int(np.count_nonzero(x < lo) + np.count_nonzero(x > hi))
        np.clip(x, lo, hi, out=x)
        x[nan] = 0.0
        if subtype in _PCM_BITS:   # libsndfile takes the top b bits of a 32-bit integer
            frames = (x.T.astype(np.int64) << (32 - b)).astype(np.int32)
        else:
            frames = x.T
    sf = _soundfile("write", path)
    with atomic_path(path) as tmp:
        try:
            f = sf.SoundFile(tmp, "w", samplerate=int(sample_rate), channels=channels,
                             subtype=subtype, format=major)
        except Exception as e:
            raise FaustError(f"cannot write '{path}': {_sf_reason(e)} "
                             f"({plural(channels, 'channel')} at {sample_rate} Hz, "
                             f"{sample_format(subtype)})") from None
        try:
            with f:   # closing writes the header: it can fail too
                _no_peak_chunk(sf, f)
                f.write(np.ascontiguousarray(frames))
        except MemoryError:
            raise
        except Exception as e:   # soundfile asserts that every frame was written
            reason = ("libsndfile could not write every sample (is the disk full?)"
                      if isinstance(e, AssertionError) else _sf_reason(e))
            raise FaustError(f"cannot write '{path}': {reason}") from None
    return AudioWritten(str(path), major, subtype, channels * n, clipped, nans)


def _no_peak_chunk(sf, f) -> None:
    """No PEAK chunk in float WAV/AIFF files: it holds the time of writing, so the same
    render would give different files. (sf_command is not public in soundfile: without it,
    the file just has a PEAK chunk.)"""
    with contextlib.suppress(Exception):
        sf._snd.sf_command(f._file, _SFC_SET_ADD_PEAK_CHUNK, sf._ffi.NULL, 0)
