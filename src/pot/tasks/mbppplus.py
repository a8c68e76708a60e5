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
from dataclasses import dataclass
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
CACHE_VERSION = 2  # bump when the conversion or the reference run changes
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
    **dict.fromkeys([250, 405, 446, 617, 720, 763, 808], lambda args: [tuple(args[0]), args[1]]),
    **dict.fromkeys([259, 401, 445], lambda args: [tuple(tuples(arg)) for arg in args]),
    278: lambda args: [tuple(tuple(x) if isinstance(x, list) else x for x in args[0])],
    307: lambda args: [tuple(args[0]), args[1], args[2]],
    722: lambda args: [{key: tuple(value) for key, value in args[0].items()}, *args[1:]],
    252: lambda args: [complex(args[0])],
    **dict.fromkeys([580, 615, 791], lambda args: list(deep_tuple(args))),
}


@dataclass(frozen=True)
class Problem:
    """One MBPP+ record, its fields checked."""

    record: Record
    task_id: str  # EvalPlus's, "Mbpp/<n>"
    number: int
    description: str
    usage: str  # the first original assert
    entry_point: str
    reference: str  # prompt + canonical_solution, the code EvalPlus runs for expected outputs
    inputs: dict[str, list[Arguments]]  # group -> argument lists, as in the file
    atol: float

    @property
    def oracle(self) -> str:
        return ORACLES.get(self.entry_point, "evalplus")

    @property
    def not_none(self) -> bool:
        return self.entry_point in NOT_NONE_ENTRY_POINTS


# One test as cached: encoded arguments, encoded expected output, the atol in force there.
Case = tuple[str, str, float]


def load_mbppplus(split_or_path: str | Path = "") -> list[Task]:
    """The shipped dev tasks ("" for all 160, "validation", "train") or any MbppPlus-format
    file (.jsonl or .jsonl.gz)."""
    path, wanted = source_of(split_or_path)
    problems = [problem_of(record) for record in read_records(path)]
    check_unique(problems)
    cases = cached_cases(path, problems)
    tasks = []
    for problem in problems:
        if not wanted(problem.number):
            continue
        found = cases[problem.task_id]
        if "error" in found:
            logger.warning("MBPP+ %s left out: %s", problem.task_id, found["error"])
            continue
        tasks.append(task_of(problem, found))
    return tasks


def source_of(split_or_path: str | Path) -> tuple[Path, Callable[[int], bool]]:
    """The file of a split name or path, and which task numbers of it to keep."""
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
    prompt = record.get("prompt", str)
    return Problem(
        record=record,
        task_id=task_id,
        number=int(match[1]),
        description=description_of(prompt),
        usage=first_assert(record),
        entry_point=record.get("entry_point", str),
        reference=prompt + record.get("canonical_solution", str),
        inputs={group: inputs_of(record, group) for group in GROUPS},
        atol=float(record.get("atol", (int, float))),
    )


def description_of(prompt: str) -> str:
    """The text of the prompt, which is a Python string literal."""
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


def inputs_of(record: Record, group: str) -> list[Arguments]:
    field = f"{group}_input"
    items = record.get(field, (list, dict))
    if isinstance(items, dict):
        if items:
            raise record.error(f"field '{field}' must be a list of argument lists, got an object")
        return []  # Mbpp/793 has plus_input {}: EvalPlus iterates it as no inputs
    for index, arguments in enumerate(items):
        if not isinstance(arguments, list):
            raise record.error(
                f"field '{field}' item {index} must be a list of arguments, "
                f"got {type(arguments).__name__}"
            )
    return items


def check_unique(problems: list[Problem]) -> None:
    seen: dict[str, str] = {}
    for problem in problems:
        if problem.task_id in seen:
            raise problem.record.error(
                f"task id already used at {seen[problem.task_id]}", "make the ids unique"
            )
        seen[problem.task_id] = problem.record.origin


def converted_inputs(problem: Problem, group: str) -> list[Arguments]:
    """The group's argument lists converted as EvalPlus converts them for this task."""
    convert = CONVERSIONS.get(problem.number, list)
    converted = []
    for index, arguments in enumerate(problem.inputs[group]):
        try:
            converted.append(list(convert(arguments)))
        except (TypeError, ValueError, IndexError, AttributeError) as error:
            raise problem.record.error(
                f"field '{group}_input' item {index} cannot be converted as EvalPlus converts "
                f"{problem.task_id}'s inputs ({type(error).__name__}: {error})"
            ) from None
    return converted


def task_of(problem: Problem, cases: dict[str, list[Case]]) -> Task:
    tests = {group: [test_of(problem, group, case) for case in cases[group]] for group in GROUPS}
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
            "test_groups": list(GROUPS),  # for Result.hidden_groups, even with no plus tests
            "reference_solution": problem.reference,
        },
    )


