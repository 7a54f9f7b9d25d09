"""Stage 1, Faust source to normal-form boxes: parsing (Lark), the box IR and its printing,
evaluation (scopes, closures, patterns, libraries), arity, the builtins Faust code can call.
May import `core` and `errors` only."""
