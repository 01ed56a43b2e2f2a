"""The events the bench publishes, and the filters that pick 1/10 of them.

Ten event types over six services, each with the versioned-object payload
its service sends, so the server extracts node names and resource ids as in
production. ``seq`` and ``sent`` (the publish time, ``time.time()``) lead the
payload; the clients read them back from every frame.
"""

import base64
import json
import os
import time
import uuid
from typing import Any, Dict, List, Tuple

EVENT_TYPES: Tuple[str, ...] = (
    "baremetal.node.power_set.end",
    "baremetal.node.provision_set.end",
    "compute.instance.create.end",
    "compute.instance.delete.end",
    "network.port.create.end",
    "network.port.delete.end",
    "volume.volume.create.end",
    "volume.volume.delete.end",
    "image.image.upload",
    "identity.project.created",
)

_OBJECT_KEYS = {
    "baremetal": "ironic_object.data",
    "compute": "nova_object.data",
    "network": "neutron_object.data",
    "volume": "cinder_object.data",
    "image": "glance_object.data",
    "identity": "keystone_object.data",
}


def filters_for(kind: int) -> Tuple[List[str], List[str]]:
    """(event_filters, service_filters) that let exactly EVENT_TYPES[kind] through."""
    event_type = EVENT_TYPES[kind]
    return [event_type], [event_type.split(".")[0]]


def _template(event_type: str, index: int) -> Dict[str, Any]:
    service = event_type.split(".")[0]
    name = f"{service}-{index:04d}"
    data: Dict[str, Any] = {
        "name": name,
        "uuid": str(uuid.UUID(int=index + 1)),
        "id": str(uuid.UUID(int=index + 1)),
        "host": f"node-{index % 64:03d}",
        "state": "active",
        "updated_at": "2026-01-01T00:00:00Z",
        "project_id": "8f4c2b0e6a1d4c3b9e7f5a2d1c0b9a8e",
    }
    return {_OBJECT_KEYS[service]: data, "priority": "INFO", "publisher_id": service}


# Incompressible filler, so that permessage-deflate cannot shrink it away.
_PADDING = base64.b64encode(os.urandom(49152)).decode()

_TEMPLATES = [_template(event_type, i) for i, event_type in enumerate(EVENT_TYPES)]


def message(seq: int, padding: int = 0) -> str:
    """The JSON text the listener would publish for event number ``seq``."""
    kind = seq % len(EVENT_TYPES)
    payload: Dict[str, Any] = {"seq": seq, "sent": time.time()}
    payload.update(_TEMPLATES[kind])
    if padding:
        payload["padding"] = _PADDING[:padding]
    return json.dumps({"event_type": EVENT_TYPES[kind], "payload": payload})
