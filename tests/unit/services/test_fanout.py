"""The fan-out's delivery path: orjson encoding, outboxes bounded in bytes,
and batched frames for clients that ask for them.

Clients join through ``connect()``, which starts the manager's broadcaster;
``fresh_manager`` stops it and every writer when the test ends.
"""

import asyncio
import json
import logging
import uuid
from typing import Any, Callable, Dict, List
from unittest.mock import MagicMock

import pytest

from osism import settings
from osism.api.routes import wants_batches
from osism.services.fanout.outbox import batch_frames
from osism.transport.frames import Bundle, framed
from osism.services.websocket_manager import (
    EventMessage,
    Outbox,
    WebSocketConnection,
    WebSocketManager,
    text_size,
)
from tests.conftest import async_wait_until
from tests.unit.services.test_websocket_manager import (
    fresh_manager,
    make_event,
    sent_texts,
    stall,
)

WebSocketFactory = Callable[[], MagicMock]


def events(count: int, padding: int = 0) -> List[EventMessage]:
    return [
        EventMessage(
            f"compute.instance.{number}",
            "openstack",
            {"seq": number, "pad": "x" * padding},
            f"node{number}",
        )
        for number in range(count)
    ]


# --------------------------------------------------------------------------
# to_json


class TestToJson:
    def test_round_trips_through_json_loads(self) -> None:
        event = make_event(data={"a": [1, 2.5, None, True], "ü": "snow ☃"})
        assert json.loads(event.to_json()) == event.to_dict()

    def test_is_compact_json_with_exactly_the_six_keys(self) -> None:
        event = make_event()
        text = event.to_json()
        assert list(json.loads(text)) == [
            "id",
            "timestamp",
            "event_type",
            "source",
            "node_name",
            "data",
        ]
        assert ": " not in text

    @pytest.mark.parametrize(
        "data, expected",
        [
            ({1: "integer key"}, {"1": "integer key"}),
            ({"pair": (1, 2)}, {"pair": [1, 2]}),
        ],
    )
    def test_keys_and_tuples_json_would_write_stay_compact(
        self, data: Dict[Any, Any], expected: Dict[str, Any]
    ) -> None:
        event = make_event(data=data)
        text = event.to_json()
        assert json.loads(text)["data"] == expected
        assert ": " not in text and ", " not in text

    def test_non_finite_numbers_round_trip_as_before(self) -> None:
        # orjson writes them as null; the event keeps what json wrote.
        event = make_event(data={"value": float("inf"), "none": None})
        assert json.loads(event.to_json()) == event.to_dict()

    def test_integer_beyond_64_bits_still_encodes(self) -> None:
        event = make_event(data={"big": 2**70})
        assert json.loads(event.to_json())["data"]["big"] == 2**70

    def test_heartbeat_without_node_name_round_trips(self) -> None:
        event = EventMessage("heartbeat", "osism", {"message": "ping"})
        assert json.loads(event.to_json()) == event.to_dict()


# --------------------------------------------------------------------------
# Outbox: bounded in count and in bytes


# The bytes an outbox counts are the memory its entries hold. On CPython 3.11
# a str of n ASCII characters holds 49 + n bytes; a FramedText of one
# character holds 114 (the str) + 36 (its 3-byte frame) = 150 bytes; a bundle
# of two of those, 2 * 150 + 39 (the 6-byte joined frame) = 339 bytes.


class TestTextSize:
    @pytest.mark.parametrize(
        "item, size",
        [("", 49), ("c", 50), ("e" * 50, 99), ("x" * 100, 149), ("b" * 200, 249)],
    )
    def test_an_ascii_text_holds_its_length_and_the_str_header(
        self, item: str, size: int
    ) -> None:
        assert text_size(item) == size

    def test_a_framed_text_holds_the_text_and_its_frame(self) -> None:
        assert text_size(framed("a")) == 150

    def test_a_bundle_holds_its_texts_and_the_joined_frame(self) -> None:
        assert text_size(Bundle([framed("a"), framed("b")])) == 339


