"""Tests of the Faust parser (grammar/faust.lark + faustdiff/parse.py) and of boxshow."""
from __future__ import annotations

import glob
import os
import time

import pytest

from faustdiff.frontend import boxes as B
from faustdiff.frontend.boxes import (
    Access, Apply, Case, Component, Cut, Declare, Def, Environment, FConst, FFun, FVar, Ident,
    Import, InputsOf, Int, Iter, Lambda, Letrec, Library, Merge, Modify, OutputsOf, Par, Prim,
    Real, RecDef, Rec, RouteExpr, Rule, Seq, Split, UIExpr, WaveformExpr, Wire, With,
)
from faustdiff.frontend.boxshow import show
from faustdiff.errors import FaustError, FaustSyntaxError, Span
from faustdiff.frontend.parse import parse_file, parse_source
from faustdiff.core.primitives import PRIMITIVES


# ---------------------------------------------------------------------------- helpers

def body(expr: str) -> B.Box:
    """The body of `process = expr;`."""
    prog = parse_source(f"process = {expr};")
    assert len(prog.statements) == 1
    return prog.statements[0].body


def op(a, b, o):
    return Seq(Par(a, b), Prim(o))


def I(n):
    return Int(n)


def X(name):
    return Ident(name)


def mem(a):
    return Seq(a, Prim("mem"))


def err(src: str, filename: str = "<string>") -> str:
    with pytest.raises(FaustSyntaxError) as e:
        parse_source(src, filename)
    return str(e.value)


def depth(b) -> int:
    """Depth of a box tree, iteratively (deep trees must not need recursion to inspect)."""
    best, stack = 0, [(b, 1)]
    while stack:
        x, d = stack.pop()
        best = max(best, d)
        for f in ("a", "b", "body"):
            y = getattr(x, f, None)
            if isinstance(y, B.Box):
                stack.append((y, d + 1))
        for f in ("defs",):
            for y in getattr(x, f, ()) or ():
                stack.append((y, d + 1))
    return best


# ---------------------------------------------------------------------------- precedence

@pytest.mark.parametrize("src, expected", [
    ("2*3+4", op(op(I(2), I(3), "*"), I(4), "+")),
    ("2+3*4", op(I(2), op(I(3), I(4), "*"), "+")),
    ("2-3-4", op(op(I(2), I(3), "-"), I(4), "-")),
    ("10/2/5", op(op(I(10), I(2), "/"), I(5), "/")),
    ("a:b,c", Seq(X("a"), Par(X("b"), X("c")))),
    ("a,b:c", Seq(Par(X("a"), X("b")), X("c"))),
    ("a<:b:c", Split(X("a"), Seq(X("b"), X("c")))),
    ("a:b<:c", Split(Seq(X("a"), X("b")), X("c"))),
    ("a:b:c", Seq(X("a"), Seq(X("b"), X("c")))),
    ("a,b,c", Par(X("a"), Par(X("b"), X("c")))),
    ("a~b~c", Rec(Rec(X("a"), X("b")), X("c"))),
    ("a<:b:>c", Split(X("a"), Merge(X("b"), X("c")))),
    ("a:>b<:c", Merge(X("a"), Split(X("b"), X("c")))),
    ("a+>b", Merge(X("a"), X("b"))),
    ("a~b,c", Par(Rec(X("a"), X("b")), X("c"))),
    ("a~b:c", Seq(Rec(X("a"), X("b")), X("c"))),
    ("a~b+c", Rec(X("a"), op(X("b"), X("c"), "+"))),
    ("_@2'", op(Wire(), mem(I(2)), "@")),
    ("_^2'", op(Wire(), mem(I(2)), "^")),
    ("_'@2", op(mem(Wire()), I(2), "@")),
    ("2^3^2", op(op(I(2), I(3), "^"), I(2), "^")),
    ("a@b^c", op(op(X("a"), X("b"), "@"), X("c"), "^")),
    ("a^b@c", op(X("a"), op(X("b"), X("c"), "@"), "^")),
    ("5 & 3 == 1", op(op(I(5), I(3), "&"), I(1), "==")),
    ("a | b * c", op(X("a"), op(X("b"), X("c"), "*"), "|")),
    ("a << b + c", op(op(X("a"), X("b"), "<<"), X("c"), "+")),
    ("a xor b - c", op(op(X("a"), X("b"), "xor"), X("c"), "-")),
    ("a % b >> c", op(op(X("a"), X("b"), "%"), X("c"), ">>")),
    ("a < b != c", op(op(X("a"), X("b"), "<"), X("c"), "!=")),
    ("7 > 3 + 1", op(I(7), op(I(3), I(1), "+"), ">")),
    ("a <= b >= c", op(op(X("a"), X("b"), "<="), X("c"), ">=")),
    ("x , y * 2", Par(X("x"), op(X("y"), I(2), "*"))),
    ("(A) :> (_,_) ~ (_,_)", Merge(X("A"), Rec(Par(Wire(), Wire()), Par(Wire(), Wire())))),
    ("a + b : c", Seq(op(X("a"), X("b"), "+"), X("c"))),
    ("a : b + c", Seq(X("a"), op(X("b"), X("c"), "+"))),
    ("x''", mem(mem(X("x")))),
    ("a.b(1)", Apply(Access(X("a"), "b"), (I(1),))),
    ("f(1)(2)", Apply(Apply(X("f"), (I(1),)), (I(2),))),
    ("f(x)'", mem(Apply(X("f"), (X("x"),)))),
    ("a.b'", mem(Access(X("a"), "b"))),
    ("a + f(x).y", op(X("a"), Access(Apply(X("f"), (X("x"),)), "y"), "+")),
    ("(a,b):c", Seq(Par(X("a"), X("b")), X("c"))),
])
def test_precedence(src, expected):
    assert body(src) == expected


