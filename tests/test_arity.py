"""Box arities and Faust's composition error messages (texts checked against faust 2.54.9)."""
import pytest

from faustdiff.frontend import boxes as B
from faustdiff.frontend import arity as arity_module
from faustdiff.frontend.arity import arity
from faustdiff.errors import FaustArityError, Span

W, C = B.Wire(), B.Cut()


def P(*bs):
    """Right-nested parallel composition, as Faust's `,` builds it."""
    out = bs[-1]
    for b in reversed(bs[:-1]):
        out = B.Par(b, out)
    return out


def I(v):
    return B.Int(v)


@pytest.fixture(autouse=True)
def plain_show(monkeypatch):
    """Render boxes with a tiny local printer so the messages do not depend on boxshow."""
    def show(b):
        if isinstance(b, B.Int):
            return str(b.value)
        if isinstance(b, B.Wire):
            return "_"
        if isinstance(b, B.Cut):
            return "!"
        if isinstance(b, B.Prim):
            return b.name
        if isinstance(b, B.Par):
            return f"{show(b.a)},{show(b.b)}"
        raise NotImplementedError
    monkeypatch.setattr(arity_module, "show", show)


@pytest.mark.parametrize("box, expected", [
    (I(1), (0, 1)), (B.Real(1.5), (0, 1)), (W, (1, 1)), (C, (1, 0)),
    (B.Prim("+"), (2, 1)), (B.Prim("mem"), (1, 1)), (B.Prim("select2"), (3, 1)),
    (B.Prim("select3"), (4, 1)), (B.Prim("rdtable"), (3, 1)), (B.Prim("rwtable"), (5, 1)),
    (B.Route(3, 2, ((1, 1),)), (3, 2)), (B.Waveform((I(1), I(2))), (0, 2)),
    (B.UI("hslider", "x", 0, 0, 1, 0.1), (0, 1)), (B.Bargraph("hbargraph", "b", 0, 1), (1, 1)),
    (B.Group("hgroup", "g", P(W, W)), (2, 2)), (B.Slot(1), (0, 1)),
    (B.Symbolic(B.Slot(1), B.Seq(P(B.Slot(1), W), B.Prim("+"))), (2, 1)),
    (B.FFun("float", "tanh", ("float",)), (1, 1)),
    (B.FFun("float", "hypot", ("float", "float")), (2, 1)),
    (B.FConst("int", "fSamplingFreq"), (0, 1)), (B.FVar("int", "count"), (0, 1)),
    (P(I(1), W, B.Prim("+")), (3, 3)),
    (B.Seq(P(W, W), B.Prim("+")), (2, 1)),
    (B.Split(W, P(W, W, W, W)), (1, 4)),
    (B.Merge(P(W, W, W, W), B.Prim("+")), (4, 1)),
    (B.Rec(B.Prim("+"), W), (1, 1)),
    (B.Rec(P(B.Prim("+"), B.Prim("*")), P(W, W)), (2, 2)),
    (B.Rec(B.Seq(B.Prim("*"), W), C), (2, 1)),
])
def test_arity(box, expected):
    assert arity(box) == expected


def test_deep_chains_do_not_recurse():
    seq = W
    for _ in range(5000):
        seq = B.Seq(W, seq)
    assert arity(seq) == (1, 1)
    par = W
    for _ in range(5000):
        par = B.Par(W, par)
    assert arity(par) == (5001, 5001)
    s = I(0)
    for i in range(5000):
        s = B.Seq(P(s, I(i)), B.Prim("+"))
    assert arity(s) == (0, 1)


def err(box):
    with pytest.raises(FaustArityError) as e:
        arity(box)
    return e.value


def test_seq_error_whole_text_and_span():
    span = Span("e.dsp", 1, 11)
    e = err(B.Seq(P(I(1), I(2), I(3)), B.Prim("+"), span=span))
    assert e.message == (
        "ERROR in sequential composition A:B\n"
        "The number of outputs [3] of A must be equal to the number of inputs [2] of B\n\n"
        "Here  A = 1,2,3;\nhas 3 outputs\n\n"
        "while B = +;\nhas 2 inputs")
    assert e.span == span


def test_seq_error_singular():
    assert err(B.Seq(I(0), B.Prim("+"))).message == (
        "ERROR in sequential composition A:B\n"
        "The number of outputs [1] of A must be equal to the number of inputs [2] of B\n\n"
        "Here  A = 0;\nhas 1 output\n\n"
        "while B = +;\nhas 2 inputs")


def test_split_errors():
    assert err(B.Split(P(I(1), I(2), I(3)), P(W, W))).message == (
        "ERROR in split composition A<:B\n"
        "The number of outputs [3] of A must be a divisor of the number of inputs [2] of B\n\n"
        "Here  A = 1,2,3;\nhas 3 outputs\n\n"
        "while B = _,_;\nhas 2 inputs")
    assert err(B.Split(C, W)).message == (
        "ERROR in split composition A<:B\n"
        "The number of outputs [0] of A must be a divisor of the number of inputs [1] of B\n\n"
        "Here  A = !;\nhas 0 outputs\n\n"
        "while B = _;\nhas 1 input")
    assert "inputs [0] of B" in err(B.Split(I(1), I(2))).message


def test_merge_errors():
    assert err(B.Merge(P(I(1), I(2), I(3)), P(W, W))).message == (
        "ERROR in merge composition A:>B\n"
        "The number of outputs [3] of A must be a multiple of the number of inputs [2] of B\n\n"
        "Here  A = 1,2,3;\nhas 3 outputs\n\n"
        "while B = _,_;\nhas 2 inputs")
    assert err(B.Merge(I(1), I(2))).message.startswith("ERROR in merge composition A:>B\n"
        "The number of outputs [1] of A must be a multiple of the number of inputs [0] of B")


def test_rec_errors():
    assert err(B.Rec(W, P(W, W, W))).message == (
        "ERROR in recursive composition A~B\n"
        "The number of outputs [1] of A must be at least the number of inputs [3] of B. "
        "The number of inputs [1] of A must be at least the number of outputs [3] of B. \n\n"
        "Here  A = _; has 1 input and 1 output,\n"
        "while B = _,_,_; has 3 inputs and 3 outputs.")
    assert err(B.Rec(B.Prim("+"), P(W, W))).message == (
        "ERROR in recursive composition A~B\n"
        "The number of outputs [1] of A must be at least the number of inputs [2] of B. \n\n"
        "Here  A = +; has 2 inputs and 1 output,\n"
        "while B = _,_; has 2 inputs and 2 outputs.")
    assert err(B.Rec(W, P(I(1), I(2)))).message == (
        "ERROR in recursive composition A~B\n"
        "The number of inputs [1] of A must be at least the number of outputs [2] of B. \n\n"
        "Here  A = _; has 1 input and 1 output,\n"
        "while B = 1,2; has 0 inputs and 2 outputs.")


def test_inner_error_found_first():
    inner = B.Seq(I(0), B.Prim("+"))
    e = err(B.Seq(P(inner, I(1)), B.Prim("+")))
    assert e.message.startswith("ERROR in sequential composition A:B\nThe number of outputs [1]")
    assert "while B = +;" in e.message


def test_str_with_span():
    e = err(B.Seq(I(0), B.Prim("+"), span=Span("x.dsp", 3, 5)))
    assert str(e).startswith("x.dsp:3:5: error: ERROR in sequential composition A:B\n")
