"""Grading: assert / call / stdio tests, stdin styles, output comparison, reward and feedback."""

import pytest

from pot.sandbox import IsolationWarning, Limits, Sandbox, Verdict, values
from pot.sandbox.compare import stdout_matches
from pot.sandbox.results import FEEDBACK_CHARS
from pot.tasks import Task, Test

pytestmark = pytest.mark.bwrap

DOUBLE_STDIN = {
    "input()": "print(int(input()) * 2)",
    "sys.stdin.read": "import sys\nprint(sum(map(int, sys.stdin.read().split())) * 2)",
    "sys.stdin.buffer": "import sys\nprint(int(sys.stdin.buffer.readline()) * 2)",
    "sys.stdin lines": "import sys\nfor line in sys.stdin:\n    print(int(line) * 2)",
    "open(0)": "print(int(open(0).read()) * 2)",
    "os.read(0)": "import os\nprint(int(os.read(0, 100)) * 2)",
    "main guard": "def main():\n    print(int(input()) * 2)\n\n"
    "if __name__ == '__main__':\n    main()",
    "globals": "total = 0\ndef add(x):\n    global total\n    total += x\nadd(int(input()))\n"
    "add(total)\nprint(total)",
    "sys.exit(0) after output": "import sys\nprint(int(input()) * 2)\nsys.exit(0)",
    "flush + os._exit(0)": "import os, sys\nprint(int(input()) * 2)\nsys.stdout.flush()\n"
    "os._exit(0)",
    "sys.stdout.write": "import sys\nsys.stdout.write(str(int(input()) * 2) + '\\n')",
}


@pytest.fixture(scope="module", params=["bwrap", "limited"])
def box(request):
    if request.param == "limited":
        with pytest.warns(IsolationWarning, match="LIMITED"):
            sandbox = Sandbox(workers=2, isolation="limited", limits=Limits(timeout_s=2.0))
    else:
        sandbox = Sandbox(workers=2, isolation="bwrap", limits=Limits(timeout_s=2.0))
    with sandbox:
        assert sandbox.isolation == request.param
        yield sandbox


@pytest.mark.parametrize("style", DOUBLE_STDIN)
def test_stdio_programs_read_stdin_in_any_style(box: Sandbox, style: str):
    tests = [Test("stdio", input="21\n", expected="42\n"), Test("stdio", input="5", expected="10")]
    evaluation = box.evaluate(DOUBLE_STDIN[style], tests)
    assert [r.verdict for r in evaluation.results] == [Verdict.PASS, Verdict.PASS], evaluation
    assert evaluation.reward == 1.0
    assert evaluation.isolation == box.isolation


def test_stdio_wrong_answer_shows_input_expected_and_actual(box: Sandbox):
    evaluation = box.evaluate("print(int(input()) + 1)", [Test("stdio", input="2", expected="4")])
    assert evaluation.verdict is Verdict.WRONG_ANSWER
    assert evaluation.results[0].output == "3\n"
    assert "Input:\n2" in evaluation.feedback
    assert "Expected:\n4" in evaluation.feedback
    assert "Got:\n3" in evaluation.feedback


def test_stdio_nonzero_exit_is_a_runtime_error(box: Sandbox):
    evaluation = box.evaluate("print(1)\nraise SystemExit(3)", [Test("stdio", expected="1")])
    assert evaluation.verdict is Verdict.RUNTIME_ERROR


@pytest.mark.parametrize(
    ("actual", "expected", "matches"),
    [
        ("1 2 3\n", "1 2 3", True),
        ("  1   2 3  \n\n", "1 2 3\n", True),
        ("1 2\r\n3\r\n", "1 2\n3\n", True),
        ("0.3333333", "0.333333333", True),
        ("1.0", "1", True),
        ("3.14159", "3.14", False),
        ("1000001", "1000000", False),
        ("1 2", "1\n2", False),
        ("yes", "YES", False),
        ("", "0", False),
        ("nan", "nan", True),
    ],
)
def test_stdout_comparison(actual: str, expected: str, matches: bool):
    assert stdout_matches(actual, expected) is matches


def test_float_and_whitespace_tolerance_end_to_end(box: Sandbox):
    program = "a, b = map(float, input().split())\nprint('%.9f' % (a / b), '  ')\nprint()"
    tests = [
        Test("stdio", input="1 3", expected="0.3333333"),
        Test("stdio", input="2 3", expected="0.7"),
    ]
    verdicts = [r.verdict for r in box.evaluate(program, tests).results]
    assert verdicts == [Verdict.PASS, Verdict.WRONG_ANSWER]


