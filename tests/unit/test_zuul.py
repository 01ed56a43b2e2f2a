"""Zuul's jobs run nox sessions that exist, with playbooks that exist.

.zuul.yaml and the playbooks are read with yaml.safe_load; noxfile.py is read
with ast (nox is not imported), so a renamed session or a moved playbook fails
here rather than in the first Zuul run after it.
"""

import ast
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ZUUL = ROOT / ".zuul.yaml"
PLAYBOOK_KEYS = ("pre-run", "run", "post-run", "cleanup-run")
NOX_COMMAND = re.compile(r"\bnox\b[^\n]*?(?:-s|--sessions?|-e)\s+([^\s\"'}]+)")
PIPELINES = ("check", "gate")


def zuul_config() -> List[Dict[str, Any]]:
    config = yaml.safe_load(ZUUL.read_text())
    assert isinstance(config, list), ".zuul.yaml must be a list of items"
    return config


def jobs() -> Dict[str, Dict[str, Any]]:
    return {item["job"]["name"]: item["job"] for item in zuul_config() if "job" in item}


def project() -> Dict[str, Any]:
    projects = [item["project"] for item in zuul_config() if "project" in item]
    assert len(projects) == 1, "one project stanza"
    stanza: Dict[str, Any] = projects[0]
    return stanza


def inherited(name: str, key: str) -> Any:
    """A job attribute, looked up through its parents as Zuul does."""
    defined = jobs()
    job: Optional[Dict[str, Any]] = defined[name]
    while job is not None:
        if key in job:
            return job[key]
        if key.startswith("vars.") and key[5:] in job.get("vars", {}):
            return job["vars"][key[5:]]
        parent = job.get("parent")
        job = defined.get(parent) if parent else None
    return None


def playbook_paths(job: Dict[str, Any]) -> Iterator[str]:
    for key in PLAYBOOK_KEYS:
        value = job.get(key, [])
        for entry in [value] if isinstance(value, (str, dict)) else value:
            yield entry["name"] if isinstance(entry, dict) else entry


def all_playbooks() -> Set[str]:
    return {path for job in jobs().values() for path in playbook_paths(job)}


def nox_sessions() -> Set[str]:
    """Names of the functions in noxfile.py decorated with nox.session."""
    tree = ast.parse((ROOT / "noxfile.py").read_text())
    sessions = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call is not None else decorator
            if ast.unparse(target) not in ("nox.session", "session"):
                continue
            name = node.name
            for keyword in call.keywords if call is not None else []:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    name = str(keyword.value.value)
            sessions.add(name)
    return sessions


def sessions_named_by_zuul() -> Dict[str, str]:
    """Session -> where it is named (a job's nox_session, a literal nox command)."""
    named = {}
    for name in jobs():
        session = inherited(name, "vars.nox_session")
        if session is not None:
            named[str(session)] = f"job {name}"
    for path in sorted(all_playbooks()):
        for session in NOX_COMMAND.findall((ROOT / path).read_text()):
            if "{{" not in session:
                named[session] = path
    return named


def test_the_noxfile_is_read_without_importing_nox() -> None:
    assert {"lint", "tests", "coverage", "integration"} <= nox_sessions()


def test_every_nox_session_zuul_names_exists_in_the_noxfile() -> None:
    named = sessions_named_by_zuul()
    assert named, "no job names a nox session"
    missing = {session: where for session, where in named.items()}
    for session in nox_sessions():
        missing.pop(session, None)
    assert missing == {}


def test_every_playbook_exists_and_is_a_list_of_plays() -> None:
    assert all_playbooks()
    for path in sorted(all_playbooks()):
        playbook = ROOT / path
        assert playbook.is_file(), f"{path} does not exist"
        plays = yaml.safe_load(playbook.read_text())
        assert isinstance(plays, list) and plays, f"{path} is not a list of plays"
        for play in plays:
            assert "hosts" in play, f"a play in {path} has no hosts"


def test_every_playbook_in_the_playbooks_directory_is_used() -> None:
    on_disk = {f"playbooks/{p.name}" for p in (ROOT / "playbooks").glob("*.yaml")}
    assert on_disk == all_playbooks()


@pytest.mark.parametrize(
    "job, session",
    [
        ("python-osism-lint", "lint"),
        ("python-osism-unit-tests", "coverage"),
        ("python-osism-integration-tests", "integration"),
    ],
)
def test_each_gate_job_runs_its_session(job: str, session: str) -> None:
    assert inherited(job, "vars.nox_session") == session
    assert inherited(job, "run") is not None


def test_every_concrete_job_has_a_session_a_run_playbook_and_a_node() -> None:
    for name, job in jobs().items():
        if job.get("abstract"):
            continue
        assert inherited(name, "vars.nox_session"), name
        assert inherited(name, "run"), name
        assert inherited(name, "nodeset"), name


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_check_and_gate_run_every_concrete_job_and_only_defined_ones(
    pipeline: str,
) -> None:
    listed = project()[pipeline]["jobs"]
    names = [entry if isinstance(entry, str) else next(iter(entry)) for entry in listed]
    concrete = {name for name, job in jobs().items() if not job.get("abstract")}
    assert set(names) == concrete


def test_nox_is_installed_from_the_one_home_of_pins() -> None:
    text = "\n".join((ROOT / path).read_text() for path in sorted(all_playbooks()))
    assert "tools/pins.py nox uv" in text
    assert re.search(r"\bnox[=<>~]=", text) is None, "pins belong in the Pipfile"
