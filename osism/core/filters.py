"""Client filters, compiled once when they are set, cheap per event.

- ``event_filters``: an entry without ``*`` is an exact event type (a set
  lookup); an entry with ``*`` is a pattern, ``*`` matching any run of
  characters, dots included (``baremetal.node.provision_set.*``,
  ``*.error``). All patterns of a client are one compiled regex.
- ``service_filters``: an entry matches the first segment of the event type
  (upstream osism's ``service_type``: ``baremetal``, ``compute``, ...) or
  the service that emitted the event (``nova``, ``ironic``, ...); a service
  type upstream osism gives a service also matches every event of it:
  ``compute`` every nova event (``instance.*``, ``service.*``, ...),
  ``network`` every neutron event, ``volume`` cinder, ``image`` glance,
  ``identity`` keystone, ``baremetal`` ironic.
- ``priority_filters``: oslo.messaging priorities, case-insensitive, kept in
  upper case; ``WARN`` (what oslo sends) and ``WARNING`` are the same.
"""

import re
from typing import Any, FrozenSet, Iterable, Mapping, Optional, Pattern, Tuple

from osism.core.notifications import META_KEY, SERVICE_OF_SEGMENT

PRIORITIES = ("AUDIT", "CRITICAL", "DEBUG", "ERROR", "INFO", "SAMPLE", "WARN")
PRIORITY_ALIASES = {"WARNING": "WARN"}
# Upstream osism's service types and the service each stands for.
SERVICE_TYPES = {
    "baremetal": "ironic",
    "compute": "nova",
    "network": "neutron",
    "volume": "cinder",
    "image": "glance",
    "identity": "keystone",
}
_PATTERN_CHARS = re.compile(r"[A-Za-z0-9_\-:.*]+")


def pattern_error(entry: str) -> Optional[str]:
    """Why an event_filters entry with ``*`` is not a valid pattern; None if
    it is (or has no ``*``: exact entries are compared as they are)."""
    if "*" not in entry:
        return None
    if not _PATTERN_CHARS.fullmatch(entry):
        bad = next(c for c in entry if not _PATTERN_CHARS.fullmatch(c))
        return (
            f"event_filters entry {entry!r}: character {bad!r} is not allowed in "
            "a pattern (letters, digits, '_', '-', ':', '.' and '*')"
        )
    if "" in entry.split("."):
        return f"event_filters entry {entry!r}: empty segment between dots"
    return None


def priority_error(entry: str) -> Optional[str]:
    """Why a priority_filters entry is not a priority; None if it is one."""
    if normalise_priority(entry) in PRIORITIES:
        return None
    return (
        f"priority_filters entry {entry!r} is not a notification priority; "
        f"use one of {', '.join(PRIORITIES)} (or WARNING)"
    )


def normalise_priority(entry: str) -> str:
    upper = entry.strip().upper()
    return PRIORITY_ALIASES.get(upper, upper)


def compile_events(
    entries: Iterable[str],
) -> Tuple[FrozenSet[str], Optional[Pattern[str]]]:
    """(exact entries, one regex for the patterns or None)."""
    exact = set()
    patterns = []
    for entry in entries:
        if "*" in entry:
            parts = (re.escape(part) for part in entry.split("*"))
            patterns.append(".*".join(parts))
        else:
            exact.add(entry)
    regex = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
    return frozenset(exact), regex


def compile_services(entries: Iterable[str]) -> Tuple[FrozenSet[str], FrozenSet[str]]:
    """(first segments that match, emitting services that match)."""
    segments = frozenset(entries)
    services = set(segments)
    services.update(SERVICE_TYPES[s] for s in segments if s in SERVICE_TYPES)
    return segments, frozenset(services)


def compile_priorities(entries: Iterable[str]) -> FrozenSet[str]:
    return frozenset(normalise_priority(entry) for entry in entries)


def emitting_service(segment: str, data: Mapping[str, Any]) -> Optional[str]:
    """The service in ``data["_osism"]``, else the one its event type names."""
    meta = data.get(META_KEY)
    if isinstance(meta, dict):
        service = meta.get("service")
        if isinstance(service, str):
            return service
    return SERVICE_OF_SEGMENT.get(segment)


def priority_of(data: Mapping[str, Any]) -> Optional[str]:
    """The priority in ``data["_osism"]`` (WARNING as WARN); None without one."""
    meta = data.get(META_KEY)
    if isinstance(meta, dict):
        priority = meta.get("priority")
        if isinstance(priority, str):
            return PRIORITY_ALIASES.get(priority, priority)
    return None
