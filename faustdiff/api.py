"""The Python API: Faust source in, a runnable `Program` out.

    parse -> evaluate -> arity check -> propagate -> Program

Compilation runs under `deep.deep_call` (a big-stack worker thread): the stages recurse over
trees whose depth follows the program.
"""
from __future__ import annotations

import os
import sys
from typing import Callable, Iterable, Optional

from .frontend import boxes as B
from .core.deep import deep_call
from .errors import FaustError, Span

# Kept under this name for callers of the API module.
run_deep = deep_call


def evaluate_source(text: str, filename: str = "<string>", include: Iterable = (),
                    name: str = "process", libraries: Optional[list] = None) -> B.Box:
    """Parse and evaluate a program to its normal-form `process` box (arity-checked);
    `libraries`, when given, receives the paths of the library files read."""
    def work():
        from .frontend.parse import parse_source
        from .frontend.evaluate import Resolver, evaluate_process
        from .frontend.arity import arity
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
    return run_deep(work)


def compile_source(text: str, filename: str = "<string>", sample_rate: float = 44100,
                   include: Iterable = (), backend: Optional[str] = None, wrt=None):
    """Compile Faust source text to a program object: by default generated Numba code,
    cached on disk (`faustdiff.backend.cache`); `backend="interp"`: the reference interpreter.
    `wrt` (labels of sliders/nentries, or "auto" for the declared `[diff:on]` parameters):
    a `grad.GradProgram`, whose `compute` also leaves ∂outputs/∂wrt in `partials`."""
    if wrt is not None:
        from .backend.grad import compile_source as compile_grad
        return compile_grad(text, filename, sample_rate, include, wrt, backend)
    if backend in (None, "numba"):
        from .backend.cache import NUMBA_NODE_LIMIT, TooLargeForNumba, load_program
        try:
            return load_program(text, filename, int(sample_rate), include,
                                node_limit=NUMBA_NODE_LIMIT if backend is None else None)
        except TooLargeForNumba as e:
            # The default backend picks the interpreter for very large programs (a hang in
            # LLVM helps nobody); backend="numba" compiles them anyway.
            sys.stderr.write(f"faustdiff: note: {e.message}; running it in the interpreter "
                             f"(--backend numba compiles it anyway)\n")
            backend = "interp"
    box = evaluate_source(text, filename, include)

    def build():
        from .backend.program import Program
        return Program.from_box(box, sample_rate=sample_rate, backend=backend)
    return run_deep(build)


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
        from .frontend.parse import _encoding_error
        raise _encoding_error(data, e.start, path) from None


def compile_file(path: str, sample_rate: float = 44100, include: Iterable = (),
                 backend: Optional[str] = None, wrt=None):
    """Compile a .dsp file to a `Program`; libraries are searched in the file's folder,
    `include`, `$FAUST_LIB_PATH`, then the bundled libraries. `wrt`: see compile_source."""
    return compile_source(read_source(str(path)), str(path), sample_rate, include, backend,
                          wrt)


def compile_module_source(path: str, sample_rate: float = 44100, include: Iterable = ()) -> str:
    """The generated Python module of a .dsp file (what `faustdiff compile` writes)."""
    from .backend.cache import module_source
    return module_source(read_source(str(path)), str(path), int(sample_rate), tuple(include))
