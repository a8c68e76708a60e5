"""Every program judged afterwards: once a method has finished, each distinct program it wrote is
run on the hidden tests; the verdicts go into the Result, never anywhere a method can read,
and a resumed run keeps them."""

import json
from functools import partial

import pytest

from pot.bench import BenchSpec, RunFolder, SerialExecutor, run_bench
from pot.budget import Budget
from pot.methods import METHODS, best_of_n, solve
from pot.tasks import Task, Test
from tests.scripted import ScriptedPolicy

GOOD = "def add(a, b):\n    return a + b"
WRONG = "def add(a, b):\n    return a - b"
OVERFIT = "def add(a, b):\n    return 3"  # passes the public test only
SECRET = "'HIDDEN-ONLY-SENTINEL'"
TASK = Task(
    id="t/add",
    prompt="Add two numbers.",
    entry_point="add",
    public_tests=[Test("assert", "assert add(1, 2) == 3")],
    hidden_tests=[
        Test("assert", "assert add(1, 2) == 3"),
        Test("assert", f"assert add(-1, 1) == 0 or {SECRET} == 0"),
    ],
)


def test_each_distinct_program_in_generation_order_with_its_hidden_verdict(sandbox):
    policy = ScriptedPolicy([WRONG, OVERFIT, WRONG, GOOD])
    result = solve(TASK, policy, sandbox, "best-of-n", budget=Budget(programs=8))
    # Best-of-N stops after its first batch of 4, which holds GOOD; WRONG came twice.
    programs = result.posthoc["programs"]
    assert [p["nodes"] for p in programs] == [[1, 3], [2], [4]]
    assert [p["public_reward"] for p in programs] == [0.0, 1.0, 1.0]
    assert [p["hidden_passed"] for p in programs] == [False, False, True]
    assert [p["hidden_verdict"] for p in programs] == ["wrong_answer"] * 2 + ["pass"]
    assert [p["hidden_groups"] for p in programs] == [{}, {}, {}]  # MBPP+ tasks: base, plus
    nodes = result.trace["nodes"]
    answer = next(p for p in programs if nodes[p["nodes"][0]]["program"] == result.answer)
    assert answer["hidden_passed"] == result.hidden_passed


def find(value, needles) -> list[str]:
    """Every needle that occurs in `value`'s text (JSON, or repr for other objects)."""
    try:
        text = json.dumps(value, default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    return [needle for needle in needles if needle in text]


VERDICTS = ["posthoc", "hidden_passed", "hidden_verdict", "hidden_reward"]
NEEDLES = [*VERDICTS, "HIDDEN-ONLY-SENTINEL"]


def test_the_verdicts_never_reach_a_method(sandbox, monkeypatch):
    """A method that searches its view, its ledger and its own trace for the verdicts, run on
    the same policy and sandbox right after a solve that produced them, finds nothing."""
    policy = ScriptedPolicy([WRONG, OVERFIT, GOOD])
    earlier = solve(TASK, policy, sandbox, "best-of-n", budget=Budget(programs=6))
    assert find(earlier.to_dict(), VERDICTS) == VERDICTS  # the search can find them,
    assert find(vars(TASK), NEEDLES) == ["HIDDEN-ONLY-SENTINEL"]  # and the hidden tests

    found = []

    def snooping(task, policy, sandbox, ledger, config, seed=0):
        tree = best_of_n.run(task, policy, sandbox, ledger, config, seed)
        for name, value in [
            ("view", vars(task)),
            ("ledger", vars(ledger)),
            ("trace", tree.to_dict()),
        ]:
            found.extend((name, needle) for needle in find(value, NEEDLES))
        return tree

    monkeypatch.setitem(METHODS, "snooping", (snooping, best_of_n.BestOfNConfig))
    before = repr(TASK)
    result = solve(TASK, policy, sandbox, "snooping", budget=Budget(programs=6))
    assert found == []
    assert repr(TASK) == before  # nothing was written into the task
    assert find(result.trace, NEEDLES) == []  # the trace is what the method built
    assert result.posthoc["programs"] and find(result.posthoc, ["hidden_passed"])


SPEC = BenchSpec(tasks="tests", methods=["best-of-n", "pot"], budget="programs=4", seeds=[0, 1])


class Killed(Exception):
    pass


def executor() -> SerialExecutor:
    return SerialExecutor(partial(ScriptedPolicy, [WRONG, OVERFIT, WRONG, GOOD]))


def test_a_resumed_run_keeps_the_verdicts(tmp_path):
    whole = run_bench(tmp_path / "whole", SPEC, [TASK], executor())
    finished = []

    def die_after_two(record):
        finished.append(record)
        if len(finished) == 2:
            raise Killed

    with pytest.raises(Killed):
        run_bench(tmp_path / "cut", SPEC, [TASK], executor(), on_result=die_after_two)
    resumed = run_bench(tmp_path / "cut", SPEC, [TASK], executor())
    on_disk = RunFolder(tmp_path / "cut").records()
    assert len(resumed) == len(on_disk) == len(whole) == 4

    def verdicts(records):
        return {(r["method"], r["seed"]): r["posthoc"]["programs"] for r in records}

    assert verdicts(on_disk) == verdicts(whole)
    assert all(r["posthoc"]["programs"] for r in on_disk)
    assert any(not p["hidden_passed"] for r in on_disk for p in r["posthoc"]["programs"])
