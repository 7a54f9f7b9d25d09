"""The on-disk cache of compiled programs, and loading generated modules.

Layout of the cache directory (`$FAUSTDIFF_CACHE_DIR`, else `$XDG_CACHE_HOME/faustdiff`,
else `~/.cache/faustdiff`):

    m_<key1>.json          manifest: the library files the compile read (path, sha256) and
                           the module they lead to
    fd_<key2>.py           the generated module (see codegen), checksummed
    __pycache__/           Numba's own cache of its kernels (`cache=True`)

`key1` hashes everything known BEFORE parsing: the source text, its directory, the library
search path (-I, $FAUST_LIB_PATH, the installed Faust folders, FAUSTDIFF_LIBS), the sample
rate, the program name, faustdiff's version and the module format. `key2` adds the contents of the library files the compile read, so a
changed library is a different module. A hit skips parsing, evaluation, code generation and
(through Numba's cache) JIT compilation.

Nothing read from the cache is trusted: a manifest that does not parse, a library whose
content changed (or that a new file would now shadow), a module whose checksum or key does
not match, a module or Numba cache that fails to import or load: each is a miss, and the entry
is rebuilt. Every write is a temporary file in the same directory renamed over the target
(atomic on POSIX), so concurrent processes never see half-written files.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Optional

from .. import __version__
from .. import ad  # noqa: F401  (diff.lib's builtins and Dual's meaning, before any evaluation)
from ..errors import FaustError
from .typing_memo import memoized_typing

_CHECK = "# faustdiff-checksum: "
_loaded: dict = {}    # module path -> imported module (this process)


def cache_dir() -> Path:
    d = os.environ.get("FAUSTDIFF_CACHE_DIR")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        d = os.path.join(base, "faustdiff")
    return Path(d)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------- module files

def seal(source: str) -> str:
    """A module's text with its checksum line appended."""
    body = source if source.endswith("\n") else source + "\n"
    return body + _CHECK + _sha(body.encode("utf-8")) + "\n"


