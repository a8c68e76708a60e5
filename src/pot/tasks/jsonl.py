"""Our own task format: JSON Lines, one problem per line (docs/task-format.md).

Fields of each object:
    id            string, required, unique in the file
    prompt        string, required: the problem statement shown to the model
    entry_point   string, optional: the function to write (with `class Solution` starter
                  code: the method, called as Solution().<entry_point>). Given: a function
                  task. Absent: a stdin/stdout program task.
    starter_code  string, optional: code the answer should start from (signature, class)
    setup_code    string, optional: run before the tests (imports the tests need)
    public_tests  list of tests, required, not empty: the only feedback a method sees
    hidden_tests  list of tests, required, not empty: judge the final answer (to judge on the
                  public tests, repeat them here)
    metadata      object, optional: kept as is

A test is one of:
    "assert f(2) == 4"                    Python statements; pass if nothing raises
    {"assert": "assert f(2) == 4"}        the same
    {"input": [2, 3], "output": 5}        function task: call entry_point(2, 3), expect 5
    {"input": "2 3\\n", "output": "5\\n"}   stdio task: the program's stdin and expected stdout
Assert tests need an entry_point (they test a function).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from pot.sandbox import values
from pot.tasks.records import Record, parse_records, read_records
from pot.tasks.task import Task, Test

FIELDS = (
    "id",
    "prompt",
    "entry_point",
    "starter_code",
    "setup_code",
    "public_tests",
    "hidden_tests",
    "metadata",
)
FORMAT_HELP = "see docs/task-format.md"


def load_jsonl(path: str | Path) -> list[Task]:
    return parse_records(read_records(path), jsonl_task)


def jsonl_task(record: Record) -> Task:
    task_id = record.get("id", str)
    record = record.named(task_id)
    unknown = sorted(set(record.data) - set(FIELDS))
    if unknown:
        raise record.error(
            f"unknown field '{unknown[0]}'", f"the fields are {', '.join(FIELDS)}; {FORMAT_HELP}"
        )
    entry_point = record.get("entry_point", str, default=None)
    return Task(
        id=task_id,
        prompt=record.get("prompt", str),
        kind="function" if entry_point else "stdio",
        entry_point=entry_point,
        starter_code=record.get("starter_code", str, default=""),
        public_tests=tests_of(record, "public_tests", entry_point),
        hidden_tests=tests_of(record, "hidden_tests", entry_point),
        setup_code=record.get("setup_code", str, default=""),
        metadata=record.get("metadata", dict, default={}),
    )


def tests_of(record: Record, field: str, entry_point: str | None) -> list[Test]:
    items = record.get(field, list)
    if not items:
        fix = "repeat the public tests here to judge on them" if field == "hidden_tests" else ""
        raise record.error(f"field '{field}' is empty", fix or "give at least one test")
    return [
        test_of(record, f"{field}[{index}]", item, entry_point) for index, item in enumerate(items)
    ]


def test_of(record: Record, where: str, item: Any, entry_point: str | None) -> Test:
    if isinstance(item, dict) and set(item) == {"assert"}:
        item = item["assert"]
    if isinstance(item, str):
        return assert_test(record, where, item, entry_point)
    if isinstance(item, dict) and set(item) == {"input", "output"}:
        if entry_point:
            return call_test(record, where, item)
        return stdio_test(record, where, item)
    raise record.error(
        f'{where} must be an assert string, {{"assert": ...}} or {{"input": ..., '
        f'"output": ...}}, got {json.dumps(item)[:80]}',
        FORMAT_HELP,
    )


def assert_test(record: Record, where: str, source: str, entry_point: str | None) -> Test:
    if not entry_point:
        raise record.error(
            f"{where} is an assert test but the task has no 'entry_point'",
            'add entry_point, or write stdio tests as {"input": ..., "output": ...}',
        )
    try:
        ast.parse(source)
    except SyntaxError as error:
        raise record.error(f"{where} is not valid Python ({error.msg})") from None
    return Test(kind="assert", source=source)


def call_test(record: Record, where: str, item: dict[str, Any]) -> Test:
    if not isinstance(item["input"], list):
        raise record.error(
            f"{where}: 'input' must be the list of arguments, got {json.dumps(item['input'])[:80]}",
            "for one argument x write [x]",
        )
    return Test(
        kind="call", input=values.encode(item["input"]), expected=values.encode(item["output"])
    )


def stdio_test(record: Record, where: str, item: dict[str, Any]) -> Test:
    if not isinstance(item["input"], str) or not isinstance(item["output"], str):
        raise record.error(
            f"{where}: a task without 'entry_point' has stdin/stdout tests, so 'input' and "
            "'output' must be strings",
            "add entry_point to test a function instead",
        )
    return Test(kind="stdio", input=item["input"], expected=item["output"])


def task_record(task: Task) -> dict[str, Any]:
    """`task` as one object of this format (the inverse of `jsonl_task`)."""
    record: dict[str, Any] = {"id": task.id, "prompt": task.prompt}
    if task.entry_point:
        record["entry_point"] = task.entry_point
    if task.starter_code:
        record["starter_code"] = task.starter_code
    if task.setup_code:
        record["setup_code"] = task.setup_code
    record["public_tests"] = [test_item(test) for test in task.public_tests]
    record["hidden_tests"] = [test_item(test) for test in task.hidden_tests]
    if task.metadata:
        record["metadata"] = task.metadata
    return record


def test_item(test: Test) -> Any:
    if test.kind == "assert":
        return test.source
    if test.kind == "call":
        return {"input": values.decode(test.input), "output": values.decode(test.expected)}
    return {"input": test.input, "output": test.expected}


def write_jsonl(tasks: list[Task], path: str | Path) -> None:
    """Write `tasks` in this format, one per line."""
    with Path(path).open("w", encoding="utf-8") as file:
        for task in tasks:
            file.write(json.dumps(task_record(task), ensure_ascii=False) + "\n")