def test_with_is_lowest_and_postfix():
    w = With(Seq(X("a"), X("b")), (Def("x", None, I(1)),))
    assert body("a : b with { x = 1; }") == w
    # The with-expression may still be the left operand of what follows.
    assert body("a : b with { x = 1; } : c") == Seq(w, X("c"))
    assert body("a : b with { x = 1; } , c") == Par(w, X("c"))
    assert body("a : b with { x = 1; } ~ c") == Rec(w, X("c"))
    assert body("a : b with { x = 1; } <: c") == Split(w, X("c"))
    inner = With(X("a"), (Def("x", None, I(1)),))
    assert body("a with {x=1;} with {y=2;}") == With(inner, (Def("y", None, I(2)),))


def test_letrec_precedence():
    lr = Letrec(Seq(X("a"), X("b")), (RecDef("x", X("y")),))
    assert body("a : b letrec { 'x = y; }") == lr
    assert body("a : b letrec { 'x = y; } : c") == Seq(lr, X("c"))


def test_application_arguments():
    assert body("f(a:b, c~d, e<:g, h:>i)") == Apply(X("f"), (
        Seq(X("a"), X("b")), Rec(X("c"), X("d")), Split(X("e"), X("g")), Merge(X("h"), X("i"))))
    assert body("f((a,b))") == Apply(X("f"), (Par(X("a"), X("b")),))
    assert body("f(a,b)") == Apply(X("f"), (X("a"), X("b")))
    assert body("f((a,b):c)") == Apply(X("f"), (Seq(Par(X("a"), X("b")), X("c")),))
    assert body("f (1)") == Apply(X("f"), (I(1),))


def test_with_not_allowed_in_argument():
    assert err("process = f(x with {x=1;});") == \
        "<string>:1:15: error: syntax error, unexpected 'with'"


# ---------------------------------------------------------------------------- literals

@pytest.mark.parametrize("src, expected", [
    ("0", Int(0)),
    ("010", Int(10)),
    ("2147483647", Int(2147483647)),
    ("2147483648", Int(-2147483648)),
    ("4294967297", Int(1)),
    ("-2147483648", Int(-2147483648)),
    ("-5", Int(-5)),
    ("- 5", Int(-5)),
    ("+5", Int(5)),
    ("+ 5", Int(5)),
    ("1.", Real(1.0)),
    (".5", Real(0.5)),
    ("1.5", Real(1.5)),
    ("2e1", Real(20.0)),
    ("1.5e-3", Real(0.0015)),
    ("2e+2", Real(200.0)),
    ("1.e2", Real(100.0)),
    ("3f", Real(3.0)),
    ("1.f", Real(1.0)),
    (".5f", Real(0.5)),
    ("2e1f", Real(20.0)),
    ("-2.5", Real(-2.5)),
    ("+2.5", Real(2.5)),
    ("- .5", Real(-0.5)),
])
def test_number_literals(src, expected):
    b = body(src)
    assert b == expected and type(b.value) is type(expected.value)


