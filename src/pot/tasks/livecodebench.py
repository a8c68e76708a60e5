"""LiveCodeBench `code_generation_lite` release files (JSONL, one problem per line).

Test cases are lists of {input, output, testtype}: "stdin" cases are whole-program stdin/stdout
tests; "functional" cases call `metadata.func_name` with one JSON argument per input line and
compare the return value with the JSON output. `private_test_cases` is base64 → zlib →
pickle → JSON text (plain JSON is accepted too).

LeetCode problems come with starter code `class Solution: def f(self, ...)`; their entry point
is the method name `f`, which is called as `Solution().f(*args)` the way LiveCodeBench's own
harness does it when the program defines `class Solution`. Public tests
are `public_test_cases`; hidden tests are public + private cases, which is what LiveCodeBench
grades on. Programs run after LiveCodeBench's import prelude (the task's setup code), so a
`List[int]` annotation needs no import, as in LiveCodeBench.
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

from pot.sandbox import values
from pot.tasks.records import Record, parse_records, read_records
from pot.tasks.task import Task, Test

# LiveCodeBench runs every program after `import_string` (lcb_runner/evaluation/testing_util.py:
# `grade_call_based` prepends it to the code, `make_function` puts it before stdin programs):
# star imports of these modules, plain imports of all but the last two, a recursion limit.
PRELUDE_MODULES = (
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
    "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing",
)  # fmt: skip
PRELUDE = (
    "".join(f"from {module} import *\n" for module in PRELUDE_MODULES)
    + "".join(f"import {module}\n" for module in PRELUDE_MODULES[:-2])
    + "sys.setrecursionlimit(50000)\n"
)


def load_livecodebench(path: str | Path) -> list[Task]:
    return parse_records(read_records(path), livecodebench_task)


def livecodebench_task(record: Record) -> Task:
    task_id = f"lcb/{record.get('question_id', (str, int))}"
    record = record.named(task_id)
    starter_code = record.get("starter_code", str, default="")
    metadata = json_field(record, "metadata", default={})
    if not isinstance(metadata, dict):
        raise record.error("field 'metadata' must be a JSON object")
    func_name = metadata.get("func_name") or None
    if func_name is not None and not isinstance(func_name, str):
        raise record.error("field 'metadata': 'func_name' must be a string")
    public_tests = tests_of(record, "public_test_cases", json_field(record, "public_test_cases"))
    if not public_tests:
        raise record.error("field 'public_test_cases' is empty", "give at least one test case")
    private_tests = tests_of(record, "private_test_cases", private_test_cases(record))
    if any(test.kind == "call" for test in public_tests + private_tests) and not func_name:
        raise record.error(
            "functional test cases need field 'metadata' to name the function",
            'set metadata to {"func_name": "<function or method name>"}',
        )
    return Task(
        id=task_id,
        prompt=record.get("question_content", str),
        kind="function" if func_name else "stdio",
        entry_point=func_name,
        starter_code=starter_code,
        public_tests=public_tests,
        hidden_tests=public_tests + private_tests,
        setup_code=PRELUDE,
        metadata={
            "source": "livecodebench",
            "question_title": record.get("question_title", str, default=""),
            "platform": record.get("platform", str, default=""),
            "contest_id": str(record.get("contest_id", (str, int), default="")),
            "contest_date": date_text(record.data.get("contest_date")),
            "difficulty": record.get("difficulty", str, default=""),
        },
    )


def date_text(value: Any) -> str:
    # Hugging Face's JSON reader turns ISO date strings into datetimes.
    return value.isoformat() if hasattr(value, "isoformat") else str(value or "")


def json_field(record: Record, name: str, default: Any = ...) -> Any:
    """A field holding JSON text (as in the release files) or the decoded value itself."""
    value = record.get(name, (str, list, dict), default)
    if not isinstance(value, str):
        return value
    if not value.strip() and default is not ...:
        return default
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise record.error(f"field '{name}' is not valid JSON ({error.msg})") from None


def private_test_cases(record: Record) -> Any:
    value = record.get("private_test_cases", (str, list))
    if isinstance(value, list) or value.lstrip().startswith("["):
        return json_field(record, "private_test_cases")
    try:
        pickled = zlib.decompress(base64.b64decode(value, validate=True))
        return json.loads(StrOnlyUnpickler(io.BytesIO(pickled)).load())
    except (binascii.Error, zlib.error, pickle.UnpicklingError, EOFError, ValueError, TypeError):
        raise record.error(
            "field 'private_test_cases' is neither a JSON list nor base64 → zlib → pickle → JSON"
        ) from None


class StrOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain data only. The release pickles one str; a pickle that names a class or
    function (the only way unpickling runs code) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def tests_of(record: Record, field: str, cases: Any) -> list[Test]:
    if not isinstance(cases, list):
        raise record.error(f"field '{field}' must be a list of test cases")
    return [test_of(record, f"{field}[{index}]", case) for index, case in enumerate(cases)]


def test_of(record: Record, where: str, case: Any) -> Test:
    """A stdio test from a "stdin" case, a call test from a "functional" case."""
    if not (
        isinstance(case, dict)
        and isinstance(case.get("input"), str)
        and isinstance(case.get("output"), str)
    ):
        raise record.error(f"{where} must be an object with string fields 'input' and 'output'")
    testtype = case.get("testtype")
    if testtype == "stdin":
        return Test(kind="stdio", input=case["input"], expected=case["output"])
    if testtype != "functional":
        raise record.error(f"{where} has testtype {testtype!r}; use 'stdin' or 'functional'")
    try:
        arguments = [json.loads(line) for line in case["input"].strip().split("\n")]
        expected = json.loads(case["output"])
    except json.JSONDecodeError as error:
        raise record.error(
            f"{where}: each input line and the output of a functional case must be JSON "
            f"({error.msg})"
        ) from None
    return Test(kind="call", input=values.encode(arguments), expected=values.encode(expected))
