"""The signal IR: hash-consing, types, folding, intervals, recursion groups, propagation."""
import math

import numpy as np
import pytest

from faustdiff.frontend import boxes as B
from faustdiff.signals import ir as S
from faustdiff.errors import FaustError
from faustdiff.backend.program import Program
from faustdiff.signals.propagate import Context, propagate

W, C = B.Wire(), B.Cut()


def par(*bs):
    out = bs[-1]
    for b in reversed(bs[:-1]):
        out = B.Par(b, out)
    return out


def op(name, k):
    return B.Seq(par(W, B.Int(k) if isinstance(k, int) else B.Real(k)), B.Prim(name))


# ---------------------------------------------------------------- hash-consing

def test_equal_signals_are_the_same_object():
    x, y = S.input_(0), S.input_(1)
    assert S.input_(0) is x
    assert S.prim("+", x, y) is S.prim("+", x, y)
    assert S.prim("+", x, y) is not S.prim("+", y, x)
    assert S.const(1) is S.const(1)
    assert S.const(1) is not S.const(1.0)          # int and real constants differ
    assert S.const(0.0) is not S.const(-0.0)       # by bit pattern
    assert S.const(math.nan) is S.const(math.nan)
    assert S.mem(x) is S.delay(x, S.const(1))


def test_propagating_twice_shares_nodes():
    box = B.Rec(op("+", 1), W)
    a = propagate(box, [])
    b = propagate(B.Seq(box, W), [])
    assert a[0].op == "proj" and b[0].op == "proj"
    x = S.input_(0)
    assert propagate(op("*", 3), [x])[0] is propagate(op("*", 3), [x])[0]


# ---------------------------------------------------------------- types

@pytest.mark.parametrize("name, types, expected", [
    ("+", ("int", "int"), "int"), ("+", ("int", "real"), "real"),
    ("/", ("int", "int"), "real"), ("<", ("real", "real"), "int"),
    ("&", ("real", "real"), "int"), ("%", ("int", "int"), "int"),
    ("sin", ("int",), "real"), ("abs", ("int",), "int"), ("min", ("int", "real"), "real"),
    ("select2", ("real", "int", "int"), "int"), ("select2", ("int", "int", "real"), "real"),
])
def test_type_rules(name, types, expected):
    from faustdiff.core.primitives import result_type
    assert result_type(name, types) == expected


def test_node_types():
    x = S.input_(0)
    i = S.prim("int", x)
    assert x.type == "real" and i.type == "int"
    assert S.prim("+", i, S.const(1)).type == "int"
    assert S.prim("/", i, i).type == "real"
    assert S.mem(i).type == "int"
    assert S.bargraph("hbargraph", "b", (), 0, 1, i).type == "real"   # a FAUSTFLOAT zone
    assert S.ui("hslider", "g", (), 0.5, 0, 1, 0.1).type == "real"
    assert S.rwtable(S.const(4), S.const(1), S.const(0), x, S.const(0)).type == "int"


def test_recursion_types_by_fixpoint():
    counter = propagate(B.Rec(op("+", 1), W), [])[0]
    assert counter.type == "int"
    onepole = propagate(B.Rec(B.Seq(par(W, W), B.Prim("+")), op("*", 0.5)), [S.input_(0)])[0]
    assert onepole.type == "real"
    drift = propagate(B.Rec(W, op("+", 0.5)), [])[0]   # int guess widened to real
    assert drift.type == "real"


# ---------------------------------------------------------------- folding, simplification

def test_constant_folding():
    assert S.prim("+", S.const(2), S.const(3)) is S.const(5)
    assert S.prim("*", S.const(2**30), S.const(4)) is S.const(0)         # int32 wrap
    assert S.prim("/", S.const(7), S.const(2)) is S.const(3.5)
    assert S.prim("<", S.const(1), S.const(2.5)) is S.const(1)
    assert S.prim("int", S.const(-2.7)) is S.const(-2)
    assert S.prim("sin", S.const(0.0)) is S.const(0.0)
    assert S.prim("/", S.const(1), S.const(0)).op == "prim"              # IEEE at run time


