"""faustdiff: Faust programs compiled from Python, with forward-mode automatic differentiation."""
__version__ = "0.1.0"

from .api import compile_file, compile_source  # noqa: E402
from .errors import FaustError  # noqa: E402

__all__ = ["compile_file", "compile_source", "FaustError", "__version__"]