def test_int_and_real_are_distinct():
    assert body("1") != body("1.0")


def test_sign_rules():
    assert body("-x") == op(I(0), X("x"), "-")
    assert body("+x") == X("x")
    assert body("1 - 5") == op(I(1), I(5), "-")
    assert body("1 -5") == op(I(1), I(5), "-")
    assert body("1 + -5") == op(I(1), I(-5), "+")
    assert body("1 + + 2") == op(I(1), I(2), "+")
    assert body("-(1+1)") == Apply(Prim("-"), (op(I(1), I(1), "+"),))
    assert body("-x(3)") == Apply(op(I(0), X("x"), "-"), (I(3),))
    assert err("process = -sin(1);") == "<string>:1:12: error: syntax error, unexpected 'sin'"


def test_uppercase_exponent_rejected():
    assert err("process = 1E3;") == \
        "<string>:1:12: error: syntax error, unexpected identifier 'E3'"


def test_strings_span_lines():
    assert body('button("a\nb")') == UIExpr("button", "a b", ())


# ---------------------------------------------------------------------------- spans

def test_spans():
    prog = parse_source("process = 1 +\n  foo;\nx = 2;", "t.dsp")
    d = prog.statements[0]
    assert d.span == Span("t.dsp", 1, 1, 2, 7)
    seq = d.body
    assert seq.span == Span("t.dsp", 1, 11, 2, 6)
    assert seq.a.span == Span("t.dsp", 1, 11, 2, 6)
    assert seq.b.span == Span("t.dsp", 1, 13, 1, 14)      # the `+`
    assert seq.a.a.span == Span("t.dsp", 1, 11, 1, 12)    # the `1`
    assert seq.a.b.span == Span("t.dsp", 2, 3, 2, 6)      # `foo`
    assert prog.statements[1].span == Span("t.dsp", 3, 1, 3, 7)


def test_spans_cover_keywords_and_parens():
    b = body("par(i, 3, i)")
    assert (b.span.line, b.span.col, b.span.end_col) == (1, 11, 23)
    b = body("f(1, 2)")
    assert (b.span.col, b.span.end_col) == (11, 18)
    b = body("-5")
    assert (b.span.col, b.span.end_col) == (11, 13)
    b = body("x with { y = 1; }")
    assert (b.span.col, b.span.end_col) == (11, 28)


def test_every_box_has_a_span():
    prog = parse_source(
        "import(\"a.lib\"); declare name \"n\";\n"
        "f(x, (y, 0)) = x + y : _ <: !, mem with { z = 1; };\n"
        "process = case { (0) => 1; (n) => -n; }, par(i, 2, hslider(\"s%i\", 0, 0, 1, .1))"
        " : \\(a, b).(a@b') letrec { 'w = w + 1; where q = 2; }"
        " : environment { e = 1; }[e = 2;].e : ffunction(float tanh(float), <math.h>, \"\")"
        " : route(2, 2, (1, 2), (2, 1)) : waveform{1, -2} : rdtable;")
    stack = [prog]
    while stack:
        x = stack.pop()
        assert x.span is not None, x
        for v in vars(x).values():
            if isinstance(v, B.Box):
                stack.append(v)
            elif isinstance(v, tuple):
                stack.extend(y for y in v if isinstance(y, B.Box))


# ---------------------------------------------------------------------------- constructs

def test_definitions():
    prog = parse_source("f(x, 0, (a, b)) = x; g = 1; h(y) = y with { z = 2; };")
    assert prog.statements == (
        Def("f", (X("x"), I(0), Par(X("a"), X("b"))), X("x")),
        Def("g", None, I(1)),
        Def("h", (X("y"),), With(X("y"), (Def("z", None, I(2)),))),
    )
    # Several definitions of one name are NOT grouped by the parser.
    prog = parse_source("f(0) = 1; f(n) = n;")
    assert [s.name for s in prog.statements] == ["f", "f"]


