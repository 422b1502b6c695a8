"""fingerprint.jit: compiled kernels, with and without an on-disk cache."""
import numpy as np

from fingerprint.jit import njit


def _running_sum(x):
    out = np.empty(x.size)
    acc = 0.0
    for i in range(x.size):
        acc += x[i]
        out[i] = acc
    return out


def test_a_kernel_gives_what_its_python_gives_bit_for_bit():
    k = njit(_running_sum)
    x = np.random.default_rng(0).uniform(-1, 1, 1000)
    assert np.array_equal(k(x), k.py_func(x))
    assert not np.array_equal(k(x), np.cumsum(x[::-1])[::-1])  # the comparison can fail


def test_a_function_numba_cannot_cache_is_compiled_without_a_cache():
    """Code without a source file (here: exec'd) has nowhere to cache; numba.njit(cache=True)
    refuses it, and the kernel must still compile rather than fail at its first call."""
    import numba
    import pytest

    scope = {"np": np}
    exec("def twice(x):\n    return 2.0 * x\n", scope)
    with pytest.raises(RuntimeError, match="cannot cache"):
        numba.njit(cache=True)(scope["twice"])
    assert njit(scope["twice"])(np.arange(3.0)).tolist() == [0.0, 2.0, 4.0]


def test_without_numba_a_kernel_says_so_in_one_line(monkeypatch):
    import sys

    import pytest

    from fingerprint.errors import FingerprintError

    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    with pytest.raises(FingerprintError, match="numba is not installed.*pip install numba"):
        njit(_running_sum)(np.zeros(3))


@njit
def _scaled(x, i):
    return 3.0 * x[i]


def _sum_scaled(x):
    acc = 0.0
    for i in range(x.size):
        acc += _scaled(x, i)  # a kernel calling a kernel of its module
    return acc


def test_a_kernel_calls_another_kernel_compiled():
    k = njit(_sum_scaled)
    x = np.arange(5.0)
    assert k(x) == 30.0 == k.py_func(x)
    assert _scaled.dispatcher() is _scaled.dispatcher()  # compiled once
    assert type(_scaled.dispatcher()).__module__.startswith("numba")
