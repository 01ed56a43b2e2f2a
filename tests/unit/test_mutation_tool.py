"""tools/mutation.py: how mutmut's verdicts become the gate's score and report."""

import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import mutation  # noqa: E402


def log_text_only(original: str, mutant: str) -> bool:
    return mutation.is_log_text_only(original, mutant)


ORIGINAL = """\
def drop(self, queue, n):
    logger.warning("queue %s full: dropped %d", queue, n)
    self._limited.warning(f"dropped {n} from {queue}")
    raise Overflow("queue full")
"""


class TestLogTextRule:
    @pytest.mark.parametrize(
        "old, new",
        [
            ('"queue %s full: dropped %d"', '"XXqueue %s full: dropped %dXX"'),
            ('"queue %s full: dropped %d"', '"QUEUE %S FULL: DROPPED %D"'),
            ('f"dropped {n} from {queue}"', 'f"XXdropped {n} from {queue}XX"'),
        ],
        ids=["logger-xx", "logger-upper", "ratelimited-fstring"],
    )
    def test_the_text_of_a_log_call_is_not_counted(self, old: str, new: str) -> None:
        assert log_text_only(ORIGINAL, ORIGINAL.replace(old, new, 1))

    @pytest.mark.parametrize(
        "old, new",
        [
            ('"queue %s full: dropped %d", queue, n', "None, queue, n"),
            ('"queue %s full: dropped %d", queue, n', '"queue %s full: dropped %d", n'),
            ("logger.warning(", "logger.info("),
            ('Overflow("queue full")', 'Overflow("XXqueue fullXX")'),
            ("queue, n)", "queue, None)"),
            ('f"dropped {n} from {queue}"', 'f"dropped {queue} from {n}"'),
        ],
        ids=[
            "text-replaced-by-none",
            "argument-dropped",
            "level",
            "not-a-log",
            "arg",
            "fstring-values",
        ],
    )
    def test_any_other_change_is_counted(self, old: str, new: str) -> None:
        assert not log_text_only(ORIGINAL, ORIGINAL.replace(old, new, 1))

    def test_a_log_text_change_with_another_change_is_counted(self) -> None:
        mutant = ORIGINAL.replace('"queue %s', '"XXqueue %s').replace(
            "queue full", "XXqueue fullXX"
        )
        assert not log_text_only(ORIGINAL, mutant)

    def test_a_string_inside_a_call_passed_to_a_log_call_is_counted(self) -> None:
        original = 'def f():\n    logger.info("%s", describe("node"))\n'
        assert not log_text_only(original, original.replace('"node"', '"XXnodeXX"'))

    def test_a_keyword_of_a_log_call_is_counted(self) -> None:
        original = 'def f():\n    logger.info("x", extra={"k": "v"})\n'
        assert not log_text_only(original, original.replace('"v"', '"XXvXX"'))

    def test_a_log_call_on_a_call_result_is_counted(self) -> None:
        original = 'def f():\n    get_logger().info("x")\n'
        assert not log_text_only(original, original.replace('"x"', '"XXxXX"'))

    def test_no_change_and_unparsable_code_are_not_log_text(self) -> None:
        assert not log_text_only(ORIGINAL, ORIGINAL)
        assert not log_text_only(ORIGINAL, "def (:\n")


