"""The mutation gate: run mutmut over the event path and judge its result.

``nox -s mutation`` runs ``python tools/mutation.py``: it removes an old
``mutants/`` directory, runs ``mutmut run`` (configured in pyproject.toml's
``[tool.mutmut]``: every module of osism/ that runs in a server or the
listener, tested by tests/unit), reads mutmut's verdicts from
``mutants/**/*.py.meta``, prints the score per module and every surviving
mutant (file, line, diff), and exits non-zero under the threshold.

Score = killed / counted, as mutmut counts (its ``status_by_exit_code``):
killed means a test failed, or the mutant hung until its time limit (CI would
hang on it too). Counted: every mutant except those of the one exclusion rule
below; survivors, mutants no test reaches, mutants mutmut could not judge and
runs ended by SIGKILL or a segfault (mutmut's "segfault", listed apart) count
as not killed.

Exclusion rule (the only one): a surviving mutant whose only change is the
text of a string literal that is an argument of a logging call
(``<receiver>.debug/info/warning/error/exception/critical(...)``, which covers
``logging.Logger`` and ``RateLimitedLog``) is listed separately and not
counted. A mutant that drops, replaces or reorders such an argument, changes
the log level or the call, is counted like any other.

What the score cannot see: the run also fails when a module in scope (a file
``only_mutate`` matches) yields no mutant although it has code, and it prints,
per module, the functions mutmut never mutates and why (decorated, not at the
top level, a name mutmut leaves alone, a pragma) and the statements outside
any function, which no mutant reaches either.
"""

import argparse
import ast
import difflib
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

DEFAULT_THRESHOLD = 95.0
THRESHOLD_ENV = "MUTATION_THRESHOLD"
MUTANTS = Path("mutants")
# A test's wait for a condition (tests/conftest.py WAIT_TIMEOUT) fails after
# this many seconds during the run. What it waits for takes milliseconds
# alone; a correct run on a loaded machine (two mutmut workers on two cores,
# and more beside) can take a second, and a failed wait counts as a kill, so
# the wait is three times that. A mutant that breaks delivery costs the full
# wait, and one that hangs ends at the per-test limit (--timeout in
# pyproject.toml), which is twice this: 267 of 6,208 mutants cost one or the
# other, a fifth of the run's test time.
WAIT_ENV = "OSISM_TEST_WAIT"
WAIT_SECONDS = "3"
LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})

# mutmut 3.8.1's verdict for each exit code of a mutant's test run, under
# mutmut's own names (mutmut/stats.py status_by_exit_code; any other code is
# "suspicious"). tests/unit/test_mutation_tool.py checks this copy against
# mutmut's table where mutmut is installed.
KILLED = "killed"
TIMEOUT = "timeout"
SURVIVED = "survived"
NO_TESTS = "no tests"
NOT_CHECKED = "not checked"
SKIPPED = "skipped"
INTERRUPTED = "check was interrupted by user"
SUSPICIOUS = "suspicious"
SEGFAULT = "segfault"
TYPE_CHECK = "caught by type check"
STATUS_BY_CODE: Dict[Optional[int], str] = {
    1: KILLED,
    3: KILLED,  # pytest's internal error: the mutant broke the test run
    0: SURVIVED,
    5: NO_TESTS,
    2: INTERRUPTED,
    None: NOT_CHECKED,
    33: NO_TESTS,
    34: SKIPPED,
    35: SUSPICIOUS,
    36: TIMEOUT,
    37: TYPE_CHECK,  # no type checker is configured here
    -24: TIMEOUT,  # SIGXCPU: over the CPU-time or the wall-clock limit
    24: TIMEOUT,
    152: TIMEOUT,
    255: TIMEOUT,
    -11: SEGFAULT,
    -9: SEGFAULT,  # SIGKILL: the CPU hard limit after SIGXCPU, or out of memory
}
# mutmut's own score counts these as killed (mutmut badge); so does the gate.
DETECTED = frozenset({KILLED, TIMEOUT})

