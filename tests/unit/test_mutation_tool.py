"""tools/mutation.py: how mutmut's verdicts become the gate's score and report."""

import json
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

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
        key = "osism.services.ratelimit.xǁRateLimitedLogǁ__init____mutmut_3"
        assert mutation.parse_key(key) == mutation.MutantKey(
            "osism.services.ratelimit", "RateLimitedLog", "__init__", 3
        )

    def test_function_key(self) -> None:
        assert mutation.parse_key(
            "osism.security.x_presented_token__mutmut_12"
        ) == mutation.MutantKey("osism.security", None, "presented_token", 12)

    @pytest.mark.parametrize(
        "key", ["x_f__mutmut_1", "osism.api.f__mutmut_1", "osism.api.x_f", "a.xǁCǁ"]
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
PAIRS: Dict[str, Tuple[str, str]] = {
    "osism.m.x_f__mutmut_1": (FUNCTION, FUNCTION.replace("'got %d'", "'XXgot %dXX'")),
    "osism.m.x_f__mutmut_2": (FUNCTION, FUNCTION.replace("n + 1", "n - 1")),
    "osism.m.x_f__mutmut_3": (FUNCTION, FUNCTION.replace("n + 1", "n + 2")),
}


def judge(codes: Dict[str, Optional[int]]) -> "mutation.Result":
    return mutation.judge(
        {"osism/m.py": codes}, lambda key, path: PAIRS[key], lambda path: SOURCE
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
            (-11, "suspicious"),
        ],
    )
    def test_status_of_mutmut_exit_codes(
        self, code: Optional[int], status: str
    ) -> None:
        assert mutation.status_of(code) == status

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


class TestReportOnly:
    def test_verdicts_are_read_per_source_file(self, tmp_path: Path) -> None:
        write_meta(tmp_path, "osism/services/a.py", {"k1": 1, "k2": 0})
        write_meta(tmp_path, "osism/api.py", {"k3": None})
        assert mutation.read_verdicts(tmp_path) == {
            "osism/api.py": {"k3": None},
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
