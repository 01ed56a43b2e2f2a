"""The HTTP and WebSocket API: ``uvicorn osism.api:app``.

The routes of ``create_app`` are shells: each calls one of the plain
functions below, where the logic is (mutmut mutates no decorated function).
"""

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Dict, Optional

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from osism import settings
from osism.api.metrics import ApiMetrics
from osism.api.page import PAGE_PATH, install_page
from osism.api.session import (
    admit,
    handle_client_message,
    peer,
    resume_reply,
    wants_batches,
)
from osism.api.wire import error_reply, resume_id
from osism.api.publish_request import PublishRequest
from osism.api.security import (
    BodySizeLimit,
    SecurityConfig,
    install_log_redaction,
    presented_token,
)
from osism.transport.server_settings import ServerSettings
from osism.services.event_bridge import EventBridge, event_bridge
from osism.services.websocket_manager import (
    CLOSE_TRY_AGAIN_LATER,
    WebSocketManager,
    close_quietly,
    websocket_manager,
)
from osism.api.system_channel import SYSTEM_PATH, SystemState, serve_system_client

logger = logging.getLogger("osism.api.routes")

EVENTS_PATH = "/v1/events/openstack"


def create_app(
    manager: WebSocketManager,
    bridge: EventBridge,
    *,
    security: SecurityConfig,
    heartbeat_interval: float,
    connect_redis: bool,
) -> FastAPI:
    """An app serving ``manager`` and fed by ``bridge``.

    ``heartbeat_interval``: seconds between heartbeats, 0 for none;
    ``connect_redis``: look for Redis in the background while ``bridge`` has none.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        heartbeat = await start_serving(
            manager,
            bridge,
            security=security,
            heartbeat_interval=heartbeat_interval,
            connect_redis=connect_redis,
        )
        try:
            yield
        finally:
            await stop_serving(manager, bridge, heartbeat)

    app = FastAPI(title="osism events", lifespan=lifespan)
    app.add_middleware(BodySizeLimit, max_bytes=security.max_publish_bytes)
    app.add_middleware(ServerSettings)
    metrics = ApiMetrics(lambda: manager.status(), lambda: bridge.status())

    @app.get("/")
    @app.get("/v1")
    async def health() -> Dict[str, str]:
        return health_reply()

    @app.get("/v1/events")
    async def events_info() -> Dict[str, Any]:
        return events_description()

    @app.get("/v1/status")
    async def status() -> Dict[str, Any]:
        return status_report(manager, bridge)

    @app.post(EVENTS_PATH, status_code=202)
    def publish(event: PublishRequest, request: Request) -> Any:
        # A plain function: FastAPI runs it in its thread pool, so a slow
        # Redis never blocks the event loop.
        return accept_publish(event, request, security, bridge, metrics)

    @app.websocket(EVENTS_PATH)
    async def events(websocket: WebSocket) -> None:
        await serve_events(websocket, manager, security)

    # Looked up at each sample, so a replaced bridge or manager status counts.
    system_state = SystemState(lambda: manager.status(), lambda: bridge.status())

    @app.websocket(SYSTEM_PATH)
    async def system(websocket: WebSocket) -> None:
        await serve_system(websocket, manager, security, system_state)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return metrics_page(metrics)

    install_page(app)
    return app


async def start_serving(
    manager: WebSocketManager,
    bridge: EventBridge,
    *,
    security: SecurityConfig,
    heartbeat_interval: float,
    connect_redis: bool,
) -> Optional["asyncio.Task[None]"]:
    """Start serving (see ``create_app``); the heartbeat task, if any."""
    install_log_redaction()
    if security.token is None:
        logger.warning(
            "API_TOKEN is not set: anyone who can reach this port can watch "
            "events and publish them"
        )
    await manager.start()
    bridge.set_websocket_manager(manager)
    manager.replay_source = bridge.replay
    if connect_redis and bridge.status().mode == "local":
        # Serve at once: Redis is looked for in the background (a name
        # that does not resolve can take seconds), quietly.
        bridge.watch_for_redis()
    heartbeat = (
        asyncio.create_task(_heartbeat(manager, heartbeat_interval))
        if heartbeat_interval
        else None
    )
    state = bridge.status()
    logger.info(
        "osism API started; event bridge in %s mode%s",
        state.mode,
        (f", looking for Redis at {state.redis}" if state.watching_for_redis else ""),
    )
    return heartbeat


async def stop_serving(
    manager: WebSocketManager,
    bridge: EventBridge,
    heartbeat: Optional["asyncio.Task[None]"],
) -> None:
    """Stop what ``start_serving`` started."""
    if heartbeat is not None:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)  # pragma: no mutate
    await asyncio.to_thread(bridge.shutdown)
    await manager.stop()
    logger.info("osism API stopped")


def health_reply() -> Dict[str, str]:
    return {"result": "ok"}


def events_description() -> Dict[str, Any]:
    """``GET /v1/events``: the endpoints, the event fields, the client messages."""
    return {
        "websocket": EVENTS_PATH,
        "publish": f"POST {EVENTS_PATH}",
        "page": PAGE_PATH,
        "system": SYSTEM_PATH,
        "metrics": "/metrics",
        "event_fields": [
            "id",
            "timestamp",
            "event_type",
            "source",
            "node_name",
            "data",
        ],
        "client_messages": {
            "set_filters": {
                "action": "set_filters",
                "event_filters": ["<event_type>"],
                "node_filters": ["<node name>"],
                "service_filters": [
                    "<first segment of event_type, or service: nova, ...>"
                ],
                "priority_filters": ["<INFO, WARN, ERROR, ...>"],
                "last_event_id": "<id of the last event seen: resume after it>",
            }
        },
        "resume": {
            "query": f"{EVENTS_PATH}?last_event_id=<id of the last event seen>",
            "message": "set_filters with last_event_id",
            "reply": {
                "type": "filter_update",
                "recovered": "true: every missed event matching the filters "
                "follows; false: the log no longer reaches back to the id or "
                "more than replay_limit were missed (the newest part follows)",
                "replayed": "how many missed events follow the reply",
                "oldest_id": "the oldest event id the log holds, or null",
            },
            "replay_limit": settings.REPLAY_LIMIT,
        },
    }


def status_report(manager: WebSocketManager, bridge: EventBridge) -> Dict[str, Any]:
    """``GET /v1/status``: ready, and the status of the bridge and the manager.

    Ready: the broadcaster runs and events reach it (in Redis mode through a
    live subscription, embedded through the bridge's processor thread).
    """
    bridge_status = bridge.status()
    manager_status = manager.status()
    ready = manager_status.broadcaster_running and bridge_status.delivering()
    return {
        "ready": ready,
        "bridge": bridge_status.as_dict(),
        "websocket": manager_status.as_dict(),
    }


def accept_publish(
    event: PublishRequest,
    request: Request,
    security: SecurityConfig,
    bridge: EventBridge,
    metrics: ApiMetrics,
) -> Any:
    """``POST /v1/events/openstack``: hand the event to the bridge."""
    if not security.token_accepted(presented_token(request.headers, {})):
        logger.warning(
            "Refused publish from %s: missing or invalid token", peer(request)
        )
        return JSONResponse(
            {"detail": "missing or invalid token"},
            401,
            headers={"WWW-Authenticate": "Bearer"},  # pragma: no mutate
        )
    meta = event.meta()
    extra = {"meta": meta} if meta else {}
    started = time.perf_counter()
    taken = bridge.add_event(event.event_type, event.payload, **extra)
    metrics.publish_seconds.labels("accepted" if taken else "refused").observe(
        time.perf_counter() - started
    )
    if not taken:
        return JSONResponse(
            {"result": "dropped", "error": "event could not be queued"}, 503
        )
    return {"result": "accepted", "event_type": event.event_type}


async def serve_events(
    websocket: WebSocket, manager: WebSocketManager, security: SecurityConfig
) -> None:
    """One client of the events endpoint, from its handshake until it goes."""
    if not await admit(websocket, manager, security):
        return
    last_event_id, resume_error = resume_id(websocket.query_params.get("last_event_id"))
    await manager.connect(websocket, batch=wants_batches(websocket.query_params))
    try:
        # Straight after connect (no await between): a resuming client gets
        # no live event before its reply.
        if last_event_id is not None:
            resumed = await manager.resume(
                websocket, last_event_id, resume_reply(manager, websocket)
            )
        else:
            resumed = resume_error is None or manager.send_to(
                websocket, error_reply(resume_error)
            )
        if not resumed:
            await close_quietly(websocket, CLOSE_TRY_AGAIN_LATER, "client too slow")
        while resumed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            reply = await handle_client_message(manager, websocket, message)
            if reply is None:
                continue
            if not manager.send_to(websocket, reply):
                # Too slow to take its replies. Returning at once would
                # drop the connection before its 1013 close frame is sent.
                await close_quietly(websocket, CLOSE_TRY_AGAIN_LATER, "client too slow")
                return
    except WebSocketDisconnect:
        pass
    finally:
        await manager.disconnect(websocket)


async def serve_system(
    websocket: WebSocket,
    manager: WebSocketManager,
    security: SecurityConfig,
    state: SystemState,
) -> None:
    """One client of the system channel."""
    if not await admit(websocket, manager, security):
        return
    await websocket.accept()
    await serve_system_client(websocket, state)
    await close_quietly(websocket, 1000, "bye")


def metrics_page(metrics: ApiMetrics) -> Response:
    """``GET /metrics``: the registry in Prometheus' text format."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _heartbeat(manager: WebSocketManager, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        await manager.send_heartbeat()


def default_app() -> FastAPI:
    """The app of ``uvicorn osism.api:app``, from the process's settings,
    checked first: a value that cannot be used stops the process with its
    line on stderr and exit status 2 before anything is served."""
    checked = settings.require()
    return create_app(
        websocket_manager,
        event_bridge,
        security=SecurityConfig.of(checked.security),
        heartbeat_interval=checked.fanout.heartbeat_interval,
        connect_redis=True,
    )


app = default_app()