class TestKeysAndLines:
    def test_method_key(self) -> None:
        key = "osism.core.ratelimit.xǁRateLimitedLogǁ__init____mutmut_3"
        assert mutation.parse_key(key) == mutation.MutantKey(
            "osism.core.ratelimit", "RateLimitedLog", "__init__", 3
        )

    def test_function_key(self) -> None:
        assert mutation.parse_key(
            "osism.api.security.x_presented_token__mutmut_12"
        ) == mutation.MutantKey("osism.api.security", None, "presented_token", 12)

    @pytest.mark.parametrize(
        "key",
        [
            "x_f__mutmut_1",
            "osism.api.routes.f__mutmut_1",
            "osism.api.routes.x_f",
            "a.xǁCǁ",
        ],
    )
    def test_not_a_key(self, key: str) -> None:
        with pytest.raises(ValueError):
            mutation.parse_key(key)

    def test_definition_line_of_functions_and_methods(self) -> None:
        source = (
            "import x\n\n\nclass A:\n    @property\n    def f(self):\n        pass\n\n"
            "    async def g(self):\n        pass\n\n\ndef f():\n    pass\n"
        )
        assert mutation.definition_line(source, "A", "f") == 6
        assert mutation.definition_line(source, "A", "g") == 9
        assert mutation.definition_line(source, None, "f") == 13
        with pytest.raises(LookupError):
            mutation.definition_line(source, "B", "f")
        with pytest.raises(LookupError):
            mutation.definition_line(source, None, "g")

    def test_changed_line_counts_from_the_def_past_decorators(self) -> None:
        original = "@staticmethod\ndef f():\n    a = 1\n    b = 2\n"
        mutant = "@staticmethod\ndef f():\n    a = 1\n    b = 3\n"
        assert mutation.changed_line(original, mutant, def_lineno=40) == 42

    def test_diff_hunks_carry_the_file_lines(self) -> None:
        original = "def f():\n    a = 1\n    b = 2\n    c = 3\n"
        mutant = "def f():\n    a = 1\n    b = None\n    c = 3\n"
        diff = mutation.unified_diff(original, mutant, "osism/x.py", 12)
        assert diff.splitlines() == [
            "--- osism/x.py",
            "+++ osism/x.py",
            "@@ -11,3 +11,3 @@",
            "     a = 1",
            "-    b = 2",
            "+    b = None",
            "     c = 3",
        ]


SOURCE = (
    "import logging\n\nlogger = logging.getLogger(__name__)\n\n\n"
    "def f(n):\n"
    "    logger.info('got %d', n)\n"
    "    return n + 1\n"
)
FUNCTION = SOURCE[SOURCE.index("def") :]
SOURCES = {
    "osism/empty/__init__.py": '"""Services."""\nimport logging\n',
    "osism/routes.py": '@app.get("/")\ndef root():\n    return 1\n',
}
PAIRS: Dict[str, Tuple[str, str]] = {
    "osism.m.x_f__mutmut_1": (FUNCTION, FUNCTION.replace("'got %d'", "'XXgot %dXX'")),
    "osism.m.x_f__mutmut_2": (FUNCTION, FUNCTION.replace("n + 1", "n - 1")),
    "osism.m.x_f__mutmut_3": (FUNCTION, FUNCTION.replace("n + 1", "n + 2")),
}


def judge(
    codes: Dict[str, Optional[int]], scope: Sequence[str] = ()
) -> "mutation.Result":
    return mutation.judge(
        {"osism/m.py": codes} if codes else {},
        lambda key, path: PAIRS[key],
        lambda path: SOURCES.get(path, SOURCE),
        scope=scope,
    )


