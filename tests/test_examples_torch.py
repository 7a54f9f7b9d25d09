"""examples/torch_ddsp.py: learned control curves through a Faust filter in PyTorch, with a
multi-resolution STFT loss, converge."""
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="PyTorch is not installed (pip install 'faustdiff[torch]')")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "torch_ddsp.py"


def test_the_loss_falls_tenfold():
    spec = importlib.util.spec_from_file_location("torch_ddsp", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    history = mod.train(steps=60, seed=0)
    assert len(history) == 61
    assert history[-1] <= history[0] / 10, history[::10]
