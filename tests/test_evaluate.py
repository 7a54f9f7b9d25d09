"""The evaluator: scopes, closures, partial application, pattern matching, iterations,
environments, libraries, and its error messages (asserted whole, with line:col)."""
import pytest

from faustdiff.api import evaluate_source
from faustdiff.frontend.arity import arity
from faustdiff.frontend.boxes import Int, Real, Wire, Cut, Prim, Seq, Par, Route, UI, Symbolic
from faustdiff.errors import FaustError


def ev(src, **kw):
    return evaluate_source(src, "t.dsp", **kw)


def err(src):
    with pytest.raises(FaustError) as e:
        ev(src)
    return str(e.value)


def test_numbers_fold():
    assert ev("process = 2*3+4;") == Int(10)
    assert ev("process = 2+3*4;") == Int(14)
    # Faust keeps an exact int quotient an int (it matches the pattern 1), else a real
    assert ev("process = 10/2/5;") == Int(1)
    assert ev("process = 7/2;") == Real(3.5)
    assert ev("process = 2^3^2;") == Int(64)
    assert ev("process = 5 & 3 == 1;") == Int(1)
    assert ev("process = int(2.7), float(3);") == Par(Int(2), Real(3.0))


def test_int_wraps_and_c_remainder():
    assert ev("process = 2147483647 + 1;") == Int(-2147483648)
    assert ev("process = -7 % 3, 7 % -3;") == Par(Int(-1), Int(1))
    assert ev("process = 7.5 % 2;") == Int(1)  # Faust 2.54.9 folds a constant % on ints


def test_partial_application_infix_fills_second_input():
    assert ev("process = -(3);") == Seq(Par(Wire(), Int(3)), Prim("-"))
    assert ev("process = /(4);") == Seq(Par(Wire(), Int(4)), Prim("/"))
    assert ev("process = pow(2);") == Seq(Par(Wire(), Int(2)), Prim("pow"))
    # min/max/fmod/atan2 are not infix: the argument fills the first input
    assert ev("process = max(1);") == Seq(Par(Int(1), Wire()), Prim("max"))
    assert arity(ev("process = -(1+1);")) == (1, 1)


def test_closure_partial_application():
    b = ev("f(x,y) = x-y; process = f(3);")
    assert arity(b) == (1, 1)
    assert isinstance(b, Symbolic)


def test_function_as_box_takes_parameters_as_inputs():
    assert arity(ev("f(x,y) = x-y; process = f;")) == (2, 1)


def test_with_scoping_and_shadowing():
    b = ev("a = 10; f(x) = x * a + b with { a = 2; b = a + 1; }; process = f(1), a;")
    assert b == Par(Int(5), Int(10))


def test_closures_capture_defining_scope():
    assert ev("k = 1; f = g with { k = 2; g = k; }; process = f;") == Int(2)


def test_pattern_matching_numbers_structures_and_order():
    src = """
    fact(0) = 1;
    fact(n) = n * fact(n - 1);
    count((x, xs)) = 1 + count(xs);
    count(x) = 1;
    g = case { (0) => 100; (n) => n * 2; };
    process = fact(5), count((1, 2, 3, 4)), g(0), g(7);
    """
    assert ev(src) == Par(Int(120), Par(Int(4), Par(Int(100), Int(14))))


def test_pattern_kinds_int_vs_real_and_repeated_variables():
    assert ev("f(1) = 10; f(x) = 20; process = f(1), f(2-1), f(1.0), f(0.5+0.5);") == \
        Par(Int(10), Par(Int(10), Par(Int(20), Int(20))))
    assert ev("f(x,x) = 1; f(x,y) = 2; process = f(3,3), f(1+2,3), f(1,3);") == \
        Par(Int(1), Par(Int(1), Int(2)))


def test_pattern_on_primitive_boxes():
    assert ev("d(+) = 1; d(*) = 2; d(x) = 3; process = d(+), d(*), d(sin);") == \
        Par(Int(1), Par(Int(2), Int(3)))


def test_iterations():
    assert ev("process = sum(i, 4, i * i), prod(i, 4, i + 1);") == Par(Int(14), Int(24))
    assert arity(ev("process = par(i, 3, *(i));")) == (3, 3)
    assert arity(ev("process = seq(i, 3, +(i));")) == (1, 1)
    assert arity(ev("process = par(i, 0, _), 1;")) == (0, 1)
    assert arity(ev("process = seq(i, 0, (_,_)), 1;")) == (2, 3)
    assert arity(ev("N = 2+1; process = par(i, N, _);")) == (3, 3)


