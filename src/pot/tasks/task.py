"""The task data model: a problem, its public tests (feedback) and hidden tests (judging)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

TestKind = Literal["assert", "call", "stdio"]
TaskKind = Literal["function", "stdio"]


@dataclass(frozen=True)
class Test:
    """One test of a program.

    kind="assert": `source` is Python statements run after the program (asserts, or a
        human-eval `check(candidate)` call); it passes when they raise nothing.
    kind="call":   `input` is `pot.sandbox.values.encode(arguments)` (a list of arguments for
        `Task.entry_point`), `expected` the encoding of its return value; plain JSON without
        objects is a valid encoding of itself.
    kind="stdio":  `input` is the text on stdin, `expected` the expected stdout.

    `oracle` and `atol` choose how a call test's return value is compared with `expected`
    (`pot.sandbox.oracles`; "" is plain equality). `group` names the subset a hidden test
    belongs to, for scores per subset (MBPP+'s "base" and "plus").
    """

    __test__ = False  # tells pytest this is not a test class

    kind: TestKind
    source: str = ""
    input: str = ""
    expected: str = ""
    oracle: str = ""
    atol: float = 0.0
    group: str = ""


@dataclass
class Task:
    id: str
    prompt: str
    kind: TaskKind = "function"
    # The function the program must define. For LeetCode-style starter code (`class Solution`
    # in starter_code) it is a method name, called as Solution().<entry_point>(*args).
    entry_point: str | None = None
    starter_code: str = ""
    public_tests: list[Test] = field(default_factory=list)
    hidden_tests: list[Test] = field(default_factory=list)
    # Trusted code run before the program in its process and before the tests in the judge's:
    # MBPP's test_setup_code, HumanEval's prompt, LiveCodeBench's import prelude. A program
    # that only compiles appended to it (a human-eval completion) runs appended to it.
    setup_code: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


class TaskFormatError(ValueError):
    """A task file or record that cannot be read; the message names file, record and field."""
