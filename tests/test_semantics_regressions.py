"""Programs that once rendered differently from Faust 2.54.9, with the compiler's own output
(made with shared/tools/faust-ref) written in. Both backends must reproduce it."""
import numpy as np
import pytest

import faustdiff

CASES = {
    # An int product that is not fed back must wrap to int32 before it meets a real
    # coefficient: (p+1)*1103515245 wraps, then *0.5 (the normaliser may not merge them).
    "int_product_then_real_coefficient": (
        "process = (\\(p).(((p+1)*1103515245+12345)*1103515245, (p+1)*1103515245)) ~ _ "
        ": *(0.5), *(0.5);",
        [[-885047209, 551757622.5], [-638387706, -894038462.5], [505112781, -601264187.5],
         [-851276180, -401916800.5], [-40852829, -517557453.5]]),
    "int_product_divided_and_scaled": (
        "process = (\\(p).(((p+1)*1103515245+12345)*1103515245, (p+1)*1103515245)) ~ _ "
        "<: !, /(3.0), (*(3) : *(0.25)), (_ : *(7) : int : *(0.5));",
        [[367838415, -253828989.5, -432663938.5],
         [-596025641.66666663, 116160265, 184181706.5],
         [-400842791.66666663, -316072652.5, 86117983.5],
         [-267944533.66666666, -203172446, -665933955.5]]),
    # Faust folds the constants of a product first: int(225*SR/44100) is 224, not 225.
    "constant_coefficients_gathered": (
        'import("stdfaust.lib"); process = int(225 * ma.SR / 44100), int(1116 * ma.SR / 44100);',
        [[224, 1116]]),
    # Faust keeps an exact quotient of ints an int: 2/2 matches the pattern 1 (but 1.5-0.5
    # and a 1.0 pattern do not match across types), and 4/2 takes part in int32 wrap-around.
    "exact_int_quotient_is_int": (
        "f(1) = 10; f(x) = 20; g(1.0) = 10; g(x) = 20;"
        "process = f(2/2), g(1), f(1.5-0.5), f(6/2/3), 4/2*2147483647, (4@0)/2*2147483647, 7/2;",
        [[10, 20, 20, 10, -2, -2, 3.5]]),
    # Patterns are evaluated (their numeric parts folded, identifiers are pattern variables
    # except in function position) and arguments are folded when compared with a number;
    # groups match part by part (the compiler's pass-tests PM-bug1/2/11/19, testYO).
    "patterns_evaluated_like_faust": (
        "foo(x,y) = (y,x); c = case { ((3,2:-)) => 10; (2) => 20; (x) => 30; };"
        "f = *(2); dup(x) = (x,x); faa(1, dup(f)) = f;"
        'g(hgroup("g", x)) = x*2; g(x) = x*3;'
        "process = c(1), c((3,6:foo:/)), c(3), faa(1, dup(6)), g(hgroup(\"g\", 10)),"
        'g(vgroup("g", 10)), g(hgroup("h", 10));',
        [[10, 20, 30, 6, 20, 30, 30]]),
    # A select2/select3 of constants with a constant selector is a compile-time constant.
    "select_of_constants_folds": (
        "process = sum(i, (3,2 : select2(1)), i), sum(i, select3(2,1,2,3), i);",
        [[1, 3]]),
    # Delays whose amounts fold to 0 only once the sample rate is known (the compiler's
    # impulse test `constant`): a delay line without registers (was an internal error).
    "delays_folding_to_zero": (
        'import("stdfaust.lib"); process = (+(1) ~ _) <: @(int(ma.SR) * 0), @(int(ma.SR) % 2);',
        [[1, 1], [2, 2], [3, 3]]),
    # A select of constants has the select's type (real here) at box and signal level.
    "select_of_constants_keeps_the_select_type": (
        "process = select2(0, 2147483647, 0.5) + 1, select3(1, 0.5, 2147483647, 0.5) + 1,"
        "select2(0@0, 2147483647, 0.5) + 1;",
        [[2147483648, 2147483648, 2147483648]]),
    # Faust's normal form takes a constant factor out of a delay ((x*2)@3 is 2*(x@3)): inside
    # a control, the delay line is x's, shared with the unconditional x@3 and written always.
    "constant_factor_leaves_a_delay": (
        "ramp = +(1) ~ _; c = ramp % 3 == 0; x = ramp : sin;"
        "process = control((x * 2) @ 3, c), x @ 3, control((x * 0.5) @ 2, c);",
        [[0, 0, 0], [0, 0, 0], [0, 0, 0.42073549240394825],
         [0, 0.8414709848078965, 0.42073549240394825],
         [0, 0.90929742682568171, 0.42073549240394825],
         [0.28224001611973443, 0.14112000805986721, -0.3784012476539641],
         [0.28224001611973443, -0.7568024953079282, -0.3784012476539641],
         [0.28224001611973443, -0.95892427466313845, -0.3784012476539641],
         [-0.55883099639785172, -0.27941549819892586, 0.32849329935939453],
         [-0.55883099639785172, 0.65698659871878906, 0.32849329935939453]]),
    # control/enable compute only while the condition holds (Faust 2.54.9): a recursion keeps
    # its state, a computed value is held, a copy delay line shifts only then (its registers
    # are read live), a ring buffer (@(17): 32 slots) is written only then; a signal also
    # needed outside the control is computed always (the compiler's impulse test osc_enable).
    "control_computes_only_while_its_condition_holds": (
        "sig = waveform{1, 0.5, 0, 0, -0.5, 0} : !, _; ramp = +(1) ~ _;"
        "process = control(+(0.25) ~ _, sig), enable(ramp, sig), control(ramp : @(2), sig),"
        "control(sin(ramp) <: @(17), sig), control(ramp, sig) + ramp,"
        "control(ramp : cos : @(2), sig);",
        [[0.25, 1, 0, 0, 2, 0], [0.5, 1, 0, 0, 4, 0], [0.5, 1, 1, 0, 6, 0.5403023058681398],
         [0.5, 1, 2, 0, 8, 0.5403023058681398], [0.75, -2.5, 3, 0, 10, 0.5403023058681398],
         [0.75, -2.5, 4, 0, 12, -0.4161468365471424], [1, 7, 5, 0, 14, -0.4161468365471424],
         [1.25, 4, 6, 0, 16, 0.28366218546322625], [1.25, 4, 7, 0, 18, 0.7539022543433046],
         [1.25, 4, 8, 0, 20, 0.7539022543433046], [1.5, -5.5, 9, 0, 22, 0.7539022543433046],
         [1.5, -5.5, 10, 0, 24, -0.14550003380861354],
         [1.75, 13, 11, 0, 26, -0.14550003380861354], [2, 7, 12, 0, 28, 0.004425697988050785],
         [2, 7, 13, 0, 30, 0.9074467814501962], [2, 7, 14, 0, 32, 0.9074467814501962],
         [2.25, -8.5, 15, 0, 34, 0.9074467814501962],
         [2.25, -8.5, 16, 0, 36, 0.1367372182078336],
         [2.5, 19, 17, 0.9092974268256817, 38, 0.1367372182078336],
         [2.75, 10, 18, 0, 40, -0.27516333805159693],
         [2.75, 10, 19, 0, 42, 0.9887046181866692], [2.75, 10, 20, 0, 44, 0.9887046181866692],
         [3, -11.5, 21, 0, 46, 0.9887046181866692], [3, -11.5, 22, 0, 48, 0.40808206181339196]]),
    # A waveform's size is a compile-time constant: `w : _/2, !` counts iterations (the
    # compiler's example physicalModeling/faust-stk/piano1: ba.bpf over a waveform's points).
    "waveform_size_is_a_constant": (
        "w = waveform{1.5, 2, 3, 4, 5, 6}; n = w : _/2, !;"
        "process = (0.5 : seq(i, n, +(1))), par(i, (w : _, !), i), (w : !, _);",
        [[3.5, 0, 1, 2, 3, 4, 5, 1.5], [3.5, 0, 1, 2, 3, 4, 5, 2],
         [3.5, 0, 1, 2, 3, 4, 5, 3]]),
    # Intervals of pow with a positive base and of shifts of non-negative ints bound a delay
    # (the compiler's pass test 20180211-bug: @(pow(2.0, nentry)), @(1 << int(nentry))).
    "pow_and_shift_intervals_bound_delays": (
        'x = nentry("n", 2, 1, 4, 1);'
        "process = (+(1) ~ _) <: @(pow(2.0, x)), @(1 << int(x)), @(8 >> int(x)), @(2 ^ x);",
        [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 2, 0], [1, 1, 3, 1], [2, 2, 4, 2]]),
    # A function inside a composition stays a function: matched by a pattern, it is applied
    # to numbers later (faustlibraries' wdmodels tests: wd.buildtree(vsrc : (node : ...)));
    # Faust 2.54.9 (faust-ref) renders 36 and the leaf as a box.
    "functions_kept_in_compositions": (
        "src(0) = 10; src(1) = 20; leaf(i) = i + 1;"
        "tree((A : B)) = A(0) + A(1) + B(5), (B : _); process = 0.5 : tree(src : leaf);",
        [[36, 1.5], [36, 1.5]]),
    # faustlibraries' freeverb_demo test: Faust's normal form of a real product is its
    # coefficient times its factors in order of rate (constant, control, sample), so
    # int(s*46*SR/44100) is int(((46/44100)*SR)*s) = int(22.999999999999996) = 22, not 23,
    # however the product is written (stereo spread one sample shorter than ours was).
    "real_product_in_faust_normal_form": (
        'import("stdfaust.lib"); s = vslider("s", 0.5, 0, 1, 0.01);'
        "process = int(s * 46 * ma.SR / 44100), int((ma.SR * (s * 46)) / 44100),"
        "int(46 * s / 44100 * ma.SR), int(s * 46 * ma.SR / 44100 * 2 * 0.5),"
        "int(0.5 * 46 * ma.SR / 44100);",
        [[22, 22, 22, 22, 22]]),
}


