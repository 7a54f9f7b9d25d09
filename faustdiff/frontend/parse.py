"""Faust source text -> syntax boxes (`boxes.Program`).

The grammar lives in `grammar/faust.lark` (LALR). The `_Builder` callbacks run *inside* the
LALR parser (Lark's internal transformer), so boxes are built bottom-up while parsing: no parse
tree is materialised and nothing recurses, which keeps deep inputs (a 5,000-term sum, 100
nested `with`) free of RecursionError and makes parsing fast.

Invariants:
* every box produced carries `span=Span(file, line, col, end_line, end_col)` (1-based,
  end exclusive) covering the tokens it was built from;
* the desugaring is exactly the one of docs/architecture.md ("Syntax boxes produced by
  `parse`");
* every user mistake surfaces as `FaustSyntaxError` (bad syntax, bad bytes) or `FaustError`
  (unreadable file), with a position whenever one exists.
"""
from __future__ import annotations

import importlib.resources
import re
import threading
from pathlib import Path
from typing import Optional

import lark
from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from . import boxes as B
from ..errors import FaustError, FaustSyntaxError, Span

# Reserved words of Faust 2.54.9 (faust-language.md §1). The lexer already turns them into
# keyword tokens; IDENT tokens are re-checked anyway so that no grammar change can let one through.
RESERVED = frozenset("""
mem prefix int float any rdtable rwtable select2 select3 ffunction fconstant fvariable
button checkbox vslider hslider nentry vgroup hgroup tgroup vbargraph hbargraph soundfile
attach enable control acos asin atan atan2 cos sin tan exp log log10 pow sqrt abs min max fmod
remainder floor ceil rint seq par sum prod inputs outputs import component library environment
waveform route declare case with letrec where xor assertbounds lowest highest
singleprecision doubleprecision quadprecision fixedpointprecision
""".split())

_BDA = {"<:": B.Split, ":>": B.Merge, "+>": B.Merge, ":": B.Seq, ",": B.Par, "~": B.Rec}

# How terminals are named in "expecting ..." messages.
_TERMINAL_NAMES = {"IDENT": "identifier", "INT": "number", "FLOAT": "number",
                   "STRING": "string", "FSTRING": "include file", "$END": "end of file"}


# ---------------------------------------------------------------------------- spans

def _start(x) -> Optional[tuple[int, int]]:
    """(line, col) where `x` (Token, Box, list of them, or anything else) starts, if known."""
    if isinstance(x, Token):
        return (x.line, x.column)
    if isinstance(x, B.Box):
        s = x.span
        return (s.line, s.col) if s else None
    if isinstance(x, list):
        for y in x:
            p = _start(y)
            if p:
                return p
    return None


def _end(x) -> Optional[tuple[int, int]]:
    """(end_line, end_col), exclusive, of `x`, if known."""
    if isinstance(x, Token):
        return (x.end_line, x.end_column)
    if isinstance(x, B.Box):
        s = x.span
        return (s.end_line, s.end_col) if s else None
    if isinstance(x, list):
        for y in reversed(x):
            p = _end(y)
            if p:
                return p
    return None


def _unquote(tok: Token) -> str:
    """The text of a string literal without its quotes; line breaks become spaces."""
    return tok.value[1:-1].replace("\r\n", " ").replace("\n", " ")


def _tokens(c, type_: str) -> list[Token]:
    return [t for t in c if isinstance(t, Token) and t.type == type_]


def _boxes(c) -> list[B.Box]:
    return [x for x in c if isinstance(x, B.Box)]


# ---------------------------------------------------------------------------- box builder

