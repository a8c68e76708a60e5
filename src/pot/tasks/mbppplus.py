"""MBPP+ (EvalPlus; Liu et al., NeurIPS 2023, Apache-2.0) on MBPP's tasks (CC-BY-4.0).

Each task keeps MBPP's original test inputs (`base_input`) and adds about a hundred generated
ones (`plus_input`); expected outputs are what `canonical_solution` returns. The prompt is the
description with the first original assert as the usage example, as in EvalPlus's own MBPP+
prompts. Public tests: the base inputs. Hidden tests: base then plus (`Test.group`), so results
carry EvalPlus's two scores, base and plus.

Inputs are converted back to tuples, sets and complex numbers per task as EvalPlus does
(evalplus/data/mbpp.py, `mbpp_deserialize_inputs`). Expected outputs come from running the
reference in the sandbox once per file; they are cached under `$POT_CACHE/mbppplus`, keyed by
the file's sha256. A task whose reference fails on one of its inputs is left out, with one
warning line naming it and the failure.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pot.sandbox import oracles, values
from pot.tasks.records import Record, read_records
from pot.tasks.task import Task, TaskFormatError, Test

MBPPPLUS_DIR = Path(__file__).resolve().parent.parent / "data" / "mbppplus"
SHIPPED_FILE = MBPPPLUS_DIR / "MbppPlus_dev.jsonl"
# Shipped task ids by MBPP split (the test split, 11-510, is not shipped).
MBPPPLUS_SPLITS = {"validation": (range(1, 11), range(511, 601)), "train": (range(601, 975),)}
GROUPS = ("base", "plus")
CACHE_VERSION = 1  # bump when the conversion or the reference run changes
REFERENCE_TIMEOUT_S = 30.0  # per input; some references are slow on EvalPlus's large inputs
TASK_ID = re.compile(r"Mbpp/(\d+)")
REFERENCE_ENTRY = "pot_reference_value"  # wraps the reference of a not-None task

# Oracles by entry point, as evalplus/eval/__init__.py `unsafe_execute` chooses them; the
# lists are evalplus/eval/_special_oracle.py's MBPP_OUTPUT_SET_EQ_TASKS / _NOT_NONE_TASKS.
SET_EQUAL_ENTRY_POINTS = (
    "similar_elements",
    "find_char_long",
    "common_in_nested_lists",
    "extract_singly",
    "larg_nnum",
    "intersection_array",
    "find_dissimilar",
    "Diff",
)
NOT_NONE_ENTRY_POINTS = ("check_str", "text_match_three", "text_starta_endb")
ORACLES = {
    "are_equivalent": "evalplus-always",
    "sum_div": "evalplus-sum-div",
    "surface_Area": "evalplus-surface-area",
    "digit_distance_nums": "evalplus-digit-distance",
    **dict.fromkeys(SET_EQUAL_ENTRY_POINTS, "evalplus-set"),
    **dict.fromkeys(NOT_NONE_ENTRY_POINTS, "evalplus-not-none"),
}

logger = logging.getLogger(__name__)
Arguments = list[Any]


def deep_tuple(value: Any) -> Any:
    return tuple(deep_tuple(item) for item in value) if isinstance(value, list) else value


def tuples(items: list) -> list[tuple]:
    return [tuple(item) for item in items]


# evalplus/data/mbpp.py `mbpp_deserialize_inputs`, restated per argument list. Where EvalPlus
# rebuilds the list from its first one or two arguments, extra arguments are dropped as there.
CONVERSIONS: dict[int, Callable[[Arguments], Arguments]] = {
    **dict.fromkeys(
        [2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616]
        + [630, 726, 740, 744, 809],
        lambda args: [tuple(arg) for arg in args],
    ),
    **dict.fromkeys(
        [63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780],
        lambda args: [tuples(arg) for arg in args],
    ),
    **dict.fromkeys([75, 413, 444, 753], lambda args: [tuples(args[0]), args[1]]),
    **dict.fromkeys([106, 750], lambda args: [args[0], tuple(args[1])]),
    115: lambda args: [[set(item) if isinstance(item, list) and item else {} for item in args[0]]],
    124: lambda args: [float(args[0]), complex(args[1])],
    **dict.fromkeys(
        [250, 405, 446, 617, 720, 763, 808], lambda args: [tuple(args[0]), args[1]]
    ),
    **dict.fromkeys([259, 401, 445], lambda args: [tuple(tuples(arg)) for arg in args]),
    278: lambda args: [tuple(tuple(x) if isinstance(x, list) else x for x in args[0])],
    307: lambda args: [tuple(args[0]), args[1], args[2]],
    722: lambda args: [{key: tuple(value) for key, value in args[0].items()}, *args[1:]],
    252: lambda args: [complex(args[0])],
    **dict.fromkeys([580, 615, 791], lambda args: list(deep_tuple(args))),
}


@dataclass(frozen=True)
class Problem:
    """One MBPP+ record, checked, with its inputs converted as EvalPlus converts them."""

    record: Record
    task_id: str  # EvalPlus's, "Mbpp/<n>"
    number: int
    description: str
    usage: str  # the first original assert
    entry_point: str
    reference: str  # prompt + canonical_solution, the code EvalPlus runs for expected outputs
    inputs: dict[str, list[Arguments]]  # group -> argument lists
    atol: float

    @property
    def oracle(self) -> str:
        return ORACLES.get(self.entry_point, "evalplus")


def load_mbppplus(split_or_path: str | Path = "", *, sandbox: Any = None) -> list[Task]:
    """The shipped dev tasks ("" for all 160, "validation", "train") or any MbppPlus-format
    file (.jsonl or .jsonl.gz). `sandbox` runs the references when the cache has no outputs
    (default: a temporary one)."""
    path, wanted = source_of(split_or_path)
    problems = [problem_of(record) for record in read_records(path)]
    check_unique(problems)
    outputs = reference_outputs(path, problems, sandbox)
    tasks = []
    for problem in problems:
        if not wanted(problem.number):
            continue
        result = outputs[problem.task_id]
        if "error" in result:
            logger.warning("MBPP+ %s left out: %s", problem.task_id, result["error"])
            continue
        tasks.append(task_of(problem, result))
    return tasks


def source_of(split_or_path: str | Path) -> tuple[Path, Callable[[int], bool]]:
    if split_or_path in ("", *MBPPPLUS_SPLITS):
        ranges = MBPPPLUS_SPLITS.get(str(split_or_path))
        return SHIPPED_FILE, lambda n: ranges is None or any(n in r for r in ranges)
    path = Path(split_or_path)
    if not path.is_file():
        raise TaskFormatError(
            f"no MBPP+ split or file '{split_or_path}'; use mbppplus, mbppplus:validation, "
            "mbppplus:train or mbppplus:<path of a MbppPlus .jsonl or .jsonl.gz>"
        )
    return path, lambda n: True


def problem_of(record: Record) -> Problem:
    task_id = record.get("task_id", str)
    match = TASK_ID.fullmatch(task_id)
    if match is None:
        raise record.error(f"field 'task_id' is {task_id!r}", "MBPP+ ids look like 'Mbpp/2'")
    record = record.named(task_id)
    number = int(match[1])
    prompt = record.get("prompt", str)
    return Problem(
        record=record,
        task_id=task_id,
        number=number,
        description=description_of(prompt),
        usage=first_assert(record),
        entry_point=record.get("entry_point", str),
        reference=prompt + record.get("canonical_solution", str),
        inputs={group: inputs_of(record, group, number) for group in GROUPS},
        atol=float(record.get("atol", (int, float))),
    )


def description_of(prompt: str) -> str:
    """The text of the prompt, which is a string literal ('''...''')."""
    try:
        text = ast.literal_eval(prompt.strip())
    except (ValueError, SyntaxError):
        return prompt.strip()
    return text.strip() if isinstance(text, str) else prompt.strip()


def first_assert(record: Record) -> str:
    source = record.get("assertion", str)
    try:
        module = ast.parse(source)
    except SyntaxError as error:
        raise record.error(f"field 'assertion' is not valid Python ({error.msg})") from None
    first = next((node for node in module.body if isinstance(node, ast.Assert)), None)
    if first is None:
        raise record.error("field 'assertion' holds no assert statement")
    return ast.get_source_segment(source, first) or ast.unparse(first)


def inputs_of(record: Record, group: str, number: int) -> list[Arguments]:
    field = f"{group}_input"
    items = record.get(field, (list, dict))
    if isinstance(items, dict):
        if items:
            raise record.error(f"field '{field}' must be a list of argument lists, got an object")
        return []  # Mbpp/793 has plus_input {}: EvalPlus iterates it as no inputs
    convert = CONVERSIONS.get(number, list)
    converted = []
    for index, arguments in enumerate(items):
        if not isinstance(arguments, list):
            raise record.error(
                f"field '{field}' item {index} must be a list of arguments, "
                f"got {type(arguments).__name__}"
            )
        try:
            converted.append(list(convert(arguments)))
        except (TypeError, ValueError, IndexError, AttributeError) as error:
            raise record.error(
                f"field '{field}' item {index} cannot be converted as EvalPlus converts "
                f"Mbpp/{number}'s inputs ({type(error).__name__}: {error})"
            ) from None
    return converted


def check_unique(problems: list[Problem]) -> None:
    seen: dict[str, str] = {}
    for problem in problems:
        if problem.task_id in seen:
            raise problem.record.error(
                f"task id already used at {seen[problem.task_id]}", "make the ids unique"
            )
        seen[problem.task_id] = problem.record.origin


def call_tests(problem: Problem, group: str) -> list[Test]:
    return [
        Test(kind="call", input=values.encode(arguments), expected="null", group=group)
        for arguments in problem.inputs[group]
    ]


def task_of(problem: Problem, outputs: dict[str, list[str]]) -> Task:
    tests = {group: judged_tests(problem, group, outputs[group]) for group in GROUPS}
    return Task(
        id=f"mbppplus/{problem.task_id}",
        prompt=f"{problem.description}\n{problem.usage}",
        kind="function",
        entry_point=problem.entry_point,
        public_tests=tests["base"],
        hidden_tests=tests["base"] + tests["plus"],
        metadata={
            "source": "mbppplus",
            "evalplus_task_id": problem.task_id,
            "reference_solution": problem.reference,
        },
    )


def judged_tests(problem: Problem, group: str, expected: list[str]) -> list[Test]:
    """The group's tests with their expected outputs and, per test, the atol EvalPlus has in
    force there: its loop keeps the 1e-6 it sets at the first float output of a group
    (evalplus/eval/__init__.py, `unsafe_execute`)."""
    atol = problem.atol
    tests = []
    for test, output in zip(call_tests(problem, group), expected, strict=True):
        tests.append(replace(test, expected=output, oracle=problem.oracle, atol=atol))
        if atol == 0 and oracles.is_floats(values.decode(output)):
            atol = oracles.FLOAT_ATOL
    return tests


def cache_path(path: Path) -> Path:
    # The cache directory of pot.policy.models.cache_dir, which this layer cannot import.
    root = Path(os.environ.get("POT_CACHE", "~/.cache/pot")).expanduser()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return root / "mbppplus" / f"{digest}-v{CACHE_VERSION}.json"


def reference_outputs(
    path: Path, problems: list[Problem], sandbox: Any
) -> dict[str, dict[str, Any]]:
    """Per task id {"base": [...], "plus": [...]} (codec texts) or {"error": why}."""
    cache = cache_path(path)
    if cache.is_file():
        try:
            cached = json.loads(cache.read_text())
        except (OSError, json.JSONDecodeError):
            cached = {}
        if all(problem.task_id in cached for problem in problems):
            return cached
    outputs = compute_reference_outputs(problems, sandbox)
    cache.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(outputs))
    os.replace(temporary, cache)
    return outputs


def reference_job(problem: Problem) -> tuple[str, list[Test], str, str]:
    tests = call_tests(problem, "base") + call_tests(problem, "plus")
    if problem.oracle != "evalplus-not-none":
        return problem.reference, tests, problem.entry_point, ""
    # EvalPlus keeps only whether these references returned something (`trusted_exec`,
    # output_not_none): their re.Match values are not plain data.
    wrapper = (
        f"\n\ndef {REFERENCE_ENTRY}(*arguments):\n"
        f"    return {problem.entry_point}(*arguments) is not None\n"
    )
    return problem.reference + wrapper, tests, REFERENCE_ENTRY, ""


def compute_reference_outputs(problems: list[Problem], sandbox: Any) -> dict[str, dict[str, Any]]:
    # Imported here: the sandbox layer imports pot.tasks, so it sits above this module.
    from pot.sandbox import Limits, Sandbox

    owned = sandbox is None
    box = Sandbox(limits=Limits(timeout_s=REFERENCE_TIMEOUT_S)) if owned else nullcontext(sandbox)
    with box as runner:
        evaluations = runner.evaluate_many([reference_job(problem) for problem in problems])
    return {
        problem.task_id: outputs_of(problem, evaluation.results)
        for problem, evaluation in zip(problems, evaluations, strict=True)
    }


def outputs_of(problem: Problem, results: list[Any]) -> dict[str, Any]:
    outputs: dict[str, Any] = {group: [] for group in GROUPS}
    for result in results:
        group = result.test.group
        if not result.value:
            index = len(outputs[group]) + 1
            why = result.error.strip().splitlines()[-1:] or [""]
            return {
                "error": f"its reference solution gave {result.verdict.value} on {group} input "
                f"{index} ({why[0][:200]})"
            }
        outputs[group].append(result.value)
    return outputs
