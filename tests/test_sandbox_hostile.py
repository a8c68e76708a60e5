"""Hostile programs: every one is contained, the host is untouched, no process is left behind."""

import contextlib
import os
import shutil
import socket
import stat
import tempfile
import threading
from pathlib import Path

import pytest

from pot.sandbox import IsolationWarning, Limits, Sandbox, Verdict
from pot.tasks import Test

pytestmark = pytest.mark.bwrap

# In limited mode RLIMIT_NPROC counts every process of `nobody` on the machine, other sandboxes'
# too: 64 leaves the detached sleepers room on a shared machine; the fork bomb still hits it.
LIMITS = Limits(timeout_s=1.0, memory_mb=256, output_bytes=100_000, max_processes=64)
SECRET = "pot-test-secret-7f3a91"
ASSERT_F = [Test("assert", source="assert f() == 1")]
CONTAINED = {
    "infinite loop": ("while True:\n    pass\n", Verdict.TIME_LIMIT),
    "infinite loop in the function": (
        "def f():\n    while True:\n        pass\n",
        Verdict.TIME_LIMIT,
    ),
    "sleep forever": ("import time\ndef f():\n    time.sleep(1000)\n", Verdict.TIME_LIMIT),
    "fork bomb": (
        "import os\ndef f():\n    while True:\n        try:\n            os.fork()\n"
        "        except OSError:\n            pass\n",
        Verdict.TIME_LIMIT,
    ),
    "detached sleepers": (
        "import os, time\nfor _ in range(5):\n    if os.fork() == 0:\n        os.setsid()\n"
        "        if os.fork() == 0:\n            time.sleep(1000)\n        os._exit(0)\n"
        "def f():\n    time.sleep(1000)\n",
        Verdict.TIME_LIMIT,
    ),
    "memory bomb": ("def f():\n    return len(bytearray(10**10))\n", Verdict.MEMORY_LIMIT),
    "growing memory": (  # calloc'ed pages are never touched: it hits the limit fast under load
        "def f():\n    xs = []\n    while True:\n        xs.append(bytes(10**6))\n",
        Verdict.MEMORY_LIMIT,
    ),
    "huge output": (
        "def f():\n    while True:\n        print('x' * 10000)\n",
        Verdict.OUTPUT_LIMIT,
    ),
    "huge stderr": (
        "import sys\ndef f():\n    while True:\n        sys.stderr.write('x' * 10000)\n",
        Verdict.OUTPUT_LIMIT,
    ),
    "sys.exit(0) before the asserts": (
        "import sys\ndef f():\n    return 2\nsys.exit(0)\n",
        Verdict.RUNTIME_ERROR,
    ),
    "sys.exit(0) in the function": (
        "import sys\ndef f():\n    sys.exit(0)\n",
        Verdict.RUNTIME_ERROR,
    ),
    "os._exit(0) at import": (
        "import os\ndef f():\n    return 2\nos._exit(0)\n",
        Verdict.RUNTIME_ERROR,
    ),
    "os._exit(0) in the function": (
        "import os\ndef f():\n    os._exit(0)\n",
        Verdict.RUNTIME_ERROR,
    ),
    "print a fake pass": (
        "print('All 1 tests passed.')\nprint('{\"status\": \"completed\"}')\n"
        "def f():\n    return 2\n",
        Verdict.WRONG_ANSWER,
    ),
    "write a fake record on every fd": (
        'import os\nrecord = b\'{"status": "completed"}\\n\'\nfor fd in range(3, 64):\n    try:\n'
        "        os.write(fd, record)\n    except OSError:\n        pass\nos._exit(0)\n",
        Verdict.RUNTIME_ERROR,
    ),
    "swallow the assertion": (
        "import builtins\nbuiltins.AssertionError = type('Quiet', (Exception,), {})\n"
        "def f():\n    return 2\n",
        Verdict.WRONG_ANSWER,
    ),
    "rebind exec to skip the test": (
        "import builtins\nbuiltins.exec = builtins.compile = lambda *args, **kwargs: None\n"
        "def f():\n    return 2\n",
        Verdict.WRONG_ANSWER,
    ),
    "patch json to forge the record": (
        'import json\nforged = lambda *args, **kwargs: \'{"status": "completed"}\'\n'
        "json.dumps = json._default_encoder.encode = forged\ndef f():\n    return 2\n",
        Verdict.RUNTIME_ERROR,  # it only breaks its own replies
    ),
    "kill its own process group": (
        "import os\ndef f():\n    os.killpg(0, 9)\n",
        Verdict.RUNTIME_ERROR,
    ),
}


