"""``uvicorn osism.api:app`` (uvicorn's CLI, none of its flags) honours the
WEBSOCKET_* settings as ``osism api`` does: the app applies them to the
server's config at startup. uvicorn's own defaults would be 16 MiB frames and
permessage-deflate accepted."""

import sys
from pathlib import Path
from typing import Iterator, List

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from tests.integration.deadlines import deadline
from tests.integration.servers import ApiServer

pytestmark = pytest.mark.integration

MAX_FRAME = 4096


class PlainUvicorn(ApiServer):
    """The app served by ``python -m uvicorn osism.api:app``, no other flag."""

    def command(self) -> List[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "osism.api:app",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]


@pytest.fixture
def plain_uvicorn(tmp_path: Path) -> Iterator[PlainUvicorn]:
    server = PlainUvicorn(
        tmp_path,
        "plain-uvicorn",
        env={"WEBSOCKET_MAX_FRAME_BYTES": str(MAX_FRAME), "WEBSOCKET_DEFLATE": "0"},
    )
    server.start(subscribed=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_deflate_is_declined_as_websocket_deflate_says(
    plain_uvicorn: PlainUvicorn,
) -> None:
    # websockets' client offers permessage-deflate by default.
    async with ws_connect(plain_uvicorn.ws_url, open_timeout=deadline(10)) as ws:
        assert ws.protocol.extensions == []
        assert "sec-websocket-extensions" not in ws.response.headers


@pytest.mark.asyncio
async def test_a_frame_over_websocket_max_frame_bytes_is_closed_1009(
    plain_uvicorn: PlainUvicorn,
) -> None:
    async with ws_connect(plain_uvicorn.ws_url, open_timeout=deadline(10)) as ws:
        await ws.send("x" * (MAX_FRAME + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009
    assert plain_uvicorn.tracebacks() == []