# (mutant key, source path) -> (original function code, mutated function code)
PairReader = Callable[[str, str], Tuple[str, str]]
# source path -> its text
SourceReader = Callable[[str], str]


def status_of(code: Optional[int]) -> str:
    """What a mutmut exit code says about a mutant."""
    return STATUS_BY_CODE.get(code, SUSPICIOUS)


@dataclass(frozen=True)
class MutantKey:
    """The parts of a mutmut key such as ``osism.api.routes.xǁCǁm__mutmut_3``."""

    module: str
    cls: Optional[str]
    function: str
    number: int


def parse_key(key: str) -> MutantKey:
    """Split a mutmut mutant key into module, class, function and number."""
    module, _, mangled = key.rpartition(".")
    name, sep, number = mangled.rpartition("__mutmut_")
    if not module or not sep or not number.isdigit():
        raise ValueError(f"not a mutmut key: {key!r}")
    if name.startswith("xǁ"):
        parts = name.split("ǁ")
        if len(parts) != 3:
            raise ValueError(f"not a mutmut method key: {key!r}")
        return MutantKey(module, parts[1], parts[2], int(number))
    if name.startswith("x_"):
        return MutantKey(module, None, name[2:], int(number))
    raise ValueError(f"not a mutmut key: {key!r}")


def definition_line(source: str, cls: Optional[str], function: str) -> int:
    """Line of ``def function`` (a method of ``cls`` if given) in ``source``."""
    tree = ast.parse(source)
    body: List[ast.stmt] = tree.body
    if cls is not None:
        classes = [n for n in body if isinstance(n, ast.ClassDef) and n.name == cls]
        if not classes:
            raise LookupError(f"class {cls} not found")
        body = classes[0].body
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.name == function:
                return node.lineno
    raise LookupError(f"function {function} not found")


def _def_index(lines: Sequence[str]) -> int:
    for index, line in enumerate(lines):
        if line.lstrip().startswith(("def ", "async def ")):
            return index
    return 0


def changed_line(original: str, mutant: str, def_lineno: int) -> int:
    """Line in the source file of the first line the mutant changes.

    ``original``/``mutant`` are the function's code as mutmut prints it (from
    its decorators or ``def`` on); ``def_lineno`` is where ``def`` is in the
    file.
    """
    before, after = original.splitlines(), mutant.splitlines()
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    first = next(
        (op[1] for op in matcher.get_opcodes() if op[0] != "equal"), _def_index(before)
    )
    return def_lineno + first - _def_index(before)


def unified_diff(original: str, mutant: str, path: str, first_line: int) -> str:
    """A unified diff of one function whose hunk lines are the file's lines."""
    offset = first_line - changed_line(original, mutant, 1)
    lines = list(
        difflib.unified_diff(
            original.splitlines(),
            mutant.splitlines(),
            fromfile=path,
            tofile=path,
            lineterm="",
            n=1,
        )
    )
    shifted = []
    for line in lines:
        if line.startswith("@@"):
            old, new = line.split()[1:3]
            line = f"@@ {_shift(old, offset)} {_shift(new, offset)} @@"
        shifted.append(line)
    return "\n".join(shifted)


def _shift(span: str, offset: int) -> str:
    sign, rest = span[0], span[1:]
    start, _, count = rest.partition(",")
    shifted = f"{sign}{int(start) + offset}"
    return f"{shifted},{count}" if count else shifted


def _is_log_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in LOG_METHODS
        and isinstance(node.func.value, (ast.Name, ast.Attribute))
    )


def _is_log_argument(node: ast.AST, ancestors: Sequence[ast.AST]) -> bool:
    """A str constant passed to a logging call (directly or in an f-string)."""
    chain = [*ancestors]
    child: ast.AST = node
    while chain and isinstance(chain[-1], ast.JoinedStr):
        child = chain.pop()
    call = chain[-1] if chain else None
    return isinstance(call, ast.Call) and _is_log_call(call) and child in call.args


