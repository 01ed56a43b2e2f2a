"""The browser and integration tests run in CI: their sessions fail at once,
saying what to install, when chromium or rabbitmq-server is missing; a Zuul
job's playbook and .ci/run install them.

The checks are tools/services.py's ``find_*`` functions, which noxfile.py's
sessions call; these tests run them against paths that do not exist.
"""

import ast
import os
import subprocess
from pathlib import Path
from typing import Callable, Dict, List

import pytest
import yaml

from tests.unit.test_zuul import inherited, jobs, playbook_paths
from tools import services

ROOT = Path(__file__).resolve().parents[2]

NOWHERE = "/nonexistent/osism-test"


def test_a_missing_chromium_fails_saying_how_to_install_it() -> None:
    with pytest.raises(services.MissingService) as missing:
        services.find_chromium({"OSISM_CHROMIUM": f"{NOWHERE}/chromium"})
    assert str(missing.value) == (
        f"{NOWHERE}/chromium not found: the browser tests need Debian's chromium "
        "(apt-get install -y chromium) or OSISM_CHROMIUM pointing at one"
    )


def test_a_missing_rabbitmq_server_fails_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Neither Debian's place nor PATH has one.
    monkeypatch.setattr(services, "RABBITMQ_SERVER_PATHS", (f"{NOWHERE}/rabbitmq",))
    with pytest.raises(services.MissingService) as missing:
        services.find_rabbitmq_server({"PATH": NOWHERE})
    assert str(missing.value) == (
        "rabbitmq-server not found: install it (apt-get install -y "
        "rabbitmq-server) or set OSISM_RABBITMQ_SERVER to its path"
    )


def test_a_configured_path_that_is_not_executable_is_named(tmp_path: Path) -> None:
    script = tmp_path / "rabbitmq-server"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(services.MissingService) as missing:
        services.find_rabbitmq_server({"OSISM_RABBITMQ_SERVER": str(script)})
    assert f"OSISM_RABBITMQ_SERVER={str(script)!r} is not an executable" in str(
        missing.value
    )
    script.chmod(0o755)
    assert services.find_rabbitmq_server({"OSISM_RABBITMQ_SERVER": str(script)}) == (
        str(script)
    )


def test_a_missing_redis_server_fails_saying_how_to_install_it() -> None:
    with pytest.raises(services.MissingService) as missing:
        services.find_redis_server({"PATH": NOWHERE})
    assert "apt-get install -y redis-server" in str(missing.value)


def test_found_where_the_environment_says(tmp_path: Path) -> None:
    chromium = tmp_path / "chromium"
    chromium.write_text("#!/bin/sh\n")
    chromium.chmod(0o755)
    assert services.find_chromium({"OSISM_CHROMIUM": str(chromium)}) == str(chromium)
    (tmp_path / "redis-server").symlink_to(chromium)
    found = services.find_redis_server({"PATH": str(tmp_path)})
    assert found == str(tmp_path / "redis-server")


def required_by_sessions() -> Dict[str, List[str]]:
    """Session function -> the finders it passes to ``require`` (noxfile.py,
    read with ast: nox is not imported)."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    required: Dict[str, List[str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for call in ast.walk(node):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "require"
            ):
                required.setdefault(node.name, []).extend(
                    ast.unparse(arg) for arg in call.args[1:]
                )
    return required


@pytest.mark.parametrize(
    "session, finder",
    [
        ("browser", services.find_chromium),
        ("browser", services.find_redis_server),
        ("integration", services.find_rabbitmq_server),
        ("integration", services.find_epmd),
    ],
)
def test_the_session_runs_the_check(session: str, finder: Callable[..., str]) -> None:
    assert finder.__name__ in required_by_sessions().get(session, [])


def test_a_zuul_job_runs_it_after_installing_chromium() -> None:
    [name] = [n for n in jobs() if inherited(n, "vars.nox_session") == "browser"]
    installed = []
    for path in playbook_paths(jobs()[name]):
        for play in yaml.safe_load((ROOT / path).read_text()):
            for task in play.get("tasks", []):
                for key in ("ansible.builtin.apt", "ansible.builtin.package"):
                    installed += task.get(key, {}).get("name", [])
    assert "chromium" in installed


def test_the_integration_job_installs_rabbitmq_server_and_starts_no_broker() -> None:
    [name] = [n for n in jobs() if inherited(n, "vars.nox_session") == "integration"]
    installed = []
    for path in playbook_paths(jobs()[name]):
        for play in yaml.safe_load((ROOT / path).read_text()):
            for task in play.get("tasks", []):
                for key in ("ansible.builtin.apt", "ansible.builtin.package"):
                    installed += task.get(key, {}).get("name", [])
                # The tests start the broker they need, on ports of their own.
                assert "ansible.builtin.service" not in task, task
    assert {"rabbitmq-server", "redis-server"} <= set(installed)


def run_install_missing(tmp_path: Path, env: Dict[str, str]) -> List[str]:
    """Run .ci/install-missing with an apt-get (and sudo) that only record what
    they were asked; the commands apt-get got, one a line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "apt-get.calls"
    (bin_dir / "apt-get").write_text(
        f'#!/bin/sh\necho "$DEBIAN_FRONTEND $*" >> {record}\n'
    )
    (bin_dir / "sudo").write_text('#!/bin/sh\n[ "$1" = -n ] && shift\nexec "$@"\n')
    for tool in ("apt-get", "sudo"):
        (bin_dir / tool).chmod(0o755)
    result = subprocess.run(
        [str(ROOT / ".ci" / "install-missing")],
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return record.read_text().splitlines() if record.exists() else []


def test_ci_installs_what_the_sessions_miss_without_asking(tmp_path: Path) -> None:
    calls = run_install_missing(
        tmp_path,
        {
            "OSISM_CHROMIUM": f"{NOWHERE}/chromium",
            "OSISM_RABBITMQ_SERVER": f"{NOWHERE}/rabbitmq-server",
            "OSISM_REDIS_SERVER": f"{NOWHERE}/redis-server",
        },
    )
    assert calls == [
        "noninteractive update -qq",
        "noninteractive install -y -qq --no-install-recommends "
        "chromium rabbitmq-server redis-server",
    ]


def test_ci_installs_nothing_when_nothing_is_missing(tmp_path: Path) -> None:
    programs = tmp_path / "programs"
    programs.mkdir()
    env = {}
    for name, variable in (
        ("chromium", "OSISM_CHROMIUM"),
        ("rabbitmq-server", "OSISM_RABBITMQ_SERVER"),
        ("redis-server", "OSISM_REDIS_SERVER"),
    ):
        (programs / name).write_text("#!/bin/sh\n")
        (programs / name).chmod(0o755)
        env[variable] = str(programs / name)
    assert run_install_missing(tmp_path, env) == []


def test_ci_run_installs_them_before_it_runs_nox() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert lines.index(".ci/install-missing") < lines.index('nox "$@"')
