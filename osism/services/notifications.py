"""What an OpenStack notification says about the resource it concerns.

Each service wraps its versioned object in ``<project>_object.data``; from it
we take the node name clients filter on and the resource id.
"""

from typing import Any, Dict, Mapping, Optional, Tuple

# The key of ``data`` that carries the notification's own metadata (service,
# priority, message_id, publisher_id, emitted_at).
META_KEY = "_osism"

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


def extract_identity(
    service_type: str, payload: Dict[str, Any]
) -> Tuple[Optional[str], Optional[str]]:
    """(node_name, resource_id) of a notification; None where it says nothing."""
    extractor = EXTRACTORS.get(service_type)
    if extractor is None:
        return None, None
    key, node_keys, id_keys = extractor
    data = payload.get(key)
    if not isinstance(data, dict):
        return None, None
    return _first(data, node_keys), _first(data, id_keys)


def _first(data: Dict[str, Any], keys: Tuple[str, ...]) -> Optional[str]:
    for key in keys:
        value = data.get(key)
        if value:
            return value if isinstance(value, str) else str(value)
    return None


def event_fields(
    event_type: str, payload: Dict[str, Any], meta: Optional[Mapping[str, Any]] = None
) -> Tuple[Dict[str, Any], Optional[str]]:
    """(data, node_name) of the event a notification becomes.

    ``data`` is a copy of the payload plus ``service_type`` and ``resource_id``
    (and the metadata under META_KEY). Raises TypeError for a payload that is
    not an object.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"payload is {type(payload).__name__}, not an object")
    service_type = service_type_of(event_type)
    node_name, resource_id = extract_identity(service_type, payload)
    data = payload.copy()
    data["service_type"] = service_type
    data["resource_id"] = resource_id
    return data, node_name