def test_simplifications():
    x, i = S.input_(0), S.prim("int", S.input_(0))
    assert S.prim("+", x, S.const(0)) is x
    assert S.prim("*", S.const(1), x) is x
    assert S.prim("*", x, S.const(0)) is S.const(0.0)   # Faust drops x (even NaN) in x*0
    assert S.prim("*", i, S.const(0)) is S.const(0)
    assert S.prim("+", i, S.const(0.0)) is S.prim("float", i)   # type preserved
    assert S.delay(x, S.const(0)) is x
    d = S.prim("/", x, S.const(3))
    assert d.name == "*" and d.args[0].value == 1 / 3   # coefficient first
    assert S.prim("^", x, S.const(2)).name == "*"
    assert S.prim("^", x, S.const(0.5)).name == "sqrt"
    assert S.prim("^", x, S.const(0)) is S.const(1.0)
    assert S.prim("^", x, S.const(9)).name == "^"
    g = S.ui("hslider", "g", (), 1, 1, 2, 0.1)
    hoisted = S.prim("/", x, g)   # x / slider is x * (1/slider), 1/slider control-rate
    assert hoisted.name == "*" and hoisted.args[0].name == "/" and hoisted.args[0].rate == S.K_BLOCK


def test_a_delay_of_a_constant_delay_is_one_delay():
    """Faust's normal form: (x@c)@d is x@(c+d) for a constant c (tests/conformance/local/
    nested_delays holds the compiler's render), not when the inner amount varies."""
    x = S.input_(0)
    d = S.prim("int", S.ui("hslider", "d", (), 3, 0, 40, 1))
    merged = S.delay(S.delay(x, S.const(7)), d)
    assert merged.args[0] is x and merged is S.delay(x, S.prim("+", S.const(7), d))
    assert S.delay(S.delay(x, S.const(3)), S.const(2)) is S.delay(x, S.const(5))
    inner = S.delay(x, d)
    assert S.delay(inner, S.const(4)).args[0] is inner


def test_noise_division_is_multiplication_by_reciprocal():
    # Faust emits random/2147483647.0 as random * 4.656612875245797e-10; bitwise the two
    # differ on 441 of the first 100000 samples (checked against faust-ref).
    rnd = B.Rec(op("+", 12345), op("*", 1103515245))
    noise = Program.from_box(B.Seq(par(rnd, B.Real(2147483647.0)), B.Prim("/")))
    ints = Program.from_box(rnd).compute(n=20000)[0]
    y = noise.compute(n=20000)[0]
    assert np.array_equal(y, ints * (1.0 / 2147483647.0))
    assert not np.array_equal(y, ints / 2147483647.0)
    assert y[0] == 5.748588594490936e-06


# ---------------------------------------------------------------- intervals and rates

def test_intervals():
    x = S.input_(0)
    assert S.ui("hslider", "d", (), 2, 0, 5, 1).interval == (0, 5)
    assert S.prim("sin", x).interval == (-1, 1)
    k = S.prim("%", propagate(B.Rec(op("+", 1), W), [])[0], S.const(7))
    assert S.max_delay(k) == 7
    assert S.max_delay(S.const(3)) == 3
    assert S.max_delay(S.prim("int", x)) == 1   # inputs are [-1, 1] as in Faust
    # Faust's & rule (its delay buffers: fVec0[16] for `& 15`, fVec0[8] for [0, 20] & 5)
    ten = S.prim("int", S.prim("*", S.prim("abs", x), S.const(10)))
    assert S.prim("&", ten, S.const(15)).interval == (0, 15)
    twenty = S.prim("int", S.prim("*", S.prim("abs", x), S.const(20)))
    assert S.prim("&", twenty, S.const(5)).interval == (0, 7)
    assert S.max_delay(S.prim("int", propagate(B.Rec(op("+", 1), W), [])[0])) is None
    g = S.ui("hslider", "d", (), 2, 0, 5, 1)
    assert S.max_delay(S.prim("int", S.prim("*", g, S.const(2.0)))) == 10
    assert S.needs_clamp(S.prim("int", x), 8)
    assert not S.needs_clamp(S.prim("&", S.prim("int", x), S.const(7)), 8)


def test_rates():
    x, g = S.input_(0), S.ui("hslider", "g", (), 0, 0, 1, 0.1)
    assert S.const(1).rate == S.K_CONST
    assert S.fconst("fSamplingFreq").rate == S.K_INIT
    assert S.prim("*", g, S.const(2.0)).rate == S.K_BLOCK
    assert S.prim("*", g, x).rate == S.K_SAMPLE
    assert S.mem(g).rate == S.K_SAMPLE


# ---------------------------------------------------------------- recursion groups, walking

def test_recursion_group_structure():
    cross = B.Route(4, 4, ((1, 1), (3, 2), (2, 3), (4, 4)))   # y0 + x0, y1 * x1
    ys = propagate(B.Rec(B.Seq(cross, par(B.Prim("+"), B.Prim("*"))), par(W, W)),
                   [S.input_(0), S.input_(1)])
    assert [y.op for y in ys] == ["proj", "proj"]
    group = ys[0].attrs[0]
    assert ys[1].attrs[0] is group and len(group) == 2
    assert group.defs[0].name == "+" and [a.op for a in group.defs[0].args] == ["recvar", "input"]
    order = S.topo_order(ys)
    pos = {id(s): k for k, s in enumerate(order)}
    for s in order:
        for a in S.deps(s):
            assert pos[id(a)] < pos[id(s)]
    assert len(S.recvars(order)) == 2


