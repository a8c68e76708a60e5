"""What every method shares: the public-only view of a task and the judged `Result`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pot.budget import Costs
from pot.sandbox import Evaluation
from pot.search import Node, Tree
from pot.tasks import Task

# The metadata a method may see; anything else (a reference solution) stays with the judge.
PUBLIC_METADATA = frozenset(
    ["source", "variant", "public_tests_from", "question_title", "platform", "contest_id",
     "contest_date", "difficulty", "evalplus_task_id", "test_groups"]
)  # fmt: skip


def public_view(task: Task, oracle: bool = False) -> Task:
    """The task as a method may see it: no hidden tests, only PUBLIC_METADATA. With `oracle`,
    the hidden tests are handed over as the feedback tests, to reproduce papers that did so."""
    public = task.hidden_tests if oracle else task.public_tests
    metadata = {key: value for key, value in task.metadata.items() if key in PUBLIC_METADATA}
    return replace(task, public_tests=list(public), hidden_tests=[], metadata=metadata)


@dataclass
class Result:
    task_id: str
    method: str
    seed: int
    oracle: bool
    answer: str
    public_reward: float
    hidden_passed: bool
    hidden_reward: float
    hidden_verdict: str
    first_solved_program: int | None  # 1-based count of programs when public tests first passed
    costs: Costs
    # Per test group of the hidden tests (MBPP+: base, plus): whether that group and every
    # group before it passed, as EvalPlus scores base and plus; {} for tasks without groups.
    hidden_groups: dict[str, bool] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    trace: dict[str, Any] = field(default_factory=dict)
    public_tests: int | None = None  # the method's feedback tests; 0: no feedback, rewards 0
    # Every distinct program judged on the hidden tests after the method finished (judge_after)
    posthoc: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def group_scores(task: Task, hidden: Evaluation) -> dict[str, bool]:
    """`Result.hidden_groups` from the hidden `Evaluation` of the answer. The groups are
    `task.metadata["test_groups"]` (MBPP+: base, plus), else those of the hidden tests; a
    group without tests passes (EvalPlus: Mbpp/793 has no plus inputs)."""
    present = list(dict.fromkeys(test.group for test in task.hidden_tests if test.group))
    scores, passed = {}, True
    for group in task.metadata.get("test_groups", present):
        passed = passed and (group not in present or hidden.group_passed(group))
        scores[group] = passed
    return scores


def first_solved(tree: Tree) -> int | None:
    programs: list[Node] = tree.nodes[1:]
    return next((i + 1 for i, n in enumerate(programs) if n.reward >= 1.0), None)
