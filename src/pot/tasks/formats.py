"""Telling which task format a file or dataset is in, from the fields of its records."""

from __future__ import annotations

from collections.abc import Callable

from pot.tasks.humaneval import humaneval_task
from pot.tasks.jsonl import jsonl_task
from pot.tasks.livecodebench import livecodebench_task
from pot.tasks.mbpp import mbpp_task
from pot.tasks.records import Record, parse_records
from pot.tasks.task import Task, TaskFormatError

FORMATS = (
    "our format (id, prompt, public_tests, hidden_tests; docs/task-format.md), "
    "human-eval (task_id, prompt, test, entry_point), MBPP (task_id, text or prompt, "
    "test_list) or LiveCodeBench (question_id, question_content, public_test_cases, ...)"
)


def task_parser(record: Record) -> Callable[[Record], Task]:
    """The parser for the format `record` is in."""
    fields = set(record.data)
    if {"id", "public_tests"} <= fields:
        return jsonl_task
    if {"question_id", "public_test_cases"} <= fields:
        return livecodebench_task
    if {"task_id", "base_input", "plus_input"} <= fields:
        raise record.error("an MBPP+ (EvalPlus) record", "load the file as mbppplus:<path>")
    if {"task_id", "test_list"} <= fields:
        return mbpp_task
    if {"task_id", "prompt", "test", "entry_point"} <= fields:
        return humaneval_task
    raise record.error(
        f"unknown task format (fields: {', '.join(sorted(fields))})", f"expected {FORMATS}"
    )


def tasks_of_records(records: list[Record], source: str) -> list[Task]:
    """Tasks from records that share one format, recognised from the first record."""
    if not records:
        raise TaskFormatError(f"{source} holds no records; expected {FORMATS}")
    return parse_records(records, task_parser(records[0]))