class _Builder:
    """Lark callbacks, one per grammar rule/alias; each receives the list of children.

    `filename` is set before each parse (parses are serialised by `_LOCK`).
    """

    def __init__(self) -> None:
        self.filename = "<string>"

    # -- helpers --------------------------------------------------------------------
    def span(self, *parts) -> Optional[Span]:
        a, b = _start(list(parts)), _end(list(parts))
        if a is None or b is None:
            return None
        return Span(self.filename, a[0], a[1], b[0], b[1])

    def name(self, tok: Token) -> str:
        """An identifier token's text; reserved words are a syntax error."""
        if tok.value in RESERVED:
            raise FaustSyntaxError(f"syntax error, unexpected '{tok.value}'", self.span(tok))
        return tok.value

    def drop_or_keep(self, c):
        """Statement with precision prefixes: kept iff no prefix or `doubleprecision` among them."""
        variants = [x for x in c[:-1] if isinstance(x, str) and not isinstance(x, Token)]
        if variants and "doubleprecision" not in variants:
            return None
        return c[-1]

    # -- statements -----------------------------------------------------------------
    def start(self, c):
        stmts = tuple(x for x in c if x is not None)
        return B.Program(self.filename, stmts, span=self.span(c) or Span(self.filename, 1, 1, 1, 1))

    def stmt(self, c):
        return self.drop_or_keep(c)

    defitem = stmt

    def variant(self, c):
        return c[0].value

    def import_stmt(self, c):
        return B.Import(_unquote(c[2]), span=self.span(*c))

    def declare_stmt(self, c):
        if len(c) == 4:
            return B.Declare(self.name(c[1]), _unquote(c[2]), span=self.span(*c))
        return B.Declare(self.name(c[2]), _unquote(c[3]), self.name(c[1]), span=self.span(*c))

    def defname(self, c):
        self.name(c[0])
        return c[0]

    def def_fun(self, c):
        return B.Def(c[0].value, tuple(c[2]), c[5], span=self.span(*c))

    def def_plain(self, c):
        return B.Def(c[0].value, None, c[2], span=self.span(*c))

    def defs(self, c):
        return [x for x in c if x is not None]

    # -- block-diagram composition ----------------------------------------------------
    def bda(self, c):
        a, op, b = c
        return _BDA[op.value](a, b, span=self.span(a, b))

    def with_expr(self, c):
        return B.With(c[0], tuple(c[3]), span=self.span(*c))

    def letrec_expr(self, c):
        recdefs = tuple(x for x in c if isinstance(x, B.RecDef))
        defs = tuple(c[-2]) if isinstance(c[-2], list) else ()
        return B.Letrec(c[0], recdefs, defs, span=self.span(*c))

    def recdef(self, c):
        return B.RecDef(self.name(c[1]), c[3], span=self.span(*c))

    def arglist(self, c):
        return _boxes(c)

    # -- infix and postfix ------------------------------------------------------------
    def binop(self, c):
        a, op, b = c
        sp = self.span(a, b)
        return B.Seq(B.Par(a, b, span=sp), B.Prim(op.value, span=self.span(op)), span=sp)

    def mem(self, c):
        return B.Seq(c[0], B.Prim("mem", span=self.span(c[1])), span=self.span(*c))

    def access(self, c):
        return B.Access(c[0], self.name(c[2]), span=self.span(*c))

    def apply(self, c):
        return B.Apply(c[0], tuple(c[2]), span=self.span(*c))

    def modify(self, c):
        return B.Modify(c[0], tuple(c[2]), span=self.span(*c))

    # -- primitives -------------------------------------------------------------------
    def int_lit(self, c):
        return B.Int(B.wrap_int32(int(c[0].value)), span=self.span(*c))

    def float_lit(self, c):
        return B.Real(float(c[0].value.rstrip("f")), span=self.span(*c))

    def signed_int(self, c):
        v = B.wrap_int32(int(c[1].value))  # wraps before negation, as Faust's lexer does
        return B.Int(B.wrap_int32(-v if c[0].value == "-" else v), span=self.span(*c))

    def signed_float(self, c):
        v = float(c[1].value.rstrip("f"))
        return B.Real(-v if c[0].value == "-" else v, span=self.span(*c))

    def number(self, c):
        if len(c) == 1:
            return self.int_lit(c) if c[0].type == "INT" else self.float_lit(c)
        return self.signed_int(c) if c[1].type == "INT" else self.signed_float(c)

    def neg_ident(self, c):
        minus, tok = c
        sp = self.span(*c)
        x = B.Ident(self.name(tok), span=self.span(tok))
        zero = B.Int(0, span=self.span(minus))
        return B.Seq(B.Par(zero, x, span=sp), B.Prim("-", span=self.span(minus)), span=sp)

    def pos_ident(self, c):
        return B.Ident(self.name(c[1]), span=self.span(*c))

    def ident(self, c):
        return B.Ident(self.name(c[0]), span=self.span(*c))

    def wire(self, c):
        return B.Wire(span=self.span(*c))

    def cut(self, c):
        return B.Cut(span=self.span(*c))

    def primop(self, c):
        return c[0]

    def prim(self, c):
        return B.Prim(c[0].value, span=self.span(*c))

    def paren(self, c):
        return c[1]

    def lambda_(self, c):
        close = next(i for i, t in enumerate(c) if isinstance(t, Token) and t.type == "RPAR")
        params = tuple(self.name(t) for t in _tokens(c[:close], "IDENT"))
        return B.Lambda(params, c[-2], span=self.span(*c))

    def case(self, c):
        return B.Case(tuple(x for x in c if isinstance(x, B.Rule)), span=self.span(*c))

    def rule(self, c):
        return B.Rule(tuple(c[1]), c[4], span=self.span(*c))

    def environment(self, c):
        return B.Environment(tuple(_boxes(c)), span=self.span(*c))

    def library(self, c):
        return B.Library(_unquote(c[2]), span=self.span(*c))

    def component(self, c):
        return B.Component(_unquote(c[2]), span=self.span(*c))

    def inputs(self, c):
        return B.InputsOf(c[2], span=self.span(*c))

    def outputs(self, c):
        return B.OutputsOf(c[2], span=self.span(*c))

    def iteration(self, c):
        return B.Iter(c[0].value, self.name(c[2]), c[4], c[6], span=self.span(*c))

    def route(self, c):
        return B.RouteExpr(tuple(_boxes(c)), span=self.span(*c))

    def waveform(self, c):
        return B.WaveformExpr(tuple(_boxes(c)), span=self.span(*c))

    def ui(self, c):
        return B.UIExpr(c[0].value, _unquote(c[2]), tuple(_boxes(c)), span=self.span(*c))

    # -- foreign elements ---------------------------------------------------------------
    def ftype(self, c):
        """'int', 'float' or 'any'; `double` is accepted as 'float' (the chosen precision)."""
        v = c[0].value
        if c[0].type == "IDENT" and v != "double":
            raise FaustSyntaxError(f"syntax error, unexpected identifier '{v}', "
                                   "expecting 'int' or 'float'", self.span(c[0]))
        return "float" if v == "double" else v

    def fstring(self, c):
        t = c[0]
        return _unquote(t) if t.type == "STRING" else t.value

    def ffunction(self, c):
        # c: FFUNCTION ( rtype name (| name)* ( [types] ) , include , lib )
        open2 = next(i for i, t in enumerate(c) if i > 1 and isinstance(t, Token) and t.type == "LPAR")
        close = next(i for i, t in enumerate(c) if i > open2 and isinstance(t, Token) and t.type == "RPAR")
        names = [self.name(t) for t in _tokens(c[3:open2], "IDENT")]
        # Alternative names are single|double|quad precision: we compute in double.
        name = names[1] if len(names) > 1 else names[0]
        argtypes = tuple(x for x in c[open2 + 1:close] if isinstance(x, str) and not isinstance(x, Token))
        return B.FFun(c[2], name, argtypes, c[-4], c[-2], span=self.span(*c))

    def fconstant(self, c):
        return B.FConst(c[2], self.name(c[3]), c[5], span=self.span(*c))

    def fvariable(self, c):
        return B.FVar(c[2], self.name(c[3]), c[5], span=self.span(*c))