def verify(path: Path, key: Optional[str] = None) -> bool:
    """The module file is complete and untouched (and was generated for `key`)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    body, sep, last = text.rpartition(_CHECK)
    if not sep or last.strip() != _sha(body.encode("utf-8")):
        return False
    return key is None or f" key={key}\n" in body


def _purge_numba_cache(path: Path) -> None:
    pyc = path.parent / "__pycache__"
    for f in pyc.glob(path.stem + ".*"):
        try:
            f.unlink()
        except OSError:
            pass


# Numba initialises its CPU target (on the first compile or cache load) by importing every
# extension it supports, SciPy's BLAS (for np.dot) and cffi among them: 0.3-0.7 s that our
# kernels never use. A process of our own (the command line) sets LEAN to hide them while
# Numba starts; they are importable again right after.
LEAN = False
_HIDDEN = ("scipy.linalg.cython_blas", "scipy.linalg.cython_lapack", "cffi")


def _hide_extras() -> list:
    if not LEAN or "numba" in sys.modules:
        return []
    hidden = [m for m in _HIDDEN if m not in sys.modules]
    for m in hidden:
        sys.modules[m] = None
    return hidden


def _unhide(hidden: list) -> None:
    for m in hidden:
        if sys.modules.get(m, 0) is None:
            del sys.modules[m]


def import_module(path: Path):
    hidden = _hide_extras()
    try:
        return _import_module(path)
    finally:
        _unhide(hidden)


def _import_module(path: Path):
    """Import a generated module from its file (once per process) and make sure its kernels
    load; a broken Numba cache is purged and the module imported again."""
    path = Path(path)
    mod = _loaded.get(str(path))
    if mod is not None:
        return mod
    for attempt in range(2):
        name = f"_faustdiff_{path.stem}_{attempt}"
        try:
            spec = importlib.util.spec_from_file_location(name, str(path))
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            with memoized_typing():   # module import compiles table kernels, _warm _k0
                spec.loader.exec_module(mod)
                _warm(mod.program)
        except FaustError:
            raise
        except Exception:
            sys.modules.pop(name, None)
            if attempt:
                raise
            _purge_numba_cache(path)
            continue
        _loaded[str(path)] = mod
        return mod


def _warm(program) -> None:
    """Load (or compile) the kernel now: a zero-sample call on a scratch state."""
    import numpy as np
    from .runtime import KernelState
    st = KernelState(program.STATES[0])
    try:
        program.kernel(1, 0, 0, np.zeros((program.num_inputs, 0)),
                       np.zeros((program.num_outputs, 0)),
                       np.zeros((len(program.bargraph_labels), 0)), program._ctl.copy(),
                       st.iv, st.fv, st.di, st.df, st.hi, st.hf)
    except ZeroDivisionError:
        pass


# ---------------------------------------------------------------- keys and manifests

def _key1(text: str, filename: str, sample_rate, include: Iterable, name: str) -> str:
    from ..frontend.evaluate import bundled_only, installed_lib_dirs
    base = os.path.dirname(os.path.abspath(filename)) if not filename.startswith("<") \
        else os.getcwd()
    parts = {
        "format": _format(), "version": __version__, "compiler": _compiler_fingerprint(),
        "sr": repr(sample_rate), "name": name,
        "dir": base, "include": [os.path.abspath(str(p)) for p in include],
        "faust_lib_path": os.environ.get("FAUST_LIB_PATH", ""), "text": text,
        "libs": [bundled_only(), installed_lib_dirs()],   # which libraries come first
        "lanes": _lanes(),   # the batch kernels' vector width is the machine's
    }
    return _sha(json.dumps(parts, sort_keys=True).encode("utf-8"))[:40]


@functools.lru_cache(maxsize=None)
def _compiler_fingerprint() -> str:
    """A hash of faustdiff's own code and grammar: a cached module made by another build of
    the compiler (even one with the same version number) is never reused."""
    here = Path(__file__).resolve().parents[1]   # the faustdiff package, every stage
    files = sorted(here.rglob("*.py")) + sorted((here / "grammar").glob("*.lark"))
    if not (here / "grammar").is_dir():
        files += sorted((here.parent / "grammar").glob("*.lark"))
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(here.parent)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _lanes() -> int:
    from .simd import LANES
    return LANES


def _format() -> int:
    from .runtime import FORMAT
    return FORMAT


def _key2(key1: str, libs: list) -> str:
    return _sha(json.dumps([key1, libs]).encode("utf-8"))[:40]


def _file_sha(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return _sha(f.read())
    except OSError:
        return None


def _shadowed(lib: str, search: list) -> bool:
    """A file with lib's name now sits in a search directory before lib's own."""
    d, base = os.path.dirname(lib), os.path.basename(lib)
    for s in search:
        if os.path.abspath(s) == d:
            return False
        if os.path.isfile(os.path.join(s, base)):
            return True
    return False


def _search_dirs(filename: str, include: Iterable) -> list:
    base = os.path.dirname(os.path.abspath(filename)) if not filename.startswith("<") \
        else os.getcwd()
    env = [p for p in os.environ.get("FAUST_LIB_PATH", "").split(os.pathsep) if p]
    return [base] + [str(p) for p in include] + env


def lookup(text: str, filename: str, sample_rate, include: Iterable = (), name: str = ""):
    """The cached module file for this compile, or None (a miss)."""
    d = cache_dir()
    k1 = _key1(text, filename, sample_rate, include, name)
    try:
        man = json.loads((d / f"m_{k1}.json").read_text("utf-8"))
        libs = [(str(p), str(h)) for p, h in man["libs"]]
        module = str(man["module"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    search = _search_dirs(filename, include)
    for p, h in libs:
        if _file_sha(p) != h or _shadowed(p, search):
            return None
    k2 = _key2(k1, libs)
    path = d / f"fd_{k2}.py"
    if module != path.name or not verify(path, k2):
        return None
    return path


def store(text: str, filename: str, sample_rate, include: Iterable, name: str,
          libs: Iterable[str], module_source_fn) -> Path:
    """Write the module (made by `module_source_fn(key)`) and its manifest; returns the
    module path."""
    d = cache_dir()
    k1 = _key1(text, filename, sample_rate, include, name)
    libs = sorted((os.path.abspath(p), _file_sha(p) or "") for p in libs)
    k2 = _key2(k1, libs)
    path = d / f"fd_{k2}.py"
    if not verify(path, k2):
        atomic_write(path, seal(module_source_fn(k2)).encode("utf-8"))
        _purge_numba_cache(path)
    man = {"version": __version__, "libs": libs, "module": path.name}
    atomic_write(d / f"m_{k1}.json", json.dumps(man, indent=1).encode("utf-8"))
    return path


# ---------------------------------------------------------------- the compile entry points

class TooLargeForNumba(FaustError):
    """The program has more signal nodes than Numba compiles in reasonable time."""


# Numba's compile time is about linear in the kernel's size since kernels access arrays
# through intrinsics and keep their state in a stack buffer (codegen): measured cold (front
# end + Numba, CPU) on the Faust examples, 2.0-2.7 ms per signal node for the large ones
# (jprev 1,997 nodes 5.4 s, vocoder 2,165 nodes 4.7 s, filterBank 1,736 nodes 3.5 s) and up
# to 5 ms for smaller ones with many math calls (greyhole 1,219 nodes 5.5 s). At this limit
# a compile is expected to take 20-40 s; above it, the default backend is the interpreter.
NUMBA_NODE_LIMIT = 8000


def build(text: str, filename: str, sample_rate, include: Iterable = (), name: str = "",
          key: str = "", source_name: Optional[str] = None, node_limit: Optional[int] = None):
    """Parse, evaluate, propagate, schedule and generate: (module source, library files).
    With `node_limit`, a program with more signal nodes raises TooLargeForNumba."""
    from ..core.deep import deep_call
    from ..frontend.arity import arity
    from ..frontend.source import evaluate_source
    from ..signals import ir as S
    from ..signals.propagate import Context, propagate
    from .codegen import generate_from_signals
    libs: list = []
    box = evaluate_source(text, filename, include, libraries=libs)

    def work():
        ins, _ = arity(box)
        outs = propagate(box, None, Context(name=name))
        # Program's rules: bargraphs shown per sample, in Faust's UI order.
        every = S.topo_order(outs, follow_tables=True)
        if node_limit is not None and len(every) > node_limit:
            raise TooLargeForNumba(
                f"the program has {len(every)} signal nodes; above {node_limit} the Numba "
                f"back end takes minutes to compile")
        src, _ = generate_from_signals(outs, S.bargraphs(outs), ins, int(sample_rate), name,
                                       source=source_name or os.path.basename(filename),
                                       key=key)
        return src

    return deep_call(work), libs


def load_program(text: str, filename: str = "<string>", sample_rate=44100,
                 include: Iterable = (), name: str = "", node_limit: Optional[int] = None):
    """A fresh program object for this source: from the cache when possible. With
    `node_limit`, a program too large to compile quickly raises TooLargeForNumba."""
    include = tuple(include)
    try:
        path = lookup(text, filename, sample_rate, include, name)
    except OSError:
        path = None
    if path is not None:
        try:
            mod = import_module(path)
            _emit(path)
            return _instance(mod)
        except FaustError:
            raise
        except Exception:   # noqa: BLE001 - a broken entry is a miss: rebuild it
            _loaded.pop(str(path), None)
            try:
                path.unlink()
            except OSError:
                pass
    src, libs = build(text, filename, sample_rate, include, name, key=_KEY_HOLE,
                      node_limit=node_limit)
    try:
        path = store(text, filename, sample_rate, include, name, libs,
                     lambda key: src.replace(f"key={_KEY_HOLE}\n", f"key={key}\n", 1))
    except OSError:   # no writable cache directory: a private one for this process
        path = _private_module(src.replace(f"key={_KEY_HOLE}\n", "key=\n", 1))
    mod = import_module(path)
    _emit(path)
    return _instance(mod)


def _private_module(source: str) -> Path:
    d = Path(tempfile.mkdtemp(prefix="faustdiff-"))
    path = d / f"fd_{_sha(source.encode('utf-8'))[:40]}.py"
    path.write_text(seal(source), "utf-8")
    return path


_KEY_HOLE = "@KEY@"


def _instance(mod):
    """The module's ready instance the first time, a new one afterwards."""
    prog = mod.program
    if getattr(mod, "_faustdiff_taken", False):
        return mod.FaustProgram()
    mod._faustdiff_taken = True
    return prog


