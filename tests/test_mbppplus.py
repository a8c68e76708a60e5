"""The MBPP+ loader: specs and ids, prompt and tests, the expected-output cache, error lines."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from pot.sandbox import values
from pot.tasks import TaskFormatError, get_task, load_tasks, mbppplus
from pot.tasks.load import MBPPPLUS_SPLIT_NAMES
from pot.tasks.mbppplus import SHIPPED_FILE, load_mbppplus

# Small file: set oracle + tuple inputs (2), digit distance (558), atol 1e-4 (574), surface
# area (581), not-None (737), no plus inputs (793).
SMALL_IDS = ("Mbpp/2", "Mbpp/558", "Mbpp/574", "Mbpp/581", "Mbpp/737", "Mbpp/793")


def shipped_lines() -> dict[str, str]:
    lines = SHIPPED_FILE.read_text().splitlines()
    return {json.loads(line)["task_id"]: line for line in lines}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("POT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mbppplus"


@pytest.fixture
def small_file(tmp_path):
    lines = shipped_lines()
    path = tmp_path / "small.jsonl"
    path.write_text("".join(lines[task_id] + "\n" for task_id in SMALL_IDS))
    return path


def write_records(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def record_of(task_id: str) -> dict:
    return json.loads(shipped_lines()[task_id])


@pytest.mark.usefixtures("shipped_mbppplus")
def test_shipped_tasks_and_splits(caplog):
    with caplog.at_level(logging.WARNING):
        tasks = load_tasks("mbppplus")
    # Mbpp/630's reference returns a 1.3 MB list on one plus input, over the sandbox's output
    # limit: it is left out, and the loader says so in one line.
    assert len(tasks) == 159
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 1 and left_out[0].startswith("MBPP+ Mbpp/630 left out: its reference")
    assert "\n" not in left_out[0]
    numbers = [int(task.id.rsplit("/", 1)[1]) for task in tasks]
    validation = load_tasks("mbppplus:validation")
    train = load_tasks("mbppplus:train")
    assert [t.id for t in validation + train] == [t.id for t in tasks]
    assert all(n <= 10 or 511 <= n <= 600 for n in numbers[: len(validation)])
    assert len(validation) == 49 and len(train) == 110
    assert set(MBPPPLUS_SPLIT_NAMES) == set(mbppplus.MBPPPLUS_SPLITS)


@pytest.mark.usefixtures("shipped_mbppplus")
def test_task_prompt_and_tests():
    task = get_task("mbppplus/Mbpp/2")
    assert task.id == "mbppplus/Mbpp/2" and task.entry_point == "similar_elements"
    assert task.prompt == (
        "Write a function to find the shared elements from the given two lists.\n"
        "assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)"
    )
    assert len(task.public_tests) == 3 and len(task.hidden_tests) == 3 + 108
    assert task.hidden_tests[:3] == task.public_tests
    assert {t.group for t in task.hidden_tests[3:]} == {"plus"}
    first = task.public_tests[0]
    assert (first.kind, first.group, first.oracle) == ("call", "base", "evalplus-set")
    assert values.decode(first.input) == [(3, 4, 5, 6), (5, 7, 4, 10)]  # tuples, as EvalPlus
    assert values.decode(first.expected) == (4, 5)
    assert task.metadata["evalplus_task_id"] == "Mbpp/2"


@pytest.mark.usefixtures("shipped_mbppplus")
@pytest.mark.parametrize(
    "spec", ["mbppplus/2", "mbppplus#Mbpp/2", "mbppplus:validation/Mbpp/2", "mbppplus:validation/2"]
)
def test_one_task_specs(spec):
    assert get_task(spec).id == "mbppplus/Mbpp/2"


def test_not_none_and_no_plus_tasks(small_file, cache):
    tasks = {task.metadata["evalplus_task_id"]: task for task in load_mbppplus(small_file)}
    check_str = tasks["Mbpp/737"]
    assert check_str.public_tests[1].source == (
        "_out = check_str('dawood')\n"
        "assert (_out if type(_out) is bool else _out is not None) == False"
    )
    assert {t.kind for t in check_str.hidden_tests} == {"assert"}
    last = tasks["Mbpp/793"]
    assert len(last.public_tests) == 3 and last.hidden_tests == last.public_tests
    assert tasks["Mbpp/574"].hidden_tests[0].atol == 0.0001
    assert tasks["Mbpp/581"].public_tests[0].oracle == "evalplus-surface-area"


# EvalPlus's not-None rule on Mbpp/737: a re.Match or None passes, so do bools, and anything
# else counts by `is not None` (0 is "something", so it fails where None is expected).
NOT_NONE_ANSWERS = {
    "import re\ndef check_str(s):\n    return re.search('^[aeiouAEIOU][A-Za-z0-9_]*', s)": True,
    "def check_str(s):\n    return s != '' and s[0] in 'aeiouAEIOU'": True,
    "def check_str(s):\n    return 1 if s and s[0] in 'aeiouAEIOU' else None": True,
    "def check_str(s):\n    return 1 if s and s[0] in 'aeiouAEIOU' else 0": False,
    "def check_str(s):\n    return s": False,
}


@pytest.mark.usefixtures("shipped_mbppplus")
def test_not_none_tasks_judge_matches_bools_and_none_as_evalplus(sandbox):
    task = get_task("mbppplus/Mbpp/737")
    for program, passes in NOT_NONE_ANSWERS.items():
        assert sandbox.evaluate_task(task, program, "hidden").all_passed is passes, program


def test_cached_load_returns_the_fresh_tests(small_file, cache, monkeypatch):
    fresh = load_mbppplus(small_file)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith(mbppplus.cache_path(small_file).stem)

    def no_sandbox(problems):
        raise AssertionError("a cached load ran the references again")

    monkeypatch.setattr(mbppplus, "compute_cases", no_sandbox)
    assert load_mbppplus(small_file) == fresh
    compressed = small_file.with_suffix(".jsonl.gz")
    compressed.write_bytes(gzip.compress(small_file.read_bytes()))
    monkeypatch.undo()
    monkeypatch.setenv("POT_CACHE", str(cache.parent))
    assert load_tasks(f"mbppplus:{compressed}") == fresh


def test_a_reference_that_fails_is_reported_and_left_out(tmp_path, cache, caplog):
    broken = record_of("Mbpp/2")
    broken["canonical_solution"] = "\ndef similar_elements(a, b):\n    return 1 // len(a)\n"
    path = write_records(tmp_path / "broken.jsonl", [broken, record_of("Mbpp/558")])
    with caplog.at_level(logging.WARNING):
        tasks = load_mbppplus(path)
    assert [task.id for task in tasks] == ["mbppplus/Mbpp/558"]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("MBPP+ Mbpp/2 left out: its reference solution gave runtime_error")
    assert "plus input 1" in message and "ZeroDivisionError" in message


def malformed(record: dict, **changes) -> dict:
    return {key: value for key, value in {**record, **changes}.items() if value is not None}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"base_input": "oops"}, "field 'base_input' must be a list or an object, got str"),
        ({"plus_input": [[1], 2]}, "field 'plus_input' item 1 must be a list of arguments"),
        ({"entry_point": None}, "missing field 'entry_point'"),
        ({"atol": "0"}, "field 'atol' must be an integer or float, got str"),
        ({"assertion": "x = 1"}, "field 'assertion' holds no assert statement"),
        ({"base_input": [[5, [1]]]}, "field 'base_input' item 0 cannot be converted"),
    ],
)
def test_malformed_input_names_file_line_task_and_field(tmp_path, cache, changes, problem):
    records = [record_of("Mbpp/558"), malformed(record_of("Mbpp/2"), **changes)]
    path = write_records(tmp_path / "bad.jsonl", records)
    with pytest.raises(TaskFormatError) as error:
        load_tasks(f"mbppplus:{path}")
    message = str(error.value)
    assert message.startswith(f"{path} line 2 (Mbpp/2): {problem}"), message
    assert "\n" not in message


def test_file_and_spec_errors(tmp_path, cache):
    with pytest.raises(TaskFormatError, match="no MBPP\\+ split or file 'test'"):
        load_tasks("mbppplus:test")
    path = write_records(tmp_path / "x.jsonl", [record_of("Mbpp/2"), record_of("Mbpp/2")])
    with pytest.raises(TaskFormatError, match="line 2 \\(Mbpp/2\\): task id already used"):
        load_tasks(f"mbppplus:{path}")
    with pytest.raises(TaskFormatError, match="an MBPP\\+ \\(EvalPlus\\) record.*mbppplus:<path>"):
        load_tasks(str(path))
    bad = write_records(tmp_path / "id.jsonl", [replace_id(record_of("Mbpp/2"), "2")])
    with pytest.raises(TaskFormatError, match="field 'task_id' is '2'"):
        load_tasks(f"mbppplus:{bad}")


def replace_id(record: dict, task_id: str) -> dict:
    return {**record, "task_id": task_id}


def test_reference_cases_keep_evalplus_float_atol_for_the_rest_of_a_group():
    assert mbppplus.carried_atols(0.0, [1, [], 2.5, 3, (1.0, 2.0)]) == [0, 0, 0, 1e-6, 1e-6]
    assert mbppplus.carried_atols(1e-4, [1.0, 2]) == [1e-4, 1e-4]
