"""SecurityConfig, token extraction, log redaction and the body-size middleware."""

import logging
from typing import Any, Dict, Iterator, List

import pytest
from uvicorn.logging import AccessFormatter

from osism.api.security import (
    BodySizeLimit,
    RedactTokens,
    SecurityConfig,
    install_log_redaction,
    presented_token,
)


class PathObject:
    """A log argument that is not a string but prints as one."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __str__(self) -> str:
        return self.path


REDACTED_LOGGERS = ("uvicorn.error", "uvicorn.access", "osism")
ENV_SETTINGS = ("API_TOKEN", "ALLOWED_ORIGINS", "MAX_CONNECTIONS", "MAX_PUBLISH_BYTES")


class TestSecurityConfig:
    def test_from_env_reads_every_setting(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("API_TOKEN", "t0k")
        monkeypatch.setenv("ALLOWED_ORIGINS", "https://a.example, https://b.example")
        monkeypatch.setenv("MAX_CONNECTIONS", "7")
        monkeypatch.setenv("MAX_PUBLISH_BYTES", "512")
        assert SecurityConfig.from_env() == SecurityConfig(
            token="t0k",
            allowed_origins=("https://a.example", "https://b.example"),
            max_connections=7,
            max_publish_bytes=512,
        )

    def test_from_env_without_settings_is_open_with_default_limits(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ENV_SETTINGS:
            monkeypatch.delenv(name, raising=False)
        config = SecurityConfig.from_env()
        assert (config.token, config.allowed_origins) == (None, ())
        assert config.max_connections == 1000
        assert config.max_publish_bytes == 1048576

    @pytest.mark.parametrize(
        "name, field", [("MAX_CONNECTIONS", 1000), ("MAX_PUBLISH_BYTES", 1 << 20)]
    )
    def test_limits_below_one_fall_back_to_the_default_and_one_is_taken(
        self, monkeypatch: pytest.MonkeyPatch, name: str, field: int
    ) -> None:
        attribute = name.lower()
        monkeypatch.setenv(name, "0")
        assert getattr(SecurityConfig.from_env(), attribute) == field
        monkeypatch.setenv(name, "1")
        assert getattr(SecurityConfig.from_env(), attribute) == 1

    def test_empty_token_means_no_token(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("API_TOKEN", "")
        assert SecurityConfig.from_env().token is None

    def test_repr_does_not_show_the_token(self) -> None:
        assert "hunter2" not in repr(SecurityConfig(token="hunter2"))

    @pytest.mark.parametrize(
        "presented, accepted", [("right", True), ("wrong", False), (None, False)]
    )
    def test_token_accepted_only_when_equal(
        self, presented: Any, accepted: bool
    ) -> None:
        assert SecurityConfig(token="right").token_accepted(presented) is accepted

    def test_without_token_everyone_is_accepted(self) -> None:
        assert SecurityConfig().token_accepted(None) is True

    @pytest.mark.parametrize(
        "origin, host, allowed, expected",
        [
            (None, "api:8000", (), True),
            ("http://api:8000", "api:8000", (), True),
            ("http://API:8000", "api:8000", (), True),
            ("http://evil:8000", "api:8000", (), False),
            ("http://evil:8000", None, (), False),
            ("https://ui", "api:8000", ("https://ui",), True),
            ("https://other", "api:8000", ("*",), True),
        ],
    )
    def test_origin_allowed(
        self, origin: Any, host: Any, allowed: Any, expected: bool
    ) -> None:
        config = SecurityConfig(allowed_origins=allowed)
        assert config.origin_allowed(origin, host) is expected


class TestPresentedToken:
    @pytest.mark.parametrize(
        "headers, query, expected",
        [
            ({"authorization": "Bearer abc"}, {}, "abc"),
            ({"authorization": "bearer  abc "}, {}, "abc"),
            ({"authorization": "Basic abc"}, {"token": "q"}, "q"),
            ({"authorization": "Bearer "}, {}, None),
            ({}, {"token": "q"}, "q"),
            ({}, {"token": ""}, None),
            ({}, {}, None),
        ],
    )
    def test_presented_token(self, headers: Any, query: Any, expected: Any) -> None:
        assert presented_token(headers, query) == expected


class TestRedactTokens:
    def test_uvicorn_request_line_is_redacted(self) -> None:
        record = logging.LogRecord(
            "uvicorn.error",
            logging.INFO,
            __file__,
            1,
            '%s - "WebSocket %s" [accepted]',
            ("127.0.0.1:5000", "/v1/events/openstack?a=1&token=secret&b=2"),
            None,
        )
        assert RedactTokens().filter(record) is True
        assert record.getMessage() == (
            '127.0.0.1:5000 - "WebSocket /v1/events/openstack?a=1&token=***&b=2"'
            " [accepted]"
        )

    def test_uvicorn_access_line_keeps_the_arguments_its_formatter_unpacks(
        self,
    ) -> None:
        record = logging.LogRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("127.0.0.1:5000", "GET", "/v1/status?token=secret", "1.1", 200),
            None,
        )
        assert RedactTokens().filter(record) is True
        line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s')
        assert line.format(record) == (
            '127.0.0.1:5000 - "GET /v1/status?token=*** HTTP/1.1" 200 OK'
        )

    @pytest.mark.parametrize(
        "msg, args",
        [
            ("GET /v1?token=secret", ()),
            ("GET %s", (PathObject("/v1?token=secret"),)),
            ("GET %(path)s", ({"path": "/v1?token=secret"},)),
        ],
        ids=["in-the-format", "in-an-object", "in-a-mapping"],
    )
    def test_token_outside_string_arguments_is_redacted_in_the_line(
        self, msg: str, args: Any
    ) -> None:
        record = logging.LogRecord(
            "uvicorn.error", logging.INFO, __file__, 1, msg, args, None
        )
        assert RedactTokens().filter(record) is True
        assert record.getMessage() == "GET /v1?token=***"

    def test_line_without_token_is_untouched(self) -> None:
        record = logging.LogRecord(
            "uvicorn.access", logging.INFO, __file__, 1, "GET %s", ("/v1",), None
        )
        assert RedactTokens().filter(record) is True
        assert (record.msg, record.args) == ("GET %s", ("/v1",))

    def test_install_adds_one_filter_per_logger(
        self, without_redaction: List[logging.Logger]
    ) -> None:
        install_log_redaction()
        install_log_redaction()
        for target in without_redaction:
            filters = target.filters
            assert sum(isinstance(f, RedactTokens) for f in filters) == 1, target.name
        assert not any(isinstance(f, RedactTokens) for f in logging.root.filters)

    @pytest.mark.parametrize("name", REDACTED_LOGGERS)
    def test_installed_filter_redacts_what_each_logger_writes(
        self,
        without_redaction: List[logging.Logger],
        caplog: pytest.LogCaptureFixture,
        name: str,
    ) -> None:
        install_log_redaction()
        caplog.set_level(logging.INFO, logger=name)
        target = logging.getLogger(name)
        # uvicorn's logging config may keep its loggers from propagating.
        target.addHandler(caplog.handler)
        try:
            target.info("GET %s", "/v1?token=secret")
        finally:
            target.removeHandler(caplog.handler)
        assert "GET /v1?token=***" in [r.getMessage() for r in caplog.records]
        assert "secret" not in caplog.text


@pytest.fixture
def without_redaction() -> Iterator[List[logging.Logger]]:
    """The loggers install_log_redaction covers, without its filter (other
    tests build the app, which installs it), restored afterwards."""
    targets = [logging.getLogger(name) for name in REDACTED_LOGGERS]
    saved = {target.name: list(target.filters) for target in targets}
    root_filters = list(logging.root.filters)
    for target in targets:
        for existing in list(target.filters):
            if isinstance(existing, RedactTokens):
                target.removeFilter(existing)
    yield targets
    for target in targets:
        target.filters[:] = saved[target.name]
    logging.root.filters[:] = root_filters


class Recorder:
    """An ASGI app that reads the whole body and answers 200."""

    def __init__(self) -> None:
        self.body = b""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            while True:
                message = await receive()
                self.body += message.get("body", b"")
                if not message.get("more_body"):
                    break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def run(
    app: BodySizeLimit, chunks: List[bytes], headers: Any = (), kind: str = "http"
) -> List[Dict[str, Any]]:
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    sent: List[Dict[str, Any]] = []

    async def receive() -> Dict[str, Any]:
        return pending.pop(0)

    async def send(message: Dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": kind, "method": "POST", "headers": list(headers)}
    await app(scope, receive, send)
    return sent


class TestBodySizeLimit:
    @pytest.mark.asyncio
    async def test_streamed_body_within_the_limit_passes(self) -> None:
        inner = Recorder()
        sent = await run(BodySizeLimit(inner, 6), [b"abc", b"def"])
        assert sent[0]["status"] == 200
        assert inner.body == b"abcdef"

    @pytest.mark.asyncio
    async def test_streamed_body_one_past_the_limit_is_413(self) -> None:
        sent = await run(BodySizeLimit(Recorder(), 6), [b"abc", b"defg"])
        assert sent[0]["status"] == 413
        assert b"limit 6 bytes" in sent[1]["body"]

    @pytest.mark.asyncio
    async def test_declared_length_past_the_limit_is_413_unread(self) -> None:
        inner = Recorder()
        sent = await run(
            BodySizeLimit(inner, 6), [b"abcdefg"], [(b"content-length", b"7")]
        )
        assert sent[0]["status"] == 413
        assert inner.body == b""

    @pytest.mark.asyncio
    async def test_too_large_after_the_response_started_sends_nothing_more(
        self,
    ) -> None:
        async def answers_first(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await receive()

        sent = await run(BodySizeLimit(answers_first, 2), [b"abc"])
        assert [m["type"] for m in sent] == ["http.response.start"]

    @pytest.mark.asyncio
    async def test_the_413_answer_is_json_with_its_length(self) -> None:
        sent = await run(BodySizeLimit(Recorder(), 6), [b"abcdefg"])
        body = b'{"detail": "request body too large: limit 6 bytes"}'
        assert sent == [
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            },
            {"type": "http.response.body", "body": body},
        ]

    @pytest.mark.asyncio
    async def test_a_scope_without_headers_passes(self) -> None:
        inner = Recorder()
        sent: List[Dict[str, Any]] = []

        async def receive() -> Dict[str, Any]:
            return {"type": "http.request", "body": b"abc", "more_body": False}

        async def send(message: Dict[str, Any]) -> None:
            sent.append(message)

        await BodySizeLimit(inner, 6)({"type": "http"}, receive, send)
        assert [m.get("status") for m in sent] == [200, None]
        assert inner.body == b"abc"

    @pytest.mark.asyncio
    async def test_other_scopes_pass_through(self) -> None:
        sent = await run(BodySizeLimit(Recorder(), 1), [], kind="lifespan")
        assert sent[0]["status"] == 200

    @pytest.mark.asyncio
    async def test_a_disconnect_reaches_the_app_and_counts_no_bytes(self) -> None:
        seen: List[Dict[str, Any]] = []

        async def reads_twice(scope: Any, receive: Any, send: Any) -> None:
            seen.append(await receive())
            seen.append(await receive())

        messages = [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.disconnect"},
        ]

        async def receive() -> Dict[str, Any]:
            return messages.pop(0)

        async def send(message: Dict[str, Any]) -> None:
            raise AssertionError(f"nothing may be sent: {message}")

        limited = BodySizeLimit(reads_twice, 2)
        await limited({"type": "http", "headers": []}, receive, send)
        assert [m["type"] for m in seen] == ["http.request", "http.disconnect"]
