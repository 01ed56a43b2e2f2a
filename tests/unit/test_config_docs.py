"""docs/reference/configuration.md shows the table tools/config_docs.py
generates from the settings model: the documentation follows the code."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import config_docs  # noqa: E402

from osism import config  # noqa: E402


class TestTheDocument:
    def test_its_table_is_the_generated_one(self) -> None:
        text = config_docs.DOC.read_text()
        assert config_docs.replaced(text, config_docs.table()) == text, (
            "docs/reference/configuration.md differs from the model: run "
            "python tools/config_docs.py --write"
        )

    def test_check_passes_on_the_document(self) -> None:
        assert config_docs.main(["--check"]) == 0


class TestTheTable:
    def test_one_row_per_variable_and_pattern(self) -> None:
        rows = config_docs.rows()
        assert len(rows) == len(config.fields()) + len(config.PATTERN_VARIABLES)

    @pytest.mark.parametrize(
        "row",
        [
            "| `REDIS_PORT` | `6379` | an integer port 1-65535 | Redis port |",
            "| `REDIS_PASSWORD` | unset | a password | password (also fills in a "
            "`REDIS_URL` without one) |",
            "| `REDIS_SENTINELS` | empty | host:port,host:port | ask these "
            "Sentinels for the master |",
            "| `RABBITMQ_URL` | `amqp://guest:guest@localhost:5672//` | an AMQP URL "
            "| the listener's broker |",
        ],
    )
    def test_a_row_has_default_expectation_and_description(self, row: str) -> None:
        assert row in config_docs.rows()

    def test_printed_without_options(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert config_docs.main([]) == 0
        assert capsys.readouterr().out == config_docs.table() + "\n"


class TestWriting:
    def test_write_replaces_only_what_lies_between_the_markers(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        doc = tmp_path / "configuration.md"
        doc.write_text(f"before\n{config_docs.BEGIN}\nold\n{config_docs.END}\nafter\n")
        monkeypatch.setattr(config_docs, "DOC", doc)
        assert config_docs.main(["--check"]) == 1
        assert config_docs.main(["--write"]) == 0
        assert doc.read_text() == (
            f"before\n{config_docs.BEGIN}\n{config_docs.table()}\n"
            f"{config_docs.END}\nafter\n"
        )
        assert config_docs.main(["--check"]) == 0

    def test_a_document_without_markers_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="lacks the markers"):
            config_docs.replaced("no markers here", "table")
