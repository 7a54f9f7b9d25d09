"""Stage 2, boxes to signals: the hash-consed signal DAG (`ir`: int32/float64 types,
intervals, recursion groups) and the propagation of normal-form boxes into it.
May import `frontend`, `core` and `errors`."""