@pytest.mark.parametrize("backend", ["interp", "numba"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_renders_like_faust(name, backend):
    src, ref = CASES[name]
    ref = np.array(ref, dtype=float).T
    prog = faustdiff.compile_source(src, f"{name}.dsp", backend=backend)
    out = prog.compute(None, ref.shape[1])
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("backend", ["interp", "numba"])
def test_bargraphs_of_a_branch_a_constant_select_never_takes_are_dropped(backend):
    """Faust 2.54.9 (faust-ref) shows bargraphs a, d, e only: b, c and f feed choices that a
    constant selector never takes (at box level for the first two selects, at signal level
    for the third)."""
    src = ('process = select2(0, 1 : hbargraph("a", 0, 1), 2 : hbargraph("b", 0, 3)),'
           'select2(1, _ : hbargraph("c", 0, 1), (_ : hbargraph("d", 0, 1))),'
           '(_ <: select2(0, hbargraph("e", 0, 1), hbargraph("f", 0, 1)));')
    prog = faustdiff.compile_source(src, "sel.dsp", backend=backend)
    assert prog.bargraph_labels == ["a", "d", "e"]
    out = prog.compute(np.array([[0.5], [0.25], [0.125]]), 1)
    assert out[:, 0].tolist() == [1, 0.25, 0.125]
    assert [t.tolist() for t in prog.bargraph_traces] == [[1], [0.25], [0.125]]


def test_diff_lib_learnN_like_the_seed():
    """df.learnN (the seed's diff.lib, as faust-ddsp's recdiff3 uses it), rendered by Faust
    2.54.9 with the seed's library: e = mean(learnable - truth_k) = 0.625; loss |e|;
    gradients D_i e / |e| times 0.1; the bargraphs in Faust's order."""
    src = ('import("stdfaust.lib"); df = library("diff.lib");'
           "process = (0.5, 0.25, 1.0, 2.0, -3.0) : df.learnN(1, 0.1, 2, 2);")
    prog = faustdiff.compile_source(src, "ln.dsp")
    out = prog.compute(None, 2)
    np.testing.assert_allclose(out[:, 1], [0.625, 0.2, -0.3], rtol=1e-15)
    assert prog.bargraph_labels == ["loss", "gradient 0", "gradient 1", "mean delta"]
    assert [t[1] for t in prog.bargraph_traces] == [0.625, 2, -3, 0.625]


def test_labels_naming_groups():
    """`h:`/`v:`/`t:` prefixes in a label open groups (the libraries' physmodels use
    `button("v:brass/[1]gate")`); other slashes are text. Faust 2.54.9's JSON: a/b,
    brass/gate, brass/inner/k, midi/freq; its render with gate=1 k=1: 3 and bargraph 3."""
    src = ('process = hgroup("x", button("v:brass/[1]gate") + hslider("h:midi/freq", 1, 0, 2, 1)'
           ' + hslider("a/b", 0, 0, 1, 1) + hslider("v:brass/h:inner/k", 0, 0, 1, 1))'
           ' : hbargraph("v:meters/level", 0, 10);')
    prog = faustdiff.compile_source(src, "lp.dsp")
    assert list(prog.params) == ["a/b", "gate", "k", "freq"]
    assert prog.bargraph_labels == ["level"]
    prog.set_param("/x/brass/gate", 1)
    prog.set_param("k", 1)
    assert prog.compute(None, 2).tolist() == [[3, 3]]
    assert prog.bargraph_traces[0].tolist() == [3, 3]


def test_a_function_used_as_a_box_that_cannot_be_still_fails_where_it_is_used():
    """Without an application the rules of src meet the slot: the same error as before."""
    src = "src(0) = 10; src(1) = 20; leaf(i) = i + 1;\nprocess = src : leaf;\n"
    with pytest.raises(faustdiff.FaustError) as err:
        faustdiff.compile_source(src, "fn.dsp", backend="interp")
    assert str(err.value) == ("fn.dsp:2:11: error: pattern matching failed: no rule of 'src' "
                              "matches argument list (slot0)")