# ---------------------------------------------------------------------------- parser

_LOCK = threading.Lock()
_BUILDER = _Builder()
_PARSER: Optional[lark.Lark] = None


def _grammar_text() -> str:
    """The grammar from the installed package, else from the source tree."""
    try:
        return (importlib.resources.files("faustdiff.grammar") / "faust.lark").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return (Path(__file__).parents[2] / "grammar" / "faust.lark").read_text("utf-8")


def _parser() -> lark.Lark:
    """The LALR parser, built once (Lark's on-disk cache makes later processes start fast)."""
    global _PARSER
    if _PARSER is None:
        kw = dict(parser="lalr", lexer="basic", keep_all_tokens=True,
                  maybe_placeholders=True, transformer=_BUILDER)
        try:
            _PARSER = lark.Lark(_grammar_text(), cache=True, **kw)
        except OSError:  # unwritable temp dir: no cache, same parser
            _PARSER = lark.Lark(_grammar_text(), **kw)
    return _PARSER


def parse_source(text: str, filename: str = "<string>") -> B.Program:
    """Parse Faust source `text`; spans name `filename`. Raises FaustSyntaxError."""
    text = text.replace("\ufeff", " ")  # a BOM is whitespace (keeps columns)
    parser = _parser()
    with _LOCK:
        _BUILDER.filename = filename
        try:
            return parser.parse(text)
        except UnexpectedInput as e:
            raise _syntax_error(e, text, filename, parser) from None