def nobody_processes_of(pids: set[int]) -> dict[int, str]:
    """State letter of each process in `pids` (Z = zombie)."""
    states = {}
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            states[pid] = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return states


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                pids = {int(child) for child in children.read_text().split()}
            except FileNotFoundError:
                continue
            todo += pids
            found |= pids
    return found


def orphans_of_uid(uid: int) -> set[int]:
    """Live processes of `uid` re-parented to init: what escaped its sandbox would be here."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            # Zombies run nothing: a worker killed from outside leaves its children's entries
            # to init, which in some containers never reaps them.
            if fields["State"].split()[0] == "Z":
                continue
            if int(fields["Uid"].split()[0]) == uid and int(fields["PPid"]) == 1:
                found.add(int(entry.name))
    return found


@pytest.fixture(scope="module", params=["bwrap", "limited"])
def box(request):
    os.environ["POT_TEST_SECRET"] = SECRET
    orphans_before = orphans_of_uid(65534)
    others = descendants(os.getpid())  # e.g. the session-wide sandbox of other test modules
    try:
        if request.param == "limited":
            with pytest.warns(IsolationWarning, match="LIMITED"):
                sandbox = Sandbox(workers=2, isolation="limited", limits=LIMITS)
        else:
            sandbox = Sandbox(workers=2, isolation="bwrap", limits=LIMITS)
    finally:
        del os.environ["POT_TEST_SECRET"]
    with sandbox:
        yield sandbox
        # After the whole suite: only the warm workers remain below us (bwrap, the judge worker,
        # the program server and, once an assert test needed it, the judge process each), none
        # a zombie, and nothing of the sandbox user escaped.
        workers = descendants(os.getpid()) - others
        per_worker = 3 if request.param == "bwrap" else 2
        assert per_worker * sandbox.workers <= len(workers) <= (per_worker + 1) * sandbox.workers
        assert "Z" not in nobody_processes_of(workers).values()
        assert orphans_of_uid(65534) <= orphans_before
        assert sandbox.evaluate("def f():\n    return 1\n", ASSERT_F).all_passed


@pytest.mark.parametrize("case", CONTAINED)
def test_hostile_program_is_contained(box: Sandbox, case: str):
    program, verdict = CONTAINED[case]
    evaluation = box.evaluate(program, ASSERT_F)
    assert evaluation.verdict is verdict, evaluation.results[0].error
    assert evaluation.reward == 0.0
    assert box.evaluate("def f():\n    return 1\n", ASSERT_F).all_passed


@pytest.mark.parametrize("kind", ["assert", "call"])
@pytest.mark.parametrize("value", ["'x' * 2_000_000", "list(range(50_000))"])
def test_a_huge_return_value_gets_the_output_limit(box: Sandbox, kind: str, value: str):
    program = f"def f():\n    return {value}\n"
    test = Test("assert", source="assert f() == 1")
    if kind == "call":
        test = Test("call", input="[]", expected="1")
    workers = [worker.process.pid for worker in box._workers]
    for _ in range(box.workers):  # every worker, each then judges the next program
        (result,) = box.evaluate(program, [test], entry_point="f").results
        assert result.verdict is Verdict.OUTPUT_LIMIT, result.error
        assert result.error == (
            "the returned value is over the output limit (Limits.output_bytes = 100000)"
        )
        assert box.evaluate("def f():\n    return 1\n", [test], entry_point="f").all_passed
    assert [worker.process.pid for worker in box._workers] == workers


def test_killing_the_parent_only_fails_its_own_test(box: Sandbox):
    program = (
        "import os, signal, time\ndef f(x):\n"
        "    if x == 0:\n        os.kill(os.getppid(), signal.SIGKILL)\n        time.sleep(10)\n"
        "    if x == 1:\n        os.kill(os.getppid(), signal.SIGINT)\n"
        "    if x == 2:\n        os.kill(-1, signal.SIGKILL)\n    return x\n"
    )
    if box.isolation == "bwrap":
        # The parent is the program server: killing it ends the program too (and the judge
        # worker starts a new server); SIGINT is ignored. The judge worker is PID 1 of its
        # namespace: signals never reach it, kill(-1) ends everything else.
        tests = [Test("assert", source=f"assert f({x}) == {x}") for x in (0, 1, 2, 3)]
        expected = [Verdict.RUNTIME_ERROR, Verdict.PASS, Verdict.RUNTIME_ERROR, Verdict.PASS]
    else:
        # kill(-1) would hit every process of the sandbox user on this machine: not tried here.
        tests = [Test("assert", source=f"assert f({x}) == {x}") for x in (0, 3)]
        expected = [Verdict.RUNTIME_ERROR, Verdict.PASS]
    assert [r.verdict for r in box.evaluate(program, tests).results] == expected


STOP_OTHERS = (
    "import os, signal, time\ndef stop_others():\n    for pid in os.listdir('/proc'):\n"
    "        if pid.isdigit() and int(pid) != os.getpid():\n            try:\n"
    "                os.kill(int(pid), signal.SIGSTOP)\n            except OSError:\n"
    "                pass\n"
)
STOPPERS = {
    "SIGSTOP its parent, the program server": (
        "import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\ndef f():\n    return 2\n"
    ),
    "SIGSTOP every other process, the judge's too": (
        f"{STOP_OTHERS}def f():\n    stop_others()\n    return 2\n"
    ),
    "a detached process that keeps stopping the others": (
        f"{STOP_OTHERS}if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        while True:\n            stop_others()\n            time.sleep(0.01)\n"
        "    os._exit(0)\ndef f():\n    return 2\n"
    ),
}


@pytest.mark.parametrize("case", STOPPERS)
def test_stopped_judges_and_servers_fail_only_their_own_test(box: Sandbox, case: str):
    if box.isolation != "bwrap":
        pytest.skip("outside a PID namespace it would stop every process of its user")
    evaluation = box.evaluate(STOPPERS[case], ASSERT_F)  # a wrong answer, or a time limit
    assert evaluation.verdict in (Verdict.WRONG_ANSWER, Verdict.TIME_LIMIT)
    for _ in range(2 * box.workers):  # whichever worker ran it is back in order
        assert box.evaluate("def f():\n    return 1\n", ASSERT_F).all_passed


def kill_worker(box: Sandbox, index: int) -> None:
    """SIGKILL a worker's in-sandbox judge process from outside, as a crash would."""
    worker = box._workers[index]
    outer = worker.process.pid
    (judge,) = [outer] if box.isolation == "limited" else children(outer)  # bwrap's child
    os.kill(judge, 9)
    worker.process.wait(timeout=5)


