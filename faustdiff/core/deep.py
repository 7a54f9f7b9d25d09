"""Room for deep recursion.

The compiler's stages recurse over trees whose depth follows the user's program (a sum of
5,000 terms, a `seq` of 2,000 stages, compile-time recursion in libraries). `deep_call` runs a
function in a worker thread with a 512 MiB stack and a high recursion limit; nested calls run
directly in that thread. A RecursionError that still escapes becomes a clean FaustError.
"""
from __future__ import annotations

import sys
import threading

from ..errors import FaustError

STACK_BYTES = 512 * 1024 * 1024
RECURSION_LIMIT = 400_000

_state = threading.local()


def deep_call(fn, *args, **kwargs):
    """fn(*args, **kwargs) with room for deep recursion; its exception is re-raised here."""
    if getattr(_state, "active", False):
        return fn(*args, **kwargs)
    out: dict = {}

    def run():
        _state.active = True
        try:
            out["value"] = fn(*args, **kwargs)
        except BaseException as e:  # re-raised in the caller's thread
            out["error"] = e

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, RECURSION_LIMIT))
    old_size = threading.stack_size(STACK_BYTES)
    try:
        t = threading.Thread(target=run, name="faustdiff-deep")
        t.start()
    finally:
        threading.stack_size(old_size)
    t.join()
    sys.setrecursionlimit(old_limit)
    if "error" in out:
        err = out["error"]
        if isinstance(err, RecursionError):
            raise FaustError("the program is nested too deeply to compile "
                             "(recursion limit reached)") from None
        raise err
    return out["value"]
