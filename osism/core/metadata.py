"""The metadata of a notification, checked and in the form the wire carries.

Shared by the listener (what oslo.messaging sent), ``POST
/v1/events/openstack`` and ``osism publish`` (what an operator gives).
"""

from datetime import datetime, timezone

from osism.core.filters import priority_error


def iso_utc(value: str) -> str:
    """A timestamp as ISO 8601 in UTC with "Z": oslo's ``str(utcnow())``
    (``2024-01-01 12:00:00.123456``, no zone: UTC), ISO 8601 with ``T``,
    ``Z`` or an offset. Raises ValueError for anything else."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat() + "Z"


def check_priority(value: str) -> str:
    """A priority in upper case; ValueError naming it when it is none."""
    error = priority_error(value)
    if error is not None:
        raise ValueError(error.replace("priority_filters entry", "priority"))
    return value.strip().upper()
