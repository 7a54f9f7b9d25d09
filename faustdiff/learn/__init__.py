"""Stage 5, learning parameters: losses with exact ∂L/∂y, optimisers, the training loop.
May import `backend` and everything below it, and `audio_io`; never `api` or `cli`."""


def __getattr__(name):   # `from faustdiff.learn import Dataset, Trainer`, loaded on first use
    if name == "Dataset":
        from .dataset import Dataset
        return Dataset
    if name == "Trainer":
        from .train import Trainer
        return Trainer
    raise AttributeError(f"module 'faustdiff.learn' has no attribute {name!r}")
