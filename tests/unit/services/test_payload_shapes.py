"""node_name and resource_id per service and payload shape.

The payloads follow the services' notification documentation (nova's
versioned notification reference and its legacy ``compute.instance.*``
format, ironic's admin/notifications, neutron's API notifications, cinder's
and glance's usage notifications, keystone's event_notifications: basic and
CADF). Each row says what the notification is about and where it ran.
"""

from typing import Any, Dict, Optional

import pytest

from osism.core.notifications import (
    META_FIELDS,
    META_KEY,
    event_fields,
    resource_kind,
    service_of,
)

UUID = "178b0921-8f85-4257-88b6-2e743b5a975c"


def fields(
    event_type: str, payload: Dict[str, Any], service: Optional[str] = None
) -> tuple:
    meta = {"service": service} if service else {}
    data, node_name = event_fields(event_type, payload, meta)
    return node_name, data["resource_id"]


def nova(**data: Any) -> Dict[str, Any]:
    return {
        "nova_object.name": "Payload",
        "nova_object.namespace": "nova",
        "nova_object.version": "1.0",
        "nova_object.data": data,
    }


class TestNovaVersioned:
    @pytest.mark.parametrize(
        "event_type, payload, expected",
        [
            # InstanceActionPayload: the instance, on its compute host
            (
                "instance.delete.end",
                nova(uuid=UUID, host="cmp1", node="cmp1.hv", display_name="vm"),
                ("cmp1", UUID),
            ),
            # no host (yet): the hypervisor node it is placed on
            ("instance.update", nova(uuid=UUID, host=None, node="hv1"), ("hv1", UUID)),
            # a build that failed before scheduling: neither
            (
                "instance.create.error",
                nova(uuid=UUID, host=None, node=None),
                (None, UUID),
            ),
            # ServiceStatusPayload: the service, on its host
            (
                "service.update",
                nova(uuid="s-1", host="host1", binary="nova-compute"),
                ("host1", "s-1"),
            ),
            # AggregatePayload: an aggregate spans hosts, it is on none
            (
                "aggregate.create.end",
                nova(uuid="a-1", id=1, name="agg", hosts=["h1"]),
                (None, "a-1"),
            ),
            # FlavorPayload: flavorid is its API id
            ("flavor.create", nova(flavorid="f-1", name="m1.tiny"), (None, "f-1")),
            # KeypairPayload: a keypair is named, it has no id
            (
                "keypair.import.end",
                nova(name="my-key", user_id="u", fingerprint="1e:2c"),
                (None, "my-key"),
            ),
            ("server_group.create", nova(uuid="g-1", name="grp"), (None, "g-1")),
            # ComputeTaskPayload: the instance the task was for
            (
                "compute_task.build_instances.error",
                nova(instance_uuid=UUID, reason={}, state="error"),
                (None, UUID),
            ),
            # MetricsPayload: the host the metrics are of, no resource id
            (
                "metrics.update",
                nova(host="cmp1", nodename="cmp1.hv", monitor_metrics=[]),
                ("cmp1", None),
            ),
            ("libvirt.connect.error", nova(ip="10.0.0.1", reason={}), (None, None)),
        ],
    )
    def test_versioned_payloads(
        self, event_type: str, payload: Dict[str, Any], expected: tuple
    ) -> None:
        assert fields(event_type, payload) == expected

    def test_volume_usage_from_nova_is_about_the_volume(self) -> None:
        # nova's volume.usage arrives on nova's exchange: service nova
        payload = nova(volume_id="v-1", instance_uuid=UUID, read_bytes=0)
        assert fields("volume.usage", payload, service="nova") == (None, "v-1")

    def test_seed_prefix_keeps_the_seed_mapping(self) -> None:
        # compute.* with nova_object.data: host, else name (the seed), before node
        payload = nova(uuid=UUID, host=None, name="vm1", node="hv1")
        assert fields("compute.instance.update", payload) == ("vm1", UUID)