def _differences(
    a: ast.AST, b: ast.AST, ancestors: List[ast.AST]
) -> Iterable[Tuple[ast.AST, ast.AST, List[ast.AST]]]:
    """Pairs of nodes where two ASTs differ, with the ancestors of each."""
    if type(a) is not type(b):
        yield a, b, ancestors
        return
    for name in a._fields:
        left, right = getattr(a, name, None), getattr(b, name, None)
        if isinstance(left, list) and isinstance(right, list):
            if len(left) != len(right):
                yield a, b, ancestors
                return
            pairs = list(zip(left, right))
        else:
            pairs = [(left, right)]
        for x, y in pairs:
            if isinstance(x, ast.AST) and isinstance(y, ast.AST):
                yield from _differences(x, y, ancestors + [a])
            elif x != y or type(x) is not type(y):
                yield a, b, ancestors
                return


def is_log_text_only(original: str, mutant: str) -> bool:
    """True when the mutant only changes the text of a logging call's string."""
    try:
        before, after = ast.parse(original), ast.parse(mutant)
    except SyntaxError:
        return False
    differences = list(_differences(before, after, []))
    if not differences:
        return False
    return all(
        _is_text_change(x, y) and _is_log_argument(x, ancestors)
        for x, y, ancestors in differences
    )


def _is_text_change(x: ast.AST, y: ast.AST) -> bool:
    """Both are string literals (or f-strings formatting the same values)."""
    if isinstance(x, ast.Constant) and isinstance(y, ast.Constant):
        return isinstance(x.value, str) and isinstance(y.value, str)
    if isinstance(x, ast.JoinedStr) and isinstance(y, ast.JoinedStr):
        return _formatted(x) == _formatted(y)
    return False


def _formatted(node: ast.JoinedStr) -> List[str]:
    return [ast.dump(v) for v in node.values if isinstance(v, ast.FormattedValue)]


# What mutmut 3.8.1 never mutates (mutmut/mutation/file_mutation.py,
# MutationVisitor._skip_node_and_children and combine_mutations_to_source):
DECORATED = "decorated"
NOT_TOP_LEVEL = "not at the top level"
NAME = "a name mutmut leaves alone"
PRAGMA = "pragma: no mutate"
# - a function with any decorator but a lone @staticmethod or @classmethod
#   (the route handlers of a FastAPI app, @property, @contextmanager), at any
#   depth: its body is not visited;
# - a function mutmut has no trampoline for: only module-level functions and
#   the methods of module-level classes get one, so a function under a
#   module-level if/try/with or in a nested class yields no mutant;
# - __getattribute__, __setattr__, __new__, and an Enum's __init__ and
#   _generate_next_value_;
# - a function under ``# pragma: no mutate block`` (on its ``def`` line or
#   above it in the same block) or between ``no mutate start`` and ``end``;
# - any statement outside a function (module level, class bodies).
NEVER_MUTATED_NAMES = frozenset({"__getattribute__", "__setattr__", "__new__"})
NEVER_MUTATED_ENUM_NAMES = frozenset({"__init__", "_generate_next_value_"})
ENUM_BASES = frozenset({"Enum", "IntEnum", "StrEnum", "Flag", "IntFlag"})
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


@dataclass(frozen=True)
class Skipped:
    """A function mutmut makes no mutant of, and why."""

    name: str  # qualified: "create_app.status", "Connection.filters"
    line: int
    reason: str


@dataclass
class Unmutated:
    """What mutmut leaves alone in one module."""

    functions: List[Skipped] = field(default_factory=list)
    statements: int = 0  # statements outside any function: imports, constants
    has_code: bool = True  # False: a docstring and imports, nothing to mutate


