"""The baseline: the FastAPI-tutorial broadcaster, fed by an async Redis subscriber.

A list of websockets, and for each event ``await ws.send_text(text)`` to each
client in turn: one slow client holds up everyone behind it. Served by plain
``uvicorn bench.naive:app`` with uvicorn's defaults, as the tutorial does.
It sends the same JSON text frame our API sends, so the clients cannot tell.
"""

import asyncio
import json
import os
import uuid
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, AsyncIterator, List

import redis.asyncio as aioredis
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

clients: List[WebSocket] = []


async def relay() -> None:
    host = os.environ.get("REDIS_HOST", "127.0.0.1")
    port = int(os.environ.get("REDIS_PORT", "6379"))
    pubsub = aioredis.Redis(host=host, port=port, decode_responses=True).pubsub()
    await pubsub.subscribe("osism:events")
    async for message in pubsub.listen():
        if message["type"] != "message":
            continue
        event = json.loads(message["data"])
        payload = event["payload"]
        text = json.dumps(
            {
                "id": str(uuid.uuid4()),
                "timestamp": datetime.now(timezone.utc).isoformat(),
                "event_type": event["event_type"],
                "source": "openstack",
                "node_name": None,
                "data": payload,
            }
        )
        for ws in list(clients):
            try:
                await ws.send_text(text)
            except Exception:
                if ws in clients:
                    clients.remove(ws)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    task = asyncio.create_task(relay())
    yield
    task.cancel()


app = FastAPI(lifespan=lifespan)


@app.websocket("/v1/events/openstack")
async def events(websocket: WebSocket) -> Any:
    await websocket.accept()
    clients.append(websocket)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        pass
    finally:
        if websocket in clients:
            clients.remove(websocket)
