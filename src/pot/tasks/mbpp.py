"""MBPP (Austin et al. 2021, CC-BY-4.0): short Python problems with three assert tests each.

The development splits ship in pot/data/mbpp (see its README.md). The public test is the first
assert, which the prompt also shows as the usage example (as in the MBPP paper); the hidden
tests are all asserts of `test_list` plus `challenge_test_list`.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

from pot.tasks.records import Record, parse_records, read_records
from pot.tasks.task import Task, Test

MBPP_DIR = Path(__file__).resolve().parent.parent / "data" / "mbpp"
MBPP_SPLITS = {
    "prompt": "mbpp_prompt.jsonl",
    "validation": "mbpp_validation.jsonl",
    "train": "mbpp_train.jsonl",
    "sanitized": "sanitized_nontest.json",
}


def load_mbpp(split_or_path: str | Path) -> list[Task]:
    """A shipped split (prompt, validation, train, sanitized) or any MBPP-format file."""
    if split_or_path in MBPP_SPLITS:
        path = MBPP_DIR / MBPP_SPLITS[str(split_or_path)]
    else:
        path = Path(split_or_path)
    return parse_records(read_records(path), mbpp_task)


def mbpp_task(record: Record) -> Task:
    """A Task from an MBPP record, original (`text`, `test_setup_code`) or sanitized
    (`prompt`, `test_imports`) format."""
    task_id = f"mbpp/{record.get('task_id', int)}"
    record = record.named(task_id)
    sanitized = "text" not in record.data
    text = record.get("prompt" if sanitized else "text", str)
    tests = record.get_strings("test_list")
    if not tests:
        raise record.error("field 'test_list' is empty", "give at least one assert statement")
    if sanitized:
        setup_code = "\n".join(record.get_strings("test_imports", default=[]))
    else:
        setup_code = record.get("test_setup_code", str, default="")
    challenge_tests = record.get_strings("challenge_test_list", default=[])
    metadata = {"source": "mbpp", "variant": "sanitized" if sanitized else "original"}
    code = record.get("code", str, default=None)
    if code is not None:
        metadata["reference_solution"] = code
    return Task(
        id=task_id,
        prompt=f"{text}\nYour code should pass this test:\n{tests[0]}",
        kind="function",
        entry_point=called_function(tests[0], record),
        public_tests=[Test(kind="assert", source=tests[0])],
        hidden_tests=[Test(kind="assert", source=test) for test in tests + challenge_tests],
        setup_code=setup_code,
        metadata=metadata,
    )


def called_function(test: str, record: Record) -> str:
    """The first function the assert calls that is not a builtin, e.g. `f` in
    `assert set(f(x)) == {1}`."""
    try:
        statement = ast.parse(test)
    except SyntaxError as error:
        raise record.error(f"field 'test_list' item 0 is not valid Python ({error.msg})") from None
    calls = [
        node
        for node in ast.walk(statement)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and not hasattr(builtins, node.func.id)
    ]
    if not calls:
        raise record.error(
            "field 'test_list' item 0 calls no function by name",
            "its first assert must call the function under test, e.g. 'assert f(1) == 2'",
        )
    first = min(calls, key=lambda call: (call.lineno, call.col_offset))
    return first.func.id