def _pragma(comment: str) -> Optional[str]:
    """mutmut's reading of a comment: "block", "start", "end", "bare" or None."""
    if "# pragma:" not in comment or "no mutate" not in comment:
        return None
    tail = comment.partition("no mutate")[2].strip().lstrip(": ")
    tokens = tail.split(",", 1)[0].split()
    token = tokens[0] if tokens else None
    return token if token in ("block", "start", "end") else "bare"


def pragma_lines(source: str) -> Set[int]:
    """Lines a ``# pragma: no mutate block`` or ``start``/``end`` region covers.

    A ``block`` comment on a line of its own covers the rest of the block it
    stands in (the lines that follow at its indentation or deeper); one after
    a statement's colon covers that statement's block.
    """
    lines = source.splitlines()
    covered: Set[int] = set()
    start: Optional[int] = None
    for number, text in enumerate(lines, start=1):
        code, hash_, comment = text.partition("#")
        token = _pragma(hash_ + comment) if hash_ else None
        if token == "start":
            start = number
        elif token == "end" and start is not None:
            covered.update(range(start, number + 1))
            start = None
        elif token == "block":
            indent = len(text) - len(text.lstrip())
            covered.add(number)
            if code.strip():  # after a header: its block is deeper than it
                indent += 1
            covered.update(_block_from(lines, number, indent))
    return covered


def _block_from(lines: Sequence[str], number: int, indent: int) -> Iterable[int]:
    for later, text in enumerate(lines[number:], start=number + 1):
        if text.strip() and len(text) - len(text.lstrip()) < indent:
            return
        yield later


def _is_decorated(node: ast.AST) -> bool:
    decorators = getattr(node, "decorator_list", [])
    if len(decorators) == 1:
        only = decorators[0]
        if isinstance(only, ast.Name) and only.id in ("staticmethod", "classmethod"):
            return False
    return bool(decorators)


def _is_enum(node: ast.ClassDef) -> bool:
    names = [
        base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
        for base in node.bases
    ]
    return any(name in ENUM_BASES for name in names)


