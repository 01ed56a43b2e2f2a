"""Where each OpenStack service puts the resource and the host in a payload.

The six services send four families of payload shapes:

- versioned objects, ``{"<project>_object.data": {...}}``: Ironic (all its
  notifications), Nova (``versioned_notifications``: ``instance.*``,
  ``service.*``, ``aggregate.*``, ...);
- unversioned resource dicts, Neutron: ``{"port": {...}}``,
  ``{"ports": [...]}`` (bulk), ``{"port_id": "..."}`` (delete);
- flat dicts: Nova's legacy ``compute.instance.*`` (``instance_id``, ``host``,
  ``node``), Cinder (``volume_id``, ``snapshot_id``, ``backup_id``, ...,
  ``host``), Glance (``id``, ``image_id``);
- Keystone: basic ``{"resource_info": "<id>"}`` or CADF (``target.id``).

``identify(service, kind, payload)`` returns ``(node_name, resource_id)``;
``kind`` is the resource the event type names (``instance`` for both
``instance.update`` and ``compute.instance.update``, ``port`` for
``port.create.end``). Nothing here raises for an odd payload: a value that is
missing, empty or of the wrong type gives None.
"""

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

Identity = Tuple[Optional[str], Optional[str]]

# The versioned-object key each service wraps its payload data in.
OBJECT_KEYS: Dict[str, str] = {
    "ironic": "ironic_object.data",
    "nova": "nova_object.data",
    "neutron": "neutron_object.data",
    "cinder": "cinder_object.data",
    "glance": "glance_object.data",
    "keystone": "keystone_object.data",
}

# Nova: the key of the resource id per kind (versioned and legacy payloads).
NOVA_IDS: Dict[str, Tuple[str, ...]] = {
    "instance": ("uuid", "instance_id", "instance_uuid"),
    "aggregate": ("uuid", "aggregate_id", "id"),
    "flavor": ("flavorid", "flavor_id", "id"),
    "keypair": ("name", "key_name"),
    "server_group": ("uuid", "server_group_id", "id"),
    "service": ("uuid", "id"),
    "volume": ("volume_id",),
    "compute_task": ("instance_uuid",),
    "scheduler": ("instance_uuid",),
}
NOVA_DEFAULT_IDS = ("uuid", "instance_id", "instance_uuid", "id")
# The compute host first, then the hypervisor node (nova's ``node``,
# ``nodename`` in metrics.update).
NOVA_NODES = ("host", "node", "nodename")


def first_value(data: Mapping[str, Any], keys: Tuple[str, ...]) -> Optional[str]:
    """The first of ``keys`` with a truthy value, as a string; else None."""
    for key in keys:
        value = data.get(key)
        if value and not isinstance(value, (dict, list)):
            return str(value)
    return None


def _object_data(service: str, payload: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    data = payload.get(OBJECT_KEYS[service])
    return data if isinstance(data, dict) else None


def _nova(kind: str, payload: Mapping[str, Any]) -> Identity:
    data = _object_data("nova", payload)
    source = payload if data is None else data
    ids = NOVA_IDS.get(kind, NOVA_DEFAULT_IDS)
    return first_value(source, NOVA_NODES), first_value(source, ids)


def _ironic(kind: str, payload: Mapping[str, Any]) -> Identity:
    data = _object_data("ironic", payload)
    if data is None:
        return None, None
    return first_value(data, ("name",)), first_value(data, ("uuid",))


def _plural(kind: str) -> str:
    if kind.endswith("y") and not kind.endswith("ey"):
        return kind[:-1] + "ies"
    return kind + "s"


def _neutron(kind: str, payload: Mapping[str, Any]) -> Identity:
    data = _object_data("neutron", payload)
    if data is not None:
        return first_value(data, ("name", "device_id")), first_value(
            data, ("id", "uuid")
        )
    resource = payload.get(kind)
    if not isinstance(resource, dict):
        bulk = payload.get(_plural(kind))
        if isinstance(bulk, list) and len(bulk) == 1 and isinstance(bulk[0], dict):
            resource = bulk[0]
    if not isinstance(resource, dict) and len(payload) == 1:
        # e.g. router.interface.create: {"router_interface": {"id": ...}}
        (only,) = payload.values()
        if isinstance(only, dict) and "id" in only:
            resource = only
    if isinstance(resource, dict):
        node = None
        if kind == "port":
            node = first_value(resource, ("binding:host_id", "device_id"))
        return node, first_value(resource, ("id",))
    return None, first_value(payload, (f"{kind}_id",))


def _cinder(kind: str, payload: Mapping[str, Any]) -> Identity:
    data = _object_data("cinder", payload)
    if data is not None:
        return first_value(data, ("name", "display_name")), first_value(
            data, ("id", "uuid")
        )
    ids = (f"{kind}_id", "id", "volume_id")
    return first_value(payload, ("host",)), first_value(payload, ids)


def _glance(kind: str, payload: Mapping[str, Any]) -> Identity:
    data = _object_data("glance", payload)
    if data is not None:
        return first_value(data, ("name",)), first_value(data, ("id", "uuid"))
    return None, first_value(payload, ("id", "image_id", "namespace"))


def _keystone(kind: str, payload: Mapping[str, Any]) -> Identity:
    data = _object_data("keystone", payload)
    if data is not None:
        return first_value(data, ("name",)), first_value(data, ("id", "uuid"))
    target = payload.get("target")
    if isinstance(target, dict):
        # CADF: the target is what the action was done to.
        resource_id = first_value(target, ("id",))
        if resource_id is not None:
            return None, resource_id
    return None, first_value(payload, ("resource_info",))


# Keyed by Optional[str]: a service nobody named finds nothing, like any
# service we do not know.
SHAPES: Dict[Optional[str], Callable[[str, Mapping[str, Any]], Identity]] = {
    "nova": _nova,
    "ironic": _ironic,
    "neutron": _neutron,
    "cinder": _cinder,
    "glance": _glance,
    "keystone": _keystone,
}


def identify(service: Optional[str], kind: str, payload: Mapping[str, Any]) -> Identity:
    """(node_name, resource_id) of a payload of ``service``; (None, None) for
    a service we do not know."""
    shape = SHAPES.get(service)
    if shape is None:
        return None, None
    return shape(kind, payload)
