"""The Python API: Faust source in, a runnable `Program` out.

    parse -> evaluate -> arity check -> propagate -> Program

The stages live in subpackages, one per stage (docs/architecture.md); this module strings
them together, importing each on first use (`import faustdiff` stays fast: no numpy, Lark
or Numba until a program is compiled). Compilation runs under `core.deep.deep_call` (a
big-stack worker thread): the stages recurse over trees whose depth follows the program.
"""
from __future__ import annotations

from typing import Iterable, Optional

from .core.deep import deep_call
from .errors import FaustError  # noqa: F401  (faustdiff.api.FaustError)

# Kept under this name for callers of the API module.
run_deep = deep_call


def evaluate_source(text: str, filename: str = "<string>", include: Iterable = (),
                    name: str = "process", libraries: Optional[list] = None):
    """The normal-form `process` box of a program (`frontend.source.evaluate_source`), with
    diff.lib's builtins registered (`faustdiff.ad`, loaded on first use)."""
    from . import ad  # noqa: F401
    from .frontend.source import evaluate_source as evaluate
    return evaluate(text, filename, include, name, libraries)


def read_source(path: str) -> str:
    """A .dsp file's text (`frontend.source.read_source`: errors a user can act on)."""
    from .frontend.source import read_source as read
    return read(path)


def compile_source(text: str, filename: str = "<string>", sample_rate: float = 44100,
                   include: Iterable = (), backend: Optional[str] = None, wrt=None,
                   mode: Optional[str] = None, signals=None, input_grads: bool = True):
    """Compile Faust source text to a program object: by default generated Numba code,
    cached on disk (`faustdiff.backend.cache`); `backend="interp"`: the reference interpreter.

    wrt     -- labels of sliders/nentries, or "auto" for the declared `[diff:on]` parameters:
               a `GradProgram` (forward mode), whose `compute` also leaves ∂outputs/∂wrt
               in `partials`;
    mode    -- "reverse": a `ReverseProgram` whose `vjp(dL/dy)` returns (dL/dθ for `wrt`,
               dL/dx per sample), at a cost independent of the number of parameters;
    signals -- slider labels turned into audio inputs after the program's own (driven per
               sample; with mode="reverse" their gradients come back in dL/dx);
    input_grads -- mode="reverse" only: False skips dL/dx (zeros), for training."""
    from .backend.build import compile_program   # on first use: numba loads with it
    return compile_program(text, filename, sample_rate, include, backend, wrt, mode, signals,
                           input_grads)


def compile_file(path: str, sample_rate: float = 44100, include: Iterable = (),
                 backend: Optional[str] = None, wrt=None, mode: Optional[str] = None,
                 signals=None, input_grads: bool = True):
    """Compile a .dsp file to a program; libraries are searched in the file's folder,
    `include`, `$FAUST_LIB_PATH`, then the bundled libraries. See compile_source."""
    return compile_source(read_source(str(path)), str(path), sample_rate, include, backend,
                          wrt, mode, signals, input_grads)


def compile_module_source(path: str, sample_rate: float = 44100, include: Iterable = ()) -> str:
    """The generated Python module of a .dsp file (what `faustdiff compile` writes)."""
    from .backend.cache import module_source
    return module_source(read_source(str(path)), str(path), int(sample_rate), tuple(include))


def layer_source(dsp, params, signals, sample_rate: float = 44100, include: Iterable = ()):
    """What the framework bindings (faustdiff.torch, faustdiff.jax) compile: (text,
    filename, wrt) for `dsp` (a .dsp path or Faust source text) and `params` (labels,
    "auto" for the [diff:on] ones, or None: every slider not driven as a signal)."""
    import os
    if isinstance(dsp, os.PathLike) or ("\n" not in dsp and (dsp.endswith(".dsp")
                                                              or os.path.exists(dsp))):
        text, filename = read_source(str(dsp)), str(dsp)
    else:
        text, filename = dsp, "<string>"
    if params is None:
        plain = compile_source(text, filename, sample_rate, include, signals=list(signals))
        wrt = [lab for lab in plain.params if lab not in signals]
    else:
        wrt = params if isinstance(params, str) else [str(p) for p in params]
    return text, filename, wrt