def test_call_tests_compare_json_values_and_tuples_equal_lists(box: Sandbox):
    program = "def pair(a, b):\n    return (b, [a, {'k': (a,)}])\n\ndef wrong(a):\n    return {a}\n"
    good = Test("call", input="[1, 2]", expected='[2, [1, {"$": "dict", "v": [["k", [1]]]}]]')
    bad = Test("call", input="[1, 2]", expected='[2, [1, {"$": "dict", "v": [["k", [2]]]}]]')
    evaluation = box.evaluate(program, [good, bad], entry_point="pair")
    assert [r.verdict for r in evaluation.results] == [Verdict.PASS, Verdict.WRONG_ANSWER]
    assert evaluation.results[1].output == "(2, [1, {'k': (1,)}])"
    assert values.decode(evaluation.results[1].value) == (2, [1, {"k": (1,)}])
    assert "Expected:\n[2, [1, {'k': [2]}]]" in evaluation.feedback
    a_set = box.evaluate(program, [Test("call", "", "[1]", "[1]")], entry_point="wrong")
    assert a_set.verdict is Verdict.WRONG_ANSWER
    assert a_set.results[0].output == "{1}"


def test_call_tests_carry_every_plain_data_type_through_the_codec(box: Sandbox):
    value = {1: (b"\x00", {2.5, frozenset({3})}), "c": [1 + 2j, float("inf"), None, True]}
    program = f"inf = float('inf')\n\ndef f():\n    return {value!r}\n"
    test = Test("call", input="[]", expected=values.encode(value))
    evaluation = box.evaluate(program, [test], entry_point="f")
    assert evaluation.all_passed, evaluation.feedback
    assert values.decode(evaluation.results[0].value) == value
    nan = box.evaluate("def f():\n    return float('nan')\n", [test], entry_point="f")
    assert nan.verdict is Verdict.WRONG_ANSWER and nan.results[0].output == "nan"


@pytest.mark.parametrize(
    ("body", "kind"),
    [("(x for x in [1])", "generator"), ("iter([1])", "list_iterator"), ("Box()", "Box")],
)
def test_a_returned_object_outside_plain_data_is_a_wrong_answer(box: Sandbox, body, kind):
    program = f"class Box:\n    pass\n\ndef f():\n    return {body}\n"
    evaluation = box.evaluate(program, [Test("call", "", "[]", "[1]")], entry_point="f")
    assert evaluation.verdict is Verdict.WRONG_ANSWER
    assert evaluation.results[0].error == f"returned an unsupported type: {kind}"
    assert evaluation.results[0].value == ""


def test_call_tests_find_livecodebench_solution_methods(box: Sandbox):
    program = (
        "class Solution:\n    def twoSum(self, xs, t):\n"
        "        return [0, 1] if xs[0] + xs[1] == t else []\n"
    )
    test = Test("call", input="[[2, 7, 11], 9]", expected="[0, 1]")
    assert box.evaluate(program, [test], entry_point="twoSum").all_passed


def test_an_object_claiming_equality_cannot_pass_a_call_test(box: Sandbox):
    program = (
        "class Any:\n    def __eq__(self, other):\n        return True\n\n"
        "def f():\n    return Any()\n"
    )
    evaluation = box.evaluate(program, [Test("call", input="[]", expected="5")], entry_point="f")
    assert evaluation.verdict is Verdict.WRONG_ANSWER


def test_assert_failure_is_a_wrong_answer_with_the_actual_value(box: Sandbox):
    program = "def add(a, b):\n    return a - b\n"
    evaluation = box.evaluate(program, [Test("assert", source="assert add(2, 3) == 5")])
    assert evaluation.verdict is Verdict.WRONG_ANSWER
    assert "add(2, 3) returned -1, expected 5" in evaluation.results[0].error


def test_exception_in_the_program_is_a_runtime_error_with_traceback(box: Sandbox):
    program = "def f(xs):\n    return xs[10]\n"
    evaluation = box.evaluate(program, [Test("assert", source="assert f([1]) == 1")])
    assert evaluation.verdict is Verdict.RUNTIME_ERROR
    error = evaluation.results[0].error
    assert 'File "<program>", line 2, in f' in error and "return xs[10]" in error
    assert error.endswith("IndexError: list index out of range")


