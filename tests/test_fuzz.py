"""Fuzzing: mutated conformance programs give a result or a clean `FaustError`, never another
exception and never a hang; every input that once crashed is replayed (tests/regressions/).

The mutants run in a worker process (tests/fuzzing.py) with the reference interpreter and a
few samples each. Hypothesis is derandomized (the same mutants every run); set
FAUSTDIFF_FUZZ_EXAMPLES=N to try N mutants instead of the default.
"""
from __future__ import annotations

import os
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fuzzing

EXAMPLES = int(os.environ.get("FAUSTDIFF_FUZZ_EXAMPLES", "300"))
CORPUS = fuzzing.corpus()
TEXTS = [p.read_text() for p in CORPUS]


@pytest.fixture(scope="module")
def worker():
    with fuzzing.Worker() as w:
        yield w


def _describe(path, text, outcome, detail):
    return f"{outcome} for a mutant of {path.name}:\n{text}\n---\n{detail}"


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(which=st.integers(0, len(CORPUS) - 1), seed=st.integers(0, 2**32 - 1),
       edits=st.integers(1, 3))
def test_mutants_give_a_result_or_a_clean_error(worker, which, seed, edits):
    text = fuzzing.mutate(TEXTS[which], random.Random(seed), edits)
    outcome, detail, _ = worker.run(text, str(CORPUS[which]))
    assert outcome in ("ok", "error"), _describe(CORPUS[which], text, outcome, detail)


def test_the_corpus_itself_compiles(worker):
    for path, text in zip(CORPUS, TEXTS):
        outcome, detail, _ = worker.run(text, str(path))
        assert outcome == "ok", _describe(path, text, outcome, detail)


def test_mutations_change_the_text():
    rng = random.Random(1)
    changed = sum(fuzzing.mutate(t, rng) != t for t in TEXTS)
    assert changed >= len(TEXTS) - 2
    tokens = fuzzing.Tokens.split('process = _ <: +(1), @(3) : /(2.5e3); // c\n')
    assert tokens.toks == ["process", "=", "_", "<:", "+", "(", "1", ")", ",", "@", "(", "3",
                           ")", ":", "/", "(", "2.5e3", ")", ";"]
    assert tokens.join() == 'process = _ <: +(1), @(3) : /(2.5e3); // c\n'


REGRESSIONS = sorted(fuzzing.REGRESSIONS.glob("*.dsp"))


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.stem for p in REGRESSIONS])
def test_regression(worker, path):
    text = path.read_text()
    expect = None
    for line in text.splitlines():
        if line.startswith("// expect:"):
            expect = line.split(":", 1)[1].strip()
    origin = fuzzing.CORPUS_DIR / path.name   # imports resolve from the conformance folder
    outcome, detail, _ = worker.run(text, str(origin))
    assert outcome in ("ok", "error"), _describe(path, text, outcome, detail)
    if expect is not None:
        assert outcome == expect, _describe(path, text, outcome, detail)
