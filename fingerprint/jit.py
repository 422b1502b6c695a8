"""Compiled loops (numba) for the few places where numpy needs many passes over large arrays.

A kernel is compiled on its first call (a few seconds) and cached on disk: in ``NUMBA_CACHE_DIR``
if set, else beside its module, else (a read-only install) in the user's cache folder; with no
writable place at all it is compiled in memory once per process. numba is imported on that first
call, not when the module defining the kernel is imported, so ``fingerprint --help`` stays quick.
``main.py`` and ``fingerprint match`` call :func:`fusion.warm_up` before the first query, so no
query pays for it.
"""
from __future__ import annotations

import functools
import threading
import types
from typing import Callable

_LOCK = threading.RLock()  # re-entered when a kernel's compilation compiles a kernel it calls


def njit(fn: Callable) -> Callable:
    """``fn`` compiled with ``numba.njit`` on its first call, with the GIL released (the audio
    stage runs in a thread beside the visual one) and an on-disk cache where one can be written.
    No fast-math: the arithmetic is IEEE, as in numpy. ``.py_func`` is the plain Python ``fn``.
    A kernel may call another kernel of its module by name: that one is compiled first and
    called as compiled code (numba inlines what is small)."""
    compiled = []

    def dispatcher():
        if not compiled:
            with _LOCK:  # two threads must not compile (and write the cache) at once
                if not compiled:
                    compiled.append(_compile(fn))
        return compiled[0]

    @functools.wraps(fn)
    def call(*args):
        return (compiled[0] if compiled else dispatcher())(*args)

    call.py_func = fn
    call.dispatcher = dispatcher
    return call


def _compile(fn: Callable) -> Callable:
    try:
        import numba
    except ImportError:
        from .errors import FingerprintError

        raise FingerprintError("numba is not installed; the voting and the ivf search need it: pip install numba "
                               "(make test and make demo install it)") from None

    kernels = {name: fn.__globals__[name].dispatcher() for name in fn.__code__.co_names
               if callable(getattr(fn.__globals__.get(name), "dispatcher", None))}
    if kernels:  # numba resolves a callee when it compiles the caller: it must see the compiled one
        fn = types.FunctionType(fn.__code__, {**fn.__globals__, **kernels}, fn.__name__, fn.__defaults__,
                                fn.__closure__)
    try:
        return numba.njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return numba.njit(cache=False, nogil=True)(fn)