class TestNovaLegacy:
    @pytest.mark.parametrize(
        "event_type, payload, expected",
        [
            (
                "compute.instance.delete.end",
                {
                    "instance_id": UUID,
                    "host": "cmp1",
                    "node": "hv1",
                    "state": "deleted",
                },
                ("cmp1", UUID),
            ),
            (
                "compute.instance.create.error",
                {"instance_id": UUID, "host": None, "node": None},
                (None, UUID),
            ),
            (
                "compute.instance.exists",
                {"instance_id": UUID, "host": "", "node": "hv2"},
                ("hv2", UUID),
            ),
            ("aggregate.create.end", {"name": "agg", "aggregate_id": 7}, (None, "7")),
            (
                "keypair.create.end",
                {"tenant_id": "t", "user_id": "u", "key_name": "k1"},
                (None, "k1"),
            ),
            # an object key whose value is no object: read as a flat payload
            (
                "instance.update",
                {"nova_object.data": "odd", "host": "h1", "instance_id": UUID},
                ("h1", UUID),
            ),
        ],
    )
    def test_flat_payloads(
        self, event_type: str, payload: Dict[str, Any], expected: tuple
    ) -> None:
        assert fields(event_type, payload) == expected


class TestIronic:
    def test_node_is_its_name_and_uuid(self) -> None:
        payload = {"ironic_object.data": {"name": "bm-1", "uuid": "n-1"}}
        assert fields("baremetal.node.power_set.end", payload) == ("bm-1", "n-1")

    def test_port_has_no_node_name(self) -> None:
        payload = {
            "ironic_object.data": {"uuid": "p-1", "node_uuid": "n-1", "address": "aa"}
        }
        assert fields("baremetal.port.create.end", payload) == (None, "p-1")

    def test_ironic_sends_only_versioned_payloads(self) -> None:
        assert fields("baremetal.node.update.end", {"uuid": "n-1"}) == (None, None)


class TestNeutron:
    @pytest.mark.parametrize(
        "event_type, payload, expected",
        [
            (
                "network.create.end",
                {"network": {"id": "n-1", "name": "x"}},
                (None, "n-1"),
            ),
            (
                "subnet.update.end",
                {"subnet": {"id": "s-1", "network_id": "n"}},
                (None, "s-1"),
            ),
            ("router.create.end", {"router": {"id": "r-1"}}, (None, "r-1")),
            (
                "floatingip.update.end",
                {"floatingip": {"id": "f-1", "port_id": "p"}},
                (None, "f-1"),
            ),
            (
                "security_group.create.end",
                {"security_group": {"id": "g-1"}},
                (None, "g-1"),
            ),
            (
                "security_group_rule.create.end",
                {"security_group_rule": {"id": "r-1", "security_group_id": "g"}},
                (None, "r-1"),
            ),
            # a bound port: the host it is bound to
            (
                "port.update.end",
                {"port": {"id": "p-1", "binding:host_id": "cmp1", "device_id": "d"}},
                ("cmp1", "p-1"),
            ),
            # not bound (yet): the device it belongs to
            (
                "port.create.end",
                {"port": {"id": "p-1", "binding:host_id": "", "device_id": "d-1"}},
                ("d-1", "p-1"),
            ),
            # the resource next to other keys
            (
                "port.update.end",
                {"port": {"id": "p-4", "device_id": "d"}, "request_id": "req-1"},
                ("d", "p-4"),
            ),
            # delete.end carries only the id
            ("port.delete.end", {"port_id": "p-2"}, (None, "p-2")),
            ("network.delete.end", {"network_id": "n-2"}, (None, "n-2")),
            # bulk create of one resource
            (
                "port.create.end",
                {"ports": [{"id": "p-3", "device_id": "d"}]},
                ("d", "p-3"),
            ),
            # bulk create of several: no single resource
            (
                "network.create.end",
                {"networks": [{"id": "a"}, {"id": "b"}]},
                (None, None),
            ),
            # router.interface.create: the router's id
            (
                "router.interface.create",
                {"router_interface": {"id": "r-1", "port_id": "p", "subnet_id": "s"}},
                (None, "r-1"),
            ),
        ],
    )
    def test_resource_dicts(
        self, event_type: str, payload: Dict[str, Any], expected: tuple
    ) -> None:
        assert fields(event_type, payload) == expected

    def test_a_resource_named_by_the_exchange_only(self) -> None:
        # QoS policies: "policy" says nothing by itself; neutron's exchange does
        payload = {"policy": {"id": "q-1", "name": "gold"}}
        assert fields("policy.create.end", payload, service="neutron") == (
            None,
            "q-1",
        )
        assert fields("policy.create.end", payload) == (None, None)


