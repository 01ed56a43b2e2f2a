"""Properties that hold for any input (hypothesis)."""

import copy
import json
from fnmatch import fnmatchcase
from typing import Any, Dict, List, Optional

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from unittest.mock import MagicMock

from osism.api.wire import (
    MAX_FILTER_ENTRIES,
    MAX_FILTER_LENGTH,
    SetFilters,
    parse_client_message,
)
from osism.services.websocket_manager import (
    EventMessage,
    WebSocketConnection,
    WebSocketManager,
)

# The docs' specification of the filters (docs/reference/wire-protocol.md,
# section "Filters"), written out here as data so that the property checks
# the code against the documentation and not against its own tables.
#
# "the emitting service": data._osism.service, else the service the event
# type belongs to, per the table in docs/reference/openstack-notifications.md
# (its "event types" column, plus compute/nova, network/neutron, ... of
# upstream osism's rule). volume.usage is nova's, but the segment "volume" is
# cinder's: that one event type is not generated.
DOCS_SERVICE_OF_SEGMENT = {
    "instance": "nova",
    "service": "nova",
    "aggregate": "nova",
    "flavor": "nova",
    "keypair": "nova",
    "server_group": "nova",
    "compute_task": "nova",
    "metrics": "nova",
    "libvirt": "nova",
    "compute": "nova",
    "nova": "nova",
    "baremetal": "ironic",
    "network": "neutron",
    "neutron": "neutron",
    "subnet": "neutron",
    "port": "neutron",
    "router": "neutron",
    "floatingip": "neutron",
    "security_group": "neutron",
    "security_group_rule": "neutron",
    "volume": "cinder",
    "cinder": "cinder",
    "snapshot": "cinder",
    "backup": "cinder",
    "consistencygroup": "cinder",
    "cgsnapshot": "cinder",
    "group": "cinder",
    "group_snapshot": "cinder",
    "image": "glance",
    "glance": "glance",
    "task": "glance",
    "identity": "keystone",
    "keystone": "keystone",
}
# "the seed's service types match every event of their service"
DOCS_SEED_TYPES = {
    "compute": "nova",
    "network": "neutron",
    "volume": "cinder",
    "image": "glance",
    "identity": "keystone",
    "baremetal": "ironic",
}
DOCS_SERVICES = ["nova", "ironic", "neutron", "cinder", "glance", "keystone"]
# data._osism.priority is upper case; WARN and WARNING are the same.
DOCS_PRIORITIES = ["INFO", "WARN", "WARNING", "ERROR", "CRITICAL", "AUDIT"]
DOCS_PRIORITIES += ["DEBUG", "SAMPLE"]

SEGMENTS = sorted(DOCS_SERVICE_OF_SEGMENT) + ["foo", "unknown", ""]
OBJECT_KEYS = ["ironic_object.data", "nova_object.data", "neutron_object.data"]
OBJECT_KEYS += ["cinder_object.data", "glance_object.data", "keystone_object.data"]

words = st.text(alphabet="abcn.-1", max_size=8)
event_types = st.one_of(
    words,
    st.text(max_size=20),
    st.builds(
        lambda s, rest: f"{s}.{rest}" if s else rest, st.sampled_from(SEGMENTS), words
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
# Event filters: exact types and patterns ("*" any run of characters).
event_filter_lists = st.lists(
    st.one_of(words, st.text(alphabet="abcn.-1*", max_size=8)), max_size=3
)
# Priority filters as clients may write them (case-insensitive).
priority_filter_lists = st.lists(
    st.sampled_from(DOCS_PRIORITIES).flatmap(
        lambda p: st.sampled_from([p, p.lower(), p.capitalize()])
    ),
    max_size=3,
)
# data._osism as the listener sets it (service, priority), or no metadata.
metas = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "service": st.sampled_from(DOCS_SERVICES),
            "priority": st.sampled_from(DOCS_PRIORITIES),
        },
    ),
)
# Well inside the protocol's bounds (a few entries, short ones).
MAX_ENTRIES = min(5, MAX_FILTER_ENTRIES)
MAX_LENGTH = min(20, MAX_FILTER_LENGTH)


def same_priority(value: str) -> str:
    upper = value.upper()
    return "WARN" if upper == "WARNING" else upper


def reference_matches(
    events: List[str],
    nodes: List[str],
    services: List[str],
    priorities: List[str],
    event: EventMessage,
) -> bool:
    """The documented rules: kinds are AND-ed, within a kind any entry may
    match, an empty kind matches everything."""
    meta = event.data.get("_osism") or {}
    segment = event.event_type.split(".")[0] if event.event_type else "unknown"
    emitter = meta.get("service") or DOCS_SERVICE_OF_SEGMENT.get(segment)
    priority = meta.get("priority")
    return (
        (
            not events
            or any(
                (
                    fnmatchcase(event.event_type, entry)
                    if "*" in entry
                    else event.event_type == entry
                )
                for entry in events
            )
        )
        and (not nodes or (event.node_name is not None and event.node_name in nodes))
        and (
            not services
            or any(
                entry == segment
                or (emitter is not None and emitter == entry)
                or (emitter is not None and DOCS_SEED_TYPES.get(entry) == emitter)
                for entry in services
            )
        )
        and (
            not priorities
            or (
                priority is not None
                and same_priority(priority) in map(same_priority, priorities)
            )
        )
    )


class TestMatchesFiltersProperty:
    @settings(deadline=None)
    @given(
        event_filter_lists,
        filter_lists,
        st.lists(st.sampled_from(SEGMENTS + DOCS_SERVICES), max_size=3),
        priority_filter_lists,
        event_types,
        st.one_of(st.none(), words),
        metas,
    )
    def test_matches_filters_agrees_with_the_readme(
        self,
        events: List[str],
        nodes: List[str],
        services: List[str],
        priorities: List[str],
        event_type: str,
        node_name: Optional[str],
        meta: Optional[Dict[str, str]],
    ) -> None:
        connection = WebSocketConnection(MagicMock())
        connection.event_filters = events
        connection.node_filters = nodes
        connection.service_filters = services
        connection.priority_filters = priorities
        data: Dict[str, Any] = {} if meta is None else {"_osism": meta}
        event = EventMessage(event_type, "openstack", data, node_name)
        assert connection.matches_filters(event) is reference_matches(
            events, nodes, services, priorities, event
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
