"""The front end's entry points: a .dsp file read with errors a user can act on, and
source text taken to its normal-form `process` box.

    read_source(path) -> text
    evaluate_source(text, filename, include) -> Box   (parse, evaluate, arity check)

Evaluation runs under `core.deep.deep_call` (a big-stack worker thread): the stages recurse
over trees whose depth follows the program. The builtins of diff.lib are those registered
in `builtins.BUILTINS` (by `faustdiff.ad`, which `import faustdiff` imports).
"""
from __future__ import annotations

import os
from typing import Iterable, Optional

from ..core.deep import deep_call
from ..errors import FaustError, Span
from . import boxes as B
from .arity import arity
from .evaluate import Resolver, evaluate_process
from .parse import _encoding_error, parse_source


def evaluate_source(text: str, filename: str = "<string>", include: Iterable = (),
                    name: str = "process", libraries: Optional[list] = None) -> B.Box:
    """Parse and evaluate a program to its normal-form `process` box (arity-checked);
    `libraries`, when given, receives the paths of the library files read."""
    def work():
        program = parse_source(text, filename)
        base = os.path.dirname(os.path.abspath(filename)) if not filename.startswith("<") else os.getcwd()
        resolver = Resolver(tuple(include), base)
        box = evaluate_process(program, resolver, name)
        if libraries is not None:
            libraries.extend(resolver.files())
        ins, outs = arity(box)
        if outs == 0:
            raise FaustError("the Faust program has no output signal",
                             box.span or Span(filename, 1, 1))
        return box
    return deep_call(work)


def read_source(path: str) -> str:
    """Read a .dsp file as UTF-8, with errors a user can act on."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FaustError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise FaustError(f"{path}: is a directory, not a Faust file") from None
    except OSError as e:
        raise FaustError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:   # located in characters, as the parser does
        raise _encoding_error(data, e.start, path) from None
