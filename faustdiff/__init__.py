"""faustdiff: Faust programs compiled from Python, with forward-mode automatic differentiation."""
__version__ = "0.1.0"
