"""Datasets of input/target pairs for training at file scale (`Trainer.fit(dataset, ...)`,
`faustdiff train --dataset`).

    from faustdiff.learn.dataset import Dataset
    ds = Dataset("pairs/", program=trainer, val=0.1, batch=8, segment=0.5, seed=0)
    tr.fit(ds, epochs=20, patience=3, checkpoint="ckpt/")

Where the pairs come from:
* a folder: every `NAME.target.EXT` (EXT: .wav, .csv or .npy, read by
  `audio_io.read_input`) with its `NAME.in.EXT` (any of the three); a program without inputs
  takes target-only folders (its `NAME.in.*` files are refused: they would be ignored);
* a CSV manifest (a `.csv` file): one pair per row, `input,target[,weight]`, paths relative
  to the manifest's folder; an optional first row `input,target[,weight]` is a header; the
  input cell is empty for a program without inputs; weight (default 1) is a positive number
  that scales the pair's share of a batch's loss.

Bad files are refused with a FaustError naming the file and what is wrong: unreadable,
a channel count other than the program's inputs (input files) or outputs (target files),
NaN or infinite samples, a WAV sample rate other than `sr` (when given; else the first WAV
file's rate), shorter than the segment. With `skip_bad=True` the pair is left out instead and
a warning names the file (`Dataset.skipped` lists them); a dataset left with no pair is an
error either way.

Lengths and segments. A pair's length is the shorter of its input and target (the longer one
is cut at the end). CSV and NPY files have no sample rate: `segment` seconds are converted
with `sr`, the WAV files' rate, or 44100 Hz. Two ways to use the segments:

* `carry=False` (the default): independent segments. Every pair is cut into consecutive
  segments of `segment` seconds (default: the length of the shortest pair, so that every
  pair gives at least one segment); the samples after a pair's last whole segment are not
  trained on. Each segment is an example of its own, shuffled among all the others: the
  program is reset before rendering it (no state carried over from the segment before).
  Best for programs with a short memory (filters, waveshapers: the reset costs a few
  samples of transient at each segment's start), and the mini-batches mix the files.
* `carry=True` (`--carry-state`): long files in chunks. The examples are the whole pairs
  (every sample, the last segment may be shorter; a pair shorter than the segment is one
  segment), shuffled and batched `batch` pairs at a time. A pair is rendered from the reset
  state in consecutive segments with the program's state carried from each segment to the
  next, as the target was rendered, and the gradients of its segments are accumulated into
  the batch's one optimiser step (`Trainer.loss_and_grad(..., segment=)`): what a step
  keeps (outputs, partials or tapes) is bounded by `batch` segments, not by the files'
  lengths (the dataset itself holds the files' samples, float64). In reverse mode the
  state entering a segment is treated as a constant (truncated backpropagation through
  time at segment boundaries: the influence of θ through the carried state is dropped,
  which a segment much longer than the program's memory makes negligible); forward mode
  carries its tangents with the state and gets the whole-file gradient. A pair's loss is
  the length-weighted mean of its segments' losses (exactly the whole-file loss for
  l1/l2/huber; for esr/mrstft the mean of the segments' own losses), and the samples of a
  batch count equally (times their pair's weight).
  Choose it for long files and programs with a long memory (reverbs, compressors, delays).
  Default segment: the longest pair (each pair whole, in one segment).

Validation split and batches. `val` (a fraction) of the *pairs* (not segments, so no file is
both trained and validated on) is held out: round(val · pairs), at least 1 when val > 0, and
always at least one training pair. Which pairs: the first of a permutation of the pairs drawn
from `seed`. Every epoch the training segments are shuffled by a NumPy generator seeded with
`seed` (its state carries from epoch to epoch and is saved in checkpoints) and cut into
mini-batches of `batch` segments (the last one may be smaller).
"""
from __future__ import annotations

import csv
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..audio_io import INPUT_EXTENSIONS, atomic_write, plural, read_input
from ..errors import FaustError


@dataclass
class Pair:
    name: str                      # the target file, relative to the folder or manifest
    input_path: Optional[str]
    target_path: str
    weight: float
    x: Optional[np.ndarray]        # (inputs, n) or None for a program without inputs
    t: np.ndarray                  # (outputs, n)

    @property
    def n(self) -> int:
        return self.t.shape[1]


class _Bad(Exception):
    """A bad file of a pair: the FaustError message to give."""


def _bad(path, reason: str) -> _Bad:
    return _Bad(f"dataset: '{path}': {reason}")


