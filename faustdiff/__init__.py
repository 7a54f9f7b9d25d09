"""faustdiff: Faust programs compiled from Python, with automatic differentiation.

The package is one subpackage per compiler stage (docs/architecture.md): `core` (the
primitive table), `frontend`, `signals`, `ad`, `backend`, `learn`; `api` strings them
together. What a user needs is re-exported here: `compile_file`, `compile_source`,
`FaustError`, the training entry points (`Trainer`, `fit`, `render`) and the modules
`losses`, `optim`, `train`, `grad`, loaded on first use.
"""
__version__ = "0.1.0"

import importlib
import importlib.abc
import importlib.util
import sys

from .api import compile_file, compile_source  # noqa: E402
from .errors import FaustError  # noqa: E402

# Names re-exported lazily (so `import faustdiff` does not load numba): name -> module.
_LAZY = {"Trainer": "learn.train", "fit": "learn.train", "render": "learn.train",
         "TrainResult": "learn.train", "GradProgram": "backend.grad", "Program": "backend.program"}
# Modules of faustdiff 0.1's flat layout that user code imports by name: old -> new path.
_MOVED = {"train": "learn.train", "losses": "learn.losses", "optim": "learn.optim",
          "grad": "backend.grad"}

__all__ = ["compile_file", "compile_source", "FaustError", "__version__", *_LAZY, *_MOVED]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if name in _MOVED:
        return importlib.import_module(f"{__name__}.{_MOVED[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import faustdiff.train` (0.1's path) gives the module at its new place."""

    def find_spec(self, fullname, path=None, target=None):
        pkg, _, leaf = fullname.rpartition(".")
        if pkg == __name__ and leaf in _MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(f"{__name__}.{_MOVED[spec.name.rpartition('.')[2]]}")

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _MovedFinder())   # before any finder that could see stale files