def parse_file(path) -> B.Program:
    """Read `path` as UTF-8 and parse it. Raises FaustError / FaustSyntaxError."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise FaustError(f"cannot read file '{p}': {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _encoding_error(data, e.start, str(p)) from None
    return parse_source(text, str(p))


# ---------------------------------------------------------------------------- errors

def _encoding_error(data: bytes, pos: int, filename: str) -> FaustSyntaxError:
    """A located error for the first byte that is not valid UTF-8."""
    line_start = data.rfind(b"\n", 0, pos) + 1
    line = data.count(b"\n", 0, pos) + 1
    col = len(data[line_start:pos].decode("utf-8", errors="replace")) + 1
    return FaustSyntaxError(f"invalid UTF-8 byte 0x{data[pos]:02x}",
                            Span(filename, line, col, line, col + 1))


def _describe(tok: Token) -> str:
    """How the offending token is named in a message."""
    if tok.type == "$END":
        return "end of file"
    if tok.type == "IDENT":
        return f"identifier '{tok.value}'"
    if tok.type in ("INT", "FLOAT"):
        return f"number '{tok.value}'"
    if tok.type == "STRING":
        v = tok.value if len(tok.value) <= 40 else tok.value[:37] + '..."'
        return "string " + v.replace("\n", " ")
    return f"'{tok.value}'"


def _expected(names, parser: lark.Lark) -> str:
    """`, expecting A or B` for at most four alternatives (Bison's convention), else ''."""
    shown = set()
    for n in names:
        if n in _TERMINAL_NAMES:
            shown.add(_TERMINAL_NAMES[n])
            continue
        try:
            t = parser.get_terminal(n)
        except KeyError:
            continue
        if t.name in ("WS", "LINE_COMMENT", "BLOCK_COMMENT", "MDOC"):
            continue
        shown.add(f"'{t.pattern.value}'" if t.pattern.type == "str" else t.name.lower())
    if not shown or len(shown) > 4:
        return ""
    return ", expecting " + " or ".join(sorted(shown))


def _eof_span(text: str, filename: str) -> Span:
    line = text.count("\n") + 1
    col = len(text) - (text.rfind("\n") + 1) + 1
    return Span(filename, line, col, line, col)


# Skipped regions in lexer order; a lone `/*` or `"` opens a region that never closes.
_REGIONS = re.compile(r'"[^"]*"|//[^\n]*|/\*[\s\S]*?\*/|<mdoc>[\s\S]*?</mdoc>|/\*|"')


def _unterminated(text: str, filename: str) -> Optional[FaustSyntaxError]:
    """The error for an unterminated comment or string, if the text has one."""
    for m in _REGIONS.finditer(text):
        if m.group() in ("/*", '"'):
            what = "comment" if m.group() == "/*" else "string"
            line = text.count("\n", 0, m.start()) + 1
            col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
            return FaustSyntaxError(f"syntax error, unterminated {what}",
                                    Span(filename, line, col, line, col + len(m.group())))
    return None


def _syntax_error(e: UnexpectedInput, text: str, filename: str, parser: lark.Lark) -> FaustSyntaxError:
    """Translate a Lark error into `syntax error, unexpected X[, expecting ...]`.

    An unterminated comment or string anywhere is reported first: it is the real cause of
    whatever the parser tripped on (the lexer reads `/*` as `/` then `*`).
    """
    found = _unterminated(text, filename)
    if found is not None:
        return found
    if isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            span = _eof_span(text, filename)
        else:
            span = Span(filename, tok.line, tok.column, tok.end_line, tok.end_column)
        names = e.accepts or e.expected
        return FaustSyntaxError(f"syntax error, unexpected {_describe(tok)}{_expected(names, parser)}", span)
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        span = Span(filename, e.line, e.column, e.line, e.column + 1)
        return FaustSyntaxError(f"syntax error, unexpected character '{ch}'", span)
    line, col = getattr(e, "line", 0) or 0, getattr(e, "column", 0) or 0
    if line > 0:
        return FaustSyntaxError("syntax error", Span(filename, line, col, line, col))
    return FaustSyntaxError("syntax error, unexpected end of file", _eof_span(text, filename))