def test_statements_import_declare():
    prog = parse_source('import("stdfaust.lib"); declare name "My \'prog\'"; '
                        'declare f author "Me"; process = _;')
    assert prog.statements[:3] == (
        Import("stdfaust.lib"), Declare("name", "My 'prog'"), Declare("author", "Me", "f"))
    assert prog.filename == "<string>"


def test_lambda_case():
    assert body("\\(x,y).(x+y)") == Lambda(("x", "y"), op(X("x"), X("y"), "+"))
    assert body("\\(x).(x)(1)") == Apply(Lambda(("x",), X("x")), (I(1),))
    assert body("case { (0) => 1; (x, (a,b)) => x; }") == Case((
        Rule((I(0),), I(1)), Rule((X("x"), Par(X("a"), X("b"))), X("x"))))


def test_environment_access_modify():
    b = body('environment { import("a.lib"); declare k "v"; a = 1; b = a * 10; }[a = 2;].b')
    env = Environment((Import("a.lib"), Declare("k", "v"), Def("a", None, I(1)),
                       Def("b", None, op(X("a"), I(10), "*"))))
    assert b == Access(Modify(env, (Def("a", None, I(2)),)), "b")
    assert body('library("maths.lib").PI') == Access(Library("maths.lib"), "PI")
    assert body('component("x.dsp")') == Component("x.dsp")
    assert body("x[a = 1; f(y) = y;]") == Modify(X("x"), (Def("a", None, I(1)),
                                                           Def("f", (X("y"),), X("y"))))


def test_with_letrec():
    assert body("x with {}") == With(X("x"), ())
    assert body("x letrec { 'x = x + 1; 'y = x; }") == Letrec(
        X("x"), (RecDef("x", op(X("x"), I(1), "+")), RecDef("y", X("x"))), ())
    assert body("x letrec { 'x = x + y; where y = 10; }") == Letrec(
        X("x"), (RecDef("x", op(X("x"), X("y"), "+")),), (Def("y", None, I(10)),))


@pytest.mark.parametrize("kind", ["par", "seq", "sum", "prod"])
def test_iterations(kind):
    assert body(f"{kind}(i, 3, i, _)") == Iter(kind, "i", I(3), Par(X("i"), Wire()))
    assert body(f"{kind}(i, n+1, i)") == Iter(kind, "i", op(X("n"), I(1), "+"), X("i"))


def test_route_waveform():
    assert body("route(2, 2, (1,2), (2,1))") == RouteExpr(
        (I(2), I(2), Par(Par(I(1), I(2)), Par(I(2), I(1)))))
    assert body("route(2, 2, 1, 2, 2, 1)") == RouteExpr(
        (I(2), I(2), Par(I(1), Par(I(2), Par(I(2), I(1))))))
    assert body("route(1, 1)") == RouteExpr((I(1), I(1)))
    assert body("waveform{1, 2.5, -3}") == WaveformExpr((I(1), Real(2.5), I(-3)))
    assert err("process = waveform{1,2+1};") == \
        "<string>:1:23: error: syntax error, unexpected '+', expecting ',' or '}'"


def test_ui_elements():
    assert body('button("play")') == UIExpr("button", "play", ())
    assert body('checkbox("c[style:knob]")') == UIExpr("checkbox", "c[style:knob]", ())
    for k in ("hslider", "vslider", "nentry"):
        assert body(f'{k}("f %i [unit:Hz]", 440, 20, 2e4, 1)') == UIExpr(
            k, "f %i [unit:Hz]", (I(440), I(20), Real(2e4), I(1)))
    for k in ("hbargraph", "vbargraph"):
        assert body(f'{k}("m", -1, 1)') == UIExpr(k, "m", (I(-1), I(1)))
    for k in ("hgroup", "vgroup", "tgroup"):
        assert body(f'{k}("g", a, b)') == UIExpr(k, "g", (Par(X("a"), X("b")),))
    assert body('soundfile("s", 2)') == UIExpr("soundfile", "s", (I(2),))
    assert body('hslider("x", a+1, 0, 1, 0.1)').args[0] == op(X("a"), I(1), "+")


def test_inputs_outputs():
    assert body("inputs(a, b)") == InputsOf(Par(X("a"), X("b")))
    assert body("outputs(+)") == OutputsOf(Prim("+"))