def test_recursion_output_reading_no_recursion_is_itself():
    # Faust's propagation: an output of A ~ B whose term reads no recursion variable is
    # that term, not a projection (here y1 = x0 * x1; y0 = y0' + y1' is one)
    ys = propagate(B.Rec(par(B.Prim("+"), B.Prim("*")), par(W, W)),
                   [S.input_(0), S.input_(1)])
    assert ys[0].op == "proj" and ys[1] is S.prim("*", S.input_(0), S.input_(1))
    group = ys[0].attrs[0]
    assert len(group) == 2 and group.defs[1] is ys[1]


def test_recursion_extra_outputs_are_plain():
    # A has 2 outputs, B 1 input: only A's first output is fed back
    box = B.Rec(B.Seq(B.Prim("+"), B.Split(W, par(W, op("*", 2)))), W)
    ys = propagate(box, [S.input_(0)])
    assert ys[0].op == "proj" and ys[1].op == "prim"


def test_topo_order_is_iterative():
    s = S.input_(0)
    for _ in range(20000):
        s = S.prim("sin", s)
    assert len(S.topo_order([s])) == 20001


def test_table_init_is_not_a_per_sample_dependency():
    init = propagate(B.Rec(op("+", 1), W), [])[0]
    t = S.rdtable(S.const(8), init, S.input_(0))
    assert init not in S.topo_order([t])
    assert init in S.topo_order([t], follow_tables=True)


# ---------------------------------------------------------------- widgets

def test_widget_paths_and_conflicts():
    s1 = B.UI("hslider", "x", 0.0, 0.0, 1.0, 0.1)
    same = propagate(B.Seq(par(s1, s1), B.Prim("+")), [], Context(name="ee"))[0]
    assert same.args[0] is same.args[1]
    s2 = B.UI("hslider", "x[unit:Hz]", 1.0, 0.0, 1.0, 0.1)
    with pytest.raises(FaustError) as e:
        propagate(B.Seq(par(s1, s2), B.Prim("+")), [], Context(name="ee"))
    assert e.value.message == "path '/ee/x' is already used"
    g = propagate(B.Group("hgroup", "g[style:x]", s1), [], Context(name="ee"))[0]
    assert S.widget_path(g, "ee") == "/ee/g/x"


def test_ui_order_sorts_by_raw_label_within_groups():
    # checked with faust-ref: bargraph columns come in this order
    def bg(label, groups=()):
        return S.bargraph("hbargraph", label, groups, 0, 1, S.input_(len(label)))
    a, b, c = bg("b[1]"), bg("b[0]"), bg("B")
    assert S.ui_order([a, b, c, bg("a")])[:3] == [c, S.ui_order([bg("a")])[0], b]
    g1, two, g0 = bg("1", (("hgroup", "g"),)), bg("2"), bg("0", (("hgroup", "g"),))
    assert S.ui_order([g1, two, g0]) == [two, g0, g1]


def test_bargraphs_sharing_a_label_come_in_faust_compile_order():
    # the orders faust-ref gives (tests/conformance/local/l03-l05 check the renders)
    x = S.input_(0)

    def bg(k):
        return S.bargraph("hbargraph", "b", (), -9, 9, S.prim("*", x, S.real_const(k)))
    # a sum written b1 + b2 + b3: b1 + b2 is older than b3, so b3 is compiled first
    b1, b2 = bg(1.0), bg(2.0)
    partial = S.prim("+", b1, b2)
    b3 = bg(3.0)
    assert S.bargraphs([S.prim("+", partial, b3)]) == [b3, b2, b1]
    # the same terms made before any partial sum (a weighted sum with its bias): Faust's
    # normal form sums them oldest first, the second term compiled first
    b9, b10, b11 = bg(9.0), bg(10.0), bg(11.0)
    assert S.bargraphs([S.prim("+", S.prim("+", b9, b10), b11)]) == [b10, b9, b11]
    # a product: the denominator first, then the numerator's factors last first
    b4, b5, b6 = bg(4.0), bg(5.0), bg(6.0)
    assert S.bargraphs([S.prim("/", S.prim("*", b4, b5), b6)]) == [b6, b5, b4]
    # a recursion: its definitions together, in order, when first reached
    g = S.RecGroup(("real", "real"))
    b7, b8 = bg(7.0), bg(8.0)
    g.define((S.prim("+", b7, g.var(1)), S.prim("+", b8, g.var(0))))
    assert S.bargraphs([g.proj(1), g.proj(0)]) == [b7, b8]
    # attach: its second input first
    assert S.bargraphs([S.prim("attach", b1, b2)]) == [b2, b1]


