"""The ``last_event_id`` of set_filters and of the query: what is taken, what not."""

import json
import uuid
from typing import Any

import pytest

from osism.api.wire import (
    LAST_EVENT_ID_ERROR,
    filter_reply,
    parse_client_message,
    resume_id,
)

ID = "0b9e1d6c-5f7a-4f4e-9d1b-2f3c4d5e6f70"


def parse(**fields: Any) -> Any:
    return parse_client_message(json.dumps({"action": "set_filters", **fields}))


class TestSetFiltersField:
    def test_a_uuid_is_taken(self) -> None:
        parsed, error = parse(last_event_id=ID)

        assert error is None and parsed is not None
        assert parsed.last_event_id == ID

    @pytest.mark.parametrize(
        "spelling", [ID.upper(), "{" + ID + "}", "urn:uuid:" + ID, ID.replace("-", "")]
    )
    def test_other_uuid_spellings_are_taken_in_canonical_form(
        self, spelling: str
    ) -> None:
        parsed, error = parse(last_event_id=spelling)

        assert error is None and parsed is not None
        assert parsed.last_event_id == ID

    @pytest.mark.parametrize("value", [None, ""])
    def test_null_or_empty_asks_for_no_resume(self, value: Any) -> None:
        parsed, error = parse(last_event_id=value, node_filters=["n1"])

        assert error is None and parsed is not None
        assert parsed.last_event_id is None
        assert parsed.node_filters == ["n1"]

    def test_left_out_asks_for_no_resume(self) -> None:
        parsed, _ = parse(event_filters=["a.b"])

        assert parsed is not None and parsed.last_event_id is None

    @pytest.mark.parametrize(
        "value",
        ["not-a-uuid", ID + "0", ID[:-1], 42, 1.5, True, [ID], {"id": ID}, "x" * 5000],
    )
    def test_anything_else_is_an_error_naming_the_field(self, value: Any) -> None:
        parsed, error = parse(last_event_id=value, event_filters=["a.b"])

        assert parsed is None
        assert error == LAST_EVENT_ID_ERROR

    def test_the_error_does_not_repeat_the_value(self) -> None:
        _, error = parse(last_event_id="<script>alert(1)</script>")

        assert error is not None and "script" not in error

    def test_an_unknown_field_beside_it_is_still_refused(self) -> None:
        _, error = parse(last_event_id=ID, colour="red")

        assert error == "unknown field 'colour'"


class TestResumeId:
    def test_canonical_form(self) -> None:
        assert resume_id(ID.upper()) == (ID, None)

    @pytest.mark.parametrize("value", [None, ""])
    def test_nothing(self, value: Any) -> None:
        assert resume_id(value) == (None, None)

    @pytest.mark.parametrize("value", ["nope", "a" * 65, str(uuid.UUID(int=1))[:-2]])
    def test_rejected(self, value: str) -> None:
        assert resume_id(value) == (None, LAST_EVENT_ID_ERROR)

    def test_a_spelling_of_64_characters_is_taken_one_of_65_is_not(self) -> None:
        # uuid.UUID drops any hyphen: a valid spelling can be that long.
        digits = ID.replace("-", "")
        assert resume_id("-" * 32 + digits) == (ID, None)
        assert resume_id("-" * 33 + digits) == (None, LAST_EVENT_ID_ERROR)


class TestResumeReply:
    def test_filter_reply_carries_the_resume_keys(self) -> None:
        reply = filter_reply(
            {
                "event_filters": [],
                "recovered": False,
                "replayed": 0,
                "oldest_id": None,
            }
        )

        assert json.loads(reply) == {
            "type": "filter_update",
            "status": "success",
            "event_filters": [],
            "recovered": False,
            "replayed": 0,
            "oldest_id": None,
        }