@pytest.mark.parametrize("src, expected", [
    ('ffunction(float tanh(float), <math.h>, "")', FFun("float", "tanh", ("float",), "<math.h>", "")),
    ('ffunction(float tanhf|tanh|tanhl (float), <math.h>,"")',
     FFun("float", "tanh", ("float",), "<math.h>", "")),
    ('ffunction(float tanhf|tanh(float), <math.h>, "")',
     FFun("float", "tanh", ("float",), "<math.h>", "")),
    ('ffunction(int isnan (float),<math.h>,"")', FFun("int", "isnan", ("float",), "<math.h>", "")),
    ('ffunction(float jn(int, float), <math.h>, "")',
     FFun("float", "jn", ("int", "float"), "<math.h>", "")),
    ('ffunction(float foo(), "foo.h", "libfoo")', FFun("float", "foo", (), "foo.h", "libfoo")),
    ('ffunction(double hypot(double, double), <math.h>, "")',
     FFun("float", "hypot", ("float", "float"), "<math.h>", "")),
    ('ffunction(float f(any), <math.h>, "")', FFun("float", "f", ("any",), "<math.h>", "")),
    ("fconstant(int fSamplingFreq, <math.h>)", FConst("int", "fSamplingFreq", "<math.h>")),
    ("fvariable(int count, <math.h>)", FVar("int", "count", "<math.h>")),
    ('fconstant(float PI, "m.h")', FConst("float", "PI", "m.h")),
])
def test_foreign(src, expected):
    assert body(src) == expected


def test_foreign_bad_type():
    assert err('process = ffunction(foo tanh(float), <math.h>, "");') == (
        "<string>:1:21: error: syntax error, unexpected identifier 'foo', "
        "expecting 'int' or 'float'")


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_every_primitive_is_a_box(name):
    assert body(name) == Prim(name)
    assert body(f"{name}(1)") == Apply(Prim(name), (I(1),))
    assert body(f"_ : {name}") == Seq(Wire(), Prim(name))


def test_wire_cut_and_infix_boxes():
    assert body("_,!") == Par(Wire(), Cut())
    assert body("+") == Prim("+")
    assert body("*(2)") == Apply(Prim("*"), (I(2),))
    assert body("@(3)") == Apply(Prim("@"), (I(3),))
    assert body("<(3)") == Apply(Prim("<"), (I(3),))
    assert body("^(2)") == Apply(Prim("^"), (I(2),))
    assert body("xor(1)") == Apply(Prim("xor"), (I(1),))
    assert body("(+, -)") == Par(Prim("+"), Prim("-"))
    assert body("- , +") == Par(Prim("-"), Prim("+"))
    assert body("rdtable(10, _)") == Apply(Prim("rdtable"), (I(10), Wire()))


def test_identifiers():
    assert body("__a + _a_ + a::b + x1") == op(op(op(X("__a"), X("_a_"), "+"), X("a::b"), "+"),
                                               X("x1"), "+")
    prog = parse_source("a::b = 1; __x(y) = y;")
    assert [s.name for s in prog.statements] == ["a::b", "__x"]


def test_round_is_a_primitive_but_definable():
    """`round` is reserved in new Faust only; the 2.54.9 libraries define it locally."""
    assert body("round") == Prim("round")
    prog = parse_source("f = g with { round(x) = floor(x + 0.5); };")
    assert prog.statements[0].body.defs[0].name == "round"


@pytest.mark.parametrize("src, where", [
    ("sin = 1;", "1:1"),
    ("process = \\(sin).(1);", "1:13"),
    ("process = x.with;", "1:13"),
    ("process = par(seq, 3, 1);", "1:15"),
    ("declare library \"x\";", "1:9"),
    ("process = x letrec { 'mem = 1; };", "1:23"),
])
def test_reserved_words_are_not_identifiers(src, where):
    msg = err(src)
    assert msg.startswith(f"<string>:{where}: error: syntax error, unexpected '")


# ---------------------------------------------------------------------------- precision prefixes

def test_precision_prefixes():
    prog = parse_source("singleprecision a = 1; doubleprecision a = 2; quadprecision a = 3; "
                        "fixedpointprecision a = 4; singleprecision doubleprecision b = 5; "
                        "singleprecision quadprecision c = 6; d = 7; "
                        "singleprecision import(\"s.lib\"); doubleprecision import(\"d.lib\");")
    assert prog.statements == (Def("a", None, I(2)), Def("b", None, I(5)), Def("d", None, I(7)),
                               Import("d.lib"))