def test_strip_metadata():
    assert S.strip_metadata("freq [unit:Hz]") == "freq"
    assert S.strip_metadata("[0]gain") == "gain"
    assert S.strip_metadata("a[style:knob]b") == "a b"
    assert S.strip_metadata("plain") == "plain"


# ---------------------------------------------------------------- errors

def test_bad_foreign_things():
    with pytest.raises(FaustError, match="fSamplingFreq"):
        S.fconst("fFoo")
    with pytest.raises(FaustError, match="count"):
        S.fvar("bar")
    with pytest.raises(FaustError, match="unknown foreign function 'nosuch'"):
        S.ffun("nosuch", "real", ("float",), (S.input_(0),))
    with pytest.raises(FaustError, match="not a compile-time constant"):
        S.rdtable(S.input_(0), S.const(0.0), S.const(0))


def test_sum_and_product_constants_are_gathered_like_faust():
    x, y = S.input_(0), S.input_(1)
    sr = S.prim("min", S.const(192000.0), S.prim("max", S.const(1.0), S.fconst("fSamplingFreq")))
    # freeverb's adaptSR: val*SR/44100 is (val/44100)*SR (int() of it differs by one for 225)
    d = S.prim("/", S.prim("*", S.const(225), sr), S.const(44100))
    assert d.name == "*" and d.args[0].value == 225 / 44100 and d.args[1] is sr
    # (x + 10) - 1 is x + 9; x + (y - 0.1) is (x + y) + -0.1
    assert S.prim("-", S.prim("+", x, S.const(10)), S.const(1)) is S.prim("+", x, S.const(9))
    s = S.prim("+", x, S.prim("-", y, S.const(0.1)))
    assert s.args[1].value == -0.1 and s.args[0] is S.prim("+", x, y)


def test_control_rate_signals_round_trip_as_data():
    import json
    from faustdiff.signals import ir as S
    a = S.ui("hslider", "g", (("vgroup", "x"),), 0.5, 0, 1, 0.01)
    roots = [S.prim("tan", S.prim("*", a, S.real_const(3.0))), S.to_int(a), S.fvar("count"),
             S.prim("+", S.fconst("fSamplingFreq", "real"), a), S.real_const(-0.0)]
    back = S.from_data(json.loads(json.dumps(S.to_data(roots))))
    assert all(x is y for x, y in zip(back, roots))
    g = S.RecGroup(["real"])
    g.define([S.prim("+", g.var(0), a)])
    assert S.to_data([g.proj(0)]) is None   # state is not plain data


# ---------------------------------------------------------------- sharing recursion groups

def _smoo(x, coef=0.999):
    """y = (1 - c) * x + c * y[t-1], built as a new group each time."""
    g = S.RecGroup(["real"])
    g.define([S.prim("+", S.prim("*", S.real_const(1 - coef), x),
                     S.prim("*", S.real_const(coef), g.var(0)))])
    return g.proj(0)


def test_identical_recursions_are_one_signal():
    a = S.ui("hslider", "g", (), 0.5, 0, 1, 0.01)
    y1, y2 = _smoo(a), _smoo(a)
    assert y1 is y2
    order = S.topo_order([S.prim("+", y1, y2)])
    assert len(S.recvars(order)) == 1


def test_recursions_reading_other_signals_or_constants_are_not_shared():
    a = S.ui("hslider", "g", (), 0.5, 0, 1, 0.01)
    b = S.ui("hslider", "h", (), 0.5, 0, 1, 0.01)
    assert _smoo(a) is not _smoo(b)
    assert _smoo(a) is not _smoo(a, 0.99)


def test_propagated_recursions_are_shared():
    box = B.Rec(op("+", 1), W)          # a counter
    y1 = propagate(box, [])[0]
    y2 = propagate(B.Rec(op("+", 1), W), [])[0]
    assert y1 is y2
    y3 = propagate(B.Rec(op("+", 2), W), [])[0]
    assert y3 is not y1


def _nested(x):
    """An outer group whose definition holds an inner group reading the outer's RecVar."""
    outer = S.RecGroup(["real"])
    inner = S.RecGroup(["real"])
    inner.define([S.prim("+", S.prim("*", S.real_const(0.5), inner.var(0)), outer.var(0))])
    outer.define([S.prim("+", inner.proj(0), x)])
    return outer.proj(0), inner


