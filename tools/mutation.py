"""The mutation gate: run mutmut over the event path and judge its result.

``nox -s mutation`` runs ``python tools/mutation.py``: it removes an old
``mutants/`` directory, runs ``mutmut run`` (configured in pyproject.toml's
``[tool.mutmut]``: the modules of osism/services/ plus api.py (with
client_session.py and publish_request.py, which were part of it),
protocol.py and security.py, tested by tests/unit), reads mutmut's verdicts from
``mutants/**/*.py.meta``, prints the score per module and every surviving
mutant (file, line, diff), and exits non-zero under the threshold.

Score = killed / counted. Killed: a test failed, or the mutant hung until its
time limit (CI would hang on it too). Counted: every mutant except those of
the one exclusion rule below; survivors, mutants no test reaches and mutants
mutmut could not judge count as not killed.

Exclusion rule (the only one): a surviving mutant whose only change is the
text of a string literal that is an argument of a logging call
(``<receiver>.debug/info/warning/error/exception/critical(...)``, which covers
``logging.Logger`` and ``RateLimitedLog``) is listed separately and not
counted. A mutant that drops, replaces or reorders such an argument, changes
the log level or the call, is counted like any other.
"""

import argparse
import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

DEFAULT_THRESHOLD = 95.0
THRESHOLD_ENV = "MUTATION_THRESHOLD"
MUTANTS = Path("mutants")
LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})

# mutmut 3.8.1's exit codes (mutmut/stats.py status_by_exit_code), grouped by
# what they mean for the score.
KILLED = "killed"
TIMEOUT = "timeout"
SURVIVED = "survived"
NO_TESTS = "no tests"
NOT_CHECKED = "not checked"
SUSPICIOUS = "suspicious"
STATUS_BY_CODE: Dict[Optional[int], str] = {
    1: KILLED,
    3: KILLED,  # pytest's internal error: the mutant broke the test run
    37: KILLED,  # caught by the type checker (not configured here)
    0: SURVIVED,
    5: NO_TESTS,
    33: NO_TESTS,
    34: NOT_CHECKED,  # skipped
    2: NOT_CHECKED,  # interrupted
    None: NOT_CHECKED,
    36: TIMEOUT,
    24: TIMEOUT,  # SIGXCPU: over the CPU-time limit
    -24: TIMEOUT,
    152: TIMEOUT,
    255: TIMEOUT,
    -9: TIMEOUT,  # SIGKILL one second after SIGXCPU
}
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
    """The parts of a mutmut key such as ``osism.api.xǁCǁm__mutmut_3``."""

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

    @property
    def counted(self) -> int:
        return self.total - self.excluded


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


def read_verdicts(root: Path) -> Dict[str, Dict[str, Optional[int]]]:
    """Source path -> mutant key -> mutmut exit code, from mutmut's .meta files."""
    verdicts = {}
    for meta in sorted((root / MUTANTS).rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        path = meta.relative_to(root / MUTANTS).as_posix()[: -len(".meta")]
        verdicts[path] = dict(data["exit_code_by_key"])
    return verdicts


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
) -> Result:
    """Score every mutant; diff and classify the ones no test detected."""
    result = Result()
    for path, codes in sorted(verdicts.items()):
        module = result.modules.setdefault(path, ModuleScore(path))
        source: Optional[str] = None
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


def report(result: Result, threshold: float) -> str:
    """The text the session prints: survivors, excluded, per-module table."""
    out: List[str] = []
    for module in result.modules.values():
        for survivor in module.undetected:
            out += [f"SURVIVED {survivor.path}:{survivor.line} {survivor.key}"]
            out += [survivor.diff, ""]
    if result.excluded:
        out += ["Not counted (only the text of a logging call's string changes):"]
        out += [f"  {s.path}:{s.line} {s.key}" for s in result.excluded]
        out += [""]
    out += [f"{'module':<40} {'mutants':>7} {'killed':>7} {'left':>5} {'log':>4} score"]
    for module in result.modules.values():
        score = 100.0 * module.detected / module.counted if module.counted else 100.0
        out += [
            f"{module.path:<40} {module.total:>7} {module.detected:>7}"
            f" {len(module.undetected):>5} {module.excluded:>4} {score:5.1f} %"
        ]
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(result.status_counts.items()))
    out += [f"mutmut verdicts: {counts}"]
    verdict = "PASS" if result.score >= threshold else "FAIL"
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


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv, dict(os.environ))
    root = Path.cwd()
    if not args.report_only:
        shutil.rmtree(root / MUTANTS, ignore_errors=True)
        command = [mutmut_script(), "run", "--max-children", str(args.max_children)]
        env = dict(os.environ)
        # In-process conditions take milliseconds: fail a wait after 1 s.
        env.setdefault("OSISM_TEST_WAIT", "1")
        # The plugins are named in [tool.mutmut] pytest_add_cli_args.
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        completed = subprocess.run(command, cwd=root, env=env)
        if completed.returncode != 0:
            print(f"mutmut run failed (exit {completed.returncode})", file=sys.stderr)
            return completed.returncode
    verdicts = read_verdicts(root)
    if not verdicts:
        print("no mutmut results under mutants/", file=sys.stderr)
        return 1
    result = judge(
        verdicts, mutmut_function_pair, lambda path: (root / path).read_text()
    )
    print(report(result, args.threshold))
    return 0 if result.score >= args.threshold else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