def test_precision_prefixes_in_blocks():
    assert body("x with { singleprecision y = 1; doubleprecision y = 2; }") == \
        With(X("x"), (Def("y", None, I(2)),))
    assert body("environment { singleprecision y = 1; y = 3; }") == \
        Environment((Def("y", None, I(3)),))


# ---------------------------------------------------------------------------- lexical

def test_comments():
    prog = parse_source("// line\nprocess /* block\n over lines */ = 1 // end\n + /**/ 2;")
    assert prog.statements == (Def("process", None, op(I(1), I(2), "+")),)


def test_mdoc_blocks_skipped():
    src = ('<mdoc>\n# Title\n<equation>process</equation> a < b\n</mdoc>\n'
           'process = 1 <mdoc>x</mdoc> + 2;\n<mdoc><notice/></mdoc>\nx = 3;')
    prog = parse_source(src)
    assert prog.statements == (Def("process", None, op(I(1), I(2), "+")), Def("x", None, I(3)))
    assert prog.statements[1].span.line == 7


def test_include_token_is_lexed_like_faust():
    # Faust's lexer reads `<letters[.letters]>` as an include file everywhere.
    assert err("process = a<b>c;") == "<string>:1:12: error: syntax error, unexpected '<b>'"
    assert body("a < b > c") == op(op(X("a"), X("b"), "<"), X("c"), ">")
    assert body("a<b1>c") == op(op(X("a"), X("b1"), "<"), X("c"), ">")
    assert body("1<a/b>3") == op(op(I(1), op(X("a"), X("b"), "/"), "<"), I(3), ">")


def test_longest_match_tokens():
    # `<:` is one token even where only `<` would fit (Faust rejects this program too).
    assert err("process = _ ^ <: _;") == "<string>:1:15: error: syntax error, unexpected '<:'"


def test_bom_is_whitespace():
    assert parse_source("\ufeffprocess = 1;").statements[0].span.col == 2


# ---------------------------------------------------------------------------- errors

@pytest.mark.parametrize("src, msg", [
    ("process = 1 +;", "<string>:1:14: error: syntax error, unexpected ';'"),
    ("process = (1,2", "<string>:1:15: error: syntax error, unexpected end of file"),
    ('import("x")', "<string>:1:12: error: syntax error, unexpected end of file, expecting ';'"),
    ("declare x 3;",
     "<string>:1:11: error: syntax error, unexpected number '3', expecting identifier or string"),
    ("process 1;", "<string>:1:9: error: syntax error, unexpected number '1', expecting '(' or '='"),
    ("process = \\(x y).(x);",
     "<string>:1:15: error: syntax error, unexpected identifier 'y', expecting ')' or ','"),
    ('process = hslider("a", 1);', "<string>:1:25: error: syntax error, unexpected ')', expecting ','"),
    ("process = 1;\n}", "<string>:2:1: error: syntax error, unexpected '}'"),
    ("x = 1;\nprocess = $;", "<string>:2:11: error: syntax error, unexpected character '$'"),
    ('process = "abc;', "<string>:1:11: error: syntax error, unterminated string"),
    ('process = "abc";', '<string>:1:11: error: syntax error, unexpected string "abc"'),
    ("process = with;", "<string>:1:11: error: syntax error, unexpected 'with'"),
    ("process = 1", "<string>:1:12: error: syntax error, unexpected end of file"),
    ("process = 1 : /* never closed\n;", "<string>:1:15: error: syntax error, unterminated comment"),
    ('process = 1; // "\nx = 2 /* " */ : $;',
     "<string>:2:17: error: syntax error, unexpected character '$'"),
    ("process = 1;\n\n", "")
])
def test_syntax_error_messages(src, msg):
    if not msg:
        parse_source(src)
        return
    assert err(src) == msg


def test_error_span_and_filename():
    with pytest.raises(FaustSyntaxError) as e:
        parse_source("a = 1;\nb = 2 2;", "lib/x.lib")
    assert e.value.span == Span("lib/x.lib", 2, 7, 2, 8)
    assert str(e.value) == "lib/x.lib:2:7: error: syntax error, unexpected number '2'"