def test_nested_recursions_are_shared():
    x = S.input_(0)
    (y1, i1), (y2, i2) = _nested(x), _nested(x)
    assert i1.proj(0) is not i2.proj(0)     # each inner reads its own outer: distinct alone
    assert y1 is y2                         # but the outer groups are equal as a whole
    assert len(S.recvars(S.topo_order([y1, y2]))) == 2
    assert _nested(S.input_(1))[0] is not y1


def test_inner_recursions_reading_the_same_outer_variable_are_shared():
    outer = S.RecGroup(["real"])
    inners = []
    for _ in range(2):
        g = S.RecGroup(["real"])
        g.define([S.prim("+", S.prim("*", S.real_const(0.5), g.var(0)), outer.var(0))])
        inners.append(g.proj(0))
    assert inners[0] is inners[1]
    outer.define([S.prim("+", inners[0], inners[1])])


def _mutual(x, c=0.5):
    """Two mutually recursive definitions (a 2-state oscillator-like group)."""
    g = S.RecGroup(["real", "real"])
    g.define([S.prim("+", S.prim("*", S.real_const(c), g.var(1)), x),
              S.prim("-", g.var(0), S.prim("*", S.real_const(c), g.var(1)))])
    return g.proj(0), g.proj(1)


def test_mutually_recursive_groups_are_shared():
    x = S.input_(0)
    assert _mutual(x) == _mutual(x)
    assert _mutual(x)[0] is _mutual(x)[0] and _mutual(x)[1] is _mutual(x)[1]
    assert _mutual(x, 0.25)[0] is not _mutual(x)[0]


def test_shared_recursion_is_computed_once():
    # the same smoother written twice: one state in the schedule, the same samples
    from faustdiff.backend.schedule import plan
    a = S.ui("hslider", "g", (), 0.5, 0, 1, 0.01)
    x = S.input_(0)
    outs = [S.prim("*", x, _smoo(a)), S.prim("*", S.input_(1), _smoo(a))]
    p = plan(outs, num_inputs=2)
    assert len(p.main.recs) == 1


def test_shared_recursion_extra_outputs_read_the_canonical_group():
    # A ~ B where A's second output reads the recursion variable (outside the projection)
    def box():
        return B.Rec(B.Seq(B.Prim("+"), B.Split(W, par(W, op("*", 2)))), W)
    x = S.input_(0)
    ys1, ys2 = propagate(box(), [x]), propagate(box(), [x])
    assert ys1[0] is ys2[0] and ys1[1] is ys2[1]
    assert len(S.recvars(S.topo_order(ys1 + ys2))) == 1


# ---------------------------------------------------------------- unsimplified terms (raw)

def _accumulator_bargraphs(f: str) -> int:
    """How many "n" bargraphs `v, (F : v)` has, v an accumulator with a bargraph."""
    from faustdiff.frontend.source import evaluate_source
    src = ('import("stdfaust.lib"); v = -~_ <: attach(hbargraph("n", -2, 2));'
           f'process = _ <: v, ({f} : v);')
    outs = propagate(evaluate_source(src, "raw.dsp"))
    assert all(isinstance(o, S.Sig) for o in outs)   # values never leave propagate
    return len(S.bargraphs(outs))


@pytest.mark.parametrize("f, count", [
    ("*(1)", 2), ("+(0)", 2), ("(_, 0 : +)", 2), ("(_, 0 : select2(0))", 2),
    ("route(1, 1, (1, 1))", 2), ("@(0)", 2), ("+(1-1)", 2),
    ("_", 1), ("si.bus(1)", 1), ("(_, 0 : _, !)", 1)])
def test_recursions_equal_only_once_simplified_stay_two(f, count):
    # faust 2.54.9 names recursions by their terms before simplification (its C++ has one
    # accumulator per count); the values are the same
    assert _accumulator_bargraphs(f) == count


def test_raw_values_are_interned_and_plain_when_faust_s_term_is_the_signal():
    from faustdiff.signals import raw as R
    x = S.input_(0)
    one = S.int_const(1)
    times1 = R.prim("*", S.prim("*", x, one), (x, one))
    assert isinstance(times1, R.Raw) and times1.sig is x
    assert R.prim("*", S.prim("*", x, one), (x, one)) is times1
    y = S.prim("sin", x)
    assert R.prim("sin", y, (x,)) is y
    assert R.prim("sin", y, (times1,)) is not y and R.sig_of(R.prim("sin", y, (times1,))) is y
