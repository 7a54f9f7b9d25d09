"""Errors a user can cause, each carrying the source position it is about.

Invariant: every error that reaches the command line is a `FaustError`; its `str()` is the
whole user-facing message, starting with ``file:line:col:`` when the position is known.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A source range. Lines and columns are 1-based; `end_*` is exclusive."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class FaustError(Exception):
    """A problem in the user's program, files or arguments (never a bug of ours)."""

    def __init__(self, message: str, span: Span | None = None, expr: str | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.expr = expr

    def __str__(self) -> str:
        where = f"{self.span}: " if self.span else ""
        tail = f"\n  in: {self.expr}" if self.expr else ""
        return f"{where}error: {self.message}{tail}"


class FaustSyntaxError(FaustError):
    pass


class FaustEvalError(FaustError):
    pass


class FaustArityError(FaustError):
    pass
