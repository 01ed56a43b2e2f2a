"""Properties that hold for any input (hypothesis)."""

import copy
import json
from typing import Any, Dict, List, Optional

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from unittest.mock import MagicMock

from osism.protocol import (
    MAX_FILTER_ENTRIES,
    MAX_FILTER_LENGTH,
    SetFilters,
    parse_client_message,
)
from osism.services.filters import SERVICE_TYPES
from osism.services.notifications import SERVICE_OF_SEGMENT
from osism.services.websocket_manager import (
    EventMessage,
    WebSocketConnection,
    WebSocketManager,
)

SERVICES = ["baremetal", "compute", "nova", "network", "neutron", "volume", "cinder"]
SERVICES += ["image", "glance", "identity", "keystone", "foo", ""]
OBJECT_KEYS = ["ironic_object.data", "nova_object.data", "neutron_object.data"]
OBJECT_KEYS += ["cinder_object.data", "glance_object.data", "keystone_object.data"]

words = st.text(alphabet="abcn.-1", max_size=8)
event_types = st.one_of(
    words,
    st.text(max_size=20),
    st.builds(
        lambda s, rest: f"{s}.{rest}" if s else rest, st.sampled_from(SERVICES), words
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)
payloads = st.dictionaries(
    st.one_of(st.sampled_from(OBJECT_KEYS), st.text(max_size=5)),
    st.one_of(
        st.dictionaries(
            st.sampled_from(
                ["name", "host", "uuid", "id", "device_id", "display_name"]
            ),
            json_values,
            max_size=4,
        ),
        json_values,
    ),
    max_size=4,
)
filter_lists = st.lists(words, max_size=3)
# Well inside the protocol's bounds (a few entries, short ones).
MAX_ENTRIES = min(5, MAX_FILTER_ENTRIES)
MAX_LENGTH = min(20, MAX_FILTER_LENGTH)


def reference_matches(
    events: List[str], nodes: List[str], services: List[str], event: EventMessage
) -> bool:
    """Kinds are AND-ed; an empty kind matches everything."""
    service = event.event_type.split(".")[0] if event.event_type else "unknown"
    # A service name (nova) or the seed's type standing for it (compute)
    # matches every event of that service, as well as the first segment.
    emitter = SERVICE_OF_SEGMENT.get(service)
    return (
        (not events or event.event_type in events)
        and (not nodes or (event.node_name is not None and event.node_name in nodes))
        and (
            not services
            or service in services
            or any(
                emitter is not None and emitter in (name, SERVICE_TYPES.get(name))
                for name in services
            )
        )
    )


class TestMatchesFiltersProperty:
    @settings(deadline=None)
    @given(
        filter_lists,
        filter_lists,
        st.lists(st.sampled_from(SERVICES + ["unknown"]), max_size=3),
        event_types,
        st.one_of(st.none(), words),
    )
    def test_matches_filters_agrees_with_the_reference(
        self,
        events: List[str],
        nodes: List[str],
        services: List[str],
        event_type: str,
        node_name: Optional[str],
    ) -> None:
        connection = WebSocketConnection(MagicMock())
        connection.event_filters = events
        connection.node_filters = nodes
        connection.service_filters = services
        event = EventMessage(event_type, "openstack", {}, node_name)
        assert connection.matches_filters(event) is reference_matches(
            events, nodes, services, event
        )


class TestAddNotificationProperty:
    @settings(deadline=None)
    @given(event_types, payloads)
    def test_never_raises_never_mutates_always_queues_a_well_formed_event(
        self, event_type: str, payload: Any
    ) -> None:
        manager = WebSocketManager(queue_size=2)
        before = copy.deepcopy(payload)
        manager.add_notification(event_type, payload)
        assert payload == before
        event = manager.event_queue.get_nowait()
        assert manager.event_queue.empty()
        assert event.source == "openstack"
        assert event.event_type == event_type
        assert event.node_name is None or isinstance(event.node_name, str)
        resource_id = event.data["resource_id"]
        assert resource_id is None or isinstance(resource_id, str)
        assert event.data == {
            **before,
            "service_type": event_type.split(".")[0] if event_type else "unknown",
            "resource_id": resource_id,
        }
        assert json.loads(event.to_json()) == event.to_dict()


class TestParseClientMessageProperty:
    @settings(deadline=None)
    @given(st.one_of(st.text(), json_values.map(json.dumps)))
    def test_any_text_gives_a_message_or_a_reason(self, text: str) -> None:
        parsed, error = parse_client_message(text)
        assert (parsed is None) != (error is None)
        assert parsed is None or isinstance(parsed, SetFilters)
        assert error is None or (isinstance(error, str) and error)

    @settings(deadline=None)
    @given(
        st.dictionaries(
            st.sampled_from(["event_filters", "node_filters", "service_filters"]),
            st.none() | st.lists(st.text(max_size=MAX_LENGTH), max_size=MAX_ENTRIES),
        )
    )
    def test_set_filters_within_the_limits_is_taken_as_sent(
        self, filters: Dict[str, Optional[List[str]]]
    ) -> None:
        # An event filter with "*" is a pattern, validated on its own.
        assume(not any("*" in entry for entry in filters.get("event_filters") or ()))
        text = json.dumps({"action": "set_filters", **filters})
        parsed, error = parse_client_message(text)
        assert error is None and parsed is not None
        for kind in ("event_filters", "node_filters", "service_filters"):
            assert getattr(parsed, kind) == filters.get(kind)
