"""Verdicts, limits and the evaluation of one program on a list of tests, with its feedback."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pot.sandbox import values
from pot.tasks.task import Test

FIELD_CHARS = 400  # each input / expected / actual / error field in the feedback
FEEDBACK_CHARS = 2000  # the whole feedback text
RESULT_CHARS = 2000  # TestResult.output and TestResult.error
NO_TESTS_FEEDBACK = "This task has no public tests: no feedback, and every reward is 0."


class Verdict(str, Enum):
    PASS = "pass"
    WRONG_ANSWER = "wrong_answer"
    TIME_LIMIT = "time_limit"
    RUNTIME_ERROR = "runtime_error"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    SYNTAX_ERROR = "syntax_error"
    NOT_RUN = "not_run"  # skipped: a hidden run stops at the first failing test
    NO_TESTS = "no_tests"  # the verdict of an evaluation on no tests (reward 0)


@dataclass
class Limits:
    timeout_s: float = 4.0  # wall-clock seconds per test
    memory_mb: int = 1024  # address space of the process running the program
    output_bytes: int = 1_000_000  # stdout (and stderr) bytes per test
    max_processes: int = 32  # RLIMIT_NPROC: processes and threads of the sandbox user
    max_open_files: int = 64
    max_file_bytes: int = 10_000_000  # RLIMIT_FSIZE: largest file the program may write

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")
        if self.max_open_files < 8:
            raise ValueError("Limits.max_open_files must be at least 8 (stdio and the result pipe)")


@dataclass
class TestResult:
    __test__ = False  # not a pytest test class

    test: Test
    verdict: Verdict
    seconds: float
    output: str = ""  # actual stdout (stdio) or the returned value (call), bounded for display
    error: str = ""  # exception and last traceback lines, or why the run stopped, bounded
    # A call test's returned value in the `pot.sandbox.values` encoding, not clipped (the output
    # limit bounds it); "" when the call returned nothing decodable.
    value: str = ""


@dataclass
class Evaluation:
    results: list[TestResult]
    reward: float
    feedback: str
    isolation: str  # "bwrap" or "limited"
    seconds: float

    @property
    def passed(self) -> int:
        return sum(r.verdict is Verdict.PASS for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def all_passed(self) -> bool:
        return self.total > 0 and self.passed == self.total

    @property
    def verdict(self) -> Verdict:
        """The first failing test's verdict (a test not run never comes first); NO_TESTS for
        an evaluation on no tests."""
        if not self.results:
            return Verdict.NO_TESTS
        return next(
            (r.verdict for r in self.results if r.verdict is not Verdict.PASS), Verdict.PASS
        )

    def group_passed(self, group: str) -> bool:
        """Whether the tests of `group` (`Test.group`) all ran and passed. A test not run
        (`Verdict.NOT_RUN`, after a stop at the first failure) counts as failed, so order tests
        with the smaller group first when its verdict matters (MBPP+: "base" before "plus")."""
        tests = [r for r in self.results if r.test.group == group]
        return bool(tests) and all(r.verdict is Verdict.PASS for r in tests)


def clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[: limit - 40]}\n... ({len(text) - limit + 40} more characters)"


def reward(results: list[TestResult]) -> float:
    """1.0 if all tests pass, else the fraction passed (0.0 on syntax error / import crash, on
    no tests). Tests not run count as failed."""
    if not results:
        return 0.0
    return sum(r.verdict is Verdict.PASS for r in results) / len(results)


def shown(encoded: str) -> str:
    """A call test's encoded value as Python writes it (the encoding of a tuple is not)."""
    try:
        return repr(values.decode(encoded))
    except ValueError:
        return encoded


def describe_failure(index: int, result: TestResult) -> str:
    test = result.test
    lines = [f"Test {index + 1}: {result.verdict.value}"]
    if test.kind == "assert":
        lines.append(f"Test code:\n{clip(test.source.strip(), FIELD_CHARS)}")
    elif test.kind == "call":
        lines.append(f"Arguments: {clip(shown(test.input), FIELD_CHARS)}")
    else:
        lines.append(f"Input:\n{clip(test.input, FIELD_CHARS)}")
    if test.kind != "assert":
        expected = shown(test.expected) if test.kind == "call" else test.expected
        lines.append(f"Expected:\n{clip(expected, FIELD_CHARS)}")
        if result.verdict is Verdict.WRONG_ANSWER:
            lines.append(f"Got:\n{clip(result.output, FIELD_CHARS)}")
    if result.error:
        lines.append(f"Error:\n{clip(result.error, FIELD_CHARS)}")
    return "\n".join(lines)


def feedback(results: list[TestResult]) -> str:
    """Text for the model: what failed and how, at most FEEDBACK_CHARS characters."""
    if not results:
        return NO_TESTS_FEEDBACK
    failures = [
        (i, r) for i, r in enumerate(results) if r.verdict not in (Verdict.PASS, Verdict.NOT_RUN)
    ]
    not_run = sum(r.verdict is Verdict.NOT_RUN for r in results)
    if not failures:
        return f"All {len(results)} tests passed."
    if failures[0][1].verdict is Verdict.SYNTAX_ERROR:
        return clip(f"Syntax error:\n{failures[0][1].error}", FEEDBACK_CHARS)
    text = f"{len(results) - len(failures) - not_run} of {len(results)} tests passed."
    if not_run:
        text += f" Stopped at the first failing test: {not_run} not run."
    for shown, (index, result) in enumerate(failures):
        block = describe_failure(index, result)
        if shown and len(text) + len(block) + 2 > FEEDBACK_CHARS - 60:
            return f"{text}\n\n... ({len(failures) - shown} more failing tests not shown)"
        text = f"{text}\n\n{block}"
    return clip(text, FEEDBACK_CHARS)
