"""LiveCodeBench `code_generation_lite` release files (JSONL, one problem per line).

Test cases are lists of {input, output, testtype}: "stdin" cases are whole-program stdin/stdout
tests; "functional" cases call `metadata.func_name` with one JSON argument per input line and
compare the return value with the JSON output. `private_test_cases` is base64 → zlib →
pickle → JSON text (plain JSON is accepted too). LeetCode problems come with starter code
`class Solution: def f(self, ...)`; their entry point is the expression `Solution().f`, the way
LiveCodeBench's own harness calls them.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import pickle
import zlib
from pathlib import Path
from typing import Any

from pot.tasks.records import Record, read_records
from pot.tasks.task import Task, Test


def load_livecodebench(path: str | Path) -> list[Task]:
    return [livecodebench_task(record) for record in read_records(path)]


def livecodebench_task(record: Record) -> Task:
    question_id = record.get("question_id", (str, int))
    task_id = f"lcb/{question_id}"
    record = record.named(task_id)
    starter_code = record.get("starter_code", str, default="")
    func_name = json_field(record, "metadata", default={}).get("func_name")
    entry_point = None
    if func_name is not None:
        entry_point = f"Solution().{func_name}" if "class Solution" in starter_code else func_name
    public_tests = tests_of(json_field(record, "public_test_cases"), "public_test_cases", record)
    if not public_tests:
        raise record.error("field 'public_test_cases' is empty", "give at least one test case")
    private_tests = tests_of(private_test_cases(record), "private_test_cases", record)
    return Task(
        id=task_id,
        prompt=record.get("question_content", str),
        kind="function" if func_name else "stdio",
        entry_point=entry_point,
        starter_code=starter_code,
        public_tests=public_tests,
        hidden_tests=public_tests + private_tests,
        metadata={
            "source": "livecodebench",
            "question_title": record.get("question_title", str, default=""),
            "platform": record.get("platform", str, default=""),
            "contest_id": str(record.get("contest_id", (str, int), default="")),
            "contest_date": date_text(record.data.get("contest_date")),
            "difficulty": record.get("difficulty", str, default=""),
            "func_name": func_name,
        },
    )


def date_text(value: Any) -> str:
    # Hugging Face's JSON reader turns ISO dates into datetimes.
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


def json_field(record: Record, name: str, default: Any = ...) -> Any:
    """A field holding JSON text (as in the release files) or the decoded value itself."""
    value = record.get(name, (str, list, dict), default)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value) if value.strip() else default
    except json.JSONDecodeError as error:
        raise record.error(f"field '{name}' is not valid JSON ({error.msg})") from None


def private_test_cases(record: Record) -> list[Any]:
    value = record.get("private_test_cases", (str, list))
    if isinstance(value, list) or value.lstrip().startswith("["):
        return json_field(record, "private_test_cases")
    try:
        text = StrOnlyUnpickler(io.BytesIO(zlib.decompress(base64.b64decode(value)))).load()
        return json.loads(text)
    except (binascii.Error, zlib.error, pickle.UnpicklingError, EOFError, json.JSONDecodeError,
            TypeError) as error:
        raise record.error(
            f"field 'private_test_cases' is neither JSON nor base64 → zlib → pickle → JSON "
            f"({type(error).__name__}: {error})"
        ) from None


class StrOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data only: the release pickles one str, and a pickle that names a
    class or function (the only way one runs code) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def tests_of(cases: Any, field: str, func_name: str | None, record: Record) -> list[Test]:
    if not isinstance(cases, list):
        raise record.error(f"field '{field}' must be a list of test cases")
    return [test_of(case, f"{field}[{index}]", func_name, record) for index, case in
            enumerate(cases)]


def test_of(case: Any, where: str, func_name: str | None, record: Record) -> Test:
    if not isinstance(case, dict) or not isinstance(case.get("input"), str) or not isinstance(
        case.get("output"), str
    ):
        raise record.error(f"{where} must be an object with string fields 'input' and 'output'")
    testtype = case.get("testtype", "functional" if func_name else "stdin")
    if testtype == "stdin":
        return Test(kind="stdio", input=case["input"], expected=case["output"])
    if testtype != "functional":
        raise record.error(f"{where} has testtype {testtype!r}; expected 'stdin' or 'functional'")
    if func_name is None:
        raise record.error(
            f"{where} is a functional test but field 'metadata' has no 'func_name'",
            'add metadata {"func_name": "<method name>"}',
        )
    try:
        arguments = [json.loads(line) for line in case["input"].strip().split("\n")]
        expected = json.loads(case["output"])
    except json.JSONDecodeError as error:
        raise record.error(
            f"{where}: functional input lines and output must each be JSON ({error.msg})"
        ) from None
    return Test(kind="call", input=json.dumps(arguments), expected=json.dumps(expected))