class TestCinder:
    @pytest.mark.parametrize(
        "event_type, payload, expected",
        [
            (
                "volume.delete.end",
                {"volume_id": "v-1", "host": "h@lvm#pool", "display_name": "data"},
                ("h@lvm#pool", "v-1"),
            ),
            (
                "volume.create.start",
                {"volume_id": "v-1", "host": None, "display_name": "d"},
                (None, "v-1"),
            ),
            (
                "snapshot.delete.end",
                {"snapshot_id": "s-1", "volume_id": "v-1", "display_name": "snap"},
                (None, "s-1"),
            ),
            (
                "backup.create.end",
                {"backup_id": "b-1", "volume_id": "v-1", "host": "bk1"},
                ("bk1", "b-1"),
            ),
            (
                "consistencygroup.create.end",
                {"consistencygroup_id": "c-1", "name": "cg"},
                (None, "c-1"),
            ),
            (
                "group_snapshot.create.end",
                {"group_snapshot_id": "gs-1", "group_id": "g-1"},
                (None, "gs-1"),
            ),
            # without <resource>_id: its id, else the volume's
            ("snapshot.update.end", {"id": "s-2", "volume_id": "v-1"}, (None, "s-2")),
            ("backup.restore.end", {"volume_id": "v-1"}, (None, "v-1")),
        ],
    )
    def test_flat_payloads(
        self, event_type: str, payload: Dict[str, Any], expected: tuple
    ) -> None:
        assert fields(event_type, payload) == expected


class TestGlance:
    @pytest.mark.parametrize(
        "event_type, payload, expected",
        [
            ("image.delete", {"id": "i-1", "name": "cirros"}, (None, "i-1")),
            (
                "image.member.create",
                {"image_id": "i-1", "member_id": "p"},
                (None, "i-1"),
            ),
            ("image.send", {"image_id": "i-1", "bytes_sent": 10}, (None, "i-1")),
            ("task.success", {"id": "t-1", "type": "import"}, (None, "t-1")),
            # an error notification's string payload, wrapped by the listener
            ("image.upload", {"payload": "Image storage media is full"}, (None, None)),
        ],
    )
    def test_flat_payloads(
        self, event_type: str, payload: Dict[str, Any], expected: tuple
    ) -> None:
        assert fields(event_type, payload) == expected

    def test_a_metadef_namespace_is_named_by_its_namespace(self) -> None:
        payload = {"namespace": "OS::Compute::Quota", "display_name": "Quota"}
        assert fields("metadef_namespace.create", payload, service="glance") == (
            None,
            "OS::Compute::Quota",
        )


class TestKeystone:
    def test_basic_format_names_the_resource(self) -> None:
        payload = {"resource_info": "u-1"}
        assert fields("identity.user.deleted", payload) == (None, "u-1")

    def test_cadf_target_is_the_resource(self) -> None:
        payload = {
            "typeURI": "http://schemas.dmtf.org/cloud/audit/1.0/event",
            "eventType": "activity",
            "action": "authenticate",
            "outcome": "success",
            "initiator": {"typeURI": "service/security/account/user", "id": "u-1"},
            "target": {"typeURI": "service/security/account/user", "id": "t-1"},
            "observer": {"typeURI": "service/security", "id": "o-1"},
        }
        assert fields("identity.authenticate", payload) == (None, "t-1")

    def test_cadf_without_target_id_falls_back_to_resource_info(self) -> None:
        payload = {"target": {"typeURI": "data/security/project"}, "resource_info": "p"}
        assert fields("identity.project.updated", payload) == (None, "p")

    def test_basic_role_assignment_names_no_single_resource(self) -> None:
        payload = {
            "role": "r",
            "project": "p",
            "user": "u",
            "inherited_to_projects": False,
        }
        assert fields("identity.role_assignment.created", payload) == (None, None)


