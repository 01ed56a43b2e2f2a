"""The options of ``osism watch``: filters, output, bounds, token."""

import argparse
from typing import Dict, List, Tuple

FILTER_OPTIONS: Tuple[Tuple[str, str, str], ...] = (
    ("--event", "event_filters", "event type or pattern with * (e.g. compute.*)"),
    ("--node", "node_filters", "node name"),
    ("--service", "service_filters", "service (nova, ironic, ...) or type prefix"),
    ("--priority", "priority_filters", "notification priority (INFO, ERROR, ...)"),
)


def add_arguments(parser: argparse.ArgumentParser, default_url: str) -> None:
    parser.add_argument(
        "--url",
        default=default_url,
        help=f"the API's base URL (default: {default_url})",
    )
    for option, dest, text in FILTER_OPTIONS:
        parser.add_argument(
            option,
            dest=dest,
            action="append",
            metavar=option.lstrip("-").upper(),
            help=f"only events of this {text}; repeat for several",
        )
    parser.add_argument(
        "--json", action="store_true", help="print each event as one JSON document"
    )
    parser.add_argument(
        "--count", type=_positive_int, help="exit after N events (exit status 0)"
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        help="exit after S seconds (status 3 if --count events did not arrive)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="the API token (default: $API_TOKEN); sent as a Bearer header",
    )
    parser.add_argument(
        "--heartbeats", action="store_true", help="print heartbeats as well"
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def filters_of(args: argparse.Namespace) -> Dict[str, List[str]]:
    """The filter kinds given on the command line (others are left out)."""
    return {
        dest: list(getattr(args, dest))
        for _, dest, _ in FILTER_OPTIONS
        if getattr(args, dest, None)
    }