class TestJudge:
    def test_score_counts_timeouts_as_killed_and_leaves_out_log_text(self) -> None:
        codes: Dict[str, Optional[int]] = {
            f"osism.m.x_g__mutmut_{i}": 1 for i in range(1, 8)
        }
        codes["osism.m.x_g__mutmut_8"] = -24
        codes["osism.m.x_f__mutmut_1"] = 0  # log text: not counted
        codes["osism.m.x_f__mutmut_2"] = 0  # survivor
        result = judge(codes)

        assert (result.detected, result.counted) == (8, 9)
        assert result.score == pytest.approx(100 * 8 / 9)
        assert [s.key for s in result.excluded] == ["osism.m.x_f__mutmut_1"]
        survivors = result.modules["osism/m.py"].undetected
        assert [(s.key, s.line) for s in survivors] == [("osism.m.x_f__mutmut_2", 8)]
        assert "-    return n + 1\n+    return n - 1" in survivors[0].diff

    def test_a_mutant_no_test_reaches_counts_even_if_it_only_changes_log_text(
        self,
    ) -> None:
        result = judge({"osism.m.x_f__mutmut_1": 33, "osism.m.x_f__mutmut_3": None})
        assert (result.detected, result.counted, result.excluded) == (0, 2, [])
        diffs = [s.diff for s in result.modules["osism/m.py"].undetected]
        assert diffs[0].startswith("(no tests)\n")
        assert diffs[1].startswith("(not checked)\n")
        assert result.status_counts == {"no tests": 1, "not checked": 1}

    @pytest.mark.parametrize(
        "code, status",
        [
            (1, "killed"),
            (3, "killed"),
            (0, "survived"),
            (5, "no tests"),
            (33, "no tests"),
            (-24, "timeout"),
            (36, "timeout"),
            (None, "not checked"),
            (34, "skipped"),
            (-9, "segfault"),
            (-11, "segfault"),
            (-6, "suspicious"),
        ],
    )
    def test_status_of_mutmut_exit_codes(
        self, code: Optional[int], status: str
    ) -> None:
        assert mutation.status_of(code) == status

    def test_the_statuses_are_mutmuts(self) -> None:
        import mutmut.stats as stats

        assert dict(stats.status_by_exit_code) == mutation.STATUS_BY_CODE
        assert stats.status_by_exit_code.default_factory() == mutation.status_of(-6)

    def test_a_run_ended_by_sigkill_counts_as_not_killed_and_is_listed_apart(
        self,
    ) -> None:
        result = judge(
            {
                "osism.m.x_f__mutmut_1": 1,
                "osism.m.x_f__mutmut_2": -9,
                "osism.m.x_f__mutmut_3": 0,
            }
        )
        module = result.modules["osism/m.py"]

        assert (result.detected, result.counted) == (1, 3)
        assert [s.key for s in result.signalled] == ["osism.m.x_f__mutmut_2"]
        assert [s.key for s in module.undetected] == ["osism.m.x_f__mutmut_3"]
        assert result.status_counts == {"killed": 1, "segfault": 1, "survived": 1}
        text = mutation.report(result, threshold=30.0).splitlines()
        assert "ENDED BY A SIGNAL osism/m.py:8 osism.m.x_f__mutmut_2" in text
        assert "(segfault: exit -9)" in text
        assert "SURVIVED osism/m.py:8 osism.m.x_f__mutmut_2" not in text
        assert (
            "ended by a signal (SIGKILL or a segfault; mutmut: segfault; counted,"
            " not killed): 1"
        ) in text

    def test_report_lists_survivors_and_the_verdict(self) -> None:
        result = judge(
            {
                "osism.m.x_f__mutmut_1": 0,
                "osism.m.x_f__mutmut_2": 0,
                "osism.m.x_f__mutmut_3": 1,
            }
        )
        text = mutation.report(result, threshold=40.0)
        assert "SURVIVED osism/m.py:8 osism.m.x_f__mutmut_2" in text
        assert "  osism/m.py:7 osism.m.x_f__mutmut_1" in text
        assert text.splitlines()[-1] == (
            "mutation score 50.0 % (1 of 2 counted mutants killed, 1 log-text"
            " mutants not counted); threshold 40 %: PASS"
        )
        assert mutation.report(result, threshold=95.0).endswith("FAIL")


class TestThreshold:
    def test_argument_then_environment_then_default(self) -> None:
        env = {"MUTATION_THRESHOLD": "80"}
        assert mutation.threshold_from("70.5", env) == 70.5
        assert mutation.threshold_from(None, env) == 80.0
        assert mutation.threshold_from(None, {}) == 95.0
        assert mutation.threshold_from(None, {"MUTATION_THRESHOLD": ""}) == 95.0

    @pytest.mark.parametrize("raw", ["101", "-1", "high"])
    def test_not_a_percentage(self, raw: str) -> None:
        with pytest.raises(ValueError):
            mutation.threshold_from(raw, {})

    def test_bad_threshold_is_a_usage_error(self) -> None:
        with pytest.raises(SystemExit) as raised:
            mutation.parse_args(["--threshold", "200"], {})
        assert raised.value.code == 2


def write_meta(root: Path, path: str, codes: Dict[str, Optional[int]]) -> None:
    meta = root / "mutants" / f"{path}.meta"
    meta.parent.mkdir(parents=True, exist_ok=True)
    meta.write_text(json.dumps({"exit_code_by_key": codes, "durations_by_key": {}}))


def write_tree(root: Path, files: Dict[str, str]) -> None:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


