"""What an OpenStack notification says: service, node, resource, metadata.

``event_fields`` turns a notification into the ``data`` and ``node_name`` of
the event clients receive. Upstream osism's table (``EXTRACTORS``: an event
type's first segment and its ``<project>_object.data``) is applied first,
exactly as upstream does; what it does not cover is read per service and
payload shape by ``payload_shapes.identify``.

The notification's metadata travels in ``data["_osism"]`` (META_KEY), a dict
with exactly the keys of META_FIELDS (None where unknown):

- ``service``: the emitting service (nova, ironic, neutron, cinder, glance,
  keystone): the one the listener received it from, else derived from the
  ``publisher_id`` (``nova-compute:host1``, ``compute.host1`` -> nova), else
  from the event type (``instance.*``, ``compute.*`` -> nova);
- ``priority``: oslo.messaging's priority, upper case (INFO, WARN, ERROR, ...);
- ``message_id``, ``publisher_id``: as the service sent them;
- ``emitted_at``: when the service emitted it, ISO 8601 with "Z".

``_osism`` is present whenever the event carries metadata (every notification
the listener delivers does); an event without any (a plain publish, as
upstream osism's listener sends) keeps upstream's ``data`` exactly: payload,
``service_type`` and ``resource_id``. ``_osism`` is always ours: a payload
that has its own ``_osism`` key keeps that value, unchanged, at
``data["_osism"]["original"]`` (and then ``_osism`` is present even without
metadata), so nothing is lost and nothing is mistaken for metadata.
"""

from typing import Any, Dict, Mapping, Optional, Tuple

from osism.core.payload_shapes import identify

# The key of ``data`` that carries the notification's own metadata.
META_KEY = "_osism"
META_FIELDS = ("service", "priority", "message_id", "publisher_id", "emitted_at")
# Where a payload's own META_KEY value is kept inside ours.
ORIGINAL_KEY = "original"

SERVICES = ("nova", "ironic", "neutron", "cinder", "glance", "keystone")

# First segment of an event type or publisher_id -> the service that sends it.
SERVICE_OF_SEGMENT: Dict[str, str] = {}
for _name, _segments in (
    (
        "nova",
        "compute nova instance aggregate flavor keypair server_group service "
        "compute_task libvirt metrics api",
    ),
    ("ironic", "baremetal ironic"),
    (
        "neutron",
        "network neutron port subnet subnetpool router floatingip security_group "
        "security_group_rule address_scope trunk segment rbac_policy",
    ),
    (
        "cinder",
        "volume cinder snapshot backup consistencygroup cgsnapshot group "
        "group_snapshot",
    ),
    ("glance", "image glance task"),
    ("keystone", "identity keystone"),
):
    for _segment in _segments.split():
        SERVICE_OF_SEGMENT[_segment] = _name

# service type (first segment of event_type) -> (payload key, node keys, id keys)
EXTRACTORS: Dict[str, Tuple[str, Tuple[str, ...], Tuple[str, ...]]] = {}
for _services, _key, _node_keys, _id_keys in (
    (("baremetal",), "ironic_object.data", ("name",), ("uuid",)),
    (("compute", "nova"), "nova_object.data", ("host", "name"), ("uuid",)),
    (
        ("network", "neutron"),
        "neutron_object.data",
        ("name", "device_id"),
        ("id", "uuid"),
    ),
    (
        ("volume", "cinder"),
        "cinder_object.data",
        ("name", "display_name"),
        ("id", "uuid"),
    ),
    (("image", "glance"), "glance_object.data", ("name",), ("id", "uuid")),
    (("identity", "keystone"), "keystone_object.data", ("name",), ("id", "uuid")),
):
    for _service in _services:
        EXTRACTORS[_service] = (_key, _node_keys, _id_keys)


def service_type_of(event_type: str) -> str:
    """The first dot-separated segment, or "unknown" for an empty type."""
    return event_type.split(".")[0] if event_type else "unknown"


def _first(data: Dict[str, Any], keys: Tuple[str, ...]) -> Optional[str]:
    for key in keys:
        value = data.get(key)
        if value:
            return str(value)
    return None


def service_of(event_type: str, publisher_id: Optional[str] = None) -> Optional[str]:
    """The service that sends ``event_type``: from the publisher_id's first
    segment (``nova-compute:host``, ``compute.host``, ``ironic-conductor.h``),
    else from the event type's; None when neither names one."""
    if publisher_id:
        head = publisher_id.replace(":", ".").partition(".")[0].lower()
        project = head.partition("-")[0]
        if project in SERVICES:
            return project
        if head in SERVICE_OF_SEGMENT:
            return SERVICE_OF_SEGMENT[head]
    return SERVICE_OF_SEGMENT.get(event_type.partition(".")[0])


def resource_kind(event_type: str) -> str:
    """The resource an event type names: its first segment, the second after
    a service name (``compute.instance.update`` -> ``instance``)."""
    first, dot, rest = event_type.partition(".")
    if dot and first in ("compute", "nova", "baremetal"):
        return rest.partition(".")[0]
    return first


def notification_meta(
    event_type: str, meta: Mapping[str, Any]
) -> Dict[str, Optional[str]]:
    """META_FIELDS of an event: what ``meta`` says (strings only), the
    service derived where it does not say, the priority in upper case."""
    found: Dict[str, Optional[str]] = {}
    for field in META_FIELDS:
        value = meta.get(field)
        found[field] = value if isinstance(value, str) and value else None
    if found["service"] is not None:
        found["service"] = found["service"].lower()
    else:
        found["service"] = service_of(event_type, found["publisher_id"])
    if found["priority"] is not None:
        found["priority"] = found["priority"].upper()
    return found


def event_fields(
    event_type: str, payload: Dict[str, Any], meta: Optional[Mapping[str, Any]] = None
) -> Tuple[Dict[str, Any], Optional[str]]:
    """(data, node_name) of the event a notification becomes.

    ``data`` is a copy of the payload plus ``service_type`` and ``resource_id``
    and, when there is metadata, META_KEY (see the module's docstring).
    Raises TypeError for a payload that is not an object.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"payload is {type(payload).__name__}, not an object")
    service_type = service_type_of(event_type)
    with_meta = meta or META_KEY in payload
    info = notification_meta(event_type, meta or {}) if with_meta else None
    extractor = EXTRACTORS.get(service_type)
    versioned = payload.get(extractor[0]) if extractor is not None else None
    if extractor is not None and isinstance(versioned, dict):
        # Upstream osism's table (EXTRACTORS): the event type's prefix and
        # its versioned object.
        node_name = _first(versioned, extractor[1])
        resource_id = _first(versioned, extractor[2])
    else:
        service = info["service"] if info else service_of(event_type)
        node_name, resource_id = identify(service, resource_kind(event_type), payload)
    data = payload.copy()
    data["service_type"] = service_type
    data["resource_id"] = resource_id
    if info is not None:
        osism: Dict[str, Any] = dict(info)
        if META_KEY in payload:
            osism[ORIGINAL_KEY] = payload[META_KEY]
        data[META_KEY] = osism
    return data, node_name
