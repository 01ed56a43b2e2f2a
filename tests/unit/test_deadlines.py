"""OSISM_TEST_TIMEOUT_FACTOR scales every integration deadline, and nothing else."""

import pytest

from tests.integration.deadlines import deadline, timeout_factor


def test_without_a_factor_deadlines_are_as_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OSISM_TEST_TIMEOUT_FACTOR", raising=False)
    assert deadline(15.0) == 15.0


def test_the_factor_multiplies_each_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OSISM_TEST_TIMEOUT_FACTOR", "2.5")
    assert timeout_factor() == 2.5
    assert deadline(4.0) == 10.0


@pytest.mark.parametrize("raw", ["fast", "0", "-1"])
def test_a_factor_that_is_no_positive_number_is_refused(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("OSISM_TEST_TIMEOUT_FACTOR", raw)
    with pytest.raises(ValueError, match="OSISM_TEST_TIMEOUT_FACTOR"):
        deadline(1.0)
