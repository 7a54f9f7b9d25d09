"""Stage 3, automatic differentiation over signals: forward mode (`forward`: JVPs, the `Dual`
box of diff.lib), the parameters of `df.param`/`df.fit` and of `wrt=`.
May import `signals`, `frontend`, `core` and `errors`; registers its builtins and the
propagation of `Dual` boxes with the stages below it when imported."""

from . import autoparams, dual  # noqa: E402,F401  (their builtins and Dual's propagation)
