"""Backoff formulas and retry limits: pure policy, no driver."""

from __future__ import annotations

import pytest

from queue_core import Backoff, ConfigError
from queue_core.retry import RetryLimits, evaluate_backoff


def sequence(backoff, attempts: int) -> list[float]:
    return [backoff(attempt, None, None) for attempt in range(1, attempts + 1)]


def test_fixed_is_the_same_delay_every_time() -> None:
    assert sequence(Backoff.fixed(5), 4) == [5, 5, 5, 5]


def test_exponential_doubles_from_the_delay() -> None:
    assert sequence(Backoff.exponential(1), 6) == [1, 2, 4, 8, 16, 32]
    assert Backoff.exponential(3)(7, None, None) == 192


def test_exponential_can_be_capped_and_survives_huge_attempts() -> None:
    assert sequence(Backoff.exponential(1, max_delay=10), 6) == [1, 2, 4, 8, 10, 10]
    assert Backoff.exponential(1, max_delay=60)(5000, None, None) == 60


def test_app_engine_doubling_sequence() -> None:
    # queue.yaml: min_backoff_seconds 10, max_backoff_seconds 300, max_doublings 3.
    assert sequence(Backoff.doubling(10, 300, 3), 8) == [10, 20, 40, 80, 160, 240, 300, 300]


def test_app_engine_linear_sequence_without_doublings() -> None:
    # max_doublings 0: the interval grows linearly by min_backoff up to the maximum.
    expected = [float(10 * n) for n in range(1, 21)] + [200.0, 200.0]
    assert sequence(Backoff.doubling(10, 200, 0), 22) == expected


def test_app_engine_defaults() -> None:
    backoff = Backoff.doubling()
    assert backoff(1, None, None) == 0.1
    assert backoff(16, None, None) == pytest.approx(0.1 * 2**15)
    assert backoff(17, None, None) == 3600
    assert backoff(100, None, None) == 3600


@pytest.mark.parametrize("backoff", [Backoff.fixed(10, jitter=0.5),
                                     Backoff.exponential(10, jitter=0.5)])
def test_jitter_draws_between_the_lowered_and_the_full_delay(backoff) -> None:
    draws = [backoff(1, None, None) for _ in range(2000)]
    assert all(5 <= d <= 10 for d in draws)
    assert min(draws) < 5.5 and max(draws) > 9.5
    assert len(set(draws)) > 1000


def test_full_jitter_reaches_down_to_zero() -> None:
    draws = [Backoff.fixed(1, jitter=1)(1, None, None) for _ in range(2000)]
    assert min(draws) < 0.05 and max(draws) <= 1


@pytest.mark.parametrize("spec, expected", [
    ({"type": "fixed", "delay": 3}, Backoff.fixed(3)),
    ({"type": "exponential", "delay": 1, "jitter": 0.2}, Backoff.exponential(1, 0.2)),
    ({"type": "exponential", "delay": 1, "max_delay": 9}, Backoff.exponential(1, max_delay=9)),
    ({"min_backoff_seconds": 10, "max_backoff_seconds": 300, "max_doublings": 3},
     Backoff.doubling(10, 300, 3)),
    ({"type": "doubling", "min": 1, "max": 8}, Backoff.doubling(1, 8, 16)),
    (7, Backoff.fixed(7)),
    (None, None),
])
def test_settings_forms(spec, expected) -> None:
    assert Backoff.parse(spec) == expected


def test_a_custom_callable_is_used_as_is() -> None:
    def custom(attempt, error, job):
        return attempt * 1.5
    assert Backoff.parse(custom) is custom
    assert evaluate_backoff(custom, 4, None, None) == 6.0


def test_zero_means_now_and_negative_means_give_up() -> None:
    assert evaluate_backoff(lambda *a: 0, 1, None, None) == 0.0
    assert evaluate_backoff(lambda *a: -1, 1, None, None) is None
    assert evaluate_backoff(None, 3, None, None) == 0.0


@pytest.mark.parametrize("bad", ["soon", None, float("nan"), True])
def test_a_custom_backoff_returning_garbage_is_an_error(bad) -> None:
    with pytest.raises(ValueError, match="expected seconds"):
        evaluate_backoff(lambda *a: bad, 1, None, None)


@pytest.mark.parametrize("spec, key", [
    ({"type": "linear", "delay": 1}, "backoff.type"),
    ({"type": "fixed"}, "backoff.delay"),
    ({"type": "fixed", "delay": -1}, "backoff.delay"),
    ({"type": "fixed", "delay": 1, "jitter": 2}, "backoff.jitter"),
    ({"type": "fixed", "delay": 1, "factor": 2}, "backoff.factor"),
    ({"min_backoff_seconds": 10, "max_backoff_seconds": 5}, "backoff.max_backoff_seconds"),
    ({"max_doublings": 1.5}, "backoff.max_doublings"),
    ("not-a-path", "backoff"),
    (-3, "backoff"),
    (True, "backoff"),
    ([1, 2], "backoff"),
])
def test_bad_settings_name_the_key(spec, key) -> None:
    with pytest.raises(ConfigError) as caught:
        Backoff.parse(spec)
    assert caught.value.key == key
    assert key.split(".")[-1] in str(caught.value)


def test_a_backoff_can_be_named_by_import_path() -> None:
    assert Backoff.parse("tests.unit.test_backoff:sample_backoff") is sample_backoff


def sample_backoff(attempt, error, job):
    return 1.0


@pytest.mark.parametrize("attempts, age_limit, attempt, age, expected", [
    (1, None, 1, 0, False),
    (3, None, 2, 0, True),
    (3, None, 3, 0, False),
    (None, None, 10_000, 1e9, True),
    (None, 60, 50, 59, True),
    (None, 60, 1, 61, False),
    (3, 60, 5, 30, True),     # runs exhausted, still young: retry
    (3, 60, 2, 90, True),     # old, runs left: retry
    (3, 60, 3, 61, False),    # both exceeded: stop
    (1, 60, 1, None, True),   # unknown age counts as young
])
def test_retry_limits(attempts, age_limit, attempt, age, expected) -> None:
    assert RetryLimits(attempts, age_limit).allows_retry(attempt, age) is expected
