"""The project's own files agree: pins have one home, CI runs the README's command."""

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import pins  # noqa: E402


class TestPins:
    def test_every_dev_package_is_pinned_exactly(self) -> None:
        with (ROOT / "Pipfile").open("rb") as handle:
            dev = tomllib.load(handle)["dev-packages"]
        loose = {name: spec for name, spec in dev.items() if not spec.startswith("==")}
        assert loose == {}

    def test_every_runtime_requirement_is_pinned_exactly(self) -> None:
        lines = (ROOT / "requirements.txt").read_text().splitlines()
        requirements = [line for line in lines if line and not line.startswith("#")]
        assert requirements
        assert [line for line in requirements if "==" not in line] == []

    def test_dev_pins_reads_the_dev_packages_of_a_pipfile(self, tmp_path: Path) -> None:
        pipfile = tmp_path / "Pipfile"
        pipfile.write_text(
            '[packages]\nfastapi = "==1.0"\n\n'
            '[dev-packages]\nnox = "==2026.1.1"\npytest = "==9.0.0"\n'
        )
        assert pins.dev_pins(pipfile) == {
            "nox": "nox==2026.1.1",
            "pytest": "pytest==9.0.0",
        }

    def test_requirements_keeps_the_order_asked_for(self) -> None:
        asked = pins.requirements("uv", "nox")
        assert [re.sub("==.*", "", pin) for pin in asked] == ["uv", "nox"]
        assert all(re.fullmatch(r"[\w-]+==[\w.]+", pin) for pin in asked)

    def test_unknown_name_is_a_clear_error(self) -> None:
        with pytest.raises(SystemExit, match="not pinned in .*Pipfile: no-such-tool"):
            pins.requirements("no-such-tool")

    def test_noxfile_installs_only_pinned_tools(self) -> None:
        noxfile = (ROOT / "noxfile.py").read_text()
        assert "session.install(" in noxfile
        for call in re.findall(r"session\.install\(([^)]*)\)", noxfile):
            assert "==" not in call, "pins belong in the Pipfile, not in noxfile.py"


class TestLockFile:
    def test_lock_holds_every_dev_pin_at_its_version(self) -> None:
        lock = json.loads((ROOT / "Pipfile.lock").read_text())
        locked = {
            name.lower(): entry.get("version")
            for name, entry in lock["develop"].items()
        }
        stale = {
            name: (pin, locked.get(name.lower()))
            for name, pin in pins.dev_pins().items()
            if locked.get(name.lower()) != pin[len(name) :]
        }
        assert stale == {}, "run 'pipenv lock' after changing the Pipfile"

    def test_lock_holds_every_runtime_pin_at_its_version(self) -> None:
        lock = json.loads((ROOT / "Pipfile.lock").read_text())
        locked = {
            name.lower(): entry.get("version")
            for name, entry in lock["default"].items()
        }
        for line in (ROOT / "requirements.txt").read_text().split():
            name, version = line.split("==")
            name = re.sub(r"\[.*\]", "", name).lower()
            assert locked.get(name) == f"=={version}", name


class TestCiEntryPoint:
    def test_ci_run_calls_nox_with_the_pinned_version(self) -> None:
        script = (ROOT / ".ci" / "run").read_text()
        assert script.startswith("#!/usr/bin/env bash")
        assert "set -euo pipefail" in script
        assert "tools/pins.py nox uv" in script
        assert re.search(r"^nox\b", script, re.MULTILINE)

    def test_readme_test_command_is_nox(self) -> None:
        readme = (ROOT / "README.md").read_text()
        assert "$(python3 tools/pins.py nox uv)" in readme
        assert ".venv-nox/bin/nox" in readme

    def test_default_sessions_are_the_definition_of_done(self) -> None:
        noxfile = (ROOT / "noxfile.py").read_text()
        match = re.search(r"nox\.options\.sessions = \[([^\]]*)\]", noxfile)
        assert match is not None
        sessions = re.findall(r'"(\w+)"', match.group(1))
        # The unit suite runs once: coverage runs it; `tests` is the quick run.
        assert sessions == [
            "lint",
            "docs",
            "coverage",
            "integration",
            "browser",
            "mutation",
        ]


class TestSelfContained:
    """A clone anywhere runs: nothing the project runs reads outside its tree."""

    RUN = ("osism", "tests", "tools", "bench", "playbooks", ".ci", "noxfile.py")

    def test_no_file_the_project_runs_names_a_folder_beside_the_repository(
        self,
    ) -> None:
        outside = re.compile(r"\.\./shared|\.\.[/\\]\.\.[/\\]")
        offenders = [
            str(path.relative_to(ROOT))
            for top in self.RUN
            for path in (
                [ROOT / top] if (ROOT / top).is_file() else (ROOT / top).rglob("*")
            )
            if path.is_file()
            # not what a run leaves: .ci/.venv, __pycache__
            and not any(
                part.startswith(".") or part == "__pycache__"
                for part in path.relative_to(ROOT).parts[1:]
            )
            and path.suffix in {".py", ".sh", ".yaml", ".yml", ".cfg", ".toml", ""}
            and path != Path(__file__).resolve()
            and outside.search(path.read_text(errors="replace"))
        ]
        assert offenders == []

    def test_openstack_samples_are_in_the_repository(self) -> None:
        data = ROOT / "tests" / "data" / "openstack"
        expected = json.loads((data / "expected.json").read_text())
        assert len(expected) == 20
        assert [name for name in expected if not (data / name).is_file()] == []
        assert (data / "PROVENANCE.md").is_file()