class TestServiceOf:
    @pytest.mark.parametrize(
        "publisher_id, expected",
        [
            ("nova-compute:host1", "nova"),
            ("nova-api:ctl1", "nova"),
            ("compute.host1", "nova"),
            ("compute:host1", "nova"),
            ("compute.host1.example.com", "nova"),
            ("neutron-openvswitch-agent.net1", "neutron"),
            ("ironic-conductor.hostname01", "ironic"),
            ("ironic-api.hostname02", "ironic"),
            ("network.devstack", "neutron"),
            ("neutron-server.ctl", "neutron"),
            ("volume.devstack@lvmdriver-1#lvmdriver-1", "cinder"),
            ("snapshot.devstack@lvmdriver-1", "cinder"),
            ("image.localhost", "glance"),
            ("identity.host1234", "keystone"),
        ],
    )
    def test_publisher_id_names_the_service(
        self, publisher_id: str, expected: str
    ) -> None:
        assert service_of("unrelated.event", publisher_id) == expected

    @pytest.mark.parametrize(
        "event_type, expected",
        [
            ("instance.update", "nova"),
            ("compute.instance.update", "nova"),
            ("service.update", "nova"),
            ("baremetal.node.update.end", "ironic"),
            ("port.create.end", "neutron"),
            ("snapshot.create.end", "cinder"),
            ("image.create", "glance"),
            ("identity.project.created", "keystone"),
            ("foo.bar", None),
            ("", None),
        ],
    )
    def test_else_the_event_type_does(
        self, event_type: str, expected: Optional[str]
    ) -> None:
        assert service_of(event_type, None) == expected

    def test_the_metadata_service_wins(self) -> None:
        data, _ = event_fields(
            "volume.usage", {}, {"service": "Nova", "publisher_id": "volume.h"}
        )
        assert data[META_KEY]["service"] == "nova"

    @pytest.mark.parametrize(
        "event_type, kind",
        [
            ("compute.instance.create.end", "instance"),
            ("instance.create.end", "instance"),
            ("baremetal.node.power_set.end", "node"),
            ("port.create.end", "port"),
            ("compute", "compute"),
            ("compute.exception", "exception"),
            ("nova.instance.update", "instance"),
        ],
    )
    def test_resource_kind(self, event_type: str, kind: str) -> None:
        assert resource_kind(event_type) == kind


