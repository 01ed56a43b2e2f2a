"""What an OpenStack notification says about its resource."""

from typing import Any, Dict, Optional, Tuple

import pytest

from osism.core.notifications import event_fields, service_type_of
from tests.unit.services.openstack import SERVICE_KEYS


class TestServiceTypeOf:
    @pytest.mark.parametrize(
        "event_type, expected",
        [
            ("baremetal.node.power_set.end", "baremetal"),
            ("compute.instance.update", "compute"),
            ("nova.instance.update", "nova"),
            ("network", "network"),
            (".leading.dot", ""),
            ("", "unknown"),
        ],
    )
    def test_service_type_is_first_dot_segment(
        self, event_type: str, expected: str
    ) -> None:
        assert service_type_of(event_type) == expected


def extract_identity(
    service: str, payload: Dict[str, Any]
) -> Tuple[Optional[str], Optional[str]]:
    """(node_name, resource_id) of a notification of ``service``."""
    data, node_name = event_fields(f"{service}.thing.update", payload)
    return node_name, data["resource_id"]


class TestSeedIdentity:
    """The seed's table: an event type's first segment and its
    ``<project>_object.data``."""

    @pytest.mark.parametrize(
        "service, key, data, expected",
        [
            (
                "baremetal",
                "ironic_object.data",
                {"name": "node1", "uuid": "abc-123"},
                ("node1", "abc-123"),
            ),
            (
                "compute",
                "nova_object.data",
                {"host": "h1", "name": "vm1", "uuid": "u1"},
                ("h1", "u1"),
            ),
            ("nova", "nova_object.data", {"name": "vm1", "uuid": "u1"}, ("vm1", "u1")),
            (
                "network",
                "neutron_object.data",
                {"name": "p", "id": "i", "uuid": "u"},
                ("p", "i"),
            ),
            (
                "neutron",
                "neutron_object.data",
                {"device_id": "d1", "uuid": "u2"},
                ("d1", "u2"),
            ),
            ("volume", "cinder_object.data", {"name": "v", "id": "i"}, ("v", "i")),
            (
                "cinder",
                "cinder_object.data",
                {"display_name": "dv", "uuid": "u"},
                ("dv", "u"),
            ),
            ("image", "glance_object.data", {"name": "img", "id": "i"}, ("img", "i")),
            (
                "glance",
                "glance_object.data",
                {"name": "img", "uuid": "u"},
                ("img", "u"),
            ),
            (
                "identity",
                "keystone_object.data",
                {"name": "proj", "id": "i"},
                ("proj", "i"),
            ),
            (
                "keystone",
                "keystone_object.data",
                {"name": "proj", "uuid": "u"},
                ("proj", "u"),
            ),
        ],
    )
    def test_node_name_and_resource_id_from_object_data(
        self,
        service: str,
        key: str,
        data: Dict[str, Any],
        expected: tuple,
    ) -> None:
        assert extract_identity(service, {key: data}) == expected

    @pytest.mark.parametrize("service, key", SERVICE_KEYS)
    def test_missing_object_data_gives_nothing(self, service: str, key: str) -> None:
        assert extract_identity(service, {"other": {"name": "x"}}) == (None, None)

    @pytest.mark.parametrize("data", [["name", "uuid"], "node1", 42, None])
    def test_object_data_that_is_not_a_dict_gives_nothing(self, data: Any) -> None:
        payload = {"ironic_object.data": data}

        assert extract_identity("baremetal", payload) == (None, None)

    def test_unknown_service_gives_nothing(self) -> None:
        payload = {"foo_object.data": {"name": "x", "id": "y"}}

        assert extract_identity("foo", payload) == (None, None)

    @pytest.mark.parametrize(
        "data, expected",
        [
            ({"name": 7, "uuid": 123}, ("7", "123")),
            ({"name": True, "uuid": 1.5}, ("True", "1.5")),
        ],
    )
    def test_non_string_values_are_converted_to_str(
        self, data: Dict[str, Any], expected: tuple
    ) -> None:
        assert extract_identity("baremetal", {"ironic_object.data": data}) == expected

    @pytest.mark.parametrize("falsy", ["", 0, None, [], {}, False])
    def test_falsy_value_is_skipped_for_the_next_key(self, falsy: Any) -> None:
        data = {"host": falsy, "name": "vm1", "uuid": "u1"}

        assert extract_identity("compute", {"nova_object.data": data}) == ("vm1", "u1")

    @pytest.mark.parametrize("falsy", ["", 0, None])
    def test_only_falsy_values_give_none(self, falsy: Optional[Any]) -> None:
        data = {"id": falsy, "uuid": falsy, "name": falsy, "device_id": falsy}

        assert extract_identity("network", {"neutron_object.data": data}) == (
            None,
            None,
        )
