"""The ``osism`` command: run the API, run the listener, publish an event,
watch the events, show the configuration.

``osism api`` and ``osism listener`` (and upstream's spellings ``osism
service api`` / ``osism service listener``) check the settings before they
start: a value that cannot be used stops them with one line on stderr naming
the variable, its value and what is expected, and exit status 2.
"""

import argparse
import json
import logging
import sys
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional

from osism import __version__
from osism.core.logs import LOG_FORMAT

DEFAULT_URL = "http://127.0.0.1:8000"


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    result: int = args.run(args)
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="osism",
        description=(
            "Real-time event stream of the cloud: OpenStack notifications from "
            "RabbitMQ, through Redis, to WebSocket clients."
        ),
        epilog="Run 'osism COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level (default: info)",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    api = commands.add_parser(
        "api",
        help="serve the HTTP and WebSocket API",
        description=(
            "Serve the API with uvicorn. Events reach it through Redis "
            "(REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_USERNAME, REDIS_PASSWORD, "
            "REDIS_TLS; or REDIS_URL redis://user:password@host:port/db, "
            "rediss:// for TLS; or REDIS_SENTINELS host:port,... with "
            "REDIS_SENTINEL_MASTER and REDIS_SENTINEL_PASSWORD; TLS files in "
            "REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE); "
            "without a reachable Redis it runs on its own with an in-process "
            "bridge and keeps trying to connect."
        ),
    )
    add_api_arguments(api)

    from osism.services.listener import consumer as listener_service

    listener = commands.add_parser(
        "listener",
        help="consume OpenStack notifications from RabbitMQ into the bridge",
        description=listener_service.describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listener.set_defaults(run=run_listener)

    service = commands.add_parser(
        "service",
        help="upstream's way of starting a service: 'service api', 'service listener'",
        description=(
            "Start a service the way OSISM's compose files do: 'osism service "
            "api' is 'osism api', 'osism service listener' is 'osism listener'."
        ),
    )
    services = service.add_subparsers(title="services", metavar="SERVICE")
    add_api_arguments(services.add_parser("api", help="same as 'osism api'"))
    services.add_parser("listener", help="same as 'osism listener'").set_defaults(
        run=run_listener
    )

    show = commands.add_parser(
        "config",
        help="print the effective settings (secrets masked); --check validates them",
        description=(
            "Print every setting in effect, one VARIABLE=value a line, secrets "
            "masked as ***. With --check: print 'configuration OK' (exit 0) or "
            "the one line saying which value cannot be used (exit 2)."
        ),
    )
    show.add_argument("--check", action="store_true", help="only validate: exit 0 or 2")
    show.set_defaults(run=run_config)

    publish = commands.add_parser(
        "publish",
        help="send one event to a running API",
        description="POST an event to a running API, which hands it to the bridge.",
    )
    publish.add_argument("event_type", help="e.g. baremetal.node.power_set.end")
    publish.add_argument(
        "--payload", default="{}", help="the payload, a JSON object (default: {})"
    )
    publish.add_argument(
        "--url",
        default=DEFAULT_URL,
        help=f"the API's base URL (default: {DEFAULT_URL})",
    )
    meta = publish.add_argument_group(
        "notification metadata (optional; travels in data._osism)"
    )
    meta.add_argument("--priority", help="INFO, WARN, ERROR, ... (any case)")
    meta.add_argument("--message-id", help="the notification's message_id")
    meta.add_argument("--publisher-id", help="e.g. nova-compute:host1")
    meta.add_argument("--service", help="the emitting service, e.g. nova")
    meta.add_argument(
        "--emitted-at", help="when it was emitted, ISO 8601 (no zone: UTC)"
    )
    publish.set_defaults(run=run_publish)

    from osism.cli import watch as watch_command
    from osism.cli.watch_args import add_arguments as add_watch_arguments

    watch = commands.add_parser(
        "watch",
        help="print the events of a running API, one line each",
        description=(watch_command.__doc__ or "").replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_watch_arguments(watch, DEFAULT_URL)
    watch.set_defaults(run=watch_command.run)
    return parser


def add_api_arguments(api: argparse.ArgumentParser) -> None:
    api.add_argument("--host", default="0.0.0.0", help="address (default: 0.0.0.0)")
    api.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    api.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (default: 1)"
    )
    api.set_defaults(run=run_api)


def run_api(args: argparse.Namespace) -> int:
    from osism import settings

    checked = settings.require()

    import uvicorn

    from osism.transport.server_settings import options_of

    server = checked.server
    options: Dict[str, Any] = {
        "ws": server.uvicorn_ws,
        "loop": server.uvicorn_loop,
        "http": server.uvicorn_http,
    }
    options.update(options_of(server))
    uvicorn.run(
        "osism.api:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        **options,
    )
    return 0


def run_listener(args: argparse.Namespace) -> int:
    from osism import settings

    checked = settings.require()

    from osism.services.listener import process

    return process.run(settings=checked)


def run_config(args: argparse.Namespace) -> int:
    """``osism config``: the effective settings, or with --check a verdict."""
    from osism import config

    try:
        loaded = config.load()
    except config.ConfigError as exc:
        print(f"osism: invalid configuration: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print("configuration OK")
        return 0
    for name, value in config.effective(loaded):
        print(f"{name}={value}")
    return 0


def run_publish(args: argparse.Namespace) -> int:
    try:
        payload: Any = json.loads(args.payload)
    except ValueError as exc:
        print(f"osism publish: --payload is not valid JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(payload, dict):
        print("osism publish: --payload must be a JSON object", file=sys.stderr)
        return 2
    try:
        meta = publish_meta(args)
    except ValueError as exc:
        print(f"osism publish: {exc}", file=sys.stderr)
        return 2
    url = args.url.rstrip("/") + "/v1/events/openstack"
    request_body = {"event_type": args.event_type, "payload": payload, **meta}
    body = json.dumps(request_body).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        print(f"osism publish: {url} answered {exc.code}: {detail}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        print(f"osism publish: cannot reach {url}: {reason}", file=sys.stderr)
        return 1
    print(f"published {args.event_type}: {answer.get('result', 'ok')}")
    return 0


def publish_meta(args: argparse.Namespace) -> Dict[str, str]:
    """The metadata options given, checked; ValueError saying what is wrong."""
    from osism.core.metadata import check_priority, iso_utc

    meta: Dict[str, str] = {}
    for option in ("priority", "message_id", "publisher_id", "service", "emitted_at"):
        value = getattr(args, option, None)
        if value is None:
            continue
        if not value.strip():
            raise ValueError(f"--{option.replace('_', '-')} is empty")
        meta[option] = value.strip()
    if "priority" in meta:
        meta["priority"] = check_priority(meta["priority"])
    if "emitted_at" in meta:
        meta["emitted_at"] = iso_utc(meta["emitted_at"])
    return meta


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
