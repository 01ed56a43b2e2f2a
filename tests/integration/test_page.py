"""The events page in a real headless Chromium (Debian's), driven by Playwright.

Run by ``nox -s browser``. Chromium is Debian's package at /usr/bin/chromium
(or $OSISM_CHROMIUM); Playwright only drives it, nothing is downloaded. A
missing Chromium fails the test saying so; it is never skipped. Screenshots
are saved in the test's temporary directory (and, with $OSISM_SCREENSHOTS
set to a directory, there too).
"""

import asyncio
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, List

import pytest
import pytest_asyncio

from tests.integration.deadlines import deadline
from tests.integration.conftest import StartApi
from tests.integration.scenario import ironic
from tests.integration.servers import ApiServer, RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = os.environ.get("OSISM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
POWER = "baremetal.node.power_set.end"
FAST = {"SYSTEM_INTERVAL": "0.5", "SUBSCRIBER_RETRY_DELAY": "1"}


class Page:
    """A browser tab on the events page, with its console errors."""

    def __init__(self, page: Any, shots: Path) -> None:
        self.page = page
        self.shots = shots
        self.errors: List[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    async def open(self, api: ApiServer) -> None:
        await self.page.goto(f"{api.http_url}/events")
        await self.wait_text("#conn-state", "connected")

    async def wait_text(self, selector: str, text: str, timeout: float = 5.0) -> None:
        await self.page.wait_for_function(
            "([sel, text]) => (document.querySelector(sel).textContent || '')"
            ".includes(text)",
            arg=[selector, text],
            timeout=deadline(timeout) * 1000,
        )

    async def wait_class(self, selector: str, cls: str, timeout: float) -> None:
        await self.page.wait_for_function(
            "([sel, cls]) => document.querySelector(sel).classList.contains(cls)",
            arg=[selector, cls],
            timeout=deadline(timeout) * 1000,
        )

    async def wait_row(self, node: str, timeout: float = 5.0) -> None:
        await self.page.wait_for_function(
            "node => [...document.querySelectorAll('#rows .row span:nth-child(4)')]"
            ".some(c => c.textContent === node)",
            arg=node,
            timeout=deadline(timeout) * 1000,
        )

    async def nodes(self) -> List[str]:
        """The node column, top (newest) first."""
        result: List[str] = await self.page.eval_on_selector_all(
            "#rows .row span:nth-child(4)", "cells => cells.map(c => c.textContent)"
        )
        return result

    async def text(self, selector: str) -> str:
        return str(await self.page.text_content(selector))

    async def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        extra = os.environ.get("OSISM_SCREENSHOTS")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path


@pytest_asyncio.fixture
async def browser_page(tmp_path: Path) -> AsyncIterator[Page]:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium "
            "(apt-get install -y chromium) or set OSISM_CHROMIUM",
            pytrace=False,
        )
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("the Python package playwright is not installed", pytrace=False)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 800},
        )
        try:
            yield Page(await context.new_page(), shots)
        finally:
            await context.close()


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_live_list_filters_and_the_servers_reply(
    start_api: StartApi, browser_page: Page
) -> None:
    api = start_api(env=FAST)
    page = browser_page
    await page.open(api)
    await page.wait_class("#system-bar", "ok", 5.0)

    # An event POSTed appears within a second.
    first = unique("node")
    posted = time.monotonic()
    await api.apublish(POWER, ironic(first, uuid="r-1"))
    await page.wait_row(first, timeout=1.0)
    assert time.monotonic() - posted < deadline(1.0)

    # Its full JSON on click.
    await page.page.click("#rows .row")
    detail = await page.text("#detail")
    assert f'"node_name": "{first}"' in detail and '"resource_id": "r-1"' in detail

    # A filter narrows the list, and the server's reply is shown.
    wanted, other = unique("wanted"), unique("other")
    await page.page.fill("#f-node", wanted)
    await page.page.click("#apply")
    await page.wait_text("#filter-reply", f"node={wanted}")
    assert "server: success" in await page.text("#filter-reply")
    for node in (other, wanted):
        await api.apublish(POWER, ironic(node))
    await page.wait_row(wanted)
    assert await page.nodes() == [wanted]
    await page.screenshot("filtered")

    # An error reply is shown, not swallowed; the connection stays.
    await page.page.fill("#f-event", "x" * 300)
    await page.page.click("#apply")
    await page.wait_text("#filter-reply", "server refused: event_filters entry")
    assert "error" in str(await page.page.get_attribute("#filter-reply", "class"))
    assert await page.text("#conn-state") == "connected"

    assert page.errors == []
    await page.screenshot("page")


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_pause_and_resume_lose_nothing(
    start_api: StartApi, browser_page: Page
) -> None:
    api = start_api(env=FAST)
    page = browser_page
    await page.open(api)
    await page.page.click("#pause")
    nodes = [unique("n") for _ in range(5)]
    for node in nodes:
        await api.apublish(POWER, ironic(node))
    await page.wait_text("#counter", "paused, 5 waiting")
    assert await page.nodes() == []
    await page.page.click("#pause")
    await page.wait_row(nodes[-1])
    assert await page.nodes() == nodes[::-1]
    assert page.errors == []