class TestOutboxBytes:
    def test_counts_the_bytes_it_holds(self) -> None:
        outbox = Outbox(10, max_bytes=10_000)
        outbox.put_nowait("a" * 100)
        outbox.put_nowait("b" * 200)
        assert outbox.bytes == 149 + 249
        assert outbox.get_nowait() == "a" * 100
        assert outbox.bytes == 249
        outbox.get_nowait()
        assert outbox.bytes == 0

    def test_refuses_a_text_that_would_cross_the_byte_bound(self) -> None:
        limit = 3 * 149  # three texts of 100 characters
        outbox = Outbox(100, max_bytes=limit)
        for _ in range(3):
            outbox.put_nowait("x" * 100)
        with pytest.raises(asyncio.QueueFull):
            outbox.put_nowait("x")
        assert outbox.qsize() == 3
        assert outbox.bytes <= limit

    def test_takes_one_text_larger_than_the_bound_when_empty(self) -> None:
        outbox = Outbox(100, max_bytes=50)
        outbox.put_nowait("y" * 1000)
        assert outbox.qsize() == 1
        with pytest.raises(asyncio.QueueFull):
            outbox.put_nowait("z")

    def test_count_bound_still_holds(self) -> None:
        outbox = Outbox(2, max_bytes=1 << 20)
        outbox.put_nowait("a")
        outbox.put_nowait("b")
        with pytest.raises(asyncio.QueueFull):
            outbox.put_nowait("c")

    @pytest.mark.asyncio
    async def test_put_waits_for_space_in_bytes(self) -> None:
        outbox = Outbox(100, max_bytes=149)  # one text of 100 characters
        outbox.put_nowait("x" * 100)
        waiter = asyncio.create_task(outbox.put("y" * 100))
        await asyncio.sleep(0)
        assert not waiter.done()
        outbox.get_nowait()
        await asyncio.wait_for(waiter, 1.0)
        assert outbox.get_nowait() == "y" * 100

    def test_offer_is_false_over_the_byte_bound(self) -> None:
        connection = WebSocketConnection(
            MagicMock(), outbox_size=100, outbox_bytes=2 * 99
        )
        assert connection.offer("e" * 50)
        assert connection.offer("e" * 50)
        assert not connection.offer("e" * 50)

    def test_byte_bound_defaults_to_setting(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(settings, "OUTBOX_BYTES", 3 * 99)
        connection = WebSocketConnection(MagicMock(), outbox_size=100)
        taken = [connection.offer("e" * 50) for _ in range(4)]
        assert taken == [True, True, True, False]

    @pytest.mark.asyncio
    async def test_stalled_client_over_the_byte_bound_is_closed_1013(
        self, fake_websocket: WebSocketFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.WARNING, logger="osism.websocket")
        sent = events(20, padding=1000)
        limit = 5_000  # two of these 1.1 kB events with their frames
        # The count bound (1000) is far away: only bytes can evict.
        async with fresh_manager(outbox_size=1000, outbox_bytes=limit) as manager:
            stalled, healthy = fake_websocket(), fake_websocket()
            stall(stalled)
            await manager.connect(stalled)
            await manager.connect(healthy)
            for event in sent:
                await manager.add_event(event)
            await async_wait_until(lambda: healthy.send_text.await_count == 20)
            await async_wait_until(lambda: stalled.close.await_count == 1)

            assert stalled.close.await_args.kwargs["code"] == 1013
            assert stalled not in manager.connections
            assert manager.slow_disconnects == 1
            assert sent_texts(healthy) == [event.to_json() for event in sent]
            assert "bytes" in caplog.text


class TestOutboxBundles:
    def test_a_bundle_counts_as_the_messages_it_carries(self) -> None:
        outbox = Outbox(4, max_bytes=1 << 20)
        outbox.put_nowait(Bundle([framed("a"), framed("b"), framed("c")]))
        assert outbox.qsize() == 3
        with pytest.raises(asyncio.QueueFull):
            outbox.put_nowait(Bundle([framed("d"), framed("e")]))
        outbox.put_nowait("f")
        assert outbox.qsize() == 4

    def test_taking_a_bundle_frees_its_messages_and_bytes(self) -> None:
        outbox = Outbox(4, max_bytes=1 << 20)
        bundle = Bundle([framed("a"), framed("b")])
        outbox.put_nowait(bundle)
        outbox.put_nowait("c")
        assert outbox.bytes == 339 + 50
        assert outbox.get_nowait() is bundle
        assert (outbox.qsize(), outbox.bytes) == (1, 50)

    def test_an_empty_outbox_takes_a_bundle_over_its_bounds(self) -> None:
        outbox = Outbox(2, max_bytes=10)
        outbox.put_nowait(Bundle([framed("a"), framed("b"), framed("c")]))
        assert outbox.qsize() == 3

    def test_a_framed_text_counts_its_frame_too(self) -> None:
        text = "x" * 1000
        assert text_size(framed(text)) >= text_size(text) + 1000

    def test_a_bundle_holds_its_texts_and_their_joined_frames(self) -> None:
        texts = [framed("x" * 500), framed("y" * 500)]
        bundle = Bundle(texts)
        assert bundle.frame == texts[0].frame + texts[1].frame
        assert bundle.size >= text_size(texts[0]) + text_size(texts[1]) + 1000
        assert bundle.chars == 1000


class TestOneTurnToEachClient:
    @pytest.mark.asyncio
    async def test_clients_with_and_without_filters_get_their_events_in_order(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        sent = [make_event(f"compute.instance.{kind}") for kind in "abab" "abab"]
        async with fresh_manager(outbox_size=100) as manager:
            everything, only_a, also_a = (fake_websocket() for _ in range(3))
            for websocket in (everything, only_a, also_a):
                await manager.connect(websocket)
            await manager.update_filters(only_a, event_filters=["*.a"])
            await manager.update_filters(also_a, event_filters=["*.a"])
            for event in sent:
                await manager.add_event(event)
            await async_wait_until(lambda: len(sent_texts(everything)) == 8)
            await async_wait_until(lambda: len(sent_texts(also_a)) == 4)

            assert sent_texts(everything) == [event.to_json() for event in sent]
            assert sent_texts(only_a) == [event.to_json() for event in sent[::2]]
            assert sent_texts(also_a) == sent_texts(only_a)
            # each filtered client's deliveries count
            assert manager.status().delivered == 8 + 4 + 4

    @pytest.mark.asyncio
    async def test_a_full_filtered_client_is_closed_and_the_next_gets_the_turn(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        sent = [make_event("compute.instance.a", data={"n": n}) for n in range(20)]
        async with fresh_manager(outbox_size=4) as manager:
            stalled, healthy = fake_websocket(), fake_websocket()
            stall(stalled)
            # Connected first: the broadcaster meets it before the other.
            await manager.connect(stalled)
            await manager.connect(healthy)
            for websocket in (stalled, healthy):
                await manager.update_filters(websocket, event_filters=["*.a"])
            for event in sent:
                await manager.add_event(event)
            await async_wait_until(lambda: len(sent_texts(healthy)) == 20)
            await async_wait_until(lambda: stalled.close.await_count == 1)

            assert stalled.close.await_args.kwargs["code"] == 1013
            assert sent_texts(healthy) == [event.to_json() for event in sent]
            assert manager.slow_disconnects == 1

    @pytest.mark.asyncio
    async def test_each_event_of_a_turn_is_logged_with_its_clients(
        self, fake_websocket: WebSocketFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG, logger="osism.websocket")
        async with fresh_manager(outbox_size=100) as manager:
            everything, only_a = fake_websocket(), fake_websocket()
            await manager.connect(everything)
            await manager.connect(only_a)
            await manager.update_filters(only_a, event_filters=["*.a"])
            await manager.add_event(make_event("compute.instance.a"))
            await manager.add_event(make_event("compute.instance.b"))
            await async_wait_until(lambda: len(sent_texts(everything)) == 2)

            assert (
                "Broadcasted event compute.instance.a to 2/2 connection(s)"
                in caplog.text
            )
            assert (
                "Broadcasted event compute.instance.b to 1/2 connection(s)"
                in caplog.text
            )


# --------------------------------------------------------------------------
# batched frames


def unbatch(websocket: MagicMock) -> List[Any]:
    """Every array the client got, concatenated; each frame must be an array."""
    messages: List[Any] = []
    for text in sent_texts(websocket):
        frame = json.loads(text)
        assert isinstance(frame, list) and frame
        messages.extend(frame)
    return messages


class TestBatchedFrames:
    @pytest.mark.asyncio
    async def test_batch_client_gets_arrays_of_exactly_the_events_in_order(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        sent = events(40)
        async with fresh_manager(outbox_size=100) as manager:
            batched, plain = fake_websocket(), fake_websocket()
            await manager.connect(batched, batch=True)
            await manager.connect(plain)
            for event in sent:
                await manager.add_event(event)
            await async_wait_until(lambda: plain.send_text.await_count == 40)
            await async_wait_until(lambda: len(unbatch(batched)) == 40)

            assert unbatch(batched) == [event.to_dict() for event in sent]
            # fewer frames than events: that is the point of batching
            assert batched.send_text.await_count < 40

    @pytest.mark.asyncio
    async def test_default_client_gets_one_event_per_frame(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        sent = events(10)
        async with fresh_manager() as manager:
            plain = fake_websocket()
            await manager.connect(plain)
            for event in sent:
                await manager.add_event(event)
            await async_wait_until(lambda: plain.send_text.await_count == 10)

            assert sent_texts(plain) == [event.to_json() for event in sent]

    @pytest.mark.asyncio
    async def test_a_frame_stays_within_the_batch_limit(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        sent = events(30, padding=200)
        async with fresh_manager(outbox_size=100) as manager:
            manager.BATCH_FRAME_CHARS = 1000
            batched = fake_websocket()
            await manager.connect(batched, batch=True)
            for event in sent:
                await manager.add_event(event)
            await async_wait_until(lambda: len(unbatch(batched)) == 30)

            assert unbatch(batched) == [event.to_dict() for event in sent]
            frames = sent_texts(batched)
            assert all(len(frame) <= 1000 for frame in frames)
            assert len(frames) >= 30 * 250 // 1000

    @pytest.mark.asyncio
    async def test_what_is_queued_beyond_one_array_follows_in_more_arrays(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        texts = [event.to_json() for event in same_length_events(9)]
        async with fresh_manager(outbox_size=100) as manager:
            # Two texts to an array: "[" + text + "," + text + "]".
            manager.BATCH_FRAME_CHARS = 2 * len(texts[0]) + 3
            batched = fake_websocket()
            await manager.connect(batched, batch=True)
            # Queued one text per entry before the writer runs.
            for text in texts:
                assert manager.send_to(batched, text)
            await async_wait_until(lambda: len(unbatch(batched)) == 9)

            assert unbatch(batched) == [json.loads(text) for text in texts]
            sizes = [len(json.loads(frame)) for frame in sent_texts(batched)]
            assert sizes == [2, 2, 2, 2, 1]

    @pytest.mark.asyncio
    async def test_an_event_larger_than_the_limit_goes_alone(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        sent = events(3, padding=5000)
        async with fresh_manager(outbox_size=100) as manager:
            manager.BATCH_FRAME_CHARS = 1000
            batched = fake_websocket()
            await manager.connect(batched, batch=True)
            for event in sent:
                await manager.add_event(event)
            await async_wait_until(lambda: batched.send_text.await_count == 3)

            assert [json.loads(text) for text in sent_texts(batched)] == [
                [event.to_dict()] for event in sent
            ]

    @pytest.mark.asyncio
    async def test_replies_travel_in_order_inside_the_arrays(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager() as manager:
            batched = fake_websocket()
            await manager.connect(batched, batch=True)
            first, second = events(2)
            manager.send_to(batched, first.to_json())
            manager.send_to(batched, '{"type": "filter_update", "status": "success"}')
            manager.send_to(batched, second.to_json())
            await async_wait_until(lambda: len(unbatch(batched)) == 3)

            assert unbatch(batched) == [
                first.to_dict(),
                {"type": "filter_update", "status": "success"},
                second.to_dict(),
            ]


def same_length_events(count: int) -> List[EventMessage]:
    """Events whose JSON texts all have the same length."""
    return [
        EventMessage(
            "compute.instance.update",
            "openstack",
            {"seq": number},
            "node",
            event_id=str(uuid.UUID(int=number)),
            timestamp="2026-11-23T13:00:00.000000Z",
        )
        for number in range(10, 10 + count)
    ]


class TestFanOutPerTurn:
    """What the broadcaster fans out before the writers get a turn shows in
    a batch client's frames: its writer sends what it finds queued as one
    array each time it runs."""

    async def frame_sizes(
        self, manager: WebSocketManager, websocket: MagicMock, count: int
    ) -> List[int]:
        await manager.connect(websocket, batch=True)
        for event in same_length_events(count):
            manager.enqueue(event)
        await async_wait_until(lambda: len(unbatch(websocket)) == count)
        return [len(json.loads(text)) for text in sent_texts(websocket)]

    @pytest.mark.asyncio
    async def test_at_most_fanout_batch_events_per_turn(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=100) as manager:
            manager.FANOUT_BATCH = 5

            sizes = await self.frame_sizes(manager, fake_websocket(), 12)

        assert sizes == [5, 5, 2]

    @pytest.mark.asyncio
    async def test_at_most_half_an_outbox_per_turn(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        async with fresh_manager(outbox_size=6) as manager:
            sizes = await self.frame_sizes(manager, fake_websocket(), 7)

        assert sizes == [3, 3, 1]

    @pytest.mark.asyncio
    async def test_at_most_half_the_byte_bound_per_turn(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        size = text_size(framed(same_length_events(1)[0].to_json()))
        # Half the bound is three events' bytes (rounded down).
        bound = 6 * size + 1
        async with fresh_manager(outbox_size=100, outbox_bytes=bound) as manager:
            sizes = await self.frame_sizes(manager, fake_websocket(), 7)

        assert sizes == [3, 3, 1]

    @pytest.mark.asyncio
    async def test_the_byte_budget_counts_each_events_own_bytes(
        self, fake_websocket: WebSocketFactory
    ) -> None:
        small, big, *rest = events(4)
        big = EventMessage(big.event_type, big.source, {"pad": "x" * 600}, "node")
        sent = [small, big, *rest]
        size = text_size(framed(small.to_json()))
        # Half the bound holds two small events, not a small and the big one.
        bound = 2 * (2 * size + 100)
        async with fresh_manager(outbox_size=100, outbox_bytes=bound) as manager:
            websocket = fake_websocket()
            await manager.connect(websocket, batch=True)
            for event in sent:
                manager.enqueue(event)
            await async_wait_until(lambda: len(unbatch(websocket)) == 4)
            sizes = [len(json.loads(text)) for text in sent_texts(websocket)]

        assert unbatch(websocket) == [event.to_dict() for event in sent]
        assert sizes == [2, 2]


class TestBatchFrame:
    @pytest.mark.parametrize(
        "limit, frame, left",
        [
            (13, "[111,222,333]", []),
            (12, "[111,222]", ["333"]),
            (9, "[111,222]", ["333"]),
            (8, "[111]", ["222", "333"]),
            # the first text goes whatever its length
            (1, "[111]", ["222", "333"]),
        ],
    )
    def test_a_frame_takes_what_fits_in_the_limit_in_characters(
        self, limit: int, frame: str, left: List[str]
    ) -> None:
        outbox = Outbox(10, max_bytes=10_000)
        outbox.put_nowait("222")
        outbox.put_nowait("333")

        assert batch_frames("111", outbox, limit) == [frame]
        assert [outbox.get_nowait() for _ in range(outbox.qsize())] == left

    def test_an_empty_outbox_gives_the_first_text_alone(self) -> None:
        assert batch_frames("111", Outbox(10, max_bytes=10_000), 1000) == ["[111]"]

    @pytest.mark.parametrize(
        "limit, frames",
        [
            (17, ["[111,222,333,444]"]),
            (13, ["[111,222,333]", "[444]"]),
            (12, ["[111,222]", "[333,444]"]),
            # each array exactly at the limit
            (9, ["[111,222]", "[333,444]"]),
            (8, ["[111]", "[222]", "[333]", "[444]"]),
            (1, ["[111]", "[222]", "[333]", "[444]"]),
        ],
    )
    def test_a_bundle_first_is_split_at_the_limit(
        self, limit: int, frames: List[str]
    ) -> None:
        bundle = Bundle([framed(text) for text in ("111", "222", "333", "444")])

        assert batch_frames(bundle, Outbox(10, max_bytes=10_000), limit) == frames

    @pytest.mark.parametrize(
        "limit, frames, left",
        [
            (21, ["[111,222,333,444,555]"], 0),
            # a bundle that follows goes whole or stays queued
            (20, ["[111,222]"], 3),
        ],
    )
    def test_a_bundle_that_follows_joins_only_whole(
        self, limit: int, frames: List[str], left: int
    ) -> None:
        outbox = Outbox(10, max_bytes=10_000)
        outbox.put_nowait(Bundle([framed("333"), framed("444"), framed("555")]))

        assert batch_frames(Bundle([framed("111"), framed("222")]), outbox, limit) == (
            frames
        )
        assert outbox.qsize() == left


class TestBatchNegotiation:
    @pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes"])
    def test_batch_query_parameter_turns_it_on(self, value: str) -> None:
        assert wants_batches({"batch": value})

    @pytest.mark.parametrize("query", [{}, {"batch": "0"}, {"batch": "no"}, {"x": "1"}])
    def test_anything_else_is_one_message_per_frame(self, query: Any) -> None:
        assert not wants_batches(query)