def test_of(problem: Problem, group: str, case: Case) -> Test:
    arguments, expected, atol = case
    if not problem.not_none:
        return Test(
            "call", input=arguments, expected=expected, oracle=problem.oracle, atol=atol,
            group=group,
        )  # fmt: skip
    # EvalPlus's not-None check (evalplus/eval/__init__.py, `unsafe_execute`): a bool answer
    # is compared, anything else by `is not None`. These answers are usually a re.Match, which
    # a call test cannot carry back as data; an assert test holds it as an opaque value, whose
    # type and identity suffice.
    call = f"{problem.entry_point}({', '.join(map(repr, values.decode(arguments)))})"
    check = f"(_out if type(_out) is bool else _out is not None) == {values.decode(expected)!r}"
    return Test("assert", source=f"_out = {call}\nassert {check}", group=group)


def cache_path(path: Path) -> Path:
    # The cache directory of pot.policy.models.cache_dir, which this layer cannot import.
    root = Path(os.environ.get("POT_CACHE", "~/.cache/pot")).expanduser()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return root / "mbppplus" / f"{digest}-v{CACHE_VERSION}.json"


def cached_cases(path: Path, problems: list[Problem]) -> dict[str, dict[str, Any]]:
    """Per task id {"base": [Case...], "plus": [Case...]}, or {"error": why} where the
    reference failed; computed once per file content, then read from the cache."""
    cache = cache_path(path)
    try:
        cached = json.loads(cache.read_text())
    except (OSError, json.JSONDecodeError):
        cached = {}
    if all(problem.task_id in cached for problem in problems):
        return cached
    cases = compute_cases(problems)
    cache.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(cases))
    os.replace(temporary, cache)
    return cases


def compute_cases(problems: list[Problem]) -> dict[str, dict[str, Any]]:
    """Run every reference on its inputs in a sandbox of its own, whose time limit does not
    depend on the caller's (one job per task, in parallel). Its output limit is the default
    one that programs are judged under: no program could return an expected value over it,
    so such a task is left out (Mbpp/630, a 1.3 MB list) rather than loaded unsolvable."""
    # Imported here: the sandbox layer imports pot.tasks, so it sits above this module.
    from pot.sandbox import Limits, Sandbox

    jobs = [reference_job(problem) for problem in problems]
    with Sandbox(limits=Limits(timeout_s=REFERENCE_TIMEOUT_S)) as sandbox:
        evaluations = sandbox.evaluate_many(jobs)
    return {
        problem.task_id: cases_of(problem, evaluation.results)
        for problem, evaluation in zip(problems, evaluations, strict=True)
    }


def reference_job(problem: Problem) -> tuple[str, list[Test], str, str]:
    tests = [
        Test("call", input=values.encode(arguments), expected="null", group=group)
        for group in GROUPS
        for arguments in converted_inputs(problem, group)
    ]
    if not problem.not_none:
        return problem.reference, tests, problem.entry_point, ""
    # EvalPlus keeps only whether these references returned something (`trusted_exec`,
    # output_not_none): their re.Match values are not plain data.
    wrapper = (
        f"\n\ndef {REFERENCE_ENTRY}(*arguments):\n"
        f"    return {problem.entry_point}(*arguments) is not None\n"
    )
    return problem.reference + wrapper, tests, REFERENCE_ENTRY, ""


def cases_of(problem: Problem, results: list[Any]) -> dict[str, Any]:
    """Each group's cases from the reference's results, or {"error": why}."""
    outputs: dict[str, list[Any]] = {group: [] for group in GROUPS}
    for result in results:
        group = result.test.group
        if not result.value:
            why = (result.error.strip().splitlines() or [""])[-1][:200]
            number = len(outputs[group]) + 1
            return {
                "error": f"its reference solution gave {result.verdict.value} on {group} input "
                f"{number} ({why})"
            }
        outputs[group].append(result)
    cases: dict[str, Any] = {}
    for group, group_results in outputs.items():
        expected = [values.decode(result.value) for result in group_results]
        atols = carried_atols(problem.atol, expected)
        cases[group] = [
            (result.test.input, result.value, atol)
            for result, atol in zip(group_results, atols, strict=True)
        ]
    return cases


def carried_atols(atol: float, expected: list[Any]) -> list[float]:
    """The atol EvalPlus's loop over one group's inputs has in force at each input: the
    task's, until a float output makes it 1e-6 for the rest of the group when the task's is 0
    (evalplus/eval/__init__.py, `unsafe_execute`; the output's own 1e-6 is oracles' part)."""
    atols = []
    for output in expected:
        atols.append(atol)
        if atol == 0 and oracles.is_floats(output):
            atol = oracles.FLOAT_ATOL
    return atols