def test_parse_file(tmp_path):
    p = tmp_path / "ok.dsp"
    p.write_text("process = 1;\n", encoding="utf-8")
    prog = parse_file(p)
    assert prog.filename == str(p)
    assert prog.statements[0].span.file == str(p)


def test_parse_file_bad_utf8(tmp_path):
    p = tmp_path / "bad.dsp"
    p.write_bytes("process = 1;\n// café \xff\n".encode("utf-8").replace(b"\xc3\xbf", b"\xff"))
    with pytest.raises(FaustSyntaxError) as e:
        parse_file(p)
    assert str(e.value) == f"{p}:2:9: error: invalid UTF-8 byte 0xff"


def test_parse_file_unreadable(tmp_path):
    p = tmp_path / "missing.dsp"
    with pytest.raises(FaustError) as e:
        parse_file(p)
    assert str(e.value) == f"error: cannot read file '{p}': No such file or directory"
    with pytest.raises(FaustError) as e:
        parse_file(tmp_path)
    assert str(e.value).startswith(f"error: cannot read file '{tmp_path}': ")


# ---------------------------------------------------------------------------- deep nesting

def test_long_sum_no_recursion_error():
    b = body("+".join(["1"] * 5000))
    assert depth(b) == 2 * 4999 + 1
    s = show(b)
    assert len(s) <= 200 and "..." in s and s.endswith("1 : +")


def test_long_right_nested_and_parens():
    b = body(" : ".join(["_"] * 5000))
    assert depth(b) == 5000
    b = body("(" * 2000 + "1" + ")" * 2000)
    assert b == Int(1)


def test_nested_with():
    n = 100
    src = "process = x0;\n" + "".join(f"x{i} = x{i + 1} with {{\n" for i in range(n)) \
        + f"x{n} = 1;\n" + "};\n" * n
    prog = parse_source(src)
    assert len(prog.statements) == 2
    b = prog.statements[1]
    for _ in range(n - 1):
        b = b.body.defs[0]
    assert b.body.defs[0] == Def(f"x{n}", None, I(1))


def test_nested_with_expressions():
    src = "process = " + "(" * 100 + "x" + " with { x = 1; })" * 100 + ";"
    b = parse_source(src).statements[0].body
    assert depth(b) == 102  # 100 With + innermost Def + its Int


# ---------------------------------------------------------------------------- libraries

LIBS = sorted(glob.glob("/usr/share/faust/*.lib"))


@pytest.mark.skipif(not LIBS, reason="no Faust libraries installed")
@pytest.mark.parametrize("path", LIBS, ids=os.path.basename)
def test_system_library_parses(path):
    prog = parse_file(path)
    assert prog.statements


@pytest.mark.skipif(not os.path.exists("/usr/share/faust/filters.lib"), reason="no filters.lib")
def test_parse_speed():
    parse_file("/usr/share/faust/filters.lib")  # warm up
    t = time.perf_counter()
    parse_file("/usr/share/faust/filters.lib")
    assert time.perf_counter() - t < 1.0


# ---------------------------------------------------------------------------- boxshow

def test_show_examples():
    assert show(Seq(Par(Int(1), Int(2)), Prim("+"))) == "1,2 : +"
    assert show(body("(a:b):c")) == "(a : b) : c"
    assert show(body("a~(b~c)")) == "a ~ (b ~ c)"
    assert show(body("f((a,b), c:d)")) == "f((a,b), c : d)"
    assert show(body("-5.5, 3")) == "-5.5,3"
    assert show(B.UI("hslider", "f", 1.0, 0.0, 2.0, 0.5)) == 'hslider("f", 1, 0, 2, 0.5)'
    assert show(B.UI("button", "b")) == 'button("b")'
    assert show(B.Bargraph("vbargraph", "m", -1.0, 1.0)) == 'vbargraph("m", -1, 1)'
    assert show(B.Group("hgroup", "g", Par(Wire(), Wire()))) == 'hgroup("g", _,_)'
    assert show(B.Route(2, 2, ((1, 2), (2, 1)))) == "route(2, 2, (1,2), (2,1))"
    assert show(B.Waveform((Int(1), Real(2.5)))) == "waveform{1, 2.5}"
    sl = B.Slot(3)
    assert show(B.Symbolic(sl, Seq(Par(sl, Wire()), Prim("+")))) == "\\(slot3).(slot3,_ : +)"
    assert show(FFun("float", "tanh", ("float",), "<math.h>", "")) == \
        'ffunction(float tanh(float), <math.h>, "")'


