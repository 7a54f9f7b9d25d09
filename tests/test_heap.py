"""The heap pad (faustdiff/backend/heap.py): audio-sized arrays freed and allocated again
every step do not page-fault once a compiled program's runtime is imported."""
import os
import subprocess
import sys

import pytest

from faustdiff.backend import heap

STEPS = r'''
import resource, sys
import numpy as np
import faustdiff.backend.runtime as rt
from faustdiff.backend import heap
x = np.random.default_rng(0).uniform(-1, 1, 44100)
def step():
    y = x.copy()            # a render's output
    g = 2 * y               # a loss gradient
    return (g / y.size).sum()
for _ in range(5):
    step()
a = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):
    step()
print(heap.keep_heap_pages(), (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - a) / 200)
'''

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt only")


def _run(pad: str) -> tuple:
    env = dict(os.environ, FAUSTDIFF_HEAP_PAD_MB=pad)
    out = subprocess.run([sys.executable, "-c", STEPS], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] == "True", float(out[1])


@glibc
def test_pad_removes_the_page_faults_of_each_step():
    on, faults_on = _run("64")
    off, faults_off = _run("0")
    assert (on, off) == (True, False)
    assert faults_on < 5            # pages kept: nothing to fault in
    assert faults_off > 50          # glibc's default: every step faults its arrays in again


@pytest.mark.parametrize("raw, expected", [
    ("", 64 * 2**20), ("16", 16 * 2**20), ("0", 0), ("0.5", 2**19), ("-3", 0),
    ("lots", 64 * 2**20)])
def test_pad_bytes_from_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv("FAUSTDIFF_HEAP_PAD_MB", raw)
    assert heap.pad_bytes() == expected
