"""osism.services.backoff: the steps, the cap, the reset and the jitter, with
random sources that say which delays to expect."""

import random
from typing import Callable, List

import pytest

from osism.core import backoff as backoff_module
from osism.core.backoff import Backoff, Jitter


def draws(*values: float) -> Callable[[], float]:
    """A source that gives ``values`` in turn (and fails the test after)."""
    return iter(values).__next__


def highest() -> float:
    """The bound random.random never reaches: each delay is its whole step."""
    return 1.0


class TestSteps:
    def test_steps_double_up_to_the_cap_and_reset_starts_over(self) -> None:
        backoff = Backoff(0.5, 3.0, random_source=highest)
        assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
        backoff.reset()
        assert backoff.next() == 0.5

    def test_a_maximum_below_the_minimum_is_the_minimum(self) -> None:
        backoff = Backoff(2.0, 1.0, random_source=highest)
        assert backoff.maximum == 2.0
        assert [backoff.next() for _ in range(3)] == [2.0, 2.0, 2.0]

    def test_reset_starts_over_from_any_step(self) -> None:
        backoff = Backoff(1.0, 4.0, random_source=highest)
        backoff.next()
        backoff.reset()
        assert [backoff.next(), backoff.next()] == [1.0, 2.0]


class TestFullJitter:
    def test_each_delay_is_the_draw_times_its_step(self) -> None:
        backoff = Backoff(1.0, 8.0, random_source=draws(0.25, 0.5, 0.0, 0.75, 0.5))
        assert [backoff.next() for _ in range(5)] == [0.25, 1.0, 0.0, 6.0, 4.0]

    def test_it_is_the_default(self) -> None:
        assert Backoff(1.0, 2.0).jitter is Jitter.FULL

    def test_a_seeded_source_gives_the_same_delays_within_the_steps(self) -> None:
        first = Backoff(0.5, 10.0, random_source=random.Random(21).random)
        second = Backoff(0.5, 10.0, random_source=random.Random(21).random)
        delays = [first.next() for _ in range(8)]
        assert delays == [second.next() for _ in range(8)]
        steps = [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
        assert all(0 <= d < step for d, step in zip(delays, steps))
        assert len(set(delays)) == 8


class TestEqualJitter:
    def test_each_delay_is_half_its_step_plus_the_draw_times_the_other_half(
        self,
    ) -> None:
        backoff = Backoff(
            2.0, 8.0, Jitter.EQUAL, random_source=draws(0.0, 0.5, 1.0, 0.25)
        )
        assert [backoff.next() for _ in range(4)] == [1.0, 3.0, 8.0, 5.0]

    def test_a_constant_delay_keeps_half_of_itself(self) -> None:
        backoff = Backoff(5.0, 5.0, Jitter.EQUAL, random_source=draws(0.0, 1.0))
        assert [backoff.next(), backoff.next()] == [2.5, 5.0]


class TestDefaultSource:
    def test_the_module_source_is_read_at_each_draw(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        backoff = Backoff(1.0, 4.0)
        monkeypatch.setattr(backoff_module, "source", draws(0.5))
        assert backoff.next() == 0.5
        monkeypatch.setattr(backoff_module, "source", highest)
        assert backoff.next() == 2.0

    def test_a_given_source_wins_over_the_module_source(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(backoff_module, "source", highest)
        assert Backoff(4.0, 4.0, random_source=draws(0.5)).next() == 2.0

    def test_the_system_source_draws_in_zero_to_one(self) -> None:
        values: List[float] = [backoff_module.system_random() for _ in range(200)]
        assert all(0.0 <= v < 1.0 for v in values)
        assert len(set(values)) > 190
