"""The browser tests run in CI: a Zuul job whose
playbook installs Debian's chromium, and .ci/run installing it when missing."""

from pathlib import Path

import yaml

from tests.unit.test_zuul import inherited, jobs, playbook_paths

ROOT = Path(__file__).resolve().parents[2]


def test_the_browser_session_fails_saying_what_is_missing() -> None:
    source = (ROOT / "noxfile.py").read_text()
    assert "apt-get install -y chromium" in source
    assert "session.skip" not in source


def test_a_zuul_job_runs_it_after_installing_chromium() -> None:
    [name] = [n for n in jobs() if inherited(n, "vars.nox_session") == "browser"]
    installed = []
    for path in playbook_paths(jobs()[name]):
        for play in yaml.safe_load((ROOT / path).read_text()):
            for task in play.get("tasks", []):
                for key in ("ansible.builtin.apt", "ansible.builtin.package"):
                    installed += task.get(key, {}).get("name", [])
    assert "chromium" in installed


def test_ci_run_installs_chromium_without_asking() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert "DEBIAN_FRONTEND=noninteractive" in script
    assert "apt-get install -y" in script and "chromium" in script