def _is_docstring_or_import(index: int, node: ast.stmt) -> bool:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return True
    return (
        index == 0
        and isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


class _SkipFinder:
    """Walks a module as mutmut does and notes what it leaves alone."""

    def __init__(self, source: str) -> None:
        self.pragma = pragma_lines(source)
        self.found = Unmutated()

    def skip(self, node: ast.stmt, name: str, reason: str) -> None:
        self.found.functions.append(Skipped(name, node.lineno, reason))

    def module(self, body: Sequence[ast.stmt]) -> None:
        self.found.has_code = not all(
            _is_docstring_or_import(index, node) for index, node in enumerate(body)
        )
        for index, node in enumerate(body):
            if isinstance(node, FUNCTIONS):
                self.top_function(node, node.name, enum=False, in_pragma=False)
            elif isinstance(node, ast.ClassDef):
                self.top_class(node)
            else:
                self.found.statements += not _is_docstring_or_import(index, node)
                self.unreached(node, "")

    def top_class(self, node: ast.ClassDef) -> None:
        enum, in_pragma = _is_enum(node), node.lineno in self.pragma
        for index, child in enumerate(node.body):
            if isinstance(child, FUNCTIONS):
                name = f"{node.name}.{child.name}"
                self.top_function(child, name, enum=enum, in_pragma=in_pragma)
            elif isinstance(child, ast.ClassDef):
                self.unreached(child, f"{node.name}.")
            else:
                self.found.statements += not (
                    isinstance(child, ast.Pass) or _is_docstring_or_import(index, child)
                )
                self.unreached(child, f"{node.name}.")

    def top_function(
        self,
        node: Union[ast.FunctionDef, ast.AsyncFunctionDef],
        name: str,
        enum: bool,
        in_pragma: bool,
    ) -> None:
        """A function mutmut gives a trampoline, unless a rule skips it."""
        if enum and node.name in NEVER_MUTATED_ENUM_NAMES:
            self.skip(node, name, NAME)
        elif in_pragma:
            self.skip(node, name, PRAGMA)
        else:
            self.definition(node, name)

    def definition(
        self, node: Union[ast.FunctionDef, ast.AsyncFunctionDef], name: str
    ) -> None:
        """A function mutmut visits: skipped by its decorators, name or pragma,
        else mutated, and so are the functions it defines unless they are."""
        if _is_decorated(node):
            self.skip(node, name, DECORATED)
        elif node.name in NEVER_MUTATED_NAMES:
            self.skip(node, name, NAME)
        elif node.lineno in self.pragma:
            self.skip(node, name, PRAGMA)
        else:
            self.inside(node, f"{name}.")

    def inside(self, node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, FUNCTIONS):
                self.definition(child, prefix + child.name)
            elif isinstance(child, ast.ClassDef):
                self.inside(child, f"{prefix}{child.name}.")
            else:
                self.inside(child, prefix)

    def unreached(self, node: ast.AST, prefix: str) -> None:
        """Functions outside any module-level function or method."""
        if isinstance(node, FUNCTIONS):
            self.skip(node, prefix + node.name, NOT_TOP_LEVEL)
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                self.unreached(statement, f"{prefix}{node.name}.")
        else:
            for child in ast.iter_child_nodes(node):
                self.unreached(child, prefix)


def unmutated(source: str) -> Unmutated:
    """The functions mutmut makes no mutant of in ``source``, and why."""
    finder = _SkipFinder(source)
    finder.module(ast.parse(source).body)
    finder.found.functions.sort(key=lambda skipped: skipped.line)
    return finder.found


@dataclass
class Survivor:
    key: str
    path: str
    line: int
    diff: str


@dataclass
class ModuleScore:
    path: str
    total: int = 0
    detected: int = 0
    excluded: int = 0
    undetected: List[Survivor] = field(default_factory=list)
    signalled: List[Survivor] = field(default_factory=list)  # mutmut: segfault
    unmutated: Unmutated = field(default_factory=Unmutated)

    @property
    def counted(self) -> int:
        return self.total - self.excluded

    @property
    def score(self) -> float:
        return 100.0 * self.detected / self.counted if self.counted else 100.0

    @property
    def without_mutants(self) -> bool:
        """In scope, with code, and not one mutant: the gate does not reach it."""
        return self.total == 0 and self.unmutated.has_code


@dataclass
class Result:
    modules: Dict[str, ModuleScore] = field(default_factory=dict)
    excluded: List[Survivor] = field(default_factory=list)
    status_counts: Dict[str, int] = field(default_factory=dict)

    @property
    def counted(self) -> int:
        return sum(m.counted for m in self.modules.values())

    @property
    def detected(self) -> int:
        return sum(m.detected for m in self.modules.values())

    @property
    def score(self) -> float:
        return 100.0 * self.detected / self.counted if self.counted else 0.0

    @property
    def signalled(self) -> List[Survivor]:
        return [s for m in self.modules.values() for s in m.signalled]

    @property
    def without_mutants(self) -> List[str]:
        return [m.path for m in self.modules.values() if m.without_mutants]

    def passed(self, threshold: float) -> bool:
        return self.score >= threshold and not self.without_mutants


def mutmut_config(root: Path) -> Dict[str, Any]:
    """pyproject.toml's [tool.mutmut]."""
    with open(root / "pyproject.toml", "rb") as handle:
        config: Dict[str, Any] = tomllib.load(handle)["tool"]["mutmut"]
    return config


def in_scope(root: Path, config: Dict[str, Any]) -> List[str]:
    """The modules mutmut mutates: the .py files under ``source_paths`` that
    an ``only_mutate`` glob matches and no ``do_not_mutate`` glob does (the
    globs are fnmatch patterns, whose ``*`` spans directories, as in mutmut)."""
    only, never = config.get("only_mutate", []), config.get("do_not_mutate", [])
    found = []
    for source in config.get("source_paths", []):
        top = root / source
        files = [top] if top.is_file() else top.rglob("*.py")
        for file in files:
            path = file.relative_to(root).as_posix()
            if not path.endswith(".py"):
                continue
            if only and not any(fnmatch.fnmatch(path, glob) for glob in only):
                continue
            if not any(fnmatch.fnmatch(path, glob) for glob in never):
                found.append(path)
    return sorted(found)


def read_verdicts(root: Path) -> Dict[str, Dict[str, Optional[int]]]:
    """Source path -> mutant key -> mutmut exit code, from mutmut's .meta files."""
    verdicts = {}
    for meta in sorted((root / MUTANTS).rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        path = meta.relative_to(root / MUTANTS).as_posix()[: -len(".meta")]
        verdicts[path] = dict(data["exit_code_by_key"])
    return verdicts


def read_durations(root: Path) -> Dict[str, float]:
    """Mutant key -> seconds its test run took, from mutmut's .meta files."""
    durations: Dict[str, float] = {}
    for meta in sorted((root / MUTANTS).rglob("*.py.meta")):
        durations.update(json.loads(meta.read_text()).get("durations_by_key", {}))
    return durations


def per_test_limit(config: Dict[str, Any]) -> Optional[float]:
    """The ``--timeout=N`` of [tool.mutmut] pytest_add_cli_args, if any."""
    for arg in config.get("pytest_add_cli_args", []):
        if arg.startswith("--timeout="):
            return float(arg.partition("=")[2])
    return None


def timing_report(durations: Dict[str, float], wait: float, limit: float) -> str:
    """Where the run's time went: the mutants a failed wait or the per-test
    limit ended cost that wait or limit each, the rest what their tests took."""
    at_limit = sorted(k for k, d in durations.items() if d >= limit)
    at_wait = [k for k, d in durations.items() if wait <= d < limit]
    total = sum(durations.values())
    out = [
        f"time in the mutants' test runs: {total:.0f} s over"
        f" {_plural(len(durations), 'mutant')};"
        f" {len(at_wait)} ended in {wait:g}-{limit:g} s, most at a failed wait"
        f" ({sum(durations[k] for k in at_wait):.0f} s);"
        f" {len(at_limit)} ran into the {limit:g} s per-test limit"
        f" ({sum(durations[k] for k in at_limit):.0f} s)"
    ]
    if at_limit:
        out += [
            "Ran into the per-test limit (a test with no deadline of its own hangs):"
        ]
        out += [f"  {key}" for key in at_limit]
    return "\n".join(out)


def mutmut_function_pair(key: str, path: str) -> Tuple[str, str]:
    """The original and mutated function of a mutant, as mutmut shows them."""
    import libcst
    from mutmut.mutation import diff_apply

    functions = diff_apply.read_functions_from_index(key, path)
    if functions is None:
        module = diff_apply.read_mutants_module(path)
        functions = (
            diff_apply.read_original_function(module, key),
            diff_apply.read_mutant_function(module, key),
        )
    original, mutant = (libcst.Module([f]).code.strip() + "\n" for f in functions)
    return original, mutant


def judge(
    verdicts: Dict[str, Dict[str, Optional[int]]],
    read_pair: PairReader,
    read_source: SourceReader,
    scope: Sequence[str] = (),
) -> Result:
    """Score every mutant; diff and classify the ones no test detected.

    ``scope``: the modules ``only_mutate`` matches; each gets a row, and what
    mutmut leaves alone in it is noted, mutants or not.
    """
    result = Result()
    for path in sorted({*verdicts, *scope}):
        module = result.modules.setdefault(path, ModuleScore(path))
        source: Optional[str] = None
        if path in scope:
            source = read_source(path)
            module.unmutated = unmutated(source)
        codes = verdicts.get(path, {})
        for key, code in sorted(codes.items(), key=lambda item: _order(item[0])):
            status = status_of(code)
            result.status_counts[status] = result.status_counts.get(status, 0) + 1
            module.total += 1
            if status in DETECTED:
                module.detected += 1
                continue
            if source is None:
                source = read_source(path)
            survivor, log_text = describe(key, path, source, read_pair)
            if status == SURVIVED and log_text:
                module.excluded += 1
                result.excluded.append(survivor)
            elif status == SEGFAULT:
                survivor.diff = f"({status}: exit {code})\n{survivor.diff}"
                module.signalled.append(survivor)
            else:
                if status != SURVIVED:
                    survivor.diff = f"({status})\n{survivor.diff}"
                module.undetected.append(survivor)
    return result


def _order(key: str) -> Tuple[str, int]:
    try:
        parsed = parse_key(key)
    except ValueError:
        return key, 0
    return f"{parsed.cls or ''}.{parsed.function}", parsed.number


def describe(
    key: str, path: str, source: str, read_pair: PairReader
) -> Tuple[Survivor, bool]:
    parsed = parse_key(key)
    original, mutant = read_pair(key, path)
    try:
        def_lineno = definition_line(source, parsed.cls, parsed.function)
    except LookupError:
        def_lineno = 1
    line = changed_line(original, mutant, def_lineno)
    diff = unified_diff(original, mutant, path, line)
    return Survivor(key, path, line, diff), is_log_text_only(original, mutant)


def unmutated_line(path: str, found: Unmutated) -> Optional[str]:
    """One line on the functions mutmut skips in a module, None when none."""
    if not found.functions:
        return None
    by_reason: Dict[str, List[str]] = {}
    for skipped in found.functions:
        by_reason.setdefault(skipped.reason, []).append(
            f"{skipped.name}:{skipped.line}"
        )
    reasons = "; ".join(
        f"{reason}: {', '.join(names)}" for reason, names in by_reason.items()
    )
    line = f"  {path}: {_plural(len(found.functions), 'function')} skipped ({reasons})"
    if found.statements:
        line += f", {_plural(found.statements, 'statement')} outside functions"
    return line


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def report(result: Result, threshold: float) -> str:
    """The text the session prints: survivors, what mutmut skips, the table."""
    out: List[str] = []
    for module in result.modules.values():
        for survivor in module.undetected:
            out += [f"SURVIVED {survivor.path}:{survivor.line} {survivor.key}"]
            out += [survivor.diff, ""]
    for survivor in result.signalled:
        out += [f"ENDED BY A SIGNAL {survivor.path}:{survivor.line} {survivor.key}"]
        out += [survivor.diff, ""]
    if result.excluded:
        out += ["Not counted (only the text of a logging call's string changes):"]
        out += [f"  {s.path}:{s.line} {s.key}" for s in result.excluded]
        out += [""]
    lines = [unmutated_line(m.path, m.unmutated) for m in result.modules.values()]
    if any(lines) or any(m.unmutated.statements for m in result.modules.values()):
        out += [
            "Never mutated (mutmut makes no mutant of these, so no test is judged"
            " on them):"
        ]
        out += [line for line in lines if line]
    statements = [m.unmutated.statements for m in result.modules.values()]
    if any(statements):
        modules = sum(1 for count in statements if count)
        out += [
            f"  {_plural(sum(statements), 'statement')} outside functions (module"
            f" level, class bodies) in {_plural(modules, 'module')}: none is mutated"
        ]
    if any(lines) or any(statements):
        out += [""]
    out += [
        f"{'module':<40} {'mutants':>7} {'killed':>7} {'left':>5}"
        f" {'signal':>6} {'log':>4} score"
    ]
    for module in result.modules.values():
        if module.total == 0:
            note = "NO MUTANT" if module.without_mutants else "nothing to mutate"
            out += [f"{module.path:<40} {0:>7} {'':>7} {'':>5} {'':>6} {'':>4} {note}"]
            continue
        out += [
            f"{module.path:<40} {module.total:>7} {module.detected:>7}"
            f" {len(module.undetected):>5} {len(module.signalled):>6}"
            f" {module.excluded:>4} {module.score:5.1f} %"
        ]
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(result.status_counts.items()))
    out += [f"mutmut verdicts: {counts}"]
    out += [
        f"ended by a signal (SIGKILL or a segfault; mutmut: segfault; counted,"
        f" not killed): {len(result.signalled)}"
    ]
    if result.without_mutants:
        out += [
            f"no mutant in {', '.join(result.without_mutants)}: in only_mutate and"
            f" with code, but mutmut made no mutant of it (see what it skips above)"
        ]
    verdict = "PASS" if result.passed(threshold) else "FAIL"
    out += [
        f"mutation score {result.score:.1f} % ({result.detected} of {result.counted}"
        f" counted mutants killed, {len(result.excluded)} log-text mutants not"
        f" counted); threshold {threshold:g} %: {verdict}"
    ]
    return "\n".join(out)


def threshold_from(value: Optional[str], environ: Dict[str, str]) -> float:
    """The threshold: the argument, else $MUTATION_THRESHOLD, else 95."""
    raw = value if value is not None else environ.get(THRESHOLD_ENV)
    if raw is None or raw == "":
        return DEFAULT_THRESHOLD
    threshold = float(raw)
    if not 0.0 <= threshold <= 100.0:
        raise ValueError(f"threshold must be a percentage, not {raw}")
    return threshold


def parse_args(argv: Sequence[str], environ: Dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--threshold", help=f"percent killed required (${THRESHOLD_ENV}, default 95)"
    )
    parser.add_argument(
        "--max-children", type=int, default=os.cpu_count() or 2, help="mutmut workers"
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="judge the mutants/ of an earlier run instead of running mutmut",
    )
    args = parser.parse_args(list(argv))
    try:
        args.threshold = threshold_from(args.threshold, environ)
    except ValueError as error:
        parser.error(str(error))
    return args


def mutmut_script() -> str:
    """mutmut's console script next to this interpreter (mutmut asks not to be
    run as ``python -m mutmut``), else the one on PATH."""
    script = Path(sys.executable).parent / "mutmut"
    return str(script) if script.exists() else "mutmut"


def mutmut_environment(environ: Dict[str, str]) -> Dict[str, str]:
    """The environment of ``mutmut run``: the tests' waits and the plugins."""
    env = dict(environ)
    env.setdefault(WAIT_ENV, WAIT_SECONDS)
    # The plugins are named in [tool.mutmut] pytest_add_cli_args.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return env


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv, dict(os.environ))
    root = Path.cwd()
    if not args.report_only:
        shutil.rmtree(root / MUTANTS, ignore_errors=True)
        command = [mutmut_script(), "run", "--max-children", str(args.max_children)]
        started = time.monotonic()
        env = mutmut_environment(dict(os.environ))
        completed = subprocess.run(command, cwd=root, env=env)
        minutes, seconds = divmod(round(time.monotonic() - started), 60)
        print(f"mutmut run: {minutes} min {seconds} s wall")
        if completed.returncode != 0:
            print(f"mutmut run failed (exit {completed.returncode})", file=sys.stderr)
            return completed.returncode
    verdicts = read_verdicts(root)
    if not verdicts:
        print("no mutmut results under mutants/", file=sys.stderr)
        return 1
    config = mutmut_config(root)
    result = judge(
        verdicts,
        mutmut_function_pair,
        lambda path: (root / path).read_text(),
        scope=in_scope(root, config),
    )
    durations, limit = read_durations(root), per_test_limit(config)
    if durations and limit:
        wait = float(mutmut_environment(dict(os.environ))[WAIT_ENV])
        print(timing_report(durations, wait, limit))
    print(report(result, args.threshold))
    return 0 if result.passed(args.threshold) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