def _emit(path: Path) -> None:
    if os.environ.get("FAUSTDIFF_EMIT", "") not in ("", "0"):
        sys.stderr.write(Path(path).read_text("utf-8"))


def module_source(text: str, filename: str, sample_rate=44100, include: Iterable = (),
                  name: str = "") -> str:
    """The generated module for a program (what `faustdiff compile` writes); the cache
    entry is made (or reused) on the way."""
    include = tuple(include)
    try:
        path = lookup(text, filename, sample_rate, include, name)
    except OSError:
        path = None
    if path is None:
        src, libs = build(text, filename, sample_rate, include, name, key=_KEY_HOLE)
        try:
            path = store(text, filename, sample_rate, include, name, libs,
                         lambda key: src.replace(f"key={_KEY_HOLE}\n", f"key={key}\n", 1))
        except OSError:   # no writable cache: the module all the same
            return seal(src.replace(f"key={_KEY_HOLE}\n", "key=\n", 1))
    return path.read_text("utf-8")


# ---------------------------------------------------------------- Program backend

class NumbaBackend:
    """`Program(..., backend="numba")`: the generated kernels behind Program's backend
    interface (set_control(node, value), reset(), run(inputs, n) -> (outs, bars))."""

    def __init__(self, outputs, bargraphs, num_inputs, sample_rate, keep=(), reverse_io=False):
        from ..signals import ir as S
        from .codegen import generate_from_signals
        controls = S.controls(list(outputs) + list(keep))
        src, plan = generate_from_signals(outputs, bargraphs, num_inputs, sample_rate,
                                          controls=controls, keep=keep,
                                          reverse_io=reverse_io)
        sealed = seal(src)
        path = cache_dir() / "signals" / f"fd_{_sha(sealed.encode('utf-8'))[:40]}.py"
        try:
            if not verify(path):
                atomic_write(path, sealed.encode("utf-8"))
                _purge_numba_cache(path)
        except OSError:   # no writable cache directory
            path = _private_module(src)
        self.module = import_module(path)
        self.program = self.module.FaustProgram()
        self._index = {id(c): j for j, c in enumerate(plan.controls)}

    def set_control(self, node, value) -> None:
        self.program.set_control(self._index[id(node)], value)

    def reset(self) -> None:
        self.program.reset()

    def finals(self):
        return self.program.finals()

    def run(self, inputs, n):
        import numpy as np
        ins = np.array(inputs, dtype=np.float64).reshape(len(inputs), n) if inputs else None
        outs = self.program.compute(ins, n)
        return outs, list(self.program.bargraph_traces)
