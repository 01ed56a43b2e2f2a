"""The fan-out package's imports point down: below the manager's face, no
cycle among its modules, uvicorn's internals in one module of transport."""

import ast
import pathlib
from typing import Dict, List, Set

import pytest

import osism

ROOT = pathlib.Path(osism.__file__).parent
FANOUT = ROOT / "services" / "fanout"
TRANSPORT = ROOT / "transport"


def imported_modules(path: pathlib.Path) -> Set[str]:
    """Every module ``path`` imports, wherever the import statement is
    (under TYPE_CHECKING and inside functions too)."""
    names: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            # "from osism.services.fanout import resume" imports a module
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_name(path: pathlib.Path) -> str:
    relative = path.relative_to(ROOT.parent).with_suffix("")
    return ".".join(relative.parts)


def package_graph(package: pathlib.Path) -> Dict[str, Set[str]]:
    """Each module of ``package`` and the modules of it that it imports."""
    modules = {module_name(p): p for p in package.glob("*.py")}
    return {
        name: {m for m in imported_modules(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    found: List[List[str]] = []

    def visit(name: str, path: List[str]) -> None:
        for target in sorted(graph[name]):
            if target in path:
                found.append(path[path.index(target) :] + [target])
            else:
                visit(target, path + [target])

    for name in sorted(graph):
        visit(name, [name])
    return found


FANOUT_MODULES = sorted(FANOUT.glob("*.py"))


class TestFanoutImports:
    @pytest.mark.parametrize("path", FANOUT_MODULES, ids=lambda p: p.name)
    def test_no_module_imports_the_managers_face_or_the_api(
        self, path: pathlib.Path
    ) -> None:
        above = {
            name
            for name in imported_modules(path)
            if name.startswith(("osism.services.websocket_manager", "osism.api"))
        }
        assert above == set()

    @pytest.mark.parametrize("path", FANOUT_MODULES, ids=lambda p: p.name)
    def test_no_module_imports_uvicorn(self, path: pathlib.Path) -> None:
        names = imported_modules(path)
        assert {n for n in names if n.startswith("uvicorn")} == set()
        assert "osism.transport.uvicorn_protocol" not in names

    def test_there_is_no_cycle_among_its_modules(self) -> None:
        assert cycles(package_graph(FANOUT)) == []

    def test_the_cycle_finder_finds_one(self) -> None:
        graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
        assert ["a", "b", "c", "a"] in cycles(graph)


class TestTransportImports:
    def test_only_uvicorn_protocol_imports_uvicorns_protocols(self) -> None:
        importers = sorted(
            path.name
            for path in ROOT.rglob("*.py")
            if any(
                name.startswith("uvicorn.protocols") for name in imported_modules(path)
            )
        )
        assert importers == ["uvicorn_protocol.py"]

    def test_there_is_no_cycle_among_its_modules(self) -> None:
        assert cycles(package_graph(TRANSPORT)) == []
