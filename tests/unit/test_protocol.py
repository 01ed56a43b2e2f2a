"""Client messages: what is accepted, and the reason given for what is not."""

import json
from typing import Any, Optional

import pytest
from pydantic import ValidationError

from osism.api import wire as protocol
from osism.api.wire import SetFilters, error_reply, filter_reply, parse_client_message


class TestParseClientMessage:
    @pytest.mark.parametrize(
        "message, expected",
        [
            ({"action": "set_filters"}, (None, None, None)),
            (
                {"action": "set_filters", "event_filters": ["a.b"]},
                (["a.b"], None, None),
            ),
            ({"action": "set_filters", "node_filters": []}, (None, [], None)),
            ({"action": "set_filters", "service_filters": None}, (None, None, None)),
        ],
    )
    def test_valid_set_filters_is_parsed(self, message: Any, expected: Any) -> None:
        parsed, error = parse_client_message(json.dumps(message))
        assert error is None and parsed is not None
        assert (parsed.event_filters, parsed.node_filters, parsed.service_filters) == (
            expected
        )

    @pytest.mark.parametrize(
        "text, reason",
        [
            (None, "binary frames are not supported; send JSON text"),
            (b"{}", "binary frames are not supported; send JSON text"),
            ("{", "message is not valid JSON"),
            ("[" * 100000 + "]" * 100000, "message is nested too deeply"),
            ('"set_filters"', "message must be a JSON object"),
            ("[1, 2]", "message must be a JSON object"),
            ("null", "message must be a JSON object"),
            ("{}", "unknown action None; expected 'set_filters'"),
            ('{"action": 1}', "unknown action 1; expected 'set_filters'"),
            ('{"action": "dance"}', "unknown action 'dance'; expected 'set_filters'"),
            (
                '{"action": "set_filters", "event_filters": "a.b"}',
                "event_filters must be a list of strings or null",
            ),
            (
                '{"action": "set_filters", "service_filters": [["a"]]}',
                "service_filters must be a list of strings or null",
            ),
            (
                '{"action": "set_filters", "node_filters": [null]}',
                "node_filters must be a list of strings or null",
            ),
            (
                '{"action": "set_filters", "colour": "red"}',
                "unknown field 'colour'",
            ),
        ],
        ids=[
            "none",
            "bytes",
            "truncated",
            "deep",
            "string",
            "array",
            "null",
            "no-action",
            "action-int",
            "other-action",
            "filter-not-a-list",
            "nested-list-entry",
            "null-entry",
            "extra-field",
        ],
    )
    def test_invalid_message_gives_a_reason(
        self, monkeypatch: pytest.MonkeyPatch, text: Any, reason: str
    ) -> None:
        monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", 10**7)
        assert parse_client_message(text) == (None, reason)

    def test_message_one_byte_past_the_limit_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        text = json.dumps({"action": "set_filters"})
        monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", len(text))
        assert parse_client_message(text)[1] is None
        parsed, error = parse_client_message(text + " ")
        assert parsed is None
        assert error == f"message too large: {len(text) + 1} bytes, limit {len(text)}"

    def test_size_is_counted_in_utf8_bytes(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        text = json.dumps(
            {"action": "set_filters", "node_filters": ["é"]}, ensure_ascii=False
        )
        monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", len(text))
        parsed, error = parse_client_message(text)
        assert parsed is None
        assert error == f"message too large: {len(text) + 1} bytes, limit {len(text)}"

    def test_lone_surrogate_is_measured_not_raised(self) -> None:
        text = '{"action": "set_filters", "node_filters": ["\ud800"]}'
        parsed, error = parse_client_message(text)
        assert error is None and parsed is not None
        assert parsed.node_filters == ["\ud800"]

    @pytest.mark.parametrize("count, ok", [(3, True), (4, False)])
    def test_filter_entries_are_bounded(
        self, monkeypatch: pytest.MonkeyPatch, count: int, ok: bool
    ) -> None:
        monkeypatch.setattr(protocol, "MAX_FILTER_ENTRIES", 3)
        text = json.dumps({"action": "set_filters", "event_filters": ["e"] * count})
        error: Optional[str] = parse_client_message(text)[1]
        assert (error is None) is ok
        if not ok:
            assert error == "event_filters has 4 entries, limit 3"

    @pytest.mark.parametrize("length, ok", [(5, True), (6, False)])
    def test_filter_entry_length_is_bounded(
        self, monkeypatch: pytest.MonkeyPatch, length: int, ok: bool
    ) -> None:
        monkeypatch.setattr(protocol, "MAX_FILTER_LENGTH", 5)
        text = json.dumps({"action": "set_filters", "node_filters": ["n" * length]})
        error = parse_client_message(text)[1]
        assert (error is None) is ok
        if not ok:
            assert error == "node_filters entry of 6 characters, limit 5"


class TestReplies:
    def test_error_reply_is_the_wire_format(self) -> None:
        assert json.loads(error_reply("bad")) == {"type": "error", "error": "bad"}

    def test_filter_reply_is_the_wire_format(self) -> None:
        filters = {"event_filters": ["a"], "node_filters": [], "service_filters": []}
        assert json.loads(filter_reply(filters)) == {
            "type": "filter_update",
            "status": "success",
            **filters,
        }


class TestDescribe:
    """Validation errors parse_client_message rules out before validating."""

    @pytest.mark.parametrize(
        "data, reason",
        [
            ({"action": "dance"}, "action: Input should be 'set_filters'"),
            (
                "not an object",
                "message: Input should be a valid dictionary or instance of "
                "SetFilters",
            ),
        ],
        ids=["other-action", "not-an-object"],
    )
    def test_other_errors_name_the_field_and_the_problem(
        self, data: Any, reason: str
    ) -> None:
        with pytest.raises(ValidationError) as info:
            SetFilters.model_validate(data)
        assert protocol._describe(info.value) == reason
