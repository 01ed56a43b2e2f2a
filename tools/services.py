"""Where the programs the integration and browser tests run come from.

Each ``find_*`` function returns the path of an executable, or raises
``MissingService`` with a message that says what is missing and how to
install it. ``noxfile.py`` calls them before a session installs anything, the
integration tests call them before they start a server, and the unit tests
call them with a path that does not exist: one check, one message.
``python3 tools/services.py NAME...`` prints the Debian packages of the
missing ones, which .ci/install-missing installs.
"""

import os
import shutil
import sys
from typing import List, Mapping, Optional, Sequence

CHROMIUM = "/usr/bin/chromium"
# Debian's /usr/sbin/rabbitmq-server is a wrapper that only root or the
# rabbitmq user may run (it switches to that user); the script it wraps runs
# a broker as anybody, configured through its environment.
RABBITMQ_SERVER_PATHS = (
    "/usr/lib/rabbitmq/bin/rabbitmq-server",
    "/usr/local/lib/rabbitmq/bin/rabbitmq-server",
)
EPMD_PATHS = ("/usr/lib/erlang/bin/epmd", "/usr/bin/epmd")


class MissingService(RuntimeError):
    """A program the tests need cannot be found; the message says how to get it."""


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def find_executable(
    name: str,
    variable: str,
    install: str,
    candidates: Sequence[str] = (),
    environ: Optional[Mapping[str, str]] = None,
) -> str:
    """``$variable`` if set (it must be executable), else a candidate, else PATH.

    ``install`` is the command that provides ``name``; the error names it.
    """
    environ = os.environ if environ is None else environ
    hint = f"install it ({install}) or set {variable} to its path"
    configured = environ.get(variable, "").strip()
    if configured:
        if _executable(configured):
            return configured
        raise MissingService(
            f"{name} not found: {variable}={configured!r} is not an executable "
            f"file; {hint}"
        )
    for candidate in candidates:
        if _executable(candidate):
            return candidate
    found = shutil.which(name, path=environ.get("PATH"))
    if found is None:
        raise MissingService(f"{name} not found: {hint}")
    return found


def find_redis_server(environ: Optional[Mapping[str, str]] = None) -> str:
    """The redis-server the tests start: $OSISM_REDIS_SERVER, else PATH."""
    return find_executable(
        "redis-server",
        "OSISM_REDIS_SERVER",
        "apt-get install -y redis-server",
        environ=environ,
    )


def find_rabbitmq_server(environ: Optional[Mapping[str, str]] = None) -> str:
    """The rabbitmq-server script the tests start: $OSISM_RABBITMQ_SERVER,
    else Debian's, else PATH."""
    return find_executable(
        "rabbitmq-server",
        "OSISM_RABBITMQ_SERVER",
        "apt-get install -y rabbitmq-server",
        RABBITMQ_SERVER_PATHS,
        environ=environ,
    )


def find_epmd(environ: Optional[Mapping[str, str]] = None) -> str:
    """Erlang's port mapper, which a broker of the tests' own needs running."""
    return find_executable(
        "epmd",
        "OSISM_EPMD",
        "apt-get install -y rabbitmq-server, which brings Erlang",
        EPMD_PATHS,
        environ=environ,
    )


def find_chromium(environ: Optional[Mapping[str, str]] = None) -> str:
    """The browser the page tests drive: $OSISM_CHROMIUM, else Debian's."""
    environ = os.environ if environ is None else environ
    chromium = environ.get("OSISM_CHROMIUM", "").strip() or CHROMIUM
    if not _executable(chromium):
        raise MissingService(
            f"{chromium} not found: the browser tests need Debian's chromium "
            "(apt-get install -y chromium) or OSISM_CHROMIUM pointing at one"
        )
    return chromium


# The programs `python3 tools/services.py NAME...` knows, and the Debian
# package that provides each.
FINDERS = {
    "chromium": ("chromium", find_chromium),
    "rabbitmq-server": ("rabbitmq-server", find_rabbitmq_server),
    "epmd": ("rabbitmq-server", find_epmd),
    "redis-server": ("redis-server", find_redis_server),
}


def missing_packages(
    names: Sequence[str], environ: Optional[Mapping[str, str]] = None
) -> List[str]:
    """The Debian packages that provide the programs in ``names`` not found."""
    packages: List[str] = []
    for name in names:
        package, find = FINDERS[name]
        try:
            find(environ)
        except MissingService:
            if package not in packages:
                packages.append(package)
    return packages


def main(argv: Sequence[str]) -> int:
    """Print the Debian packages that provide the missing programs, one a line."""
    unknown = [name for name in argv if name not in FINDERS]
    if unknown or not argv:
        print(
            f"usage: services.py {{{','.join(FINDERS)}}}...; unknown: {unknown}",
            file=sys.stderr,
        )
        return 2
    for package in missing_packages(argv):
        print(package)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
