"""The ground floor every stage stands on: the primitive table (one row per primitive: arity,
folding, types, intervals, run-time scalars, code templates, derivative rules) and the
big-stack runner for deep recursions. Imports nothing of faustdiff but `errors`."""
