"""The Faust grammar (faust.lark), installed as the package `faustdiff.grammar`."""