def test_route_pairs_flattened_and_constant():
    b = ev("process = route(4, 5, (1,5), (2,1), par(i, 2, (i+3, i+2)));")
    assert b == Route(4, 5, ((1, 5), (2, 1), (3, 2), (4, 3)))


def test_letrec():
    b = ev("process = x, y letrec { 'x = 0.5 * x + 0.25 * y; 'y = 0.9 * y + 1; };")
    assert arity(b) == (0, 2)


def test_environment_access_and_modification():
    assert ev("e = environment { a = 1; b = a * 10; }; process = e.b, e[a = 2;].b;") == \
        Par(Int(10), Int(20))
    assert ev("lib = environment { k = 3; inner = environment { g = k * 10; }; };"
              "process = lib.inner.g;") == Int(30)


def test_ui_label_substitution_and_values():
    b = ev('process = par(i, 2, hslider("g%i", 0.1, 0, 1, 0.1));')
    assert b == Par(UI("hslider", "g0", 0.1, 0.0, 1.0, 0.1), UI("hslider", "g1", 0.1, 0.0, 1.0, 0.1))
    # Faust 2.54.9 pads a width with spaces, also for %02i (its JSON labels: "b 0", "d  0")
    assert ev('process = par(i, 1, button("b%2i"));') == UI("button", "b 0")
    assert ev('process = par(i, 1, button("c%02i"));') == UI("button", "c 0")
    assert ev('process = par(i, 1, button("d%3i"));') == UI("button", "d  0")


def test_inputs_outputs():
    assert ev("process = inputs(_,_ : +), outputs(_ <: _,_,_);") == Par(Int(2), Int(3))


def test_lambda():
    assert ev(r"process = (\(x).(x * x + 1))(3);") == Int(10)
    assert ev(r"apply(f, x) = f(x); process = apply(\(a).(a - 1), 5);") == Int(4)


def test_undefined_symbol():
    assert err("process = foo;") == "t.dsp:1:11: error: undefined symbol: foo"


def test_endless_definition():
    assert err("x = x + 1;\nprocess = x;") == \
        "t.dsp:1:5: error: endless evaluation cycle: the definition of 'x' depends on itself"


def test_endless_recursion_in_function():
    msg = err("f(x) = f(x+1);\nprocess = f(0);")
    assert msg.startswith("t.dsp:1:8: error: endless evaluation cycle: more than 4000 nested "
                          "applications (last: 'f')")


def test_pattern_match_failure():
    assert err("f(0) = 1;\nprocess = f(2);") == \
        "t.dsp:2:11: error: pattern matching failed: no rule of 'f' matches argument list (2)"


def test_iteration_count_must_be_constant():
    assert err('process = par(i, hslider("n", 1, 0, 4, 1), _);') == \
        ('t.dsp:1:18: error: the number of iterations of par must be a compile-time constant, '
         'got: hslider("n", 1, 0, 4, 1)')


def test_negative_iteration_count():
    assert err("process = par(i, -1, _);") == \
        "t.dsp:1:18: error: the number of iterations of par must be 0 or more, got -1"


def test_huge_iteration_count():
    assert err("process = par(i, 5000000, _);") == \
        "t.dsp:1:18: error: par with 5000000 iterations exceeds the limit of 100000"


def test_slider_init_out_of_range():
    assert err('process = hslider("e", 5, 0, 3, 1);') == \
        "t.dsp:1:11: error: hslider 'e' init = 5 outside of [0 3] range"


def test_too_many_arguments():
    assert err("process = +(1, 2, 3);").startswith(
        "t.dsp:1:11: error: too many arguments: 3, instead of 2")


def test_multiple_definitions():
    assert err("x = 1;\nx = 2;\nprocess = x;") == \
        "t.dsp:2:1: error: multiple definitions of symbol 'x'"


def test_deep_nesting_compiles():
    src = "process = " + "+".join(["1"] * 5000) + ";"
    assert ev(src) == Int(5000)
    src = "process = " + "+".join(["_"] * 5000) + ";"
    assert arity(ev(src)) == (5000, 1)
    assert arity(ev("process = seq(i, 2000, +(1));")) == (1, 1)
    nested = "x" + " with { x = 1; }" * 100
    assert ev(f"process = {nested};") == Int(1)