def test_dead_worker_is_restarted(box: Sandbox):
    kill_worker(box, 0)
    jobs = [("def f():\n    return 1\n", ASSERT_F, None, "")] * 4
    assert all(e.all_passed for e in box.evaluate_many(jobs))


def test_workers_restarted_from_a_short_lived_thread_outlive_it(box: Sandbox):
    for index in range(box.workers):
        kill_worker(box, index)
    job = ("def f():\n    return 1\n", ASSERT_F)
    thread = threading.Thread(target=lambda: [box.evaluate(*job) for _ in box._workers])
    thread.start()
    thread.join()
    started = [worker.process.pid for worker in box._workers]
    assert all(box.evaluate(*job).all_passed for _ in range(2 * box.workers))
    assert [worker.process.pid for worker in box._workers] == started


def test_closed_stdout_does_not_hide_the_result(box: Sandbox):
    program = (
        "import os, sys\nprint(2, flush=True)\nos.close(1)\nos.close(2)\ndef f():\n    return 1\n"
    )
    assert box.evaluate(program, ASSERT_F + [Test("stdio", expected="2")]).all_passed
    wrong = "import os\nos.close(1)\ndef f():\n    return 2\n"
    assert box.evaluate(wrong, ASSERT_F).verdict is Verdict.WRONG_ANSWER