def test_setup_code_runs_before_the_program(box: Sandbox):
    tests = [Test("assert", source="assert f() == 7")]
    evaluation = box.evaluate("def f():\n    return BASE + 1\n", tests, setup_code="BASE = 6")
    assert evaluation.all_passed


def test_reward_is_the_fraction_of_tests_passed(box: Sandbox):
    program = "def sq(x):\n    return x * x if x < 3 else 0\n"
    tests = [Test("assert", source=f"assert sq({x}) == {x * x}") for x in range(4)]
    evaluation = box.evaluate(program, tests)
    assert (evaluation.passed, evaluation.total, evaluation.reward) == (3, 4, 0.75)
    assert not evaluation.all_passed
    assert evaluation.verdict is Verdict.WRONG_ANSWER


def test_syntax_error_short_circuits_with_reward_zero(box: Sandbox):
    tests = [Test("assert", source="assert f() == 1")] * 3
    evaluation = box.evaluate("def f(:\n    return 1\n", tests)
    assert [r.verdict for r in evaluation.results] == [Verdict.SYNTAX_ERROR] * 3
    assert evaluation.reward == 0.0
    assert evaluation.feedback.startswith("Syntax error:") and "line 1" in evaluation.feedback


def test_after_a_syntax_error_the_next_program_gets_its_own_verdicts(box: Sandbox):
    # The judge has an assert test before the program server finds the syntax error.
    tests = [Test("assert", source="assert f(2) == 4"), Test("assert", source="assert f(2) == 5")]
    for _ in range(2):  # the workers take turns: each judges a syntax error, then a program
        for _ in range(box.workers):
            assert box.evaluate("def f(:\n", tests[:1]).verdict is Verdict.SYNTAX_ERROR
        for _ in range(box.workers):
            evaluation = box.evaluate("def f(x):\n    return 2 * x\n", tests)
            assert [r.verdict for r in evaluation.results] == [Verdict.PASS, Verdict.WRONG_ANSWER]


def test_broken_setup_code_is_a_runtime_error_in_setup(box: Sandbox):
    tests = [Test("assert", source="assert f() == 1")]
    evaluation = box.evaluate("def f():\n    return 1\n", tests, setup_code="def g(:\n")
    assert evaluation.verdict is Verdict.RUNTIME_ERROR
    assert "SyntaxError" in evaluation.results[0].error


def test_crash_at_import_fails_every_function_test(box: Sandbox):
    program = "import no_such_module\ndef f():\n    return 1\n"
    evaluation = box.evaluate(program, [Test("assert", source="assert f() == 1")] * 3)
    assert [r.verdict for r in evaluation.results] == [Verdict.RUNTIME_ERROR] * 3
    assert "ModuleNotFoundError" in evaluation.results[2].error
    assert evaluation.reward == 0.0


def test_every_test_runs_in_a_fresh_process(box: Sandbox):
    program = (
        "seen = []\ndef f():\n    seen.append(1)\n    open('state', 'a').write('x')\n"
        "    return len(seen), open('state').read()\n"
    )
    source = "assert f() == (1, 'x')"
    assert box.evaluate(program, [Test("assert", source=source)] * 3).all_passed


def test_nothing_left_in_stdio_buffers_reaches_the_next_test(box: Sandbox):
    # Every program process inherits the same unused stdio objects from the program server.
    leaving = (
        "import os, sys\nprint(sys.stdin.read(1), flush=True)\nsys.stdout.write('left')\n"
        "os._exit(0)\n"
    )
    reading = "import sys\nprint(repr(sys.stdin.read()))\nsys.stdout.write('out')\n"
    for _ in range(box.workers):
        (left,) = box.evaluate(leaving, [Test("stdio", input="ab", expected="a\n")]).results
        assert left.verdict is Verdict.PASS and left.output == "a\n"
        (read,) = box.evaluate(reading, [Test("stdio", input="cd", expected="'cd'\nout")]).results
        assert read.verdict is Verdict.PASS and read.output == "'cd'\nout"


def test_feedback_is_bounded(box: Sandbox):
    program = "def f(s):\n    return s * 2\n"
    tests = [Test("call", input=f'["{"x" * 5000}{i}"]', expected='"no"') for i in range(20)]
    evaluation = box.evaluate(program, tests, entry_point="f")
    assert evaluation.reward == 0.0
    assert len(evaluation.feedback) <= FEEDBACK_CHARS
    assert "more failing tests not shown" in evaluation.feedback
    assert all(len(r.output) <= 2000 for r in evaluation.results)


