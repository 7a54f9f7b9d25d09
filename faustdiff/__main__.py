"""`python -m faustdiff ARGS`: the same command line as `faustdiff ARGS` (faustdiff.cli)."""
from .cli import main

main(prog_name="faustdiff")