PROJECT = {
    "pyproject.toml": (
        '[tool.mutmut]\nsource_paths = ["osism"]\nonly_mutate = ["osism/a.py"]\n'
    ),
    "osism/a.py": "def f():\n    return 1\n",
    "osism/b.py": "def g():\n    return 2\n",
}


class TestReportOnly:
    def test_verdicts_are_read_per_source_file(self, tmp_path: Path) -> None:
        write_meta(tmp_path, "osism/services/a.py", {"k1": 1, "k2": 0})
        write_meta(tmp_path, "osism/api/routes.py", {"k3": None})
        assert mutation.read_verdicts(tmp_path) == {
            "osism/api/routes.py": {"k3": None},
            "osism/services/a.py": {"k1": 1, "k2": 0},
        }

    def test_exit_code_follows_the_threshold(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("MUTATION_THRESHOLD", raising=False)
        write_tree(tmp_path, PROJECT)
        write_meta(tmp_path, "osism/a.py", {"osism.a.x_f__mutmut_1": 1})
        assert mutation.main(["--report-only"]) == 0
        assert "mutation score 100.0 %" in capsys.readouterr().out

    def test_no_results_fail(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.chdir(tmp_path)
        assert mutation.main(["--report-only"]) == 1
        assert "no mutmut results" in capsys.readouterr().err

    def test_a_module_in_scope_without_mutants_fails_the_run(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.chdir(tmp_path)
        monkeypatch.delenv("MUTATION_THRESHOLD", raising=False)
        write_tree(tmp_path, PROJECT)
        (tmp_path / "pyproject.toml").write_text(
            '[tool.mutmut]\nsource_paths = ["osism"]\nonly_mutate = ["osism/*.py"]\n'
        )
        write_meta(tmp_path, "osism/a.py", {"osism.a.x_f__mutmut_1": 1})
        assert mutation.main(["--report-only"]) == 1
        assert "no mutant in osism/b.py" in capsys.readouterr().out


TREE = [
    "osism/__init__.py",
    "osism/api/routes.py",
    "osism/cli/main.py",
    "osism/api/static/page.js",
    "osism/services/__init__.py",
    "osism/services/fanout/broadcast.py",
    "osism/services/extra/deep.py",
    "tests/test_api.py",
]


class TestScope:
    @pytest.mark.parametrize(
        "only, never, expected",
        [
            (
                ["osism/api/routes.py", "osism/services/*.py"],
                [],
                [
                    "osism/api/routes.py",
                    "osism/services/__init__.py",
                    "osism/services/extra/deep.py",  # fnmatch: * spans "/"
                    "osism/services/fanout/broadcast.py",
                ],
            ),
            (
                ["osism/services/*.py"],
                ["osism/services/extra/*", "osism/services/__init__.py"],
                ["osism/services/fanout/broadcast.py"],
            ),
            (
                [],
                ["osism/cli/main.py"],
                [
                    "osism/__init__.py",
                    "osism/api/routes.py",
                    "osism/services/__init__.py",
                    "osism/services/extra/deep.py",
                    "osism/services/fanout/broadcast.py",
                ],
            ),
        ],
        ids=["globs", "do-not-mutate", "no-only-mutate"],
    )
    def test_the_modules_mutmut_mutates(
        self, tmp_path: Path, only: List[str], never: List[str], expected: List[str]
    ) -> None:
        write_tree(tmp_path, {path: "" for path in TREE})
        config = {
            "source_paths": ["osism"],
            "only_mutate": only,
            "do_not_mutate": never,
        }
        assert mutation.in_scope(tmp_path, config) == expected

    def test_the_config_is_pyprojects_tool_mutmut(self) -> None:
        config = mutation.mutmut_config(ROOT)
        assert config["source_paths"] == ["osism"]
        assert "osism/api/routes.py" in mutation.in_scope(ROOT, config)


# Each function returns its own number: the cross-check below sees which
# numbers mutmut mutates.
SKIPS = """\
import enum

X = 900


def top():
    @app.get("/")
    async def handler():
        return 102

    def helper():
        return 103

    return 101


@dataclass
class C:
    \"\"\"A class.\"\"\"

    y = 901

    @property
    def p(self):
        return 104

    @staticmethod
    def s():
        return 105

    @staticmethod
    @cache
    def cached():
        return 111

    def __new__(cls):
        return 106

    class Inner:
        def m(self):
            return 107


if X:

    def under_if():
        return 108


class E(enum.Enum):
    def __init__(self, v):
        self.v = 109


def pragma():  # pragma: no mutate block
    return 110


# pragma: no mutate start
def region():
    return 112


# pragma: no mutate end
class Plain:
    def __init__(self):
        self.v = 113
"""
SKIPPED = [
    ("top.handler", 8, "decorated"),
    ("C.p", 24, "decorated"),
    ("C.cached", 33, "decorated"),
    ("C.__new__", 36, "a name mutmut leaves alone"),
    ("C.Inner.m", 40, "not at the top level"),
    ("under_if", 46, "not at the top level"),
    ("E.__init__", 51, "a name mutmut leaves alone"),
    ("pragma", 55, "pragma: no mutate"),
    ("region", 60, "pragma: no mutate"),
]
MUTATED = {101, 103, 105, 113}


class TestWhatMutmutSkips:
    def test_each_rule_names_the_function_its_line_and_why(self) -> None:
        found = mutation.unmutated(SKIPS)
        assert [(s.name, s.line, s.reason) for s in found.functions] == SKIPPED
        # X = 900, y = 901, if X: ... (the docstring and import are not code)
        assert found.statements == 3

    def test_the_rules_are_mutmuts(self) -> None:
        import libcst
        import mutmut.mutation.file_mutation as file_mutation

        _, mutations, _, _ = file_mutation.create_mutations("skips.py", SKIPS)
        mutated = {
            int(m.original_node.value)
            for m in mutations
            if isinstance(m.original_node, libcst.Integer)
            and isinstance(m.contained_by_top_level_function, libcst.FunctionDef)
        }
        assert mutated == MUTATED

    @pytest.mark.parametrize(
        "source, statements, has_code",
        [
            ('"""Doc."""\n', 0, False),
            ('"""Doc."""\nimport os\nfrom x import y\n', 0, False),
            ("", 0, False),
            ('"""Doc."""\n__version__ = "1"\n', 1, True),
            ("def f():\n    return 1\n", 0, True),
            ("class A:\n    pass\n", 0, True),
            ("class A:\n    x: int\n    y = 1\n", 2, True),
            ("if TYPE_CHECKING:\n    import x\napp = create()\n", 2, True),
        ],
    )
    def test_statements_outside_functions(
        self, source: str, statements: int, has_code: bool
    ) -> None:
        found = mutation.unmutated(source)
        assert (found.statements, found.has_code) == (statements, has_code)

    @pytest.mark.parametrize(
        "source, covered",
        [
            ("a = 1\nb = 2  # pragma: no mutate\n", set()),
            ("def f():  # pragma: no mutate block\n    a = 1\nb = 2\n", {1, 2}),
            (
                "def f():\n    a = 1\n"
                "    # pragma: no mutate block\n    b = 2\n"
                "c = 3\n",
                {3, 4},
            ),
            (
                "a = 1\n# pragma: no mutate start\n"
                "b = 2\n# pragma: no mutate end\n"
                "c = 3\n",
                {2, 3, 4},
            ),
        ],
        ids=["line", "header-block", "standalone-block", "start-end"],
    )
    def test_pragma_regions(self, source: str, covered: Set[int]) -> None:
        assert mutation.pragma_lines(source) == covered

    def test_the_report_line_groups_functions_by_reason(self) -> None:
        found = mutation.unmutated(SKIPS)
        assert mutation.unmutated_line("osism/x.py", found) == (
            "  osism/x.py: 9 functions skipped (decorated: top.handler:8, C.p:24,"
            " C.cached:33; a name mutmut leaves alone: C.__new__:36, E.__init__:51;"
            " not at the top level: C.Inner.m:40, under_if:46; pragma: no mutate:"
            " pragma:55, region:60), 3 statements outside functions"
        )
        assert mutation.unmutated_line("osism/x.py", mutation.Unmutated()) is None
        only_statements = mutation.Unmutated(statements=3)
        assert mutation.unmutated_line("osism/x.py", only_statements) is None

    def test_the_report_totals_the_statements_outside_functions(self) -> None:
        result = judge(
            {"osism.m.x_f__mutmut_2": 1}, scope=["osism/m.py", "osism/routes.py"]
        )
        text = mutation.report(result, threshold=95.0).splitlines()
        # osism/m.py: `logger = ...`; osism/routes.py has only a function
        assert (
            "  1 statement outside functions (module level, class bodies) in"
            " 1 module: none is mutated"
        ) in text


class TestModulesWithoutMutants:
    def test_a_module_with_code_and_no_mutant_fails_the_run_whatever_the_score(
        self,
    ) -> None:
        result = judge(
            {"osism.m.x_f__mutmut_2": 1}, scope=["osism/m.py", "osism/routes.py"]
        )

        assert result.score == 100.0
        assert result.without_mutants == ["osism/routes.py"]
        assert not result.passed(threshold=0.0)
        text = mutation.report(result, threshold=0.0).splitlines()
        assert text[-1].endswith("threshold 0 %: FAIL")
        assert text[-2].startswith("no mutant in osism/routes.py: in only_mutate")
        assert "  osism/routes.py: 1 function skipped (decorated: root:2)" in text
        assert any(
            line.startswith("osism/routes.py ") and line.endswith("NO MUTANT")
            for line in text
        )

    def test_a_module_of_a_docstring_and_imports_has_nothing_to_mutate(
        self,
    ) -> None:
        result = judge(
            {"osism.m.x_f__mutmut_2": 1},
            scope=["osism/m.py", "osism/empty/__init__.py"],
        )
        assert result.without_mutants == []
        assert result.passed(threshold=95.0)
        assert any(
            line.startswith("osism/empty/__init__.py ")
            and line.endswith("nothing to mutate")
            for line in mutation.report(result, threshold=95.0).splitlines()
        )

    def test_a_module_out_of_scope_is_not_asked_for_mutants(self) -> None:
        result = judge({"osism.m.x_f__mutmut_2": 1}, scope=["osism/m.py"])
        assert list(result.modules) == ["osism/m.py"]
        assert result.passed(threshold=95.0)


class TestWaits:
    @pytest.mark.parametrize(
        "environ, wait",
        [({}, "3"), ({"OSISM_TEST_WAIT": "8"}, "8")],
        ids=["default", "set-by-caller"],
    )
    def test_a_wait_gives_its_condition_three_seconds_unless_told(
        self, environ: Dict[str, str], wait: str
    ) -> None:
        env = mutation.mutmut_environment(environ)
        assert env["OSISM_TEST_WAIT"] == wait
        assert env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1"

    def test_a_failed_wait_ends_its_test_before_the_per_test_limit(self) -> None:
        args = mutation.mutmut_config(ROOT)["pytest_add_cli_args"]
        limits = [float(a.split("=")[1]) for a in args if a.startswith("--timeout=")]
        assert limits and float(mutation.WAIT_SECONDS) < limits[0]


class TestTiming:
    @pytest.mark.parametrize(
        "args, limit",
        [
            (["-p", "x", "--timeout=10", "--timeout-method=thread"], 10.0),
            (["-q"], None),
        ],
    )
    def test_the_per_test_limit_is_the_timeout_option(
        self, args: List[str], limit: Optional[float]
    ) -> None:
        assert mutation.per_test_limit({"pytest_add_cli_args": args}) == limit

    def test_mutants_ended_by_a_wait_or_the_limit_are_counted_apart(self) -> None:
        durations = {"m.a": 0.4, "m.b": 0.6, "m.c": 5.2, "m.d": 10.3, "m.e": 11.0}
        text = mutation.timing_report(durations, wait=5.0, limit=10.0).splitlines()
        assert text == [
            "time in the mutants' test runs: 28 s over 5 mutants; 1 ended in 5-10 s,"
            " most at a failed wait (5 s); 2 ran into the 10 s per-test limit (21 s)",
            "Ran into the per-test limit (a test with no deadline of its own hangs):",
            "  m.d",
            "  m.e",
        ]

    def test_no_mutant_at_the_limit_lists_none(self) -> None:
        text = mutation.timing_report({"m.a": 0.4}, wait=5.0, limit=10.0)
        assert text.endswith("0 ran into the 10 s per-test limit (0 s)")