def test_evaluate_many_keeps_job_order(box: Sandbox):
    test = [Test("assert", source="assert f() == 3")]
    jobs = [(f"def f():\n    return {i}\n", test, None, "") for i in range(8)]
    rewards = [e.reward for e in box.evaluate_many(jobs)]
    assert rewards == [1.0 if i == 3 else 0.0 for i in range(8)]


def test_evaluate_task_uses_the_split_setup_and_entry_point(box: Sandbox):
    task = Task(
        id="t",
        prompt="",
        entry_point="f",
        public_tests=[Test("call", input="[1]", expected="2")],
        hidden_tests=[
            Test("call", input="[1]", expected="2"),
            Test("call", input="[5]", expected="6"),
        ],
        setup_code="ONE = 1",
    )
    program = "def f(x):\n    return x + ONE if x < 3 else 0\n"
    assert box.evaluate_task(task, program).reward == 1.0
    assert box.evaluate_task(task, program, split="hidden").reward == 0.5


@pytest.mark.parametrize(
    ("tests", "entry_point", "message"),
    [
        ([Test("call", input="[1]", expected="1")], None, "entry_point"),
        ([Test("call", input="{1", expected="1")], "f", "must be pot.sandbox.values encodings"),
        ([Test("call", input='[{"a": 1}]', expected="1")], "f", "must be pot.sandbox.values"),
        ([Test("call", input="1", expected="1")], "f", "encode a list of arguments"),
    ],
)
def test_bad_tests_raise_one_clear_error(box: Sandbox, tests, entry_point, message):
    with pytest.raises(ValueError, match=message):
        box.evaluate("def f(x):\n    return x\n", tests, entry_point=entry_point)


def test_no_tests_give_reward_zero_and_say_so(box: Sandbox):
    evaluation = box.evaluate("def f():\n    return 1\n", [])
    assert (evaluation.reward, evaluation.all_passed) == (0.0, False)
    assert evaluation.verdict is Verdict.NO_TESTS
    assert (
        evaluation.feedback == "This task has no public tests: no feedback, and every reward is 0."
    )
    task = Task(
        id="t", prompt="", entry_point="f", hidden_tests=[Test("assert", "assert f() == 1")]
    )
    assert box.evaluate_task(task, "def f():\n    return 1\n").reward == 0.0
    assert box.evaluate_task(task, "def f():\n    return 1\n", split="hidden").all_passed


def test_stop_at_the_first_failure_marks_the_rest_not_run(box: Sandbox):
    program = "def f(x):\n    return x if x != 2 else -1\n"
    tests = [
        Test("call", input=f"[{x}]", expected=str(x), group="base" if x < 2 else "plus")
        for x in range(5)
    ]
    full = box.evaluate(program, tests, entry_point="f")
    assert full.passed == 4 and full.group_passed("base") and not full.group_passed("plus")
    stopped = box.evaluate(program, tests, entry_point="f", stop_at_first_failure=True)
    verdicts = [r.verdict for r in stopped.results]
    assert verdicts == [Verdict.PASS] * 2 + [Verdict.WRONG_ANSWER] + [Verdict.NOT_RUN] * 2
    assert (stopped.reward, stopped.verdict) == (0.4, Verdict.WRONG_ANSWER)
    assert stopped.group_passed("base") and not stopped.group_passed("plus")
    assert not stopped.group_passed("no such group")
    assert "2 of 5 tests passed. Stopped at the first failing test: 2 not run." in stopped.feedback
    assert "Test 4" not in stopped.feedback
    task = Task(id="t", prompt="", entry_point="f", public_tests=tests, hidden_tests=tests)
    assert box.evaluate_task(task, program).passed == 4
    hidden = box.evaluate_task(task, program, split="hidden")
    assert [r.verdict for r in hidden.results] == verdicts


def test_closed_sandbox_refuses_work():
    sandbox = Sandbox(workers=1)
    sandbox.close()
    with pytest.raises(RuntimeError, match="closed"):
        sandbox.evaluate("x = 1", [Test("assert", source="pass")])


@pytest.mark.parametrize("limits", [{"timeout_s": 0}, {"memory_mb": -1}, {"max_open_files": 3}])
def test_bad_limits_raise_one_clear_error(limits: dict):
    with pytest.raises(ValueError, match="Limits.(timeout_s|memory_mb|max_open_files) must"):
        Limits(**limits)
