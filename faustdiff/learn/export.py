"""Learned parameters back to Faust: the model's source with each learned slider's default
replaced (`--export learned.dsp`), and a preset file (`--preset learned.json`).

The export edits the text, nothing else: every `hslider`/`vslider`/`nentry` of the model's
own file whose label (metadata aside) is a learned parameter gets its init argument, which
must be a number literal, replaced by the learned value written in full precision (the
widget's range is left alone: a learned value is inside it). The result compiles with the
Faust compiler as the original did, so `faust2juce`/`faust2vst` turn it into a plugin that
starts at the learned values.
"""
from __future__ import annotations

import json
import os
from dataclasses import fields, is_dataclass
from typing import Iterator, Optional

from ..audio_io import atomic_write
from ..errors import FaustError
from ..frontend import boxes as B
from ..frontend.parse import parse_source
from ..signals.ir import strip_metadata

SLIDERS = ("hslider", "vslider", "nentry")


def _widgets(box) -> Iterator[B.UIExpr]:
    """Every slider/nentry expression of a syntax tree, in source order."""
    stack = [box]
    while stack:
        b = stack.pop()
        if isinstance(b, B.UIExpr) and b.kind in SLIDERS:
            yield b
        if is_dataclass(b):
            kids = []
            for f in fields(b):
                v = getattr(b, f.name)
                for x in (v if isinstance(v, tuple) else (v,)):
                    if is_dataclass(x) and not isinstance(x, type):
                        kids.append(x)
            stack.extend(reversed(kids))


def _line_starts(text: str) -> list:
    """Index in `text` of each line's first character (line 1 first)."""
    starts = [0]
    k = text.find("\n")
    while k >= 0:
        starts.append(k + 1)
        k = text.find("\n", k + 1)
    return starts


def _number(v: float) -> str:
    """A Faust number literal for v, exact (repr round-trips a float64)."""
    s = repr(float(v))
    return s if any(c in s for c in ".en") else s + ".0"


def export_source(text: str, filename: str, values: dict) -> str:
    """`text` with the init argument of each slider labelled as a key of `values` replaced
    by its value. A label with no such slider in this file, or whose init is not a number
    literal, is a FaustError naming it."""
    program = parse_source(text, filename)
    edits: dict = {}
    found: dict = {label: [] for label in values}
    for w in _widgets(program):
        # ("h:group/label" is Faust's group path in a label: the widget's label is the last
        # part, as the learned parameters are named)
        label = strip_metadata(w.label).rsplit("/", 1)[-1].strip()
        if label not in values:
            continue
        init = w.args[0] if w.args else None
        span = getattr(init, "span", None)
        if not isinstance(init, (B.Int, B.Real)) or span is None or not span.end_line:
            at = w.span or span
            raise FaustError(f"{at}: cannot export '{label}': its default is not a number "
                             "literal")
        found[label].append(span)
        edits[(span.line, span.col, span.end_line, span.end_col)] = _number(values[label])
    missing = [label for label, spans in found.items() if not spans]
    if missing:
        raise FaustError(f"{filename}: cannot export {', '.join(repr(m) for m in missing)}: "
                         "no slider with that label in this file (defined in a library?)")
    out, starts = text, _line_starts(text)
    for (l0, c0, l1, c1), new in sorted(edits.items(), reverse=True):
        a, b = starts[l0 - 1] + c0 - 1, starts[l1 - 1] + c1 - 1
        out = out[:a] + new + out[b:]
    return out


def write_export(path: str, text: str, filename: str, values: dict) -> None:
    """Write export_source(...) to path, whole or not at all."""
    new = export_source(text, filename, values)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(new)


def preset(values: dict, paths: Optional[dict] = None, source: str = "") -> dict:
    """The preset document: {"values": {label: value}, "paths": {label: Faust UI path},
    "source": the model's file}."""
    doc = {"values": {k: float(v) for k, v in values.items()}}
    doc["paths"] = {k: (paths or {}).get(k, "/" + k) for k in values}
    if source:
        doc["source"] = os.path.basename(source)
    return doc


def write_preset(path: str, values: dict, paths: Optional[dict] = None,
                 source: str = "") -> None:
    with atomic_write(path, "w", encoding="utf-8") as f:
        json.dump(preset(values, paths, source), f, indent=2)
        f.write("\n")
