"""Stage 4, signals to running code: scheduling, Numba code generation, the generated
programs' runtime and disk cache, the reference interpreter, `Program`, gradient programs,
non-finite tracing. May import `ad`, `signals`, `frontend`, `core` and `errors`."""