def _read(path: str) -> tuple:
    """(array, rate) of one file of a pair, or _Bad."""
    if not os.path.exists(path):
        raise _bad(path, "no such file")
    try:
        arr, rate = read_input(path)
    except FaustError as e:
        where = f" (line {e.span.line}, column {e.span.col})" if e.span else ""
        text = e.message if f"'{path}'" in e.message else f"'{path}': {e.message}"
        raise _Bad(f"dataset: {text}{where}") from None
    if arr.shape[1] == 0:
        raise _bad(path, "no samples")
    finite = np.isfinite(arr)
    if not finite.all():
        c, i = np.argwhere(~finite)[0]
        v = arr[c, i]
        raise _bad(path, f"{'NaN' if np.isnan(v) else 'infinite'} sample (channel {c + 1}, "
                         f"sample {i})")
    return arr, rate


class Dataset:
    """Input/target pairs from a folder or a CSV manifest (see the module docstring).

    source   -- a folder of `NAME.in.EXT`/`NAME.target.EXT` files, or a `.csv` manifest
    program  -- a Trainer or a program: its input and output counts (else `inputs=` and
                `outputs=`; else they are checked by `require(inputs, outputs)`, which
                `Trainer.fit` calls)
    sr       -- the sample rate every WAV file must have (default: the first WAV's)
    segment  -- segment length in seconds (default: the shortest pair)
    val      -- fraction of the pairs held out for validation
    batch    -- segments per mini-batch
    seed     -- the validation split and the shuffling
    skip_bad -- leave bad pairs out with a warning instead of refusing the dataset
    carry    -- train on whole pairs in consecutive segments, the state carried from one to
                the next (long files in chunks), instead of on independent segments
    """

    def __init__(self, source, program=None, inputs: Optional[int] = None,
                 outputs: Optional[int] = None, sr: Optional[int] = None,
                 segment: Optional[float] = None, val: float = 0.0, batch: int = 8,
                 seed: int = 0, skip_bad: bool = False, carry: bool = False):
        # a Trainer (told by its fit_dataset: importing train here would be a cycle) or a program
        prog = program.program if hasattr(program, "fit_dataset") else program
        if prog is not None:
            inputs, outputs = prog.num_inputs, prog.num_outputs
        if not (0.0 <= float(val) < 1.0):
            raise FaustError(f"val must be a fraction in [0, 1), got {val}")
        if int(batch) < 1:
            raise FaustError(f"batch must be 1 or more, got {batch}")
        if segment is not None and not (float(segment) > 0 and math.isfinite(float(segment))):
            raise FaustError(f"segment must be a positive number of seconds, got {segment}")
        self.source = str(source)
        self.inputs, self.outputs = inputs, outputs
        # with both counts known, every pair is checked as it is read; else by `require`
        self._checked = inputs is not None and outputs is not None
        self.val_fraction, self.batch, self.seed = float(val), int(batch), int(seed)
        self.skip_bad = bool(skip_bad)
        self.carry = bool(carry)
        self.skipped: list = []          # (path, message) of the pairs left out
        self.sample_rate: Optional[int] = int(sr) if sr else None
        self._rate_from: Optional[str] = None
        self._segment_seconds = None if segment is None else float(segment)
        rows = self._listing(self.source)
        self.pairs: list[Pair] = []
        for name, ip, tp, w in rows:
            try:
                self.pairs.append(self._load(name, ip, tp, w))
            except _Bad as e:
                self._refuse(str(e))
        if not self.pairs:
            raise FaustError(f"dataset '{self.source}': no usable pair"
                             + (f" ({len(self.skipped)} skipped)" if self.skipped else ""))
        self._finish()

    def _refuse(self, msg: str) -> None:
        """A bad pair: a FaustError, or (skip_bad) a warning and a line of `skipped`."""
        if not self.skip_bad:
            raise FaustError(msg)
        self.skipped.append(msg)
        warnings.warn(f"skipping a pair: {msg}", stacklevel=3)

    def _finish(self) -> None:
        """The segment length (samples), pairs shorter than it, the split."""
        rate = self.sample_rate or 44100
        if self._segment_seconds is None:
            self.segment = (max if self.carry else min)(p.n for p in self.pairs)
        elif self.carry:   # whole pairs: a short one is one segment
            self.segment = max(1, int(round(self._segment_seconds * rate)))
        else:
            self.segment = max(1, int(round(self._segment_seconds * rate)))
            keep = []
            for p in self.pairs:
                if p.n >= self.segment:
                    keep.append(p)
                else:
                    self._refuse(f"dataset: '{p.target_path}': {p.n} samples, shorter than "
                                 f"the segment ({self.segment} samples)")
            if not keep:
                raise FaustError(f"dataset '{self.source}': no pair as long as the segment "
                                 f"({self.segment} samples)")
            self.pairs = keep
        self._split()

    def require(self, inputs: int, outputs: int) -> None:
        """Check every pair against a program's input and output counts (the files named in
        the messages; skip_bad: left out); a no-op when the counts were given already."""
        if self.inputs == inputs and self.outputs == outputs and self._checked:
            return
        self.inputs, self.outputs = int(inputs), int(outputs)
        keep = []
        for p in self.pairs:
            try:
                self._check(p)
                keep.append(p)
            except _Bad as e:
                self._refuse(str(e))
        if not keep:
            raise FaustError(f"dataset '{self.source}': no usable pair"
                             + (f" ({len(self.skipped)} skipped)" if self.skipped else ""))
        self._checked = True
        if len(keep) != len(self.pairs):
            self.pairs = keep
            self._finish()

    def _check(self, p: Pair) -> None:
        if self.inputs == 0 and p.input_path is not None:
            raise _bad(p.input_path, "an input file, but the program has no inputs")
        if p.input_path is None and self.inputs:
            raise _bad(p.target_path, f"no input file beside it (the program has "
                                      f"{plural(self.inputs, 'input')})")
        for path, arr, unit, want in ((p.target_path, p.t, "output", self.outputs),
                                      (p.input_path, p.x, "input", self.inputs)):
            if arr is not None and arr.shape[0] != want:
                raise _bad(path, f"{plural(arr.shape[0], 'channel')}, the program has "
                                 f"{plural(want, unit)}")

    # ------------------------------------------------------------ listing and loading

    def _listing(self, source: str) -> list:
        """(name, input path or None, target path, weight) of every pair."""
        if os.path.isdir(source):
            return self._folder(source)
        if not os.path.exists(source):
            raise FaustError(f"dataset '{source}': no such folder or manifest")
        if Path(source).suffix.lower() != ".csv":
            raise FaustError(f"dataset '{source}': expected a folder of pairs or a .csv "
                             "manifest (input,target[,weight])")
        return self._manifest(source)

    def _folder(self, folder: str) -> list:
        names = sorted(os.listdir(folder))
        targets, ins = {}, {}
        for f in names:
            stem, ext = os.path.splitext(f)
            if ext.lower() not in INPUT_EXTENSIONS:
                continue
            if stem.endswith(".target"):
                targets.setdefault(stem[:-7], []).append(f)
            elif stem.endswith(".in"):
                ins.setdefault(stem[:-3], []).append(f)
        for group in (targets, ins):
            for name, fs in group.items():
                if len(fs) > 1:
                    raise FaustError(f"dataset '{folder}': {' and '.join(fs)}: one file per "
                                     "name and role")
        rows = []
        for name in sorted(set(targets) | set(ins)):
            tp = os.path.join(folder, targets[name][0]) if name in targets else None
            ip = os.path.join(folder, ins[name][0]) if name in ins else None
            rows.append((targets[name][0] if tp else name, ip, tp, 1.0))
        if not rows:
            raise FaustError(f"dataset '{folder}': no NAME.target.wav/.csv/.npy file")
        return rows

    def _manifest(self, path: str) -> list:
        base = os.path.dirname(path)
        rows = []
        with open(path, encoding="utf-8", newline="") as f:
            for lineno, cells in enumerate(csv.reader(f), 1):
                cells = [c.strip() for c in cells]
                if not cells or not any(cells) or cells[0].startswith("#"):
                    continue
                if lineno == 1 and [c.lower() for c in cells[:2]] == ["input", "target"]:
                    continue
                if len(cells) not in (2, 3) or not cells[1]:
                    raise FaustError(f"manifest '{path}', line {lineno}: expected "
                                     "input,target[,weight]")
                w = 1.0
                if len(cells) == 3 and cells[2]:
                    try:
                        w = float(cells[2])
                    except ValueError:
                        w = float("nan")
                    if not (w > 0 and math.isfinite(w)):
                        raise FaustError(f"manifest '{path}', line {lineno}: weight "
                                         f"'{cells[2]}' is not a positive number")
                ip = os.path.join(base, cells[0]) if cells[0] else None
                rows.append((cells[1], ip, os.path.join(base, cells[1]), w))
        if not rows:
            raise FaustError(f"manifest '{path}': no pair")
        return rows

    def _rate(self, path: str, rate: Optional[int]) -> None:
        if rate is None:
            return
        if self.sample_rate is None:
            self.sample_rate, self._rate_from = int(rate), path
        elif int(rate) != self.sample_rate:
            origin = f"the rate of '{self._rate_from}'" if self._rate_from else "--sr/sr="
            raise _bad(path, f"sample rate {rate} Hz, the dataset's is {self.sample_rate} Hz "
                             f"({origin})")

    def _load(self, name, ip, tp, w) -> Pair:
        if tp is None:
            raise _bad(ip, f"no target file {name}.target.wav/.csv/.npy beside it")
        t, rt = _read(tp)
        x = None
        if ip is not None:
            x, ri = _read(ip)
            self._rate(ip, ri)
        self._rate(tp, rt)
        n = t.shape[1] if x is None else min(t.shape[1], x.shape[1])
        p = Pair(name, ip, tp, float(w), None if x is None else x[:, :n].copy(),
                 t[:, :n].copy())
        if self._checked:
            self._check(p)
        return p

    # ------------------------------------------------------------ split and batches

    def _split(self) -> None:
        k = len(self.pairs)
        nval = 0
        if self.val_fraction > 0 and k >= 2:
            nval = min(k - 1, max(1, int(round(self.val_fraction * k))))
        order = np.random.default_rng(self.seed).permutation(k)
        held = set(int(i) for i in order[:nval])
        self.val = [p for i, p in enumerate(self.pairs) if i in held]
        self.train = [p for i, p in enumerate(self.pairs) if i not in held]

    def segment_ids(self, pairs) -> list:
        """(pair index in `self.pairs`, start, stop) of every example of `segments(pairs)`,
        in the same order: what a Dask task receives instead of the samples."""
        index = {id(p): i for i, p in enumerate(self.pairs)}
        if self.carry:
            return [(index[id(p)], 0, p.n) for p in pairs]
        L = self.segment
        return [(index[id(p)], k * L, (k + 1) * L) for p in pairs for k in range(p.n // L)]

    def example(self, sid) -> tuple:
        """(input or None, target, weight) of the example a segment id names."""
        p = self.pairs[sid[0]]
        return (*cut(p.x, p.t, sid[1], sid[2]), p.weight)

    def segments(self, pairs) -> list:
        """(input segment or None, target segment, weight) for every whole segment; with
        carry=True, (input, target, weight) of every whole pair (the trainer cuts them)."""
        return [self.example(s) for s in self.segment_ids(pairs)]

    def batch_ids(self, rng: np.random.Generator) -> list:
        """The mini-batches of one epoch as lists of segment ids, shuffled by rng."""
        ids = self.segment_ids(self.train)
        order = rng.permutation(len(ids))
        return [[ids[int(i)] for i in order[j:j + self.batch]]
                for j in range(0, len(ids), self.batch)]

    def batches(self, rng: np.random.Generator) -> list:
        """The mini-batches of one epoch (lists of segments, or of pairs with carry=True),
        shuffled by rng (the same draws as `batch_ids`)."""
        return [[self.example(s) for s in b] for b in self.batch_ids(rng)]

    @property
    def unit(self) -> str:
        """What an example of a mini-batch is, for messages: "segments" or "pairs"."""
        return "pairs" if self.carry else "segments"

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        how = ", state carried" if self.carry else ""
        return (f"Dataset({self.source!r}: {len(self.train)} training, {len(self.val)} "
                f"validation pair(s), segment {self.segment} samples{how}, batch "
                f"{self.batch})")


def cut(x, t, start: int, stop: int) -> tuple:
    """(input, target) samples start..stop-1 of a pair's arrays (the arrays themselves for
    the whole pair): the one way an example is cut, in this process and on a Dask worker."""
    if start == 0 and stop == t.shape[1]:
        return x, t
    sl = slice(start, stop)
    return (None if x is None else x[:, sl]), t[:, sl]


# ---------------------------------------------------------------- per-file tables

def check_table_path(path) -> str:
    """The extension of a results table's path ('.csv' or '.json'), or a FaustError."""
    ext = Path(path).suffix.lower()
    if ext not in (".csv", ".json"):
        raise FaustError(f"cannot write '{path}': the results table needs a .csv or .json "
                         "file name")
    return ext


def write_table(path, rows: list, labels: list) -> None:
    """Write the per-file results (dicts with `file`, each label, `loss`, `steps`) as CSV or
    JSON (by the extension), atomically: the whole table or nothing."""
    ext = check_table_path(path)
    cols = ["file", *labels, "loss", "steps"]
    if ext == ".json":
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump([{c: r[c] for c in cols} for r in rows], f, indent=1)
            f.write("\n")
        return
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([r["file"], *(repr(float(r[c])) for c in labels),
                        repr(float(r["loss"])), int(r["steps"])])