class TestMetadataInData:
    def test_no_metadata_keeps_the_seed_data_exactly(self) -> None:
        payload = {"ironic_object.data": {"name": "n", "uuid": "u"}}
        data, _ = event_fields("baremetal.node.power_set.end", payload)
        assert data == {**payload, "service_type": "baremetal", "resource_id": "u"}

    def test_metadata_has_every_field(self) -> None:
        meta = {
            "service": "ironic",
            "priority": "error",
            "message_id": "m-1",
            "publisher_id": "ironic-conductor.h",
            "emitted_at": "2024-01-01T12:00:00.123456Z",
        }
        data, _ = event_fields("baremetal.node.power_set.error", {}, meta)
        assert data[META_KEY] == dict(meta, priority="ERROR")

    def test_missing_fields_are_none_and_the_service_is_derived(self) -> None:
        data, _ = event_fields("instance.update", {}, {"priority": "INFO"})
        assert data[META_KEY] == {
            "service": "nova",
            "priority": "INFO",
            "message_id": None,
            "publisher_id": None,
            "emitted_at": None,
        }

    def test_without_a_service_the_publisher_id_names_it(self) -> None:
        meta = {"publisher_id": "neutron-server.net1"}
        data, _ = event_fields("thing.update", {}, meta)
        assert data[META_KEY]["service"] == "neutron"

    def test_values_that_are_not_strings_are_ignored(self) -> None:
        data, _ = event_fields("a.b", {}, {"priority": 3, "message_id": ["x"]})
        assert data[META_KEY]["priority"] is None
        assert data[META_KEY]["message_id"] is None

    def test_a_payload_osism_key_is_kept_inside_ours(self) -> None:
        payload = {"_osism": {"mine": True}, "x": 1}
        data, _ = event_fields("a.b", payload, {"priority": "INFO"})
        assert data[META_KEY]["original"] == {"mine": True}
        assert data[META_KEY]["priority"] == "INFO"
        assert data["x"] == 1

    def test_a_payload_osism_key_is_never_mistaken_for_metadata(self) -> None:
        # without metadata ours is still added, so _osism is always ours
        payload = {"_osism": {"priority": "FAKE"}}
        data, _ = event_fields("a.b", payload)
        assert set(data[META_KEY]) == set(META_FIELDS) | {"original"}
        assert data[META_KEY]["priority"] is None
        assert data[META_KEY]["original"] == {"priority": "FAKE"}
        assert payload == {"_osism": {"priority": "FAKE"}}

    @pytest.mark.parametrize("payload", [["a"], "text", None, 3])
    def test_a_payload_that_is_not_an_object_raises(self, payload: Any) -> None:
        with pytest.raises(TypeError):
            event_fields("image.upload", payload, {"priority": "ERROR"})


class TestVersionedObjectsUnderOtherEventTypes:
    """A service's ``<project>_object.data`` is read whatever the event type
    says, once the service is known (from the exchange or publisher_id)."""

    @pytest.mark.parametrize(
        "service, key, data, expected",
        [
            ("ironic", "ironic_object.data", {"name": "bm", "uuid": "u"}, ("bm", "u")),
            (
                "neutron",
                "neutron_object.data",
                {"device_id": "d", "id": "i"},
                ("d", "i"),
            ),
            (
                "neutron",
                "neutron_object.data",
                {"name": "n", "device_id": "d", "uuid": "u"},
                ("n", "u"),
            ),
            (
                "cinder",
                "cinder_object.data",
                {"display_name": "v", "uuid": "u"},
                ("v", "u"),
            ),
            (
                "cinder",
                "cinder_object.data",
                {"name": "n", "display_name": "v", "id": "i", "uuid": "u"},
                ("n", "i"),
            ),
            ("glance", "glance_object.data", {"name": "img", "id": "i"}, ("img", "i")),
            ("glance", "glance_object.data", {"uuid": "u"}, (None, "u")),
            (
                "keystone",
                "keystone_object.data",
                {"name": "p", "uuid": "u"},
                ("p", "u"),
            ),
            (
                "keystone",
                "keystone_object.data",
                {"id": "i", "uuid": "u"},
                (None, "i"),
            ),
        ],
    )
    def test_object_data_of_the_service(
        self, service: str, key: str, data: Dict[str, Any], expected: tuple
    ) -> None:
        assert fields("thing.update", {key: data}, service=service) == expected

    def test_neutron_plural_of_a_resource_ending_in_y(self) -> None:
        payload = {"policies": [{"id": "q-1"}]}
        assert fields("policy.create.end", payload, service="neutron") == (None, "q-1")

    def test_neutron_plural_of_a_resource_ending_in_ey(self) -> None:
        payload = {"keys": [{"id": "k-1"}], "request_id": "req-1"}
        assert fields("key.create.end", payload, service="neutron") == (None, "k-1")


def test_a_publisher_id_no_table_knows_leaves_it_to_the_event_type() -> None:
    assert service_of("instance.update", "octavia-worker.h1") == "nova"
    assert service_of("loadbalancer.create", "octavia-worker.h1") is None