@pytest.mark.parametrize("src", [
    "1,2:+", "(a:b):c", "a:b:c", "(a,b),c", "a~b~c", "a~(b~c)", "a <: b :> c", "(a<:b):>c",
    "x with {x=1; f(y)=y;}", "f(1,(2,3)):g.h", "f((a,b):c, a:b, a~b, (a<:b,c))",
    "\\(x,y).(x+y)", "par(i,3,i)", 'hslider("a",0,0,1,0.1)', "case{(0)=>1;(x)=>x;}",
    "x letrec {'x = x+1; where y=1;}", "(x with{x=1;}) : _", "environment{x=1;}[x=2;].x",
    "-x", "-5.5 , 3", "route(2,2,(1,2),(2,1))", "waveform{1,-2,3.5}", 'hgroup("g", a, b)',
    "(a,b)~(c,d)", "a~b,c", "f(x)(y)", "(a:b)(c)", "(-5).x", 'library("a.lib").x',
    "inputs(a,b)", "fconstant(int fSamplingFreq, <math.h>)", "sum(i, 4, i) : mem",
    "(5).x", "(2.5)(1)", "f(-1, -2.5)", "a,-5 : -",
])
def test_show_roundtrip(src):
    b = body(src)
    assert body(show(b)) == b


def test_show_truncates_and_handles_depth():
    b = body(",".join(["foo"] * 200))
    s = show(b)
    assert len(s) <= 200 and s.endswith("...")
    deep = Wire()
    for _ in range(20000):
        deep = Rec(deep, Wire())
    assert show(deep).startswith("... ~ ") and len(show(deep)) <= 200
    assert len(show(parse_file(LIBS[0]))) <= 200 if LIBS else True


# ---------------------------------------------------------------------------- properties

from hypothesis import given, settings, strategies as st  # noqa: E402

_ATOMS = st.one_of(
    st.sampled_from([X("a"), X("b"), X("f"), Wire(), Cut(), Prim("+"), Prim("-"), Prim("mem"),
                     Prim("sin"), Prim("@"), Real(2.5)]),
    st.integers(-9, 99).map(Int),
)
_INFIX = ["+", "-", "*", "/", "%", "^", "@", "&", "|", "xor", "<<", ">>", "<", "<=", ">", ">=",
          "==", "!="]


def _compound(children):
    two = st.tuples(children, children)
    return st.one_of(
        two.map(lambda t: Seq(*t)), two.map(lambda t: Par(*t)), two.map(lambda t: Split(*t)),
        two.map(lambda t: Merge(*t)), two.map(lambda t: Rec(*t)),
        st.tuples(children, children, st.sampled_from(_INFIX)).map(lambda t: op(*t)),
        children.map(mem),
        st.tuples(children, st.lists(children, min_size=1, max_size=3)).map(
            lambda t: Apply(t[0], tuple(t[1]))),
        children.map(lambda c: With(c, (Def("x", None, I(1)),))),
        children.map(lambda c: Access(c, "y")),
    )


_BOXES = st.recursive(_ATOMS, _compound, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_BOXES)
def test_show_parse_roundtrip_property(b):
    """show() puts parentheses exactly where the grammar needs them: it re-parses to `b`."""
    text = show(b)
    if len(text) < 190:  # truncated renderings are not meant to parse
        assert body(text) == b, text


EXAMPLES = sorted(glob.glob("/usr/share/faust/examples/**/*.dsp", recursive=True))


@pytest.mark.skipif(not EXAMPLES, reason="no Faust examples installed")
def test_system_examples_parse():
    for path in EXAMPLES:
        assert parse_file(path).statements, path


def test_empty_and_crlf_sources():
    assert parse_source("").statements == ()
    assert parse_source("// only a comment\n").statements == ()
    prog = parse_source("a = 1;\r\n\tb = 2;\r\n", "w.dsp")
    assert prog.statements[1].span == Span("w.dsp", 2, 2, 2, 8)
    with pytest.raises(FaustSyntaxError) as e:
        parse_source("a = 1;\r\nb = ;\r\n", "w.dsp")
    assert str(e.value) == "w.dsp:2:5: error: syntax error, unexpected ';'"
