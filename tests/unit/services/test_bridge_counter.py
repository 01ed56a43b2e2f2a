"""osism.services.bridge.counter: a counter several threads add to at once."""

import threading

from osism.services.bridge.counter import Counter


class TestCounter:
    def test_it_starts_at_zero(self) -> None:
        counter = Counter()
        assert (counter.value, int(counter)) == (0, 0)

    def test_add_returns_the_new_value(self) -> None:
        counter = Counter()
        assert [counter.add(), counter.add(), counter.add(5)] == [1, 2, 7]
        assert counter.value == 7

    def test_its_repr_shows_the_value(self) -> None:
        counter = Counter()
        counter.add(3)
        assert repr(counter) == "Counter(3)"

    def test_every_add_from_several_threads_counts(self) -> None:
        counter = Counter()
        threads_count, adds = 8, 5000
        start = threading.Barrier(threads_count)

        def add() -> None:
            start.wait(timeout=5.0)
            for _ in range(adds):
                counter.add()

        workers = [threading.Thread(target=add, daemon=True) for _ in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=10.0)
        assert not any(worker.is_alive() for worker in workers)
        assert counter.value == threads_count * adds
