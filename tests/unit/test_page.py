"""The events page: served by the app, shipped in the package, no CDN."""

import configparser
import re
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from osism.api.routes import create_app
from osism.api.page import STATIC_DIR
from osism.api.security import SecurityConfig
from osism.services.event_bridge import EventBridge
from osism.services.websocket_manager import WebSocketManager

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = create_app(
        WebSocketManager(),
        EventBridge(connect=False),
        connect_redis=False,
        heartbeat_interval=0,
        security=SecurityConfig(),
    )
    with TestClient(app) as test_client:
        yield test_client


def test_the_page_and_its_files_are_served(client: TestClient) -> None:
    page = client.get("/events")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "no-referrer"
    for path in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        assert client.get(path).status_code == 200, path
    assert client.get("/static/app.js").text.startswith("//")


def test_nothing_is_loaded_from_elsewhere() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"https?://", text), path.name


def test_the_token_is_kept_in_the_tab_and_sent_only_to_the_websocket() -> None:
    script = (STATIC_DIR / "app.js").read_text()
    assert "sessionStorage" in script and "localStorage" not in script
    assert "history.pushState" not in script and "location.search" not in script


def test_both_sockets_reconnect_through_the_one_jittered_back_off() -> None:
    # No JavaScript engine runs in the unit tests: the script's text shows
    # that one back-off (full jitter) gives both sockets their delays.
    script = (STATIC_DIR / "app.js").read_text()
    assert script.count("function backoff()") == 1
    assert "const delay = step * Math.random();" in script
    assert "step = Math.min(step * 2, BACKOFF_MAX);" in script
    assert script.count("backoff: backoff(),") == 2  # state's and system's
    assert re.findall(r"(\w+)\.backoff\.next\(\)", script) == ["state", "system"]
    assert re.findall(r"(\w+)\.backoff\.reset\(\)", script) == ["state", "system"]
    # Nothing else doubles a delay or sets a reconnect timer of its own.
    assert script.count("* 2") == 1
    assert len(re.findall(r"setTimeout\((connect|connectSystem), delay\)", script)) == 2


def test_a_non_editable_install_ships_the_static_files() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert "api/static/*" in config["options.package_data"]["osism"].split()
    assert {p.name for p in STATIC_DIR.iterdir()} >= {
        "index.html",
        "app.js",
        "app.css",
    }


def test_events_info_links_the_page(client: TestClient) -> None:
    assert client.get("/v1/events").json()["page"] == "/events"
