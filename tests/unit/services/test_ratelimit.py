"""A warning written at most once per interval, with a count of the rest."""

import logging

import pytest

from osism.core.ratelimit import RateLimitedLog

LOGGER = "osism.test.ratelimit"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def log(clock: FakeClock, caplog: pytest.LogCaptureFixture) -> RateLimitedLog:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return RateLimitedLog(logging.getLogger(LOGGER), interval=10.0, clock=clock)


def messages(caplog: pytest.LogCaptureFixture) -> list:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


class TestRateLimitedLog:
    def test_first_warning_is_logged(
        self, log: RateLimitedLog, caplog: pytest.LogCaptureFixture
    ) -> None:
        assert log.warning("queue full: %d dropped", 1) is True

        assert messages(caplog) == ["queue full: 1 dropped"]
        assert caplog.records[-1].levelno == logging.WARNING

    def test_an_error_is_logged_at_error_level(
        self, log: RateLimitedLog, caplog: pytest.LogCaptureFixture
    ) -> None:
        assert log.error("redis down: %s", "refused") is True

        assert messages(caplog) == ["redis down: refused"]
        assert caplog.records[-1].levelno == logging.ERROR

    def test_nothing_is_suppressed_before_the_first_warning(
        self, log: RateLimitedLog
    ) -> None:
        assert log.suppressed == 0

    def test_warning_within_interval_is_suppressed_and_counted(
        self,
        log: RateLimitedLog,
        clock: FakeClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        log.warning("queue full")
        clock.now += 9.9

        assert log.warning("queue full") is False
        assert log.warning("queue full") is False

        assert messages(caplog) == ["queue full"]
        assert log.suppressed == 2

    def test_next_line_reports_suppressed_count(
        self,
        log: RateLimitedLog,
        clock: FakeClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        log.warning("dropped %d", 1)
        log.warning("dropped %d", 2)
        log.warning("dropped %d", 3)
        clock.now += 10.0

        assert log.warning("dropped %d", 4) is True

        assert messages(caplog) == [
            "dropped 1",
            "dropped 4 (2 similar messages suppressed)",
        ]

    def test_suppressed_count_resets_after_it_was_reported(
        self,
        log: RateLimitedLog,
        clock: FakeClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        log.warning("x")
        log.warning("x")
        clock.now += 10.0
        log.warning("x")
        clock.now += 10.0

        log.warning("x")

        assert log.suppressed == 0
        assert messages(caplog) == ["x", "x (1 similar messages suppressed)", "x"]

    def test_interval_counts_from_the_last_logged_line(
        self,
        log: RateLimitedLog,
        clock: FakeClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        log.warning("x")
        clock.now += 6.0
        log.warning("x")  # suppressed: does not restart the interval
        clock.now += 4.0

        assert log.warning("x") is True

    def test_once_per_interval_over_a_long_run(
        self,
        log: RateLimitedLog,
        clock: FakeClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        for _ in range(100):  # one call per second for 100 s
            log.warning("x")
            clock.now += 1.0

        assert len(messages(caplog)) == 10

    def test_default_clock_measures_the_interval(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger=LOGGER)
        hourly = RateLimitedLog(logging.getLogger(LOGGER), interval=3600.0)
        always = RateLimitedLog(logging.getLogger(LOGGER), interval=0.0)

        assert [hourly.warning("a"), hourly.warning("a")] == [True, False]
        assert [always.warning("b"), always.warning("b")] == [True, True]
        assert messages(caplog) == ["a", "b", "b"]
