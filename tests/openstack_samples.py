"""The real OpenStack notifications in tests/data/openstack.

Each file is the oslo.messaging message dict ``{message_id, publisher_id,
event_type, priority, payload, timestamp}``; ``expected.json`` says what a
correct system derives from each (service_type, service, node_name,
resource_id).
"""

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

# Beside this module, so a copy of the tree (mutmut's mutants/) finds them too.
SAMPLES_DIR = Path(__file__).resolve().parent / "data" / "openstack"
MISSING = "<samples missing>"


@dataclass(frozen=True)
class Sample:
    name: str
    message: Dict[str, Any]
    expected: Dict[str, Optional[str]]

    @property
    def service(self) -> str:
        return str(self.expected["service"])

    def route(self) -> Tuple[str, str]:
        """(exchange, routing key) oslo.messaging publishes it with, the
        services' default configuration: ``<topic>.<priority lower>``."""
        payload = self.message["payload"]
        if self.service == "ironic":
            topic = "ironic_versioned_notifications"
        elif (
            self.service == "nova"
            and isinstance(payload, dict)
            and "nova_object.data" in payload
        ):
            topic = "versioned_notifications"
        else:
            # nova's legacy (unversioned) format and the other services
            topic = "notifications"
        return self.service, f"{topic}.{self.message['priority'].lower()}"

    def envelope(self, message_id: Optional[str] = None) -> bytes:
        """The body on RabbitMQ: the message JSON in oslo's 2.0 envelope, with
        the ``_unique_id`` the amqp driver adds; ``message_id`` replaces the
        sample's (so that repeated runs are not deduplicated)."""
        message = dict(self.message, _unique_id=uuid.uuid4().hex)
        if message_id is not None:
            message["message_id"] = message_id
        return json.dumps(
            {"oslo.version": "2.0", "oslo.message": json.dumps(message)}
        ).encode()


def sample_names() -> List[str]:
    """The sample files named in expected.json; [MISSING] when there are none,
    so that the test using them fails saying where they were looked for."""
    try:
        expected = json.loads((SAMPLES_DIR / "expected.json").read_text())
    except (OSError, ValueError):
        return [MISSING]
    return sorted(expected)


def load_sample(name: str) -> Sample:
    """One sample; fails the test clearly when the directory is missing."""
    if name == MISSING:
        pytest.fail(
            f"the OpenStack samples are missing: expected {SAMPLES_DIR}/expected.json "
            "and the sample files beside it (tests/data/openstack in the repository)"
        )
    expected = json.loads((SAMPLES_DIR / "expected.json").read_text())[name]
    message = json.loads((SAMPLES_DIR / name).read_text())
    return Sample(name, message, expected)


def load_all() -> List[Sample]:
    return [load_sample(name) for name in sample_names()]