@pytest.mark.asyncio
@pytest.mark.timeout(150)
async def test_a_redis_outage_shows_on_the_status_bar_and_clears(
    start_api: StartApi, redis_server: RedisServer, browser_page: Page
) -> None:
    api = start_api(env=FAST)
    page = browser_page
    await page.open(api)
    await page.wait_class("#system-bar", "ok", 5.0)

    await asyncio.to_thread(redis_server.stop)
    await page.wait_text("#system-bar", "Redis unreachable since", timeout=30.0)
    assert "events are delayed" in await page.text("#system-bar")
    await page.screenshot("redis-outage")

    await asyncio.to_thread(redis_server.start)
    await page.wait_class("#system-bar", "ok", 45.0)
    assert "Redis connected since" in await page.text("#system-bar")
    assert page.errors == []


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_dropped_connection_is_resumed_without_a_gap(
    start_api: StartApi, browser_page: Page
) -> None:
    # The page is on api1; api2 takes the events while api1 restarts, so
    # they are in the event log when the page comes back.
    api1 = start_api(name="api1", env=FAST)
    api2 = start_api(name="api2", env=FAST)
    page = browser_page
    await page.open(api1)
    nodes = [f"gap-{i}-{uuid.uuid4().hex[:4]}" for i in range(5)]

    await api2.apublish(POWER, ironic(nodes[0]))
    await page.wait_row(nodes[0])
    await asyncio.to_thread(api1.stop)
    await page.wait_text("#conn-state", "disconnected", timeout=10.0)
    for node in nodes[1:3]:
        await api2.apublish(POWER, ironic(node))
    await asyncio.to_thread(api1.start)
    await page.wait_row(nodes[2], timeout=30.0)
    for node in nodes[3:]:
        await api2.apublish(POWER, ironic(node))
    await page.wait_row(nodes[4])

    assert await page.nodes() == nodes[::-1]
    assert await page.page.is_hidden("#missing")
    await page.screenshot("resumed")
    # The browser reports the refused reconnects as errors; nothing else.
    assert [e for e in page.errors if "WebSocket" not in e] == []


# In the page, before its script: a WebSocket whose events connection delivers
# COUNT events in bursts as fast as the page takes them (the system channel
# stays real). What is measured is the page's own work.
FLOOD = """
(() => {
  const Real = window.WebSocket;
  const COUNT = %d;
  class Flood {
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      setTimeout(() => this.start(), 0);
    }
    start() {
      this.readyState = 1;
      if (this.onopen) this.onopen({});
      let sent = 0;
      const burst = () => {
        const end = Math.min(COUNT, sent + 2000);
        for (; sent < end; sent++) {
          const ev = {
            id: "flood-" + sent, timestamp: "2026-01-01T00:00:00.000Z",
            event_type: "baremetal.node.power_set.end", source: "openstack",
            node_name: "node-" + sent,
            data: {resource_id: "r-" + sent, _osism: {priority: "INFO"}},
          };
          this.onmessage({data: JSON.stringify(ev)});
        }
        if (sent < COUNT) setTimeout(burst, 0);
        else window.__floodDone = performance.now();
      };
      window.__floodStart = performance.now();
      burst();
    }
    send() {}
    close() {}
  }
  Flood.OPEN = 1;
  window.WebSocket = function (url, protocols) {
    return url.includes("/v1/events/openstack") ? new Flood(url)
      : new Real(url, protocols);
  };
  window.WebSocket.OPEN = 1;
})();
"""


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_the_list_stays_bounded_and_fast_after_100000_events(
    start_api: StartApi, browser_page: Page, report_figure: Any
) -> None:
    count = 100_000
    api = start_api(env=FAST)
    page = browser_page
    await page.page.add_init_script(FLOOD % count)
    await page.page.goto(f"{api.http_url}/events")
    await page.wait_text("#counter", f"{count} events", timeout=60.0)
    took = await page.page.evaluate("window.__floodDone - window.__floodStart")
    await page.page.wait_for_function(
        "() => document.querySelectorAll('#rows .row').length === 500",
        timeout=deadline(5000),
    )
    nodes = await page.nodes()
    assert nodes[0] == f"node-{count - 1}" and nodes[-1] == f"node-{count - 500}"

    # Still responsive: a click shows the event at once.
    clicked = time.monotonic()
    await page.page.click("#rows .row")
    await page.wait_text("#detail", f'"node_name": "node-{count - 1}"', timeout=1.0)
    report_figure("page took 100,000 events in", f"{took / 1000:.2f}", "s")
    report_figure(
        "click to detail after 100,000 events", f"{time.monotonic() - clicked:.3f}", "s"
    )
    # About 2.5 s here (a table of 500 rows took 15-25 s: each frame laid
    # out every row); generous, since the machine may be shared.
    assert took < 10_000
    assert page.errors == []


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_token_is_asked_for_and_never_put_in_the_pages_url(
    start_api: StartApi, browser_page: Page
) -> None:
    token = f"page-token-{uuid.uuid4().hex[:8]}"
    api = start_api(env={**FAST, "API_TOKEN": token})
    page = browser_page
    await page.page.goto(f"{api.http_url}/events")
    await page.wait_text("#conn-state", "refused: missing or invalid token")
    assert await page.page.get_attribute("#token-box", "open") is not None

    await page.page.fill("#token", token)
    await page.page.click("#token-form button")
    await page.wait_text("#conn-state", "connected")
    await page.wait_class("#system-bar", "ok", 10.0)
    node = unique("node")
    await _publish_with_token(api, token, node)
    await page.wait_row(node)

    assert token not in page.page.url
    stored = await page.page.evaluate("Object.values(sessionStorage)")
    assert stored == [token]
    local = await page.page.evaluate("Object.values(localStorage)")
    assert local == []
    # The refused attempts are the browser's only console errors.
    assert [e for e in page.errors if "WebSocket" not in e] == []


async def _publish_with_token(api: ApiServer, token: str, node: str) -> None:
    import httpx

    async with httpx.AsyncClient(timeout=10.0) as http:
        response = await http.post(
            f"{api.http_url}/v1/events/openstack",
            json={"event_type": POWER, "payload": ironic(node)},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 202, response.text
