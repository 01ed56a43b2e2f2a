"""The body of ``POST /v1/events/openstack``."""

from typing import Any, Dict, Optional

from pydantic import BaseModel, Field, field_validator

from osism.core.metadata import check_priority, iso_utc
from osism.core.notifications import META_FIELDS


class PublishRequest(BaseModel):
    """An OpenStack notification to hand to the bridge, with its metadata
    (each optional; see notifications.META_FIELDS)."""

    event_type: str = Field(min_length=1, max_length=255)
    payload: Dict[str, Any]
    priority: Optional[str] = None
    message_id: Optional[str] = Field(None, min_length=1, max_length=255)
    publisher_id: Optional[str] = Field(None, min_length=1, max_length=255)
    service: Optional[str] = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z][A-Za-z0-9_-]*$"
    )
    emitted_at: Optional[str] = None

    @field_validator("priority")
    @classmethod
    def _priority(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_priority(value)

    @field_validator("emitted_at")
    @classmethod
    def _emitted_at(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else iso_utc(value)

    def meta(self) -> Optional[Dict[str, Any]]:
        """The metadata given, None when there is none; as given: an event's
        metadata is normalised where it is read (notification_meta)."""
        found = {
            key: getattr(self, key)
            for key in META_FIELDS
            if getattr(self, key) is not None
        }
        return found or None
