"""POST /v1/events/openstack and ``osism publish`` take the notification
metadata (optional, validated); the bridge carries it to the manager."""

import json
from typing import Any, Dict, Iterator
from unittest.mock import MagicMock

import pytest
from fastapi.testclient import TestClient

from osism.cli import main
from osism.api.routes import create_app
from osism.api.security import SecurityConfig
from osism.services.event_bridge import EventBridge
from osism.services.websocket_manager import WebSocketManager

PATH = "/v1/events/openstack"
IRONIC = {"ironic_object.data": {"name": "node1", "uuid": "abc-123"}}
META = {
    "priority": "error",
    "message_id": "0c28cec1-b947-42af-a4b9-36976b4b76b0",
    "publisher_id": "ironic-conductor.host1",
    "service": "Ironic",
    "emitted_at": "2016-01-27 20:41:06.204573",
}

# What a client sees of META.
NORMALISED = {
    "service": "ironic",
    "priority": "ERROR",
    "message_id": "0c28cec1-b947-42af-a4b9-36976b4b76b0",
    "publisher_id": "ironic-conductor.host1",
    "emitted_at": "2016-01-27T20:41:06.204573Z",
}


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


def post(client: TestClient, **fields: Any) -> Any:
    body = {"event_type": "baremetal.node.power_set.error", "payload": IRONIC}
    return client.post(PATH, json={**body, **fields})


class TestPost:
    def test_metadata_reaches_the_client_checked_and_normalised(
        self, client: TestClient
    ) -> None:
        with client.websocket_connect(PATH) as ws:
            assert post(client, **META).status_code == 202
            event = json.loads(ws.receive_text())
        assert event["node_name"] == "node1"
        assert event["data"]["_osism"] == NORMALISED

    def test_some_metadata_the_rest_derived_or_none(self, client: TestClient) -> None:
        with client.websocket_connect(PATH) as ws:
            post(client, event_type="instance.update", priority="info")
            event = json.loads(ws.receive_text())
        assert event["data"]["_osism"] == {
            "service": "nova",
            "priority": "INFO",
            "message_id": None,
            "publisher_id": None,
            "emitted_at": None,
        }

    def test_without_metadata_data_is_the_seeds(self, client: TestClient) -> None:
        with client.websocket_connect(PATH) as ws:
            post(client)
            event = json.loads(ws.receive_text())
        assert event["data"] == {
            **IRONIC,
            "service_type": "baremetal",
            "resource_id": "abc-123",
        }

    @pytest.mark.parametrize(
        "fields, field, says",
        [
            ({"priority": "LOUD"}, "priority", "'LOUD'"),
            ({"emitted_at": "yesterday"}, "emitted_at", "not an ISO 8601"),
            ({"service": "no va"}, "service", "pattern"),
            ({"message_id": ""}, "message_id", "at least 1"),
            ({"publisher_id": 5}, "publisher_id", "string"),
        ],
    )
    def test_bad_metadata_is_refused_naming_the_field(
        self, client: TestClient, fields: Dict[str, Any], field: str, says: str
    ) -> None:
        response = post(client, **fields)
        assert response.status_code == 422
        detail = response.json()["detail"][0]
        assert detail["loc"][-1] == field
        assert says in detail["msg"]


class TestLoggedWithTheEvent:
    def test_a_resuming_client_gets_the_metadata_of_an_event_it_missed(
        self, client: TestClient
    ) -> None:
        with client.websocket_connect(PATH) as ws:
            post(client)
            seen = json.loads(ws.receive_text())
        assert post(client, **META).status_code == 202
        with client.websocket_connect(f"{PATH}?last_event_id={seen['id']}") as ws:
            reply = json.loads(ws.receive_text())
            missed = json.loads(ws.receive_text())
        assert (reply["recovered"], reply["replayed"]) == (True, 1)
        assert missed["data"]["_osism"] == NORMALISED


class TestCli:
    def run(self, mocker: Any, *options: str) -> Dict[str, Any]:
        response = MagicMock()
        response.__enter__.return_value.read.return_value = b'{"result": "accepted"}'
        urlopen = mocker.patch("urllib.request.urlopen", return_value=response)
        assert main.main(["publish", "image.upload", *options]) == 0
        body: Dict[str, Any] = json.loads(urlopen.call_args.args[0].data)
        return body

    def test_every_option_is_sent(self, mocker: Any) -> None:
        body = self.run(
            mocker,
            "--priority",
            "error",
            "--message-id",
            "m-1",
            "--publisher-id",
            "image.localhost",
            "--service",
            "glance",
            "--emitted-at",
            "2015-09-01 09:51:12.447306",
        )
        assert body == {
            "event_type": "image.upload",
            "payload": {},
            "priority": "ERROR",
            "message_id": "m-1",
            "publisher_id": "image.localhost",
            "service": "glance",
            "emitted_at": "2015-09-01T09:51:12.447306Z",
        }

    def test_no_option_sends_no_metadata(self, mocker: Any) -> None:
        assert self.run(mocker) == {"event_type": "image.upload", "payload": {}}

    @pytest.mark.parametrize(
        "options, says",
        [
            (["--priority", "loud"], "priority 'loud' is not a notification"),
            (["--emitted-at", "soon"], "'soon' is not an ISO 8601 timestamp"),
            (["--message-id", " "], "--message-id is empty"),
        ],
    )
    def test_bad_options_exit_2_before_sending(
        self,
        mocker: Any,
        capsys: pytest.CaptureFixture,
        options: Any,
        says: str,
    ) -> None:
        urlopen = mocker.patch("urllib.request.urlopen")
        assert main.main(["publish", "a.b", *options]) == 2
        assert says in capsys.readouterr().err
        urlopen.assert_not_called()