@pytest.fixture
def open_dir():
    """A directory everyone may enter (unlike pytest's tmp_path), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pot-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def skip_unless_another_user(box: Sandbox) -> None:
    if box.isolation == "limited" and os.geteuid() != 0:
        pytest.skip("limited mode started without root runs programs as the caller's own user")


def test_files_outside_the_sandbox_cannot_be_deleted(box: Sandbox, open_dir: Path):
    skip_unless_another_user(box)
    in_repository = Path(__file__).parent / f".canary-{os.getpid()}"
    in_repository.mkdir()
    canaries = [open_dir / "canary.txt", in_repository / "canary.txt"]
    for canary in canaries:
        canary.write_text("alive")
        canary.chmod(0o666)  # even world-writable files
    program = (
        "import os, shutil\n"
        f"for path in {[str(c) for c in canaries]!r}:\n"
        "    try:\n        os.remove(path)\n    except OSError:\n        pass\n"
        "    shutil.rmtree(os.path.dirname(path), ignore_errors=True)\n"
        "def f():\n    return 1\n"
    )
    try:
        box.evaluate(program, ASSERT_F)
        assert [c.read_text() for c in canaries] == ["alive", "alive"]
    finally:
        shutil.rmtree(in_repository)


def test_secrets_are_not_readable(box: Sandbox, open_dir: Path):
    skip_unless_another_user(box)
    secret_file = open_dir / "secret.txt"
    secret_file.write_text(SECRET)
    secret_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    program = (
        "import os\nfound = [v for v in os.environ.values() if 'secret' in v]\n"
        f"for path in ({str(secret_file)!r}, '/etc/shadow', '/root/.bashrc'):\n"
        "    try:\n        found.append(open(path).read())\n    except OSError:\n        pass\n"
        "print(found)\n"
    )
    evaluation = box.evaluate(program, [Test("stdio", expected="[]")])
    assert evaluation.all_passed, evaluation.results[0].output


@pytest.mark.parametrize(
    "call",
    [
        "libc.ptrace(16, os.getppid(), 0, 0)",  # PTRACE_ATTACH to the worker
        "libc.ptrace(0, 0, 0, 0)",  # PTRACE_TRACEME
        "libc.unshare(0x10000000)",  # CLONE_NEWUSER
        "libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)",
        "libc.syscall(321, 0, 0, 0)",  # bpf
        "libc.syscall(250, 0, 0, 0)",  # keyctl
    ],
)
def test_forbidden_system_calls_fail(box: Sandbox, call: str):
    if box.isolation != "bwrap":
        pytest.skip("limited mode has no seccomp filter")
    program = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"result = {call}\nprint(result, ctypes.get_errno())\n"
    )
    evaluation = box.evaluate(program, [Test("stdio", expected="-1 1")])  # EPERM
    assert evaluation.all_passed, evaluation.results[0].output + evaluation.results[0].error


def test_network_is_unreachable(box: Sandbox):
    if box.isolation != "bwrap":
        pytest.skip("limited mode shares the host network")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        program = (
            "import socket\ntry:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "    print('connected')\nexcept OSError:\n    print('refused')\n"
        )
        evaluation = box.evaluate(program, [Test("stdio", expected="refused")])
        assert evaluation.all_passed, evaluation.results[0].output
        with pytest.raises(TimeoutError):
            listener.accept()


def test_sandbox_sees_only_the_system_interpreter(box: Sandbox):
    if box.isolation != "bwrap":
        pytest.skip("limited mode sees the host file system")
    program = "import os\nprint(sorted(os.listdir('/')), os.getuid() != 0, os.listdir('/tmp'))"
    evaluation = box.evaluate(program, [Test("stdio")])
    assert evaluation.results[0].output.startswith("['bin', 'dev', 'lib'"), evaluation.results
    assert (
        "'root'" not in evaluation.results[0].output
        and "'work'" not in evaluation.results[0].output
    )
    assert "True []" in evaluation.results[0].output


def test_auto_falls_back_to_limited_mode_loudly():
    with pytest.warns(IsolationWarning, match="bubblewrap not found"):
        sandbox = Sandbox(workers=1, bwrap="/nonexistent/bwrap")
    with sandbox:
        assert sandbox.isolation == "limited"
        evaluation = sandbox.evaluate("def f():\n    return 1\n", ASSERT_F)
        assert evaluation.all_passed and evaluation.isolation == "limited"
