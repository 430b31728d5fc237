"""Each fuzz test twice: a few hundred derandomized examples in `make test` (so a commit is green
or red for a reason) and, marked slow, thousands with fresh randomness in `make test-slow`."""

from __future__ import annotations

from collections.abc import Callable

import fuzzkit
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.strategies import SearchStrategy


def twice(fast: int, slow: int, *strategies: SearchStrategy) -> Callable[[Callable], tuple[Callable, Callable]]:
    """`test_x, test_x_slow = twice(200, 2000, st...)(body)`: fuzzkit.examples(fast, slow) examples
    unmarked, and `slow` (at least) marked slow."""
    def make(fn: Callable) -> tuple[Callable, Callable]:
        common = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}
        fast_test = settings(max_examples=fuzzkit.examples(fast, slow), derandomize=True, **common)(
            given(*strategies)(fn))
        slow_test = pytest.mark.slow(settings(max_examples=fuzzkit.examples(slow, slow), derandomize=False, **common)(
            given(*strategies)(fn)))
        return fast_test, slow_test
    return make
